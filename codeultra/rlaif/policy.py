"""The small policy: where its weights are, and generating with it as resumable cells.

Generation goes through the transformers backend: the GPU when there is one (else CPU), in
batches of similar prompt length so little time goes to padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codeultra.backends.base import ChatRequest, ChatResult
from codeultra.backends.transformers_local import TransformersBackend
from codeultra.backends.transformers_local import load_tokenizer as load_chat_tokenizer
from codeultra.cells import Cell, CellStore, cell_key
from codeultra.errors import UserError
from codeultra.rlaif.config import PolicySection
from codeultra.rlaif.steps import model_fingerprint
from codeultra.stages.runner import RunStats, run_cells


def resolve_policy_model(policy: PolicySection) -> str:
    """A from_pretrained-able folder or Hub id (a bundled GGUF alias is converted once)."""
    from codeultra.training.convert_gguf import BUNDLED, ensure_hf_model

    if policy.model in BUNDLED or policy.model.endswith(".gguf"):
        return str(ensure_hf_model(policy.model))
    return policy.model


@dataclass(frozen=True)
class Sampling:
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 128
    seed: int = 0


def generate(
    store_root: Path,
    stage: str,
    model: str,
    items: list[dict[str, Any]],
    sampling: Sampling,
    *,
    batch_size: int = 8,
    chat_template: str | None = None,
    desc: str = "generate",
) -> tuple[list[list[dict[str, Any]]], RunStats]:
    """n answers per item (`item["messages"]`), cached per (model identity, prompt, sampling).

    Returns per item a list of {"text", "finish_reason", "error"}. The model is loaded
    only when some cell is not finished yet.
    """
    ident = model_fingerprint(model)
    cells = []
    for i, item in enumerate(items):
        key = cell_key(
            {
                "stage": stage,
                "model": ident,
                "messages": item["messages"],
                "sampling": sampling.__dict__,
                "chat_template": chat_template,
            }
        )
        cells.append(Cell(key, 0, {"row": i, "messages": item["messages"]}))
    stats = RunStats()
    with CellStore(store_root, stage) as store:
        pending = store.pending(cells)
        if pending:
            backend = TransformersBackend(
                model, name=stage, batch_size=batch_size, chat_template=chat_template
            )

            def request(cell: Cell) -> ChatRequest:
                return ChatRequest(
                    messages=cell.payload["messages"],
                    n=sampling.n,
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    max_tokens=sampling.max_new_tokens,
                    seed=sampling.seed,
                )

            def record(cell: Cell, res: ChatResult) -> dict[str, Any]:
                return {
                    "texts": [c.text for c in res.choices],
                    "finish_reasons": [c.finish_reason for c in res.choices],
                    "completion_tokens": res.usage.completion_tokens,
                    "error": res.error,
                }

            try:
                run_cells(store, pending, backend, request, record, stats=stats, desc=desc)
            finally:
                backend.close()
        out = []
        for c in cells:
            rec = store.get(c.key)
            if rec is None:
                raise UserError(f"{stage}: a generation cell is missing after the run")
            if rec.get("error"):
                out.append(
                    [{"text": "", "finish_reason": None, "error": rec["error"]}] * sampling.n
                )
            else:
                out.append(
                    [
                        {"text": t, "finish_reason": f, "error": None}
                        for t, f in zip(rec["texts"], rec["finish_reasons"], strict=True)
                    ]
                )
    return out, stats


def load_tokenizer(model: str, chat_template: str | None = None) -> Any:
    return load_chat_tokenizer(model, chat_template, hint="set rlaif.policy.chat_template")
