"""`judge-report`: how far to trust the judge.

Position bias re-judges a seeded sample with the shown order reversed; self-consistency
re-judges it at a temperature above zero; inter-judge agreement compares two ratings
files of the same responses. Re-judgments are cells too, so a rerun is free.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pandas as pd

from codeultra.config import JudgeConfig, Recipe
from codeultra.errors import UserError
from codeultra.io import load_table, require_columns, write_json
from codeultra.judging.report import RatingPair, pair_stats, write_reliability_report
from codeultra.stages.judge import Pass, judge_frame


def _ratings_by_key(df: pd.DataFrame) -> dict[tuple[str, str], int | None]:
    out = {}
    for row in df.itertuples(index=False):
        for a in row.annotations:
            out[(str(row.instruction), str(a["model"]))] = a["rating"]
    return out


def _aligned(first: dict, second: dict) -> tuple[list, list]:
    keys = sorted(set(first) & set(second))
    return [first[k] for k in keys], [second[k] for k in keys]


def _rejudge(df: pd.DataFrame, recipe: Recipe, cfg: JudgeConfig, p: Pass) -> dict:
    results, _, _ = judge_frame(df, recipe, cfg, p=p)
    assert results is not None
    out = {}
    for row, r in zip(df.itertuples(index=False), results, strict=True):
        for resp, rating in zip(row.responses, r["ratings"], strict=True):
            out[(str(row.instruction), str(resp["model"]))] = rating
    return out


def run_judge_report(
    input_path: str,
    out_dir: str | Path,
    *,
    recipe: Recipe | None = None,
    compare: str | None = None,
    sample: int | None = None,
) -> dict[str, Any]:
    df = load_table(input_path)
    require_columns(
        df, ["instruction", "annotations", "parse_status"], input_path, "a ratings file"
    )
    base = _ratings_by_key(df)
    kwargs: dict[str, Any] = {}
    summary: dict[str, Any] = {"rows": len(df)}
    if recipe is not None:
        cfg = recipe.judge or JudgeConfig()
        rel = cfg.reliability
        n_valid = df["judge_order"].map(len) >= 2 if "judge_order" in df else df.index >= 0
        pool = [i for i, ok in enumerate(n_valid) if ok]
        random.Random(rel.seed).shuffle(pool)
        picked = df.iloc[sorted(pool[: sample or rel.sample])].reset_index(drop=True)
        if len(picked):
            sub = {k: v for k, v in base.items() if k[0] in set(picked.instruction)}
            rev = _rejudge(picked, recipe, cfg, Pass("position", order="reversed"))
            kwargs["position"] = RatingPair(*_aligned(sub, rev), "shown order", "reversed")
            hot = cfg.model_copy(update={"temperature": rel.temperature})
            again = _rejudge(picked, recipe, hot, Pass("consistency", seed_offset=1))
            kwargs["consistency"] = RatingPair(
                *_aligned(sub, again), f"T={cfg.temperature}", f"T={rel.temperature}"
            )
    if compare:
        other = load_table(compare)
        require_columns(other, ["instruction", "annotations"], compare, "a ratings file")
        a, b = _aligned(base, _ratings_by_key(other))
        if not a:
            raise UserError(f"{compare}: no responses in common with {input_path}")
        ja = df["judge_model"].iloc[0] if "judge_model" in df else "judge A"
        jb = other["judge_model"].iloc[0] if "judge_model" in other else "judge B"
        kwargs["inter_judge"] = RatingPair(a, b, str(ja), str(jb))
    report = write_reliability_report(df, out_dir, **kwargs)
    for name, pair in kwargs.items():
        summary[name] = pair_stats(pair)
    summary["report"] = str(report)
    write_json(summary, Path(out_dir) / "summary.json")
    return summary
