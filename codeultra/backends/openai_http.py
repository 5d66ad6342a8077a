"""OpenAI-compatible chat over HTTP through litellm's async API.

Hosted providers and self-hosted servers (vLLM, SGLang, Ollama, llama.cpp) alike.
Concurrency is bounded by a fixed pool of workers (never an unbounded gather), RPM/TPM
limits are enforced client-side, and retryable failures back off with jitter while
honouring Retry-After. A request that still fails becomes a ChatResult with `error`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Sequence
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from codeultra.backends.base import (
    Backend,
    ChatRequest,
    ChatResult,
    Choice,
    OnResult,
    TokenLogprob,
    Usage,
)
from codeultra.backends.ratelimit import RateLimiter
from codeultra.errors import BudgetExhausted, UserError

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
log = logging.getLogger(__name__)


def _litellm() -> Any:
    import litellm

    litellm.suppress_debug_info = True
    litellm.drop_params = True  # providers that lack e.g. `seed` still answer
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    return litellm


def _retryable(exc: BaseException) -> bool:
    import litellm

    if isinstance(
        exc,
        litellm.RateLimitError
        | litellm.InternalServerError
        | litellm.ServiceUnavailableError
        | litellm.BadGatewayError
        | litellm.Timeout
        | litellm.APIConnectionError
        | asyncio.TimeoutError
        | ValueError,  # malformed JSON body (json.JSONDecodeError is a ValueError)
    ):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status == 429 or status >= 500)


def _retry_after(exc: BaseException | None) -> float | None:
    if exc is None:
        return None
    for obj in (getattr(exc, "response", None), exc):
        headers = getattr(obj, "headers", None) or getattr(obj, "litellm_response_headers", None)
        if headers is None:
            continue
        value = headers.get("retry-after") or headers.get("Retry-After")
        if value is not None:
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


class _Wait:
    """Exponential backoff with full jitter; a server's Retry-After wins when given."""

    def __init__(self, base: float = 0.5, cap: float = 30.0):
        self.base, self.cap = base, cap

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = _retry_after(exc)
        if after is not None:
            return min(after, self.cap)
        return random.uniform(0, min(self.cap, self.base * 2 ** (state.attempt_number - 1)))


