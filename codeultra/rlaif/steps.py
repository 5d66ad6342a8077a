"""Step bookkeeping shared by the RLAIF steps: output layout, done markers, model identity.

A training step is done when its folder holds `done.json` with the key of its current
inputs (config + the identity of the models and data it starts from). A folder started
under another key is cleared first, so stale checkpoints never resume into a new run.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codeultra.cells import cell_key
from codeultra.io import write_json

STARTED, DONE = "started.json", "done.json"


@dataclass(frozen=True)
class Layout:
    """Where every step reads and writes, under the recipe's work_dir."""

    root: Path

    @property
    def cells(self) -> Path:
        return self.root / "cells"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def sft(self) -> Path:
        return self.root / "sft"

    @property
    def candidates(self) -> Path:
        return self.root / "candidates.parquet"

    @property
    def feedback(self) -> Path:
        return self.root / "feedback.parquet"

    @property
    def reward(self) -> Path:
        return self.root / "reward"

    @property
    def rl(self) -> Path:
        return self.root / "rl"

    @property
    def eval(self) -> Path:
        return self.root / "eval"


@dataclass
class Step:
    folder: Path
    key: str

    def done(self) -> dict[str, Any] | None:
        """The metrics of a finished run with this key, else None."""
        marker = self.folder / DONE
        if not marker.is_file():
            return None
        record = json.loads(marker.read_text(encoding="utf-8"))
        return record.get("metrics") if record.get("key") == self.key else None

    def begin(self) -> None:
        started = self.folder / STARTED
        if started.is_file():
            if json.loads(started.read_text(encoding="utf-8")).get("key") != self.key:
                shutil.rmtree(self.folder)
        elif self.folder.exists() and any(self.folder.iterdir()):
            shutil.rmtree(self.folder)  # unknown leftovers: never resume from them
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / DONE).unlink(missing_ok=True)
        write_json({"key": self.key}, self.folder / STARTED)

    def finish(self, metrics: dict[str, Any]) -> None:
        write_json({"key": self.key, "metrics": metrics}, self.folder / DONE)


# Trainer args that change how a run looks, not what it computes: kept out of step keys.
_COSMETIC_ARGS = ("disable_tqdm", "report_to", "logging_steps")


def step_key(payload: dict[str, Any]) -> str:
    args = payload.get("args")
    if isinstance(args, dict):
        payload = {**payload, "args": {k: v for k, v in args.items() if k not in _COSMETIC_ARGS}}
    return cell_key(payload)


def model_fingerprint(model: str | Path) -> str:
    """Identity of a model folder: its config plus the names, sizes and times of its weights.

    Cheap (no hashing of gigabytes), and it changes whenever a step rewrites the folder.
    A Hub id or other non-folder is its own identity.
    """
    path = Path(model)
    if not path.is_dir():
        return str(model)
    h = hashlib.sha256()
    config = path / "config.json"
    if config.is_file():
        h.update(config.read_bytes())
    for f in sorted(path.iterdir()):
        if f.suffix in (".safetensors", ".bin", ".json", ".jinja", ".model"):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest TRL checkpoint-N folder, to resume a killed training run from."""
    if not folder.is_dir():
        return None
    found = [p for p in folder.iterdir() if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)]
    return max(found, key=lambda p: int(p.name.split("-")[1]), default=None)


def remove_checkpoints(folder: Path) -> None:
    """Drop TRL checkpoints once a step is done: they only serve to resume a killed run, and
    with optimizer state they weigh three times the model."""
    for path in [folder / "checkpoints", *folder.glob("checkpoint-*")]:
        if path.is_dir():
            shutil.rmtree(path)
