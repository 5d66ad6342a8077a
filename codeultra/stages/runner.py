"""Running a stage's pending cells through a backend, writing each one as it finishes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from codeultra.backends.base import Backend, ChatRequest, ChatResult
from codeultra.cells import Cell, CellStore
from codeultra.errors import UserError
from codeultra.progress import bar


@dataclass
class RunStats:
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    per_model: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, model: str, res: ChatResult) -> None:
        m = self.per_model.setdefault(
            model, {"requests": 0, "errors": 0, "prompt_tokens": 0, "completion_tokens": 0}
        )
        m.setdefault("cost_usd", 0.0)
        for target in (self.__dict__, m):
            target["requests"] += 1
            target["errors"] += int(not res.ok)
            target["prompt_tokens"] += res.usage.prompt_tokens
            target["completion_tokens"] += res.usage.completion_tokens
            target["cost_usd"] += res.cost_usd or 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_cells(
    store: CellStore,
    cells: Sequence[Cell],
    backend: Backend,
    build_request: Callable[[Cell], ChatRequest],
    to_record: Callable[[Cell, ChatResult], dict[str, Any]],
    *,
    stats: RunStats,
    desc: str,
) -> None:
    """Run `cells` (already filtered to pending) and journal each result durably."""
    if not cells:
        return
    requests = [build_request(c) for c in cells]
    progress = bar(len(cells), desc)
    tokens = 0

    def on_result(i: int, res: ChatResult) -> None:
        nonlocal tokens
        cell = cells[i]
        store.put(cell.shard, cell.key, to_record(cell, res))
        stats.add(backend.name, res)
        tokens += res.usage.completion_tokens
        elapsed = progress.format_dict.get("elapsed") or 0
        progress.set_postfix_str(f"{tokens / elapsed:.0f} tok/s" if elapsed else "", refresh=False)
        progress.update(1)

    try:
        results = backend.chat_many(requests, on_result)
    finally:
        progress.close()
    if results and all(not r.ok for r in results):
        raise UserError(
            f"model {backend.name}: all {len(results)} requests failed; first: {results[0].error}"
        )