def _short_error(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return f"{type(exc).__name__}: {text[:300]}"


class OpenAIBackend(Backend):
    """Chat through litellm; `model` is a litellm id such as `openai/gpt-4o-mini`."""

    def __init__(
        self,
        model: str,
        *,
        name: str | None = None,
        api_base: str | None = None,
        api_key_env: str | None = None,
        max_concurrency: int = 8,
        rpm: float | None = None,
        tpm: float | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        budget_usd: float | None = None,
        backoff_base_s: float = 0.5,
    ):
        self.model = model
        self.name = name or model
        self.api_base = api_base
        self._api_key_env = api_key_env
        if api_key_env and not os.environ.get(api_key_env):
            raise UserError(f"model {self.name}: environment variable {api_key_env} is not set")
        self.max_concurrency = max_concurrency
        self.rpm, self.tpm = rpm, tpm
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.budget_usd = budget_usd
        self.backoff_base_s = backoff_base_s
        self.spent_usd = 0.0
        self.usage = Usage()
        self.requests_sent = 0

    def __repr__(self) -> str:  # never show the key, only where it comes from
        return (
            f"OpenAIBackend(model={self.model!r}, api_base={self.api_base!r}, "
            f"key_env={self._api_key_env!r})"
        )

    def _kwargs(self, req: ChatRequest) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "model": self.model,
            "messages": req.messages,
            "n": req.n,
            "temperature": req.temperature,
            "top_p": req.top_p,
            "max_tokens": req.max_tokens,
            "timeout": self.timeout_s,
            "num_retries": 0,
            "max_retries": 0,  # the OpenAI client's own retries would hide faults from ours
        }
        if self.api_base:
            kw["api_base"] = self.api_base
        key = os.environ.get(self._api_key_env) if self._api_key_env else None
        if key:
            kw["api_key"] = key
        elif self.api_base:
            kw["api_key"] = "sk-no-key"  # local servers ignore it; the client requires one
        if req.seed is not None:
            kw["seed"] = req.seed
        if req.top_logprobs is not None:
            kw["logprobs"] = True
            kw["top_logprobs"] = req.top_logprobs
        if req.response_format is not None:
            kw["response_format"] = req.response_format
        if req.stop:
            kw["stop"] = req.stop
        return kw

    async def _one(self, req: ChatRequest, limiter: RateLimiter) -> ChatResult:
        litellm = _litellm()
        kwargs = self._kwargs(req)
        estimate = sum(len(str(m.get("content", ""))) for m in req.messages) / 4 + req.max_tokens
        attempts = 0
        start = time.perf_counter()
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_retryable),
                stop=stop_after_attempt(self.max_retries + 1),
                wait=_Wait(self.backoff_base_s),
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    if self.budget_usd is not None and self.spent_usd >= self.budget_usd:
                        raise BudgetExhausted(
                            f"budget of ${self.budget_usd:.2f} reached for {self.name}"
                        )
                    await limiter.acquire(estimate)
                    self.requests_sent += 1
                    resp = await asyncio.wait_for(
                        litellm.acompletion(**kwargs), timeout=self.timeout_s + 5
                    )
        except BudgetExhausted:
            raise
        except Exception as exc:  # noqa: BLE001 - becomes an explicit error record
            return ChatResult(
                latency_s=time.perf_counter() - start, attempts=attempts, error=_short_error(exc)
            )
        result = _to_result(resp, time.perf_counter() - start, attempts)
        limiter.correct(estimate, result.usage.prompt_tokens + result.usage.completion_tokens)
        result.cost_usd = _cost(litellm, resp)
        if result.cost_usd:
            self.spent_usd += result.cost_usd
        self.usage += result.usage
        return result

    async def _run_all(self, requests: Sequence[ChatRequest], on_result: OnResult | None):
        limiter = RateLimiter(self.rpm, self.tpm)
        results: list[ChatResult | None] = [None] * len(requests)
        queue = iter(range(len(requests)))

        async def worker() -> None:
            for i in queue:
                res = await self._one(requests[i], limiter)
                results[i] = res
                if on_result is not None:
                    on_result(i, res)

        workers = [asyncio.create_task(worker()) for _ in range(self.max_concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
        return results

    def chat_many(
        self, requests: Sequence[ChatRequest], on_result: OnResult | None = None
    ) -> list[ChatResult]:
        if not requests:
            return []
        return asyncio.run(self._run_all(requests, on_result))


def _to_result(resp: Any, latency: float, attempts: int) -> ChatResult:
    choices = []
    for c in resp.choices:
        lp = None
        raw = getattr(c, "logprobs", None)
        content = getattr(raw, "content", None) if raw is not None else None
        if content is None and isinstance(raw, dict):
            content = raw.get("content")
        if content:
            lp = [
                TokenLogprob(
                    token=_get(t, "token"),
                    logprob=float(_get(t, "logprob")),
                    top={
                        _get(a, "token"): float(_get(a, "logprob"))
                        for a in _get(t, "top_logprobs") or []
                    },
                )
                for t in content
            ]
        choices.append(
            Choice(text=c.message.content or "", finish_reason=c.finish_reason, logprobs=lp)
        )
    usage = getattr(resp, "usage", None)
    return ChatResult(
        choices=choices,
        usage=Usage(
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        ),
        latency_s=latency,
        attempts=attempts,
    )


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def _cost(litellm: Any, resp: Any) -> float | None:
    try:
        return float(litellm.completion_cost(completion_response=resp))
    except Exception:  # noqa: BLE001 - unknown price: no cost, not a failure
        return None
