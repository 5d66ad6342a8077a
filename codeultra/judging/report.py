"""Judge reliability report: report.md plus PNG plots (matplotlib Agg, no pyplot state).

Inputs:
- `ratings_df`: one row per judge call, columns instruction, preference, models (list[str]),
  annotations (list of {model, rating: int|None, rationale}), parse_status ("ok"|"partial"|
  "failed").
- `position`, `consistency`, `inter_judge`: each a `RatingPair` (or a plain `(a, b)` tuple)
  of two aligned rating lists over the same (instruction, preference, model) items:
  position = original vs reversed display order; consistency = two judgments of the same
  prompt at temperature > 0; inter_judge = judge A vs judge B. None entries are parse
  failures and are left out of the pair statistics.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from codeultra.errors import UserError
from codeultra.judging.reliability import agreement_stats, spearman, tie_rate, weighted_kappa

LEVELS = (1, 2, 3, 4, 5)
REQUIRED_COLUMNS = ("instruction", "preference", "models", "annotations", "parse_status")


class RatingPair(NamedTuple):
    a: Sequence[int | None]
    b: Sequence[int | None]
    label_a: str = "a"
    label_b: str = "b"


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _as_rating(v: Any) -> int | None:
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, float):
        return None if math.isnan(v) else int(v)
    return int(v)


def _long_ratings(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (call, response): row, preference, model, rating."""
    records = []
    for row_id, row in enumerate(df.itertuples(index=False)):
        models = list(row.models) if row.models is not None else []
        for j, ann in enumerate(list(row.annotations)):
            model = ann.get("model") or (models[j] if j < len(models) else f"response-{j}")
            records.append(
                {
                    "row": row_id,
                    "preference": row.preference,
                    "model": model,
                    "rating": _as_rating(ann.get("rating")),
                }
            )
    out = pd.DataFrame.from_records(records, columns=["row", "preference", "model", "rating"])
    # Keep missing ratings as None (not NaN) so tie_rate and the stats see them as gaps.
    out["rating"] = pd.Series([r["rating"] for r in records], index=out.index, dtype=object)
    return out


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100, metadata={"Software": None})


def _hist_grid(long: pd.DataFrame, by: str, title: str, path: Path) -> None:
    groups = sorted(long[by].unique()) if len(long) else []
    ncols = max(1, min(4, len(groups)))
    nrows = max(1, math.ceil(len(groups) / ncols))
    fig = Figure(figsize=(3.2 * ncols, 2.6 * nrows), layout="constrained")
    fig.suptitle(title)
    xs = [*map(str, LEVELS), "none"]
    for i, name in enumerate(groups):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ratings = long.loc[long[by] == name, "rating"]
        counts = Counter(ratings.dropna().astype(int))
        heights = [counts.get(v, 0) for v in LEVELS] + [int(ratings.isna().sum())]
        ax.bar(xs, heights, color=["#4c72b0"] * 5 + ["#999999"])
        ax.set_title(str(name), fontsize=9)
        ax.tick_params(labelsize=8)
    if not groups:
        fig.add_subplot(1, 1, 1).text(0.5, 0.5, "no ratings", ha="center")
    _save(fig, path)


