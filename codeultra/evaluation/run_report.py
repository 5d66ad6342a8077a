"""The run report: one Markdown page with PNG plots, built from whatever a run's folder holds.

Sections appear for the artifacts present (generation, judge ratings, pairs, training, the
before/after evaluation, contamination, stage timings); missing ones are listed as not run.
Plots: rating distributions per model, per-model win rates among the judged responses, and
before/after scores. matplotlib's Agg canvas only, no pyplot state.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from codeultra.errors import UserError

COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")
Bar = tuple[float | None, float | None, float | None]  # value, interval low, interval high


def _save(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100, metadata={"Software": None})


def grouped_bars(
    categories: Sequence[str],
    series: dict[str, Sequence[Bar]],
    title: str,
    ylabel: str,
    path: Path,
    *,
    ymax: float | None = None,
) -> Path:
    """One group of bars per category, one bar per series, with interval whiskers if given."""
    fig = Figure(figsize=(max(5.0, 1.1 * len(categories) * max(1, len(series)) ** 0.5 + 2), 3.6))
    fig.set_layout_engine("constrained")
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(1, len(series))
    for s, (name, bars) in enumerate(series.items()):
        xs = [i + (s - (len(series) - 1) / 2) * width for i in range(len(categories))]
        vals = [0.0 if b[0] is None else b[0] for b in bars]
        err = [
            [
                max(0.0, v - (b[1] if b[1] is not None else v))
                for v, b in zip(vals, bars, strict=True)
            ],
            [
                max(0.0, (b[2] if b[2] is not None else v) - v)
                for v, b in zip(vals, bars, strict=True)
            ],
        ]
        has_err = any(b[1] is not None or b[2] is not None for b in bars)
        color = COLORS[s % len(COLORS)]
        ax.bar(xs, vals, width, label=name, color=color, yerr=err if has_err else None, capsize=3)
    ax.set_xticks(range(len(categories)), list(categories), rotation=20, fontsize=8)
    if ymax is not None:
        ax.set_ylim(0, ymax)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    if series:
        ax.legend(fontsize=8)
    _save(fig, path)
    return path


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def long_ratings(ratings: pd.DataFrame) -> pd.DataFrame:
    """One row per judged response: row, model, rating (None when the judge gave none)."""
    rows = []
    for i, anns in enumerate(ratings["annotations"]):
        for a in list(anns):
            r = a.get("rating")
            ok = r is not None and not (isinstance(r, float) and math.isnan(r))
            rows.append({"row": i, "model": str(a.get("model")), "rating": r if ok else None})
    return pd.DataFrame(rows, columns=["row", "model", "rating"])


def win_rates(long: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per model: share of head-to-head comparisons won within the same instruction (tie: 1/2)."""
    wins: Counter[str] = Counter()
    games: Counter[str] = Counter()
    for _, grp in long.dropna(subset=["rating"]).groupby("row"):
        for (_, a), (_, b) in itertools.combinations(grp.iterrows(), 2):
            if a["model"] == b["model"]:
                continue
            games[a["model"]] += 1
            games[b["model"]] += 1
            ra, rb = float(a["rating"]), float(b["rating"])
            wins[a["model"]] += 1.0 if ra > rb else 0.5 if ra == rb else 0.0
            wins[b["model"]] += 1.0 if rb > ra else 0.5 if ra == rb else 0.0
    return {m: {"win_rate": wins[m] / games[m], "comparisons": games[m]} for m in sorted(games)}


def _rating_hist(long: pd.DataFrame, path: Path, scale: int, title: str) -> Path:
    models = list(dict.fromkeys(long["model"]))
    fig = Figure(figsize=(max(4.0, (1.6 + 0.25 * scale) * max(1, len(models))), 2.8))
    fig.set_layout_engine("constrained")
    fig.suptitle(title)
    levels = sorted({int(r) for r in long["rating"].dropna()} | set(range(1, scale + 1)))
    for i, m in enumerate(models):
        ax = fig.add_subplot(1, len(models), i + 1)
        sub = long[long["model"] == m]["rating"]
        counts = Counter(int(r) for r in sub.dropna())
        ax.bar(
            [*map(str, levels), "none"],
            [counts.get(v, 0) for v in levels] + [int(sub.isna().sum())],
            color=COLORS[0],
        )
        ax.set_title(m, fontsize=9)
        ax.tick_params(labelsize=8)
    if not models:
        fig.add_subplot(1, 1, 1).text(0.5, 0.5, "no ratings", ha="center")
    _save(fig, path)
    return path


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    return [
        "| " + " | ".join(map(str, header)) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(map(str, r)) + " |" for r in rows),
        "",
    ]


