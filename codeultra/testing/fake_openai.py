"""A real OpenAI-compatible HTTP server on 127.0.0.1 that injects faults on demand.

It stands in for a hosted provider in tests and benchmarks: it speaks the chat
completions protocol (n, logprobs, usage) and can answer 429 with Retry-After, 500,
hang past the client's timeout, or send malformed JSON, following a fault script.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def fake_reply(messages: list[dict[str, Any]], index: int = 0) -> str:
    """Deterministic answer derived from the prompt, so tests can check routing."""
    last = messages[-1]["content"] if messages else ""
    digest = hashlib.sha256(f"{last}|{index}".encode()).hexdigest()[:8]
    return f"```python\ndef answer():\n    return '{digest}'\n```"


class FakeOpenAIServer:
    """Use as a context manager; `faults` is a list consumed one per request:
    "ok", "429" (Retry-After: 1), "429:0.2", "500", "hang" (sleeps `hang_s`), "badjson"."""

    def __init__(
        self,
        faults: list[str] | None = None,
        hang_s: float = 3.0,
        api_key: str | None = None,
        delay_s: float = 0.0,
        responder: Callable[[dict[str, Any]], str] | None = None,
    ):
        self.responder = responder  # payload -> reply text (e.g. a scripted judge)
        self.faults: deque[str] = deque(faults or [])
        self.hang_s = hang_s
        self.delay_s = delay_s  # every answer takes this long, like a real model
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next_fault(self) -> str:
        with self.lock:
            return self.faults.popleft() if self.faults else "ok"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    server.requests.append(
                        {
                            "path": self.path,
                            "body": payload,
                            "auth": self.headers.get("Authorization"),
                        }
                    )
                if (
                    server.api_key
                    and self.headers.get("Authorization") != f"Bearer {server.api_key}"
                ):
                    err = {"error": {"message": "bad key", "type": "invalid_request_error"}}
                    return self._send(401, json.dumps(err).encode())
                fault = server._next_fault()
                if fault.startswith("429"):
                    after = fault.split(":", 1)[1] if ":" in fault else "1"
                    err = {"error": {"message": "rate limited", "type": "rate_limit"}}
                    return self._send(429, json.dumps(err).encode(), {"Retry-After": after})
                if fault == "500":
                    err = {"error": {"message": "boom", "type": "server_error"}}
                    return self._send(500, json.dumps(err).encode())
                if fault == "hang":
                    time.sleep(server.hang_s)
                if server.delay_s:
                    time.sleep(server.delay_s)
                if fault == "badjson":
                    return self._send(200, b'{"choices": [{"message": {"content": "trunc')
                self._send(200, json.dumps(_completion(payload, server.responder)).encode())

        return Handler


def _completion(payload: dict[str, Any], responder=None) -> dict[str, Any]:
    messages = payload.get("messages", [])
    n = int(payload.get("n") or 1)
    choices = []
    for i in range(n):
        text = responder(payload) if responder else fake_reply(messages, i)
        choice: dict[str, Any] = {
            "index": i,
            "finish_reason": "stop",
            "message": {"role": "assistant", "content": text},
        }
        if payload.get("logprobs"):
            k = int(payload.get("top_logprobs") or 1)
            toks = [{"token": "Yes", "logprob": -0.105}, {"token": "No", "logprob": -2.303}]
            choice["logprobs"] = {
                "content": [
                    {"token": "Yes", "logprob": -0.105, "bytes": None, "top_logprobs": toks[:k]}
                ]
            }
        choices.append(choice)
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
    completion_tokens = sum(len(c["message"]["content"].split()) for c in choices)
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": payload.get("model", "fake"),
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
