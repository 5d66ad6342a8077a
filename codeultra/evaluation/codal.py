"""CODAL-Bench: a model's answers graded 1-10 against reference answers, per coding preference.

Input layout (`coseal/codal-bench`): `instruction`, `preference`, and reference answers in
`<model>_response` columns (the paper graded against `gpt-3.5-turbo_response`). Offline, the
default input is the held-out split of the bundled instructions, with references written by the
strongest local model into `<out>/codal-bench.parquet` in the same layout.

The model under test answers greedily with its preference's principle as the system prompt. A
judge writes a rationale, then `Rating: X/10`; an unreadable grade is re-asked, then counted as
`unparsed` and left out of the means (never scored as 0). Means come with a seeded bootstrap
95% interval. Every model call is a journaled cell, so a rerun resumes.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from codeultra.backends.base import Backend, ChatRequest, ChatResult
from codeultra.cells import Cell, CellStore, cell_key, shard_of
from codeultra.config import ModelSpec, Recipe
from codeultra.errors import UserError
from codeultra.evaluation.config import (
    CodalConfig,
    EvalConfig,
    LazyBackend,
    cached_chat,
    eval_dir,
    model_identity,
)
from codeultra.io import load_table, require_columns, write_json, write_parquet
from codeultra.judging.rubrics import PREFERENCES
from codeultra.progress import bar
from codeultra.prompts import load_yaml, render, source, template_version
from codeultra.stages.generate import pick_principle

PAPER_REFERENCE = "gpt-3.5-turbo_response"
SUFFIX = "_response"
SYSTEM_TEMPLATE = "eval/codal_system.j2"
GRADE_TEMPLATE = "eval/codal_grade.j2"
CRITERIA = "eval/codal_criteria.yaml"


@dataclass
class Contestant:
    """A model taking part: display name, how to run it, and its (lazily started) backend."""

    name: str
    spec: ModelSpec
    backend: Backend | None = None

    def __post_init__(self) -> None:
        self.backend = self.backend or LazyBackend(self.name, self.spec)

    @property
    def identity(self) -> dict[str, str]:
        return model_identity(self.spec)


# ------------------------------------------------------------------ grade parsing


@dataclass
class Grade:
    rating: float | None
    reason: str | None = None  # why rating is None


_NUM = r"(-?\d+(?:\.\d+)?)"
_LABEL_RE = re.compile(r"\brating\b", re.I)
_VALUE_RE = re.compile(
    rf"(?:[^\n\d:=]{{0,40}}[:=])?[\s*_`'\"\-]*(?:is\s+|of\s+)?[\s*_`]*[\[\(]*\s*{_NUM}\s*"
    rf"[\]\)]*\s*(?:(?:/|out\s+of)\s*{_NUM})?(?P<tail>[^\n]*)",
    re.I,
)
_BRACKETS_RE = re.compile(rf"\[\[\s*{_NUM}\s*(?:/\s*{_NUM}\s*)?\]\]")
_OVER_TEN_RE = re.compile(rf"(?<![\w.]){_NUM}\s*(?:/|out\s+of)\s*{_NUM}")
_RANGE_RE = re.compile(r"^\s*(?:-|–|—|to|or)\s*\d", re.I)


def _check(value: str, scale: str | None, tail: str = "") -> Grade:
    if _RANGE_RE.match(tail):
        return Grade(None, f"rating {value}{tail.strip()[:8]} is a range, not one number")
    if scale is not None and float(scale) != 10:
        return Grade(None, f"rating {value}/{scale} is not on the 1-10 scale")
    number = float(value)
    if not 1 <= number <= 10:
        return Grade(None, f"rating {value} is outside 1-10")
    return Grade(number)


def parse_grade(reply: str) -> Grade:
    """The judge's rating: the last `Rating: X[/10]`, else the last `[[X]]`, else `X/10`."""
    text = (reply or "").replace("**", "")
    for m in reversed(list(_LABEL_RE.finditer(text))):
        v = _VALUE_RE.match(text, m.end())
        if v and v.group(1) is not None:
            return _check(v.group(1), v.group(2), v.group("tail"))
    brackets = _BRACKETS_RE.findall(text)
    if brackets:
        return _check(brackets[-1][0], brackets[-1][1] or None)
    over = [m for m in _OVER_TEN_RE.findall(text) if float(m[1]) == 10]
    if over:
        return _check(*over[-1])
    return Grade(None, "no rating found" if text.strip() else "empty reply")


