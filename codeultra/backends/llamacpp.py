"""The embedded default: a real llama.cpp server in-process on 127.0.0.1.

codeultra starts it for a local GGUF (package `xllamacpp`), talks to it through the
same OpenAI-compatible path as any hosted model, and stops it on close.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from codeultra.backends.base import Backend, ChatRequest, ChatResult, OnResult
from codeultra.backends.openai_http import OpenAIBackend
from codeultra.errors import UserError


class LlamaCppServer:
    def __init__(self, gguf: Path, *, n_ctx: int = 4096, n_parallel: int = 4, n_threads=None):
        import xllamacpp as xl

        params = xl.CommonParams()
        params.model.path = str(gguf)
        params.n_parallel = n_parallel
        params.n_ctx = n_ctx * n_parallel  # llama.cpp splits n_ctx over the slots
        params.cpuparams.n_threads = n_threads or max(1, os.cpu_count() or 1)
        params.cpuparams_batch.n_threads = params.cpuparams.n_threads
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # any free port
        params.verbosity = -1 if not os.environ.get("CODEULTRA_LLAMACPP_VERBOSE") else 3
        try:
            self._server = xl.Server(params)
        except Exception as exc:  # noqa: BLE001
            raise UserError(f"llama.cpp server failed to start for {gguf.name}: {exc}") from None
        self.url = self._server.listening_address

    def close(self) -> None:
        self._server = None  # the destructor stops the main loop and frees the model


class LlamaCppBackend(Backend):
    def __init__(self, gguf: Path, *, name: str, n_ctx: int, n_parallel: int, n_threads=None, **kw):
        self.name = name
        self.server = LlamaCppServer(gguf, n_ctx=n_ctx, n_parallel=n_parallel, n_threads=n_threads)
        kw.setdefault("max_concurrency", n_parallel)
        self._http = OpenAIBackend(
            f"openai/{name}", name=name, api_base=self.server.url + "/v1", **kw
        )

    @property
    def usage(self):
        return self._http.usage

    def chat_many(
        self, requests: Sequence[ChatRequest], on_result: OnResult | None = None
    ) -> list[ChatResult]:
        return self._http.chat_many(requests, on_result)

    def close(self) -> None:
        self.server.close()