def _bar(labels: list[str], values: list[float], title: str, ylabel: str, path: Path) -> None:
    fig = Figure(figsize=(max(4.0, 0.9 * len(labels) + 2), 3.2), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(labels, [0 if math.isnan(v) else v for v in values], color="#4c72b0")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", labelsize=8, rotation=20)
    _save(fig, path)


def _status_plot(table: pd.DataFrame, path: Path) -> None:
    fig = Figure(figsize=(max(4.0, 0.9 * len(table) + 2), 3.2), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    bottom = [0.0] * len(table)
    for status, color in (("ok", "#55a868"), ("partial", "#dd8452"), ("failed", "#c44e52")):
        share = (table[status] / table["calls"]).tolist()
        ax.bar(table.index.astype(str), share, bottom=bottom, color=color, label=status)
        bottom = [b + s for b, s in zip(bottom, share, strict=True)]
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of judge calls")
    ax.set_title("Parse status by preference")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelsize=8, rotation=20)
    _save(fig, path)


def _pair_heatmap(pair: RatingPair, title: str, path: Path) -> None:
    grid = [[0] * len(LEVELS) for _ in LEVELS]
    for x, y in zip(pair.a, pair.b, strict=True):
        if x in LEVELS and y in LEVELS:
            grid[LEVELS.index(x)][LEVELS.index(y)] += 1
    fig = Figure(figsize=(4.2, 3.8), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(grid, cmap="Blues", origin="lower")
    for i in range(len(LEVELS)):
        for j in range(len(LEVELS)):
            ax.text(j, i, str(grid[i][j]), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(LEVELS)), [str(v) for v in LEVELS])
    ax.set_yticks(range(len(LEVELS)), [str(v) for v in LEVELS])
    ax.set_xlabel(pair.label_b)
    ax.set_ylabel(pair.label_a)
    ax.set_title(title)
    fig.colorbar(image, ax=ax)
    _save(fig, path)


def pair_stats(pair: RatingPair) -> dict[str, float]:
    """n, exact agreement, mean |diff|, quadratic kappa, Spearman, and each side's mean."""
    stats: dict[str, float] = dict(agreement_stats(pair.a, pair.b))
    stats["quadratic_kappa"] = weighted_kappa(pair.a, pair.b, weights="quadratic")
    stats["linear_kappa"] = weighted_kappa(pair.a, pair.b, weights="linear")
    stats["spearman"] = spearman(pair.a, pair.b)
    both = [(x, y) for x, y in zip(pair.a, pair.b, strict=True) if x is not None and y is not None]
    stats["mean_a"] = sum(x for x, _ in both) / len(both) if both else math.nan
    stats["mean_b"] = sum(y for _, y in both) / len(both) if both else math.nan
    stats["missing"] = len(pair.a) - len(both)
    return stats


def _coerce_pair(pair: Any, label_a: str, label_b: str, name: str) -> RatingPair:
    if isinstance(pair, RatingPair):
        return pair
    try:
        a, b = pair
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a pair (a, b) of aligned rating lists") from None
    if len(a) != len(b):
        raise UserError(f"{name}: rating lists differ in length ({len(a)} vs {len(b)})")
    return RatingPair(list(a), list(b), label_a, label_b)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _distribution_rows(long: pd.DataFrame, by: str) -> list[list[str]]:
    rows = []
    for name, group in long.groupby(by, sort=True):
        rated = group["rating"].dropna().astype(int)
        counts = Counter(rated)
        n = len(rated)
        shares = [_fmt(counts.get(v, 0) / n) if n else "n/a" for v in LEVELS]
        mean = _fmt(rated.mean()) if n else "n/a"
        rows.append([str(name), str(n), str(len(group) - n), mean, *shares])
    return rows


def write_reliability_report(
    ratings_df: pd.DataFrame,
    out_dir: str | Path,
    *,
    position: RatingPair | tuple[Sequence[int | None], Sequence[int | None]] | None = None,
    consistency: RatingPair | tuple[Sequence[int | None], Sequence[int | None]] | None = None,
    inter_judge: RatingPair | tuple[Sequence[int | None], Sequence[int | None]] | None = None,
) -> Path:
    """Write out_dir/report.md and its PNG plots; return the report path."""
    missing = [c for c in REQUIRED_COLUMNS if c not in ratings_df.columns]
    if missing:
        raise UserError(f"judge ratings table lacks column(s): {', '.join(missing)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    long = _long_ratings(ratings_df)
    n_missing = int(long["rating"].isna().sum())

    md = ["# Judge reliability report", ""]
    md += [
        f"- judge calls: {len(ratings_df)}",
        f"- instructions: {ratings_df['instruction'].nunique()}",
        f"- preferences: {ratings_df['preference'].nunique()}",
        f"- models: {long['model'].nunique()}",
        f"- ratings: {len(long)} ({n_missing} missing, "
        f"rate {_fmt(n_missing / len(long) if len(long) else math.nan)})",
        "",
    ]

    # Parse status per preference.
    status = pd.crosstab(ratings_df["preference"], ratings_df["parse_status"])
    status = status.reindex(columns=["ok", "partial", "failed"], fill_value=0)
    status["calls"] = status[["ok", "partial", "failed"]].sum(axis=1)
    status.loc["all"] = status.sum(axis=0)
    md += ["## Parse failures", ""]
    md += _table(
        ["preference", "calls", "ok", "partial", "failed", "failure rate"],
        [
            [str(p), str(r.calls), str(r.ok), str(r.partial), str(r.failed)]
            + [_fmt(r.failed / r.calls if r.calls else math.nan)]
            for p, r in status.iterrows()
        ],
    )
    md += ["", "Failure rate: share of judge calls with no usable rating at all.", ""]
    md += ["![parse status](parse_status.png)", ""]
    _status_plot(status, out / "parse_status.png")

    header = ["", "rated", "missing", "mean", *(f"share {v}" for v in LEVELS)]
    md += ["## Ratings by model", ""]
    md += _table(["model", *header[1:]], _distribution_rows(long, "model"))
    md += ["", "![ratings by model](ratings_by_model.png)", ""]
    _hist_grid(long, "model", "Ratings by model", out / "ratings_by_model.png")

    md += ["## Ratings by preference", ""]
    md += _table(["preference", *header[1:]], _distribution_rows(long, "preference"))
    md += ["", "![ratings by preference](ratings_by_preference.png)", ""]
    _hist_grid(long, "preference", "Ratings by preference", out / "ratings_by_preference.png")

    # All-k-tie rate: a tie gives no chosen/rejected pair for that instruction.
    ties: dict[str, float] = {}
    for pref, group in long.groupby("preference", sort=True):
        ties[str(pref)] = tie_rate([g["rating"].tolist() for _, g in group.groupby("row")])
    ties["all"] = tie_rate([g["rating"].tolist() for _, g in long.groupby("row")])
    md += ["## All-k ties", ""]
    md += _table(["preference", "all-k-tie rate"], [[p, _fmt(v)] for p, v in ties.items()])
    md += [
        "",
        "Share of judge calls (with every rating present) where all k ratings are equal.",
        "",
        "![ties](ties.png)",
        "",
    ]
    _bar(list(ties), list(ties.values()), "All-k-tie rate", "share of calls", out / "ties.png")

    sections = (
        (position, "position", "Position bias", "original order", "reversed order"),
        (consistency, "consistency", "Self-consistency (temperature > 0)", "sample 1", "sample 2"),
        (inter_judge, "inter_judge", "Inter-judge agreement", "judge A", "judge B"),
    )
    for pair, stem, title, label_a, label_b in sections:
        if pair is None:
            continue
        pair = _coerce_pair(pair, label_a, label_b, stem)
        s = pair_stats(pair)
        md += [f"## {title}", ""]
        md += _table(
            ["statistic", "value"],
            [
                ["pairs compared", str(s["n"])],
                ["pairs with a missing rating", str(s["missing"])],
                ["exact agreement", _fmt(s["exact_agreement"])],
                ["mean abs diff", _fmt(s["mean_abs_diff"])],
                ["quadratic weighted kappa", _fmt(s["quadratic_kappa"])],
                ["linear weighted kappa", _fmt(s["linear_kappa"])],
                ["Spearman rho", _fmt(s["spearman"])],
                [f"mean rating ({pair.label_a})", _fmt(s["mean_a"])],
                [f"mean rating ({pair.label_b})", _fmt(s["mean_b"])],
            ],
        )
        md += ["", f"![{stem}]({stem}.png)", ""]
        _pair_heatmap(pair, title, out / f"{stem}.png")

    path = out / "report.md"
    path.write_text("\n".join(md), encoding="utf-8")
    return path
