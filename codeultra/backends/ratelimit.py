"""Client-side requests-per-minute and tokens-per-minute limits over a sliding minute."""

from __future__ import annotations

import asyncio
import time
from collections import deque


class RateLimiter:
    def __init__(self, rpm: float | None = None, tpm: float | None = None, window_s: float = 60.0):
        self.rpm, self.tpm, self.window = rpm, tpm, window_s
        self._events: deque[tuple[float, float]] = deque()  # (time, tokens)
        self._lock = asyncio.Lock()

    def _trim(self, now: float) -> None:
        while self._events and now - self._events[0][0] >= self.window:
            self._events.popleft()

    async def acquire(self, tokens: float) -> None:
        """Wait until one more request of `tokens` fits in both budgets."""
        if self.rpm is None and self.tpm is None:
            return
        async with self._lock:
            while True:
                now = time.monotonic()
                self._trim(now)
                used = sum(t for _, t in self._events)
                rpm_ok = self.rpm is None or len(self._events) < self.rpm
                # A single request larger than the whole budget still runs, alone.
                tpm_ok = self.tpm is None or used + tokens <= self.tpm or not self._events
                if rpm_ok and tpm_ok:
                    self._events.append((now, tokens))
                    return
                await asyncio.sleep(max(0.01, self.window - (now - self._events[0][0])))

    def correct(self, estimated: float, actual: float) -> None:
        """Replace the estimate of the latest matching request with the real token count."""
        for i in range(len(self._events) - 1, -1, -1):
            t, tok = self._events[i]
            if tok == estimated:
                self._events[i] = (t, actual)
                return
