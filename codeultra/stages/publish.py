"""`push`: publish a pairs folder to the Hub with a generated dataset card."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd

from codeultra.dataset_card import render_dataset_card
from codeultra.errors import UserError
from codeultra.hub import push_dataset
from codeultra.stages.pairs import REPORT_NAME


def build_card(input_dir: str | Path, repo_id: str, recipe_path: Path | None = None) -> str:
    folder = Path(input_dir)
    train = folder / "train.parquet"
    if not train.is_file():
        raise UserError(f"{folder}: not a pairs folder (no train.parquet)")
    report_path = folder / REPORT_NAME
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    frames = [pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))]
    pairs = pd.concat(frames, ignore_index=True)
    histograms = {
        side: dict(Counter(int(r) for r in pairs[f"rating_{side}"].dropna()))
        for side in ("chosen", "rejected")
        if f"rating_{side}" in pairs
    }
    recipe, pool, judge = None, [], None
    if recipe_path is not None:
        from codeultra.config import load_recipe

        r = load_recipe(recipe_path)
        recipe = r.model_dump(mode="json")
        pool = list(r.generate.pool) if r.generate else []
        judge = r.judge.model if r.judge else None
    if not pool and "model_chosen" in pairs:
        pool = sorted(set(pairs.model_chosen) | set(pairs.model_rejected))
    counts = {
        "pairs": len(pairs),
        **{k: v for k, v in report.items() if k in ("rows_in", "dropped")},
    }
    for split in ("train", "test"):
        if (folder / f"{split}.parquet").is_file():
            counts[split] = len(pd.read_parquet(folder / f"{split}.parquet", columns=["prompt"]))
    return render_dataset_card(
        repo_id=repo_id,
        recipe=recipe,
        pool=pool,
        judge=judge,
        counts=counts,
        rating_histograms=histograms,
    )


def run_push(
    input_dir: str, repo_id: str, *, private: bool = False, recipe_path: Path | None = None
) -> str:
    card = build_card(input_dir, repo_id, recipe_path)
    return push_dataset(input_dir, repo_id, private=private, card_text=card)