# ------------------------------------------------------------------ statistics


def bootstrap_ci(
    values: Sequence[float], *, n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; deterministic for a given seed."""
    data = np.asarray([float(v) for v in values], dtype=float)
    if data.size == 0:
        raise UserError("bootstrap_ci needs at least one value")
    if data.size == 1:
        return float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(n_resamples, data.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def _stats(sub: pd.DataFrame, cfg: CodalConfig) -> dict[str, Any]:
    graded = [float(r) for r in sub["rating"] if r is not None and not math.isnan(r)]
    out: dict[str, Any] = {
        "items": len(sub),
        "graded": len(graded),
        "unparsed": int((sub["status"] == "unparsed").sum()),
        "errors": int(sub["status"].isin(["error", "answer_error"]).sum()),
        "mean": None,
        "ci_low": None,
        "ci_high": None,
    }
    if graded:
        lo, hi = bootstrap_ci(graded, n_resamples=cfg.bootstrap, seed=cfg.seed)
        out.update(mean=float(np.mean(graded)), ci_low=lo, ci_high=hi)
    return out


def summarize(items: pd.DataFrame, cfg: CodalConfig) -> dict[str, Any]:
    """Per model: per-preference and overall mean, 95% interval, unparsed and error counts."""
    out: dict[str, Any] = {}
    for model in dict.fromkeys(items["model"]):
        rows = items[items["model"] == model]
        prefs = [p for p in PREFERENCES if p in set(rows["preference"])]
        out[model] = {
            "preferences": {p: _stats(rows[rows["preference"] == p], cfg) for p in prefs},
            "overall": _stats(rows, cfg),
        }
    return out


# ------------------------------------------------------------------ benchmark input


def balanced_head(df: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """The first `limit` rows taking preferences in turn, so a small run covers all five."""
    if limit is None or limit >= len(df):
        return df.reset_index(drop=True)
    rank = df.groupby("preference", sort=False).cumcount()
    pref_order = {p: i for i, p in enumerate(PREFERENCES)}
    order = sorted(
        range(len(df)), key=lambda i: (rank.iloc[i], pref_order.get(df["preference"].iloc[i], 9))
    )
    return df.iloc[order[:limit]].reset_index(drop=True)


def pick_reference_column(df: pd.DataFrame, wanted: str | None, source: str) -> str:
    cols = [c for c in df.columns if str(c).endswith(SUFFIX)]
    if wanted:
        name = wanted if wanted.endswith(SUFFIX) else wanted + SUFFIX
        if name not in df.columns:
            raise UserError(f"{source}: no reference column {name!r} (has: {', '.join(cols)})")
        return name
    if PAPER_REFERENCE in cols:
        return PAPER_REFERENCE
    if not cols:
        raise UserError(f"{source}: not a CODAL-Bench file: no `<model>_response` column")
    return cols[0]


def load_benchmark(
    recipe: Recipe, cfg: EvalConfig, source: str | None, limit: int | None
) -> tuple[pd.DataFrame, str | None]:
    """(items, reference column); the column is None when references must be written first."""
    source = source or cfg.codal.input
    limit = limit or cfg.codal.limit
    if source is None:
        df = load_table(recipe.data.path)
        require_columns(df, ["instruction", "preference"], recipe.data.path, "an instructions file")
        if "split" in df.columns:
            df = df[df["split"] == "heldout"]
        if df.empty:
            raise UserError(f"{recipe.data.path}: no held-out instructions for CODAL evaluation")
        return balanced_head(df, limit), None
    df = load_table(source, "test")
    require_columns(df, ["instruction", "preference"], source, "a CODAL-Bench file")
    bad = sorted(set(df["preference"]) - set(PREFERENCES))
    if bad:
        raise UserError(f"{source}: unknown preference value(s) {bad[:3]}; expected {PREFERENCES}")
    column = pick_reference_column(df, cfg.codal.reference_column, source)
    return balanced_head(df, limit), column


def answer_messages(instruction: str, preference: str, seed: int) -> list[dict[str, str]]:
    principle = pick_principle(instruction, preference, load_yaml("generate/principles.yaml"), seed)
    return [{"role": "system", "content": principle}, {"role": "user", "content": instruction}]


def generate_answers(
    df: pd.DataFrame, who: Contestant, cells_dir: Path, max_tokens: int, seed: int, stage: str
) -> list[dict[str, Any]]:
    """Greedy answers with the preference principle as system prompt (journaled cells)."""
    requests = [
        ChatRequest(
            messages=answer_messages(str(r.instruction), str(r.preference), seed),
            temperature=0.0,
            top_p=1.0,
            max_tokens=max_tokens,
            seed=seed,
        )
        for r in df.itertuples(index=False)
    ]
    assert who.backend is not None
    return cached_chat(cells_dir, stage, requests, who.backend, who.identity, f"{stage} {who.name}")


def codal_answers(
    df: pd.DataFrame, who: Contestant, cells_dir: Path, cfg: CodalConfig
) -> list[dict[str, Any]]:
    return generate_answers(df, who, cells_dir, cfg.max_tokens, cfg.seed, "eval-answer")


def write_references(
    df: pd.DataFrame, ref: Contestant, cells_dir: Path, cfg: CodalConfig, path: Path
) -> tuple[pd.DataFrame, str]:
    """Answer the held-out instructions with the reference model; save in CODAL layout."""
    records = generate_answers(
        df, ref, cells_dir, cfg.reference_max_tokens, cfg.seed, "eval-reference"
    )
    column = f"{ref.name}{SUFFIX}"
    out = df.copy()
    out[column] = [r.get("text") or "" for r in records]
    write_parquet(out, path, metadata={"reference_model": ref.name})
    return out, column


# ------------------------------------------------------------------ grading


def grade_messages(item: dict[str, str]) -> list[dict[str, str]]:
    crit = load_yaml(CRITERIA).get(item["preference"])
    if not crit:
        raise UserError(f"prompts/{CRITERIA}: no criteria for {item['preference']!r}")
    user = render(
        GRADE_TEMPLATE,
        title=crit["title"],
        criteria=crit["criteria"],
        instruction=item["instruction"],
        reference=item["reference"] or "(no reference answer)",
        answer=item["answer"].strip() or "(empty answer)",
    )
    return [
        {"role": "system", "content": render(SYSTEM_TEMPLATE)},
        {"role": "user", "content": user},
    ]


def _reask(reply: str, reason: str | None) -> list[dict[str, str]]:
    return [
        {"role": "assistant", "content": reply},
        {
            "role": "user",
            "content": (
                f"Your reply could not be read ({reason or 'no rating found'}). Reply again: a "
                "short rationale, then a last line `Rating: X/10` with X a whole number 1-10."
            ),
        },
    ]


def grade_items(
    items: list[dict[str, str]], judge: Contestant, cells_dir: Path, cfg: CodalConfig
) -> list[dict[str, Any]]:
    """Grade each item; unreadable replies are re-asked in rounds, then stored as unparsed."""
    version = [template_version(t) for t in (SYSTEM_TEMPLATE, GRADE_TEMPLATE)]
    version.append(hashlib.sha256(source(CRITERIA).encode()).hexdigest()[:8])
    cells = []
    for i, it in enumerate(items):
        key = cell_key(
            {
                "stage": "eval-grade",
                "judge": judge.identity,
                "prompt": version,
                "item": {k: it[k] for k in ("instruction", "preference", "reference", "answer")},
                "max_tokens": cfg.judge_max_tokens,
                "max_reasks": cfg.max_reasks,
                "seed": cfg.seed,
            }
        )
        cells.append(Cell(key, shard_of(i, 64), {"i": i}))
    with CellStore(cells_dir, "eval-grade") as store:
        pending = list({c.key: c for c in store.pending(cells)}.values())
        if pending:
            _grade_rounds(store, pending, items, judge, cfg)
            failed = [store.get(c.key) for c in pending]
            if all(r and r.get("status") == "error" for r in failed):
                raise UserError(
                    f"judge {judge.name}: all {len(failed)} requests failed; "
                    f"first: {failed[0]['error']}"
                )
        return [dict(store.get(c.key) or {}) for c in cells]


def _grade_rounds(
    store: CellStore,
    pending: list[Cell],
    items: list[dict[str, str]],
    judge: Contestant,
    cfg: CodalConfig,
) -> None:
    state = {c.key: {"history": [], "raw": [], "attempts": 0} for c in pending}
    todo = pending
    progress = bar(len(pending), f"grade ({judge.name})")
    try:
        for round_no in range(cfg.max_reasks + 1):
            if not todo:
                break
            last, retry = round_no == cfg.max_reasks, []

            def on_result(i: int, res: ChatResult, todo=todo, last=last, retry=retry) -> None:
                cell = todo[i]
                st = state[cell.key]
                st["attempts"] += 1
                if not res.ok:
                    _put(store, cell, None, "error", st, res.error)
                    progress.update(1)
                    return
                reply = res.choices[0].text if res.choices else ""
                st["raw"].append(reply)
                grade = parse_grade(reply)
                if grade.rating is None and not last:
                    st["history"] = st["history"] + _reask(reply, grade.reason)
                    retry.append(cell)
                    return
                _put(store, cell, grade, "ok" if grade.rating is not None else "unparsed", st)
                progress.update(1)

            requests = [
                ChatRequest(
                    messages=grade_messages(items[c.payload["i"]]) + state[c.key]["history"],
                    temperature=0.0,
                    top_p=1.0,
                    max_tokens=cfg.judge_max_tokens,
                    seed=cfg.seed,
                )
                for c in todo
            ]
            assert judge.backend is not None
            judge.backend.chat_many(requests, on_result)
            todo = retry
    finally:
        progress.close()


def _put(
    store: CellStore,
    cell: Cell,
    grade: Grade | None,
    status: str,
    st: dict[str, Any],
    error: str | None = None,
) -> None:
    store.put(
        cell.shard,
        cell.key,
        {
            "rating": grade.rating if grade else None,
            "reason": (grade.reason if grade else error),
            "status": status,
            "raw": st["raw"],
            "attempts": st["attempts"],
            "error": error,
            "finished_at": time.time(),
        },
    )


# ------------------------------------------------------------------ the whole benchmark


def run_codal(
    recipe: Recipe,
    cfg: EvalConfig,
    contestants: list[Contestant],
    judge: Contestant,
    *,
    reference: Contestant | None = None,
    input_path: str | None = None,
    output: str | Path | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Answer, grade and summarize; writes items.parquet, summary.json, scores.{md,csv,png}."""
    if not contestants:
        raise UserError("CODAL evaluation needs at least one model")
    if len({c.name for c in contestants}) != len(contestants):
        raise UserError("CODAL evaluation: two models share a name")
    started = time.perf_counter()
    out = Path(output) if output else eval_dir(recipe, cfg) / "codal"
    cells_dir = recipe.work_dir / "cells"
    df, column = load_benchmark(recipe, cfg, input_path, limit)
    if column is None:
        ref = reference or judge
        df, column = write_references(df, ref, cells_dir, cfg.codal, out / "codal-bench.parquet")
        if ref is not judge:
            ref.backend.close()
    items: list[dict[str, Any]] = []
    for who in contestants:
        answers = codal_answers(df, who, cells_dir, cfg.codal)
        who.backend.close()  # one model in memory at a time (several 7B models on one GPU)
        rows = df.to_dict("records")
        for idx, (row, ans) in enumerate(zip(rows, answers, strict=True)):
            items.append(
                {
                    "model": who.name,
                    "item": int(idx),
                    "id": str(row.get("id", idx)),
                    "instruction": str(row["instruction"]),
                    "preference": str(row["preference"]),
                    "reference": row[column] if isinstance(row[column], str) else "",
                    "answer": ans.get("text") or "",
                    "answer_error": ans.get("error"),
                    "answer_tokens": ans.get("completion_tokens", 0),
                }
            )
    gradable = [it for it in items if not it["answer_error"]]
    grades = iter(grade_items(gradable, judge, cells_dir, cfg.codal))
    for it in items:
        g = {"status": "answer_error", "rating": None, "reason": it["answer_error"], "raw": []}
        if not it["answer_error"]:
            g = next(grades)
        it.update(
            rating=g.get("rating"),
            status=g.get("status"),
            reason=g.get("reason"),
            judgement=(g.get("raw") or [""])[-1],
            judge_attempts=g.get("attempts", 0),
        )
    frame = pd.DataFrame(items)
    scores = summarize(frame, cfg.codal)
    summary = {
        "benchmark": "codal",
        "input": input_path or cfg.codal.input or f"{recipe.data.path} (held-out split)",
        "reference": column,
        "judge": judge.name,
        "items": len(df),
        "models": [c.name for c in contestants],
        "scores": scores,
        "wall_s": round(time.perf_counter() - started, 2),
    }
    summary["files"] = write_outputs(out, frame, summary)
    return summary


def write_outputs(out: Path, frame: pd.DataFrame, summary: dict[str, Any]) -> dict[str, str]:
    from codeultra.evaluation.run_report import grouped_bars

    out.mkdir(parents=True, exist_ok=True)
    files = {
        "items": out / "items.parquet",
        "summary": out / "summary.json",
        "table": out / "scores.md",
        "csv": out / "scores.csv",
        "chart": out / "scores.png",
    }
    write_parquet(frame, files["items"])
    scores = summary["scores"]
    files["table"].write_text(scores_markdown(scores, summary), encoding="utf-8")
    scores_frame(scores).to_csv(files["csv"], index=False)
    prefs = list(dict.fromkeys(p for s in scores.values() for p in s["preferences"]))
    cats = prefs + ["overall"]
    series = {
        m: [
            (_pick(s, c).get("mean"), _pick(s, c).get("ci_low"), _pick(s, c).get("ci_high"))
            for c in cats
        ]
        for m, s in scores.items()
    }
    grouped_bars(
        cats,
        series,
        f"CODAL judge score (judge: {summary['judge']})",
        "mean rating (1-10)",
        files["chart"],
        ymax=10,
    )
    paths = {k: str(v) for k, v in files.items()}
    write_json({**summary, "files": paths}, files["summary"])
    return paths


def _pick(model_scores: dict[str, Any], category: str) -> dict[str, Any]:
    if category == "overall":
        return model_scores["overall"]
    return model_scores["preferences"].get(category, {})


def fmt_score(s: dict[str, Any]) -> str:
    if not s or s.get("mean") is None:
        return "n/a"
    return f"{s['mean']:.2f} [{s['ci_low']:.2f}, {s['ci_high']:.2f}]"


def scores_markdown(scores: dict[str, Any], summary: dict[str, Any]) -> str:
    models = list(scores)
    prefs = list(dict.fromkeys(p for s in scores.values() for p in s["preferences"]))
    lines = [
        "# CODAL judge scores (1-10, mean [95% bootstrap CI])\n",
        f"Judge: {summary['judge']}; reference: `{summary['reference']}`; "
        f"items: {summary['items']}\n",
        "| preference | " + " | ".join(models) + " |",
        "|---" * (len(models) + 1) + "|",
    ]
    for cat in prefs + ["overall"]:
        cells = [fmt_score(_pick(scores[m], cat)) for m in models]
        lines.append(
            f"| {'**overall**' if cat == 'overall' else cat} | " + " | ".join(cells) + " |"
        )
    lines.append(
        "| unparsed grades | "
        + " | ".join(str(scores[m]["overall"]["unparsed"]) for m in models)
        + " |"
    )
    lines.append(
        "| failed requests | "
        + " | ".join(str(scores[m]["overall"]["errors"]) for m in models)
        + " |"
    )
    return "\n".join(lines) + "\n"


def scores_frame(scores: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for model, s in scores.items():
        for cat in [*s["preferences"], "overall"]:
            rows.append({"model": model, "preference": cat, **_pick(s, cat)})
    return pd.DataFrame(rows)
