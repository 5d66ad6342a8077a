"""Content-addressed cells and their durable, sharded journal.

A cell is one unit of work (one instruction x one model, one judge call, ...). Its key
hashes everything that determines its result, so a rerun recomputes exactly the cells
whose inputs changed. Finished cells are appended to one JSONL journal per shard and
fsync'd, so a kill loses at most the request in flight. Shards are independent: a
distributed executor can hand them to different machines (see `ShardSpec`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codeultra.errors import UserError


def cell_key(payload: dict[str, Any]) -> str:
    """Stable hash of a cell's defining inputs (order-independent for dict keys)."""
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


@dataclass
class Cell:
    key: str
    shard: int
    payload: dict[str, Any]  # what the stage needs to run it (not hashed beyond `key`)


@dataclass(frozen=True)
class ShardSpec:
    """Which shards this process runs: `index`/`count`, as in `--shard 2/8`."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> ShardSpec:
        if not text:
            return cls()
        try:
            i, n = (int(x) for x in text.split("/"))
        except ValueError:
            raise UserError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
        if n < 1 or not 0 <= i < n:
            raise UserError(f"--shard {text}: need 0 <= I < N")
        return cls(i, n)

    def owns(self, shard: int) -> bool:
        return shard % self.count == self.index


@dataclass
class CellStore:
    """Append-only JSONL journals under `root/<stage>/shard-NNNNN.jsonl`."""

    root: Path
    stage: str
    _records: dict[str, dict[str, Any]] = field(default_factory=dict, init=False)
    _handles: dict[int, Any] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.dir = Path(self.root) / self.stage
        self.dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.dir.glob("shard-*.jsonl")):
            for rec in _read_journal(path):
                self._records[rec["key"]] = rec

    def get(self, key: str) -> dict[str, Any] | None:
        return self._records.get(key)

    def done(self, key: str, retry_errors: bool = True) -> bool:
        rec = self._records.get(key)
        if rec is None:
            return False
        return not (retry_errors and rec.get("error"))

    def pending(self, cells: Iterable[Cell], retry_errors: bool = True) -> list[Cell]:
        return [c for c in cells if not self.done(c.key, retry_errors)]

    def put(self, shard: int, key: str, record: dict[str, Any]) -> None:
        rec = {"key": key, **record}
        fh = self._handles.get(shard)
        if fh is None:
            fh = open(self.dir / f"shard-{shard:05d}.jsonl", "a", encoding="utf-8")  # noqa: SIM115
            self._handles[shard] = fh
        fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
        self._records[key] = rec

    def close(self) -> None:
        for fh in self._handles.values():
            fh.close()
        self._handles.clear()

    def __len__(self) -> int:
        return len(self._records)

    def __enter__(self) -> CellStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_journal(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                return  # torn last write from a kill: that cell simply reruns
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def shard_of(row_index: int, shard_size: int) -> int:
    return row_index // max(1, shard_size)
