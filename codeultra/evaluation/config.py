"""The recipe's `eval:` section, and how a model reference becomes a runnable ModelSpec.

A model reference is a recipe model name, a checkpoint or adapter folder, or a GGUF alias or
file. With `engine: transformers` (the default for before/after comparisons) every model under
test runs through transformers, GGUF models converted once, so base and tuned differ only in
their weights.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from codeultra.backends.base import Backend, ChatRequest, ChatResult, OnResult
from codeultra.cells import Cell, CellStore, cell_key, shard_of
from codeultra.config import ModelSpec, Recipe, Sampling, Strict, parse_model
from codeultra.errors import UserError
from codeultra.stages.runner import RunStats, run_cells

Engine = Literal["auto", "transformers", "llamacpp", "vllm"]


class CodalConfig(Strict):
    input: str | None = None  # FILE or hub:coseal/codal-bench; None: bundled held-out split
    reference_column: str | None = None  # None: gpt-3.5-turbo_response if present, else the first
    reference_model: str = "auto"  # writes the offline references; auto: strongest local GGUF
    reference_max_tokens: int = Field(1024, ge=16)
    limit: int | None = Field(None, ge=1)
    max_tokens: int = Field(1024, ge=1)  # the model under test answers greedily
    judge_max_tokens: int = Field(512, ge=16)
    max_reasks: int = Field(2, ge=0)
    bootstrap: int = Field(1000, ge=100)
    seed: int = 42


class HumanEvalConfig(Strict):
    limit: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(512, ge=1)
    workers: int = Field(2, ge=1)
    timeout_s: float = Field(10.0, gt=0)
    ks: list[int] = Field(default_factory=lambda: [1, 10])
    seed: int = 0
    plus: bool = False
    plus_data: str | None = None  # a HumanEvalPlus .jsonl(.gz); else evalplus's own copy


class ContaminationConfig(Strict):
    n: int = Field(13, ge=1)  # n-gram length in words
    threshold: float = Field(0.5, gt=0.0, le=1.0)  # share of an item's n-grams seen in training
    evals: list[str] = Field(default_factory=lambda: ["codal", "humaneval"])


class EvalConfig(Strict):
    base: str = "smollm2-135m"
    tuned: str | None = None  # None: <train_dir>/merged
    engine: Engine = "transformers"
    judge: str = "auto"  # a recipe model, or auto: the strongest local GGUF
    batch_size: int = Field(8, ge=1)  # transformers batch for the models under test
    demo_limit: int | None = Field(None, ge=1)  # instructions `codeultra demo` generates/judges
    train_recipe: str = "recipes/smollm2-135m/dpo.yaml"  # what `codeultra demo` trains
    train_dir: str | None = None  # None: <work_dir>/dpo
    train_limit: int | None = Field(None, ge=1)
    output_dir: str | None = None  # None: <work_dir>/eval
    codal: CodalConfig = Field(default_factory=CodalConfig)
    humaneval: HumanEvalConfig = Field(default_factory=HumanEvalConfig)
    contamination: ContaminationConfig = Field(default_factory=ContaminationConfig)


def load_eval_config(recipe: Recipe) -> EvalConfig:
    return parse_model(EvalConfig, recipe.eval or {}, "recipe eval")


def eval_dir(recipe: Recipe, cfg: EvalConfig) -> Path:
    return Path(cfg.output_dir) if cfg.output_dir else recipe.work_dir / "eval"


def train_dir(recipe: Recipe, cfg: EvalConfig) -> Path:
    return Path(cfg.train_dir) if cfg.train_dir else recipe.work_dir / "dpo"


def tuned_ref(recipe: Recipe, cfg: EvalConfig) -> str:
    return cfg.tuned or str(train_dir(recipe, cfg) / "merged")


def _gguf_to_hf(model: str) -> str:
    from codeultra.models import PACKS, resolve_gguf
    from codeultra.training.convert_gguf import BUNDLED, ensure_hf_model

    if model in BUNDLED:
        return str(ensure_hf_model(model))
    path = resolve_gguf(model, PACKS[model].sha256 if model in PACKS else None)
    return str(ensure_hf_model(path))


def _is_gguf(ref: str) -> bool:
    from codeultra.models import PACKS

    return ref in PACKS or ref.endswith(".gguf")


def resolve_model(
    ref: str, recipe: Recipe, *, engine: Engine = "auto", batch_size: int = 8
) -> tuple[str, ModelSpec]:
    """(display name, spec) for a recipe model name, a model folder, a Hub id (ORG/NAME), or a
    GGUF alias/file."""
    local = engine in ("transformers", "vllm")
    if ref in recipe.models:
        spec = recipe.models[ref]
        if local and spec.backend == "llamacpp":
            hf = _gguf_to_hf(spec.model)
            return ref, ModelSpec(backend=engine, model=hf, batch_size=batch_size)
        return ref, spec
    path = Path(ref)
    if path.is_dir():
        backend = "vllm" if engine == "vllm" else "transformers"
        return _short_name(path), ModelSpec(backend=backend, model=str(path), batch_size=batch_size)
    if _is_gguf(ref):
        if local:
            return _short_name(path), ModelSpec(
                backend=engine, model=_gguf_to_hf(ref), batch_size=batch_size
            )
        return _short_name(path), ModelSpec(backend="llamacpp", model=ref, n_ctx=4096, n_parallel=2)
    if is_hub_id(ref):
        backend = "vllm" if engine == "vllm" else "transformers"  # a Hugging Face Hub id
        return path.name, ModelSpec(backend=backend, model=ref, batch_size=batch_size)
    known = ", ".join(sorted(recipe.models)) or "none"
    if path.suffix or "/" in ref:
        raise UserError(f"model {ref!r} not found (no such folder or .gguf file)")
    raise UserError(
        f"unknown model {ref!r}: not a recipe model ({known}), a model folder or a GGUF alias"
    )


def is_hub_id(ref: str) -> bool:
    """ORG/NAME that is not an existing or run-local path (runs/..., models/...)."""
    return (
        re.fullmatch(r"[\w-]+/[\w.-]+", ref) is not None
        and not ref.startswith(("runs/", "models/"))
        and not Path(ref).exists()
    )


def resolve_judge(ref: str, recipe: Recipe, max_tokens: int) -> tuple[str, ModelSpec]:
    """`auto` is the strongest local GGUF present; anything else resolves like a model."""
    if ref == "auto":
        from codeultra.models import available_packs

        ref = available_packs()[-1]
        if ref not in recipe.models:
            sampling = Sampling(temperature=0.0, top_p=1.0, max_tokens=max_tokens)
            return ref, ModelSpec(
                backend="llamacpp", model=ref, n_ctx=4096, n_parallel=2, sampling=sampling
            )
    return resolve_model(ref, recipe, engine="auto")


def _short_name(path: Path) -> str:
    parts = [p for p in path.parts if p not in ("/", ".")]
    return "/".join(parts[-2:]) if parts and parts[-1] in ("merged", "adapter") else path.name


def model_identity(spec: ModelSpec) -> dict[str, str]:
    """What a cell key needs to know about a model: a changed checkpoint gets new cells."""
    ident = {"backend": spec.backend, "model": spec.model}  # a server's port may change
    path = Path(spec.model)
    if spec.backend in ("transformers", "vllm") and path.is_dir():
        ident["weights"] = _fingerprint(path)
    return ident


def _fingerprint(folder: Path) -> str:
    """Sizes and mtimes of the files that define the weights (cheap, no hashing of GBs)."""
    h = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".json", ".gguf", ".jinja"):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


class LazyBackend(Backend):
    """Starts the model on the first request, so a fully cached rerun never loads it."""

    def __init__(self, name: str, spec: ModelSpec):
        self.name, self.spec = name, spec
        self._backend: Backend | None = None

    def chat_many(
        self, requests: Sequence[ChatRequest], on_result: OnResult | None = None
    ) -> list[ChatResult]:
        if self._backend is None:
            from codeultra.backends import make_backend

            self._backend = make_backend(self.name, self.spec)
        return self._backend.chat_many(requests, on_result)

    @property
    def supports_response_format(self) -> bool:
        return False

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
            _free_memory()


def _free_memory() -> None:
    """Drop a released model's weights now (GPU memory included), before the next one loads."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _chat_record(cell: Cell, res: ChatResult) -> dict[str, Any]:
    choice = res.choices[0] if res.choices else None
    return {
        "text": choice.text if choice and res.ok else "",
        "finish_reason": choice.finish_reason if choice else None,
        "error": res.error,
        "prompt_tokens": res.usage.prompt_tokens,
        "completion_tokens": res.usage.completion_tokens,
        "latency_s": round(res.latency_s, 4),
    }


def cached_chat(
    cells_dir: Path,
    stage: str,
    requests: Sequence[ChatRequest],
    backend: Backend,
    identity: dict[str, Any],
    desc: str,
) -> list[dict[str, Any]]:
    """One journaled cell per request (key: stage, model identity, request); reruns resume."""
    cells = []
    for i, req in enumerate(requests):
        key = cell_key({"stage": stage, "model": identity, "request": asdict(req)})
        cells.append(Cell(key, shard_of(i, 64), {"i": i}))
    with CellStore(cells_dir, stage) as store:
        pending = store.pending(cells)
        run_cells(
            store,
            pending,
            backend,
            lambda c: requests[c.payload["i"]],
            _chat_record,
            stats=RunStats(),
            desc=desc,
        )
        return [dict(store.get(c.key) or {}) for c in cells]
