"""Turn a GGUF checkpoint into a Hugging Face safetensors folder that TRL can train.

transformers can read a GGUF file (dequantizing it) but cannot save a model loaded that way,
so the weights are copied into a plain model built from the same config. The result is cached
and written into a temporary folder that is renamed into place, so a kill never leaves half a
model behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from codeultra.errors import UserError
from codeultra.models import PACKS, resolve_gguf

MODELS_DIR_ENV = "CODEULTRA_MODELS_DIR"
_DONE_MARKER = "codeultra-gguf.json"


# Every local GGUF alias (codeultra.models.PACKS) converts to "<alias>-instruct".
BUNDLED: dict[str, str] = {alias: f"{alias}-instruct" for alias in PACKS}


def models_dir() -> Path:
    """Where converted models live: $CODEULTRA_MODELS_DIR, else models/hf under the repo root."""
    env = os.environ.get(MODELS_DIR_ENV)
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").exists():  # installed as a wheel: use the working directory
        root = Path.cwd()
    return root / "models" / "hf"


def bundled_gguf_path(alias: str) -> Path:
    """The GGUF behind an alias, found (and hash-checked) by codeultra.models."""
    return resolve_gguf(alias)


def ensure_hf_model(alias_or_path: str | Path) -> Path:
    """A folder loadable by from_pretrained: converts a bundled alias or a .gguf file once.

    An existing folder is returned as is; anything else is an error.
    """
    text = str(alias_or_path)
    if text in BUNDLED:
        return _ensure_converted(bundled_gguf_path(text), models_dir() / BUNDLED[text])
    path = Path(text)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UserError(f"GGUF file not found: {path}")
        return _ensure_converted(path, models_dir() / path.stem)
    if path.is_dir():
        return path
    known = ", ".join(sorted(BUNDLED))
    raise UserError(f"unknown GGUF model '{text}': use one of {known}, or a path to a .gguf file")


def _ensure_converted(gguf: Path, dest: Path) -> Path:
    if (dest / _DONE_MARKER).is_file():
        return dest
    if dest.exists():
        raise UserError(f"{dest} exists but is not a finished conversion; remove it and rerun")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-{os.getpid()}-", dir=dest.parent))
    try:
        convert_gguf(gguf, tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared
        try:
            tmp.rename(dest)
        except OSError:
            if not (dest / _DONE_MARKER).is_file():  # someone else won the race: use theirs
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _remove_stale_temps(dest: Path) -> None:
    """Delete temp folders left by conversions whose process is gone (killed mid-write)."""
    for tmp in dest.parent.glob(f".{dest.name}.tmp-*"):
        try:
            pid = int(tmp.name.split(".tmp-", 1)[1].split("-", 1)[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError):
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            pass  # alive, someone else's


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize `gguf` into `out_dir`: float32 safetensors plus tokenizer with chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf.name}
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"cannot read GGUF {gguf}: {str(e).splitlines()[0]}") from None
    if not tokenizer.chat_template:
        raise UserError(f"{gguf.name} carries no chat template; set model.chat_template")

    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # marks the model as "gguf-quantized", which blocks saving
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if k not in _tied_keys(model)]
    if missing or unexpected:
        raise UserError(f"GGUF {gguf.name} does not fit its config: missing {missing[:3]}")
    model.generation_config = loaded.generation_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    info = {"source": str(gguf), "source_bytes": gguf.stat().st_size, "dtype": "float32"}
    (out_dir / _DONE_MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def _tied_keys(model) -> set[str]:
    tied = getattr(model, "_tied_weights_keys", None) or {}
    return set(tied) if not isinstance(tied, dict) else set(tied.keys())
