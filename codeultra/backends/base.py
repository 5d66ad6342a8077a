"""The one backend interface every stage talks to.

A backend takes chat requests and returns one result per request, in the request's
index. It never raises for a request-level failure: the result carries an explicit
`error` string instead, so a stage can store it rather than drop the row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, str]]
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int | None = None
    top_logprobs: int | None = None  # None: no logprobs; k: the top-k alternatives per token
    response_format: dict[str, Any] | None = None  # OpenAI-style {"type": "json_schema", ...}
    stop: list[str] | None = None


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)  # alternative token -> logprob


@dataclass
class Choice:
    text: str
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] | None = None


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __iadd__(self, other: Usage) -> Usage:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        return self


@dataclass
class ChatResult:
    choices: list[Choice] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    cost_usd: float | None = None
    attempts: int = 1
    error: str | None = None  # set when the request failed after its retries

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChatResult:
        choices = [
            Choice(
                text=c["text"],
                finish_reason=c.get("finish_reason"),
                logprobs=None
                if c.get("logprobs") is None
                else [TokenLogprob(**t) for t in c["logprobs"]],
            )
            for c in d.get("choices", [])
        ]
        return cls(
            choices=choices,
            usage=Usage(**d.get("usage", {})),
            latency_s=d.get("latency_s", 0.0),
            cost_usd=d.get("cost_usd"),
            attempts=d.get("attempts", 1),
            error=d.get("error"),
        )


OnResult = Callable[[int, ChatResult], None]


class Backend(ABC):
    """Chat completion with n samples, logprobs and usage."""

    name: str = "backend"

    @abstractmethod
    def chat_many(
        self, requests: Sequence[ChatRequest], on_result: OnResult | None = None
    ) -> list[ChatResult]:
        """Run all requests; call `on_result(i, result)` as each finishes (for durable writes)."""

    def chat(self, request: ChatRequest) -> ChatResult:
        return self.chat_many([request])[0]

    @property
    def supports_logprobs(self) -> bool:
        return True

    @property
    def supports_response_format(self) -> bool:
        return True

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release servers, connections or GPU memory."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
