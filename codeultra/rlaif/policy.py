"""The small policy: where its weights are, and generating with it as resumable cells.

Generation runs `model.generate` on the GPU when there is one (else CPU), in batches of
similar prompt length so little time goes to padding.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codeultra.backends.base import Backend, ChatRequest, ChatResult, Choice, OnResult, Usage
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
            backend = PolicyBackend(
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
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load model {model!r}: {str(exc).splitlines()[0]}") from None
    if chat_template:
        tok.chat_template = chat_template
    if not tok.chat_template:
        raise UserError(f"model {model!r} has no chat template; set rlaif.policy.chat_template")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class PolicyBackend(Backend):
    """Batched local generation with a causal LM folder (n samples per prompt)."""

    def __init__(self, model: str, *, name: str, batch_size: int = 8, chat_template=None):
        import torch
        from transformers import AutoModelForCausalLM

        self.name, self.batch_size = name, batch_size
        self.tok = load_tokenizer(model, chat_template)
        self.tok.padding_side = "left"
        self.device = device()
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        try:
            self.model = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(self.device)
        except OSError as exc:
            raise UserError(f"cannot load model {model!r}: {str(exc).splitlines()[0]}") from None
        self.model.eval()
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self.eos_ids.add(self.tok.eos_token_id)

    @property
    def supports_logprobs(self) -> bool:
        return False

    @property
    def supports_response_format(self) -> bool:
        return False

    def _batch(self, reqs: Sequence[ChatRequest]) -> list[ChatResult]:
        import torch

        r0 = reqs[0]
        prompts = [
            self.tok.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True)
            for r in reqs
        ]
        enc = self.tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = enc.to(self.device)
        sample = r0.temperature > 0
        if r0.seed is not None:
            torch.manual_seed(r0.seed)
        start = time.perf_counter()
        with torch.no_grad():
            out = self.model.generate(
                **enc,
                max_new_tokens=r0.max_tokens,
                do_sample=sample,
                temperature=r0.temperature if sample else None,
                top_p=r0.top_p if sample else None,
                num_return_sequences=r0.n,
                pad_token_id=self.tok.pad_token_id,
                eos_token_id=sorted(self.eos_ids),
            )
        latency = (time.perf_counter() - start) / len(reqs)
        gen = out[:, enc["input_ids"].shape[1] :].tolist()
        results = []
        for i in range(len(reqs)):
            choices, n_tokens = [], 0
            for j in range(r0.n):
                ids = gen[i * r0.n + j]
                stop = next((k for k, t in enumerate(ids) if t in self.eos_ids), None)
                ids = ids if stop is None else ids[:stop]
                n_tokens += len(ids)
                text = self.tok.decode(ids, skip_special_tokens=True)
                choices.append(
                    Choice(text=text, finish_reason="length" if stop is None else "stop")
                )
            usage = Usage(int(enc["attention_mask"][i].sum()), n_tokens)
            results.append(ChatResult(choices=choices, usage=usage, latency_s=latency))
        return results

    def chat_many(
        self, requests: Sequence[ChatRequest], on_result: OnResult | None = None
    ) -> list[ChatResult]:
        results: list[ChatResult | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.n, r.temperature, r.top_p, r.max_tokens, r.seed), []).append(i)
        for idxs in groups.values():
            idxs.sort(key=lambda i: sum(len(m["content"]) for m in requests[i].messages))
            for s in range(0, len(idxs), self.batch_size):
                chunk = idxs[s : s + self.batch_size]
                try:
                    outs = self._batch([requests[i] for i in chunk])
                except Exception as exc:  # noqa: BLE001 - explicit error per request
                    outs = [ChatResult(error=f"{type(exc).__name__}: {exc}"[:300]) for _ in chunk]
                for i, res in zip(chunk, outs, strict=True):
                    results[i] = res
                    if on_result:
                        on_result(i, res)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self.model = None
