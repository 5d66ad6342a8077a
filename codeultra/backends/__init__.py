"""Backends behind one interface; `make_backend` picks one from a registry entry."""

from __future__ import annotations

from codeultra.backends.base import Backend, ChatRequest, ChatResult, Choice, TokenLogprob, Usage
from codeultra.config import ModelSpec

__all__ = [
    "Backend",
    "ChatRequest",
    "ChatResult",
    "Choice",
    "TokenLogprob",
    "Usage",
    "make_backend",
]


def make_backend(name: str, spec: ModelSpec, *, budget_usd: float | None = None) -> Backend:
    """Start (or connect to) the model `name`; heavy imports happen only for the chosen kind."""
    http = dict(
        max_concurrency=spec.max_concurrency,
        rpm=spec.rpm,
        tpm=spec.tpm,
        timeout_s=spec.timeout_s,
        max_retries=spec.max_retries,
        budget_usd=budget_usd,
    )
    if spec.backend == "openai":
        from codeultra.backends.openai_http import OpenAIBackend

        return OpenAIBackend(
            spec.model, name=name, api_base=spec.api_base, api_key_env=spec.api_key_env, **http
        )
    if spec.backend == "llamacpp":
        from codeultra.backends.llamacpp import LlamaCppBackend
        from codeultra.models import resolve_gguf

        http["max_concurrency"] = min(spec.max_concurrency, spec.n_parallel)
        return LlamaCppBackend(
            resolve_gguf(spec.model, spec.sha256),
            name=name,
            n_ctx=spec.n_ctx,
            n_parallel=spec.n_parallel,
            n_threads=spec.n_threads,
            **http,
        )
    if spec.backend == "transformers":
        from codeultra.backends.transformers_local import TransformersBackend

        return TransformersBackend(
            spec.model, name=name, batch_size=spec.batch_size, chat_template=spec.chat_template
        )
    from codeultra.backends.vllm_offline import VLLMBackend

    return VLLMBackend(spec.model, name=name, engine_args=spec.engine_args)
