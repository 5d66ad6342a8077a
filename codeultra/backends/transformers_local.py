"""Local generation with transformers: checkpoints, adapters and RLAIF policies, GPU or CPU."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codeultra.backends.base import (
    Backend,
    ChatRequest,
    ChatResult,
    Choice,
    OnResult,
    TokenLogprob,
    Usage,
)
from codeultra.errors import UserError


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(
    model: str, chat_template: str | None = None, *, hint: str = "set its chat_template"
) -> Any:
    """A chat tokenizer with a pad token; a model without a chat template is a user error."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load model {model!r}: {str(exc).splitlines()[0]}") from None
    if chat_template:
        tok.chat_template = chat_template
    if not tok.chat_template:
        raise UserError(f"model {model!r} has no chat template; {hint}")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


class TransformersBackend(Backend):
    """Batched `generate` over chat-templated prompts; a PEFT adapter dir loads on its base.

    Runs on the GPU in bf16 when there is one, else on the CPU in fp32. Requests batch only
    with others of the same settings, sorted by prompt length so little goes to padding.
    """

    def __init__(
        self,
        model: str,
        *,
        name: str,
        batch_size: int = 8,
        chat_template: str | None = None,
        device: str | None = None,
        **_: Any,
    ):
        import torch
        from transformers import AutoModelForCausalLM

        self.name, self.batch_size = name, batch_size
        self.tok = load_tokenizer(model, chat_template)
        self.tok.padding_side = "left"
        self.device = device or default_device()
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        path = Path(model)
        try:
            if (path / "adapter_config.json").is_file():
                from peft import AutoPeftModelForCausalLM

                self.model = AutoPeftModelForCausalLM.from_pretrained(str(path), dtype=dtype)
            else:
                self.model = AutoModelForCausalLM.from_pretrained(model, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot load model {model!r}: {str(exc).splitlines()[0]}") from None
        self.model.to(self.device).eval()
        # Chat models often end a turn with a token other than the tokenizer's eos.
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        self.eos_ids.add(self.tok.eos_token_id)
        self.usage = Usage()

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
        stops = {"stopping_criteria": [_StopOnText(self.tok, r0.stop, enc)]} if r0.stop else {}
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
                return_dict_in_generate=True,
                output_scores=r0.top_logprobs is not None,
                **stops,
            )
        latency = (time.perf_counter() - start) / len(reqs)
        gen = out.sequences[:, enc["input_ids"].shape[1] :].tolist()
        results = []
        for i in range(len(reqs)):
            choices, n_tokens = [], 0
            for j in range(r0.n):
                row = i * r0.n + j
                ids = gen[row]
                end = next((k for k, t in enumerate(ids) if t in self.eos_ids), None)
                ids = ids if end is None else ids[:end]
                n_tokens += len(ids)
                text = self.tok.decode(ids, skip_special_tokens=True)
                finish = "length" if end is None else "stop"
                cut = _first_stop(text, r0.stop)
                if cut is not None:
                    text, finish = text[:cut], "stop"
                lps = self._logprobs(out.scores, row, ids, r0.top_logprobs)
                choices.append(Choice(text=text, finish_reason=finish, logprobs=lps))
            usage = Usage(int(enc["attention_mask"][i].sum()), n_tokens)
            self.usage += usage
            results.append(ChatResult(choices=choices, usage=usage, latency_s=latency))
        return results

    def _logprobs(
        self, scores: Any, row: int, ids: list[int], k: int | None
    ) -> list[TokenLogprob] | None:
        if k is None:
            return None
        import torch

        lps = []
        for step, tok_id in enumerate(ids):
            logp = torch.log_softmax(scores[step][row].float(), -1)
            top = torch.topk(logp, max(1, k))
            alts = {
                self.tok.decode([int(t)]): float(v)
                for v, t in zip(top.values, top.indices, strict=True)
            }
            lps.append(TokenLogprob(self.tok.decode([tok_id]), float(logp[tok_id]), alts))
        return lps

    def chat_many(
        self, requests: Sequence[ChatRequest], on_result: OnResult | None = None
    ) -> list[ChatResult]:
        results: list[ChatResult | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            stop = tuple(r.stop or ())
            key = (r.n, r.temperature, r.top_p, r.max_tokens, r.seed, r.top_logprobs, stop)
            groups.setdefault(key, []).append(i)
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

    @property
    def supports_response_format(self) -> bool:
        return False

    def close(self) -> None:
        """Drop the weights so the next model of a run fits in memory."""
        import gc

        self.model = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover - torch is a dependency
            pass


class _StopOnText:
    """Stops a row once its generated text holds a stop string.

    transformers' own `stop_strings` also matches across the prompt's last tokens, which
    ends a row early where OpenAI semantics (stops apply to the answer only) would not.
    """

    def __init__(self, tok: Any, stops: list[str], enc: Any):
        self.tok, self.stops = tok, [s for s in stops if s]
        self.prompt_len = enc["input_ids"].shape[1]
        self.window = max(len(s) for s in self.stops) + 2  # tokens hold >= 1 char each

    def __call__(self, input_ids: Any, scores: Any, **_: Any) -> Any:
        import torch

        tails = input_ids[:, self.prompt_len :][:, -self.window :]
        texts = self.tok.batch_decode(tails, skip_special_tokens=True)
        hit = [any(s in t for s in self.stops) for t in texts]
        return torch.tensor(hit, dtype=torch.bool, device=input_ids.device)


def _first_stop(text: str, stops: list[str] | None) -> int | None:
    hits = [text.find(s) for s in stops or () if s and s in text]
    return min(hits) if hits else None
