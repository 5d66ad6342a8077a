"""Backends against real servers on 127.0.0.1: a fault-injecting fake and real llama.cpp."""

from __future__ import annotations

import math
import time

import pytest

from codeultra.backends.base import ChatRequest, ChatResult
from codeultra.backends.openai_http import OpenAIBackend
from codeultra.config import ModelSpec
from codeultra.errors import UserError
from codeultra.testing.fake_openai import FakeOpenAIServer

HI = ChatRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=16)


def backend(url: str, **kw) -> OpenAIBackend:
    opts = dict(api_base=url, timeout_s=1.0, max_retries=3, backoff_base_s=0.01)
    opts.update(kw)
    return OpenAIBackend("openai/fake", **opts)


@pytest.mark.parametrize("fault", ["500", "hang", "badjson", "429:0"])
def test_retries_each_fault_then_succeeds(fault: str) -> None:
    with FakeOpenAIServer([fault], hang_s=3.0) as srv:
        res = backend(srv.url).chat(HI)
        assert res.ok, res.error
        assert res.attempts == 2 and len(srv.requests) == 2
        assert res.choices[0].text.startswith("```python")


def test_retry_after_is_honoured() -> None:
    with FakeOpenAIServer(["429:1.0"]) as srv:
        start = time.perf_counter()
        res = backend(srv.url, backoff_base_s=0.001).chat(HI)
        assert res.ok and res.attempts == 2
        assert time.perf_counter() - start >= 1.0  # the server's wait, not our tiny backoff


def test_gives_up_with_an_error_record_not_an_exception() -> None:
    with FakeOpenAIServer(["500"] * 10) as srv:
        res = backend(srv.url, max_retries=2).chat(HI)
        assert not res.ok and "InternalServerError" in res.error
        assert res.attempts == 3 and len(srv.requests) == 3 and res.choices == []


def test_non_retryable_error_is_not_retried() -> None:
    with FakeOpenAIServer(api_key="right") as srv:
        b = backend(srv.url)
        b._api_key_env = None  # sends the placeholder key: 401
        res = b.chat(HI)
        assert not res.ok and len(srv.requests) == 1


def test_concurrency_is_bounded_and_order_kept() -> None:
    with FakeOpenAIServer(delay_s=0.2) as srv:
        reqs = [ChatRequest(messages=[{"role": "user", "content": f"q{i}"}]) for i in range(8)]
        seen: list[int] = []
        results = backend(srv.url, max_concurrency=2, timeout_s=5).chat_many(
            reqs, on_result=lambda i, r: seen.append(i)
        )
        assert sorted(seen) == list(range(8))
        assert [r.ok for r in results] == [True] * 8
        # The i-th result answers the i-th prompt.
        from codeultra.testing.fake_openai import fake_reply

        for i, r in enumerate(results):
            assert r.choices[0].text == fake_reply([{"content": f"q{i}"}])


def test_n_samples_logprobs_and_usage() -> None:
    with FakeOpenAIServer() as srv:
        req = ChatRequest(messages=[{"role": "user", "content": "q"}], n=3, top_logprobs=2)
        res = backend(srv.url).chat(req)
        assert len(res.choices) == 3 and len({c.text for c in res.choices}) == 3
        lp = res.choices[0].logprobs
        assert lp and lp[0].token == "Yes" and set(lp[0].top) == {"Yes", "No"}
        assert res.usage.completion_tokens > 0
        assert srv.requests[0]["body"]["top_logprobs"] == 2


def test_rpm_limit_spaces_requests() -> None:
    import asyncio

    from codeultra.backends.ratelimit import RateLimiter

    async def go() -> list[float]:
        lim = RateLimiter(rpm=2, window_s=0.5)
        stamps = []
        for _ in range(4):
            await lim.acquire(1)
            stamps.append(time.monotonic())
        return stamps

    s = asyncio.run(go())
    assert s[2] - s[0] >= 0.49 and s[3] - s[1] >= 0.49


def test_budget_stops_new_requests() -> None:
    from codeultra.errors import BudgetExhausted

    with FakeOpenAIServer() as srv:
        b = backend(srv.url, budget_usd=0.01, max_concurrency=1)
        b.spent_usd = 0.02
        with pytest.raises(BudgetExhausted):
            b.chat_many([HI, HI])
        assert srv.requests == []


def test_result_roundtrip() -> None:
    with FakeOpenAIServer() as srv:
        res = backend(srv.url).chat(ChatRequest(messages=HI.messages, top_logprobs=1))
    again = ChatResult.from_dict(res.to_dict())
    assert again == res


def test_embedded_llamacpp_answers_a_short_prompt() -> None:
    from codeultra.backends import make_backend

    spec = ModelSpec(backend="llamacpp", model="smollm2-135m", n_ctx=1024, n_parallel=2)
    with make_backend("smollm2", spec) as b:
        req = ChatRequest(
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=12,
            n=2,
            temperature=0.7,
            top_logprobs=2,
        )
        res = b.chat(req)
        assert res.ok, res.error
        assert len(res.choices) == 2 and all(c.text.strip() for c in res.choices)
        assert 0 < res.usage.completion_tokens <= 24
        top = res.choices[0].logprobs[0].top
        assert top and all(v <= 0 for v in top.values())
        assert sum(math.exp(v) for v in top.values()) <= 1.0001


def test_gguf_hash_mismatch_is_refused(tmp_path) -> None:
    from codeultra.models import resolve_gguf

    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF not really")
    with pytest.raises(UserError, match="sha256 mismatch"):
        resolve_gguf(str(fake), sha256="0" * 64)
    with pytest.raises(UserError, match="not found"):
        resolve_gguf(str(tmp_path / "missing.gguf"))


@pytest.mark.slow
def test_transformers_backend_logprobs_samples_and_stop(tmp_path) -> None:
    from codeultra.backends.transformers_local import TransformersBackend
    from codeultra.training.tiny import build_tiny_chat_model

    corpus = ["def add(a, b):\n    return a + b\n", "Sort a list.", "print('hello')"] * 4
    be = TransformersBackend(str(build_tiny_chat_model(tmp_path / "t", corpus)), name="tiny")
    be.batch_size = 2
    asks = [[{"role": "user", "content": "x" * k}] for k in (9, 1, 5)]
    greedy = be.chat_many([ChatRequest(m, max_tokens=16, top_logprobs=2) for m in asks])
    for res in greedy:
        assert res.ok and len(res.choices) == 1
        lps = res.choices[0].logprobs
        # One logprob per generated token, and greedy picks the top alternative each step:
        # a batch row mixed up with another would break this.
        assert len(lps) == res.usage.completion_tokens > 0
        for lp in lps:
            assert lp.logprob <= 0
            assert lp.logprob == pytest.approx(max(lp.top.values()), abs=1e-4)

    def sampled(**kw) -> ChatResult:
        ask = ChatRequest(asks[0], max_tokens=24, temperature=1.0, seed=1, top_logprobs=1, **kw)
        return be.chat_many([ask])[0]

    full = sampled()
    text, tokens = full.choices[0].text, [lp.token for lp in full.choices[0].logprobs]
    # An ASCII token after the first two: the answer's own text, not the prompt's end.
    stop = next(t for t in tokens[2:] if t.strip() and t.isascii() and t.isprintable())
    cut = sampled(stop=[stop])
    assert cut.choices[0].text == text[: text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens < full.usage.completion_tokens  # it stopped early
    two = be.chat_many([ChatRequest(asks[1], n=2, temperature=1.0, seed=3, max_tokens=8)])[0]
    assert len(two.choices) == 2 and two.usage.prompt_tokens > 0
    be.close()
