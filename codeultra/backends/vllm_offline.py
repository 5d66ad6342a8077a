"""vLLM offline batch generation (`vllm.LLM.generate`) for GPU machines; imported on use."""

from __future__ import annotations

import time
from collections.abc import Sequence
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


class VLLMBackend(Backend):
    def __init__(self, model: str, *, name: str, engine_args: dict[str, Any] | None = None, **kw):
        try:
            import vllm
        except ImportError:
            raise UserError("backend vllm needs `pip install codeultra[vllm]` and a GPU") from None
        self.name = name
        self._vllm = vllm
        self.llm = vllm.LLM(model=model, **(engine_args or {}))
        self.usage = Usage()

    def chat_many(
        self, requests: Sequence[ChatRequest], on_result: OnResult | None = None
    ) -> list[ChatResult]:
        SamplingParams = self._vllm.SamplingParams  # noqa: N806
        params = [
            SamplingParams(
                n=r.n,
                temperature=r.temperature,
                top_p=r.top_p,
                max_tokens=r.max_tokens,
                seed=r.seed,
                logprobs=r.top_logprobs,
                stop=r.stop,
            )
            for r in requests
        ]
        start = time.perf_counter()
        outs = self.llm.chat([r.messages for r in requests], params, use_tqdm=True)
        latency = (time.perf_counter() - start) / max(1, len(requests))
        results = []
        for i, out in enumerate(outs):
            choices = []
            for c in out.outputs:
                lps = None
                if c.logprobs is not None:
                    lps = []
                    for tok_id, step in zip(c.token_ids, c.logprobs, strict=False):
                        lps.append(
                            TokenLogprob(
                                token=step[tok_id].decoded_token,
                                logprob=step[tok_id].logprob,
                                top={v.decoded_token: v.logprob for v in step.values()},
                            )
                        )
                choices.append(Choice(c.text, c.finish_reason, lps))
            usage = Usage(len(out.prompt_token_ids), sum(len(c.token_ids) for c in out.outputs))
            self.usage += usage
            res = ChatResult(choices=choices, usage=usage, latency_s=latency)
            results.append(res)
            if on_result:
                on_result(i, res)
        return results

    def close(self) -> None:
        """Free the GPU, so several models of a pool can run one after another."""
        import gc

        self.llm = None
        gc.collect()
        try:
            import torch

            torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001 - best effort on machines without CUDA
            pass