def write_run_report(
    work_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    train_dir: str | Path | None = None,
    eval_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Build `<out_dir>/report.md` (default `<work_dir>/report`) and its PNGs.

    `train_dir` and `eval_dir` default to `<work_dir>/dpo` and `<work_dir>/eval`.
    """
    work = Path(work_dir)
    tdir = Path(train_dir) if train_dir else work / "dpo"
    edir = Path(eval_dir) if eval_dir else work / "eval"
    if not work.is_dir():
        raise UserError(f"run folder not found: {work}")
    out = Path(out_dir) if out_dir else work / "report"
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# Run report: `{work}`", ""]
    plots: dict[str, str] = {}
    missing: list[str] = []

    timings = _read_json(work / "demo-timings.json")
    if timings and "this run" in timings:
        now, every = timings["this run"], timings.get("all runs", {})
        rows = [[k, f"{now.get(k, 0):.0f}", f"{every.get(k, 0):.0f}"] for k in every | now]
        lines += ["## Stage timings", "", "Seconds; a resumed run reuses earlier work.", ""]
        lines += _table(["stage", "this run", "all runs"], rows)
    elif timings:
        lines += ["## Stage timings", ""]
        lines += _table(["stage", "seconds"], [[k, f"{v:.0f}"] for k, v in timings.items()])

    gen = _read_json(work / "responses.summary.json")
    if gen:
        lines += ["## Generation", ""]
        keys = (
            "instructions",
            "cells",
            "computed",
            "reused",
            "failed_cells",
            "completion_tokens",
            "wall_s",
        )
        lines += _table(["field", "value"], [[k, gen.get(k)] for k in keys])
    else:
        missing.append("generate")

    ratings_path = work / "ratings.parquet"
    if ratings_path.is_file():
        long = long_ratings(pd.read_parquet(ratings_path, columns=["annotations"]))
        title = "Judge rating distribution per model (1-5)"
        plots["ratings"] = str(_rating_hist(long, out / "rating_distribution.png", 5, title))
        rates = win_rates(long)
        if rates:
            names = list(rates)
            grouped_bars(
                names,
                {"win rate": [(rates[m]["win_rate"], None, None) for m in names]},
                "Per-model win rate among judged responses",
                "share of comparisons won",
                out / "win_rates.png",
                ymax=1,
            )
            plots["win_rates"] = str(out / "win_rates.png")
        lines += ["## Judge ratings", "", "![ratings](rating_distribution.png)", ""]
        stats = long.groupby("model")["rating"].agg(["count", "mean"]).reset_index()
        lines += _table(
            ["model", "rated", "mean rating", "win rate", "comparisons"],
            [
                [
                    r.model,
                    int(r.count),
                    f"{r.mean:.2f}" if r.count else "n/a",
                    f"{rates.get(r.model, {}).get('win_rate', float('nan')):.2f}",
                    rates.get(r.model, {}).get("comparisons", 0),
                ]
                for r in stats.itertuples()
            ],
        )
        if "win_rates" in plots:
            lines += ["![win rates](win_rates.png)", ""]
    else:
        missing.append("judge")

    pairs = _read_json(work / "pairs" / "pairs_report.json")
    if pairs:
        lines += ["## Pairs", ""]
        splits = pairs.get("splits", {})
        lines += _table(
            ["split", "pairs"],
            [
                [k, v.get("pairs", v.get("rows", "?")) if isinstance(v, dict) else v]
                for k, v in splits.items()
            ],
        )
    else:
        missing.append("pairs")

    train = _read_json(tdir / "metrics.json")
    if train:
        lines += ["## DPO training", ""]
        keys = ("train_rows", "global_step", "train_loss", "train_runtime_s", "merged_dir")
        lines += _table(["field", "value"], [[k, train.get(k)] for k in keys if k in train])
    else:
        missing.append("dpo")

    compare = _read_json(edir / "compare.json")
    if compare:
        from codeultra.evaluation.compare import compare_markdown, plot_before_after

        plots["before_after"] = str(plot_before_after(compare, out / "before_after.png"))
        lines += [
            "## Before / after",
            "",
            compare_markdown(compare),
            "![before/after](before_after.png)",
            "",
        ]
    else:
        missing.append("eval")

    codal_items = edir / "codal" / "items.parquet"
    if codal_items.is_file():
        items = pd.read_parquet(codal_items, columns=["model", "rating"])
        items["rating"] = [None if pd.isna(r) else r for r in items["rating"]]
        title = "CODAL grade distribution per model (1-10)"
        plots["codal"] = str(_rating_hist(items, out / "codal_grades.png", 10, title))
        lines += ["![CODAL grades](codal_grades.png)", ""]

    cont = _read_json(edir / "contamination" / "contamination.json")
    if cont:
        from codeultra.evaluation.contamination import contamination_markdown

        lines += ["## Contamination", "", contamination_markdown(cont), ""]
    else:
        missing.append("contamination")

    if missing:
        lines += [f"Not run yet: {', '.join(missing)}.", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return {"report": str(report), "plots": plots, "missing": missing}
