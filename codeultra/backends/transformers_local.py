"""Local generation with transformers: for trained checkpoints and adapters on CPU or GPU."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

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


class TransformersBackend(Backend):
    """Batched `generate` over chat-templated prompts; a PEFT adapter dir loads on its base."""

    def __init__(self, model: str, *, name: str, batch_size: int = 8, chat_template=None, **kw):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name, self.batch_size = name, batch_size
        path = Path(model)
        try:
            if (path / "adapter_config.json").is_file():
                from peft import AutoPeftModelForCausalLM

                self.model = AutoPeftModelForCausalLM.from_pretrained(
                    str(path), dtype=torch.float32
                )
            else:
                self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
            self.tok = AutoTokenizer.from_pretrained(model)
        except OSError as exc:
            raise UserError(f"cannot load model {model!r}: {str(exc).splitlines()[0]}") from None
        if chat_template:
            self.tok.chat_template = chat_template
        if self.tok.chat_template is None:
            raise UserError(f"model {model!r}: tokenizer has no chat template")
        self.tok.padding_side = "left"
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.model.eval()
        self.usage = Usage()

    def _batch(self, reqs: Sequence[ChatRequest]) -> list[ChatResult]:
        import torch

        req0 = reqs[0]
        prompts = [
            self.tok.apply_chat_template(r.messages, tokenize=False, add_generation_prompt=True)
            for r in reqs
        ]
        enc = self.tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        sample = req0.temperature > 0
        if req0.seed is not None:
            torch.manual_seed(req0.seed)
        start = time.perf_counter()
        with torch.no_grad():
            out = self.model.generate(
                **enc,
                max_new_tokens=req0.max_tokens,
                do_sample=sample,
                temperature=req0.temperature if sample else None,
                top_p=req0.top_p if sample else None,
                num_return_sequences=req0.n,
                pad_token_id=self.tok.pad_token_id,
                return_dict_in_generate=True,
                output_scores=req0.top_logprobs is not None,
            )
        latency = (time.perf_counter() - start) / len(reqs)
        plen = enc["input_ids"].shape[1]
        results = []
        for i in range(len(reqs)):
            choices = []
            for j in range(req0.n):
                row = i * req0.n + j
                gen = out.sequences[row, plen:]
                text = self.tok.decode(gen, skip_special_tokens=True)
                lps = None
                if req0.top_logprobs is not None:
                    lps = []
                    for step, tok_id in enumerate(gen.tolist()):
                        if tok_id == self.tok.pad_token_id and step > 0:
                            break
                        logp = torch.log_softmax(out.scores[step][row].float(), -1)
                        top = torch.topk(logp, max(1, req0.top_logprobs))
                        lps.append(
                            TokenLogprob(
                                token=self.tok.decode([tok_id]),
                                logprob=float(logp[tok_id]),
                                top={
                                    self.tok.decode([int(t)]): float(v)
                                    for v, t in zip(top.values, top.indices, strict=True)
                                },
                            )
                        )
                n_gen = int((gen != self.tok.pad_token_id).sum())
                finish = "length" if n_gen >= req0.max_tokens else "stop"
                choices.append(Choice(text=text, finish_reason=finish, logprobs=lps))
            usage = Usage(
                int(enc["attention_mask"][i].sum()),
                sum(len(self.tok.encode(c.text, add_special_tokens=False)) for c in choices),
            )
            self.usage += usage
            results.append(ChatResult(choices=choices, usage=usage, latency_s=latency))
        return results

    def chat_many(
        self, requests: Sequence[ChatRequest], on_result: OnResult | None = None
    ) -> list[ChatResult]:
        # Requests batch together only when their generation settings agree.
        results: list[ChatResult | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            key = (r.n, r.temperature, r.top_p, r.max_tokens, r.seed, r.top_logprobs)
            groups.setdefault(key, []).append(i)
        for idxs in groups.values():
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
