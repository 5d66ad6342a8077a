"""Base vs tuned (`make eval`): CODAL-style judge scores and HumanEval pass@1, one table.

Both models run the same way (by default through transformers, greedy), so the comparison
differs only in weights. Outputs under `<eval dir>`: codal/ (items, scores, chart),
humaneval/<label>/ (samples, summary), and compare.{json,md,csv} plus before_after.png.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from codeultra.config import Recipe
from codeultra.errors import UserError
from codeultra.evaluation.codal import (
    Contestant,
    codal_answers,
    fmt_score,
    load_benchmark,
    run_codal,
)
from codeultra.evaluation.config import (
    EvalConfig,
    eval_dir,
    is_hub_id,
    load_eval_config,
    model_identity,
    resolve_judge,
    resolve_model,
    tuned_ref,
)
from codeultra.evaluation.humaneval_run import run_humaneval
from codeultra.evaluation.run_report import COLORS, _save
from codeultra.io import write_json

LABELS = ("base", "tuned")


def contestants_for(
    recipe: Recipe, cfg: EvalConfig, base: str | None, tuned: str | None
) -> list[Contestant]:
    refs = {"base": base or cfg.base, "tuned": tuned or tuned_ref(recipe, cfg)}
    out = []
    for label, ref in refs.items():
        local = "/" in ref or ref.startswith(".")
        if ref not in recipe.models and local and not is_hub_id(ref) and not Path(ref).exists():
            raise UserError(
                f"{label} model not found: {ref} (train it first: `make dpo` or `codeultra demo`)"
            )
        _, spec = resolve_model(ref, recipe, engine=cfg.engine, batch_size=cfg.batch_size)
        out.append(Contestant(label, spec))
    return out


def judges_for(recipe: Recipe, cfg: EvalConfig, judge: str | None) -> tuple[Contestant, Contestant]:
    """(judge, reference writer); one shared backend when they are the same model."""
    jname, jspec = resolve_judge(judge or cfg.judge, recipe, cfg.codal.judge_max_tokens)
    j = Contestant(jname, jspec)
    rname, rspec = resolve_judge(cfg.codal.reference_model, recipe, cfg.codal.reference_max_tokens)
    same = rname == jname and model_identity(rspec) == model_identity(jspec)
    return j, (j if same else Contestant(rname, rspec))


def head_to_head(items: pd.DataFrame, a: str, b: str) -> dict[str, int]:
    """On items both models had graded: how often `b` scored above, equal to, below `a`."""
    piv = items[items["status"] == "ok"].pivot_table(index="item", columns="model", values="rating")
    if a not in piv or b not in piv:
        return {"wins": 0, "ties": 0, "losses": 0}
    both = piv[[a, b]].dropna()
    return {
        "wins": int((both[b] > both[a]).sum()),
        "ties": int((both[b] == both[a]).sum()),
        "losses": int((both[b] < both[a]).sum()),
    }


def run_compare(
    recipe: Recipe,
    *,
    base: str | None = None,
    tuned: str | None = None,
    judge: str | None = None,
    output: str | Path | None = None,
    limit: int | None = None,
    humaneval_limit: int | None = None,
) -> dict[str, Any]:
    """CODAL held-out scores and HumanEval pass@1 for base and tuned; writes compare.*."""
    cfg = load_eval_config(recipe)
    out = Path(output) if output else eval_dir(recipe, cfg)
    started = time.perf_counter()
    models = contestants_for(recipe, cfg, base, tuned)
    judge_c, reference = judges_for(recipe, cfg, judge)
    cells_dir = recipe.work_dir / "cells"
    try:
        # Each model loads once: its CODAL answers and HumanEval samples, then it is released.
        df, _ = load_benchmark(recipe, cfg, None, limit)
        he = {}
        for m in models:
            codal_answers(df, m, cells_dir, cfg.codal)
            he[m.name] = run_humaneval(
                m,
                cells_dir,
                cfg.humaneval,
                output=out / "humaneval" / m.name,
                limit=humaneval_limit,
            )
            m.backend.close()
        codal = run_codal(
            recipe, cfg, models, judge_c, reference=reference, output=out / "codal", limit=limit
        )
    finally:
        for c in (*models, judge_c, reference):
            c.backend.close()
    items = pd.read_parquet(codal["files"]["items"])
    summary = {
        "models": {m.name: m.spec.model for m in models},
        "engine": cfg.engine,
        "judge": codal["judge"],
        "reference": codal["reference"],
        "codal": {"items": codal["items"], "scores": codal["scores"], "files": codal["files"]},
        "head_to_head": head_to_head(items, "base", "tuned"),
        "humaneval": {
            k: {key: v[key] for key in ("problems", "samples", "pass@1", "status_counts", "files")}
            for k, v in he.items()
        },
        "wall_s": round(time.perf_counter() - started, 2),
    }
    files = {
        "json": out / "compare.json",
        "table": out / "compare.md",
        "csv": out / "compare.csv",
        "chart": out / "before_after.png",
    }
    summary["files"] = {k: str(v) for k, v in files.items()}
    files["table"].write_text(compare_markdown(summary), encoding="utf-8")
    compare_frame(summary).to_csv(files["csv"], index=False)
    plot_before_after(summary, files["chart"])
    write_json(summary, files["json"])
    return summary


def _rows(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(metric, base stats, tuned stats): CODAL per preference and overall, then HumanEval."""
    scores = summary["codal"]["scores"]
    base, tuned = scores.get("base", {}), scores.get("tuned", {})
    prefs = list(dict.fromkeys([*base.get("preferences", {}), *tuned.get("preferences", {})]))
    rows = [
        (
            f"CODAL {p}",
            base.get("preferences", {}).get(p, {}),
            tuned.get("preferences", {}).get(p, {}),
        )
        for p in prefs
    ]
    rows.append(("CODAL overall", base.get("overall", {}), tuned.get("overall", {})))
    he = summary["humaneval"]
    for label in ("base", "tuned"):
        he.setdefault(label, {})
    rows.append(
        (
            "HumanEval pass@1",
            {"mean": he["base"].get("pass@1"), "problems": he["base"].get("problems")},
            {"mean": he["tuned"].get("pass@1"), "problems": he["tuned"].get("problems")},
        )
    )
    return rows


def _delta(a: dict[str, Any], b: dict[str, Any], digits: int) -> str:
    if a.get("mean") is None or b.get("mean") is None:
        return "n/a"
    return f"{b['mean'] - a['mean']:+.{digits}f}"


def compare_markdown(summary: dict[str, Any]) -> str:
    """The before/after table (judge scores 1-10 with 95% CI, HumanEval pass@1)."""
    models = summary["models"]
    lines = [
        f"base: `{models.get('base')}`; tuned: `{models.get('tuned')}`; "
        f"judge: {summary['judge']}; reference answers: `{summary['reference']}`",
        "",
        "| metric | base | tuned | change |",
        "|---|---|---|---|",
    ]
    for metric, a, b in _rows(summary):
        if metric.startswith("HumanEval"):
            n = a.get("problems") or b.get("problems")
            fa = "n/a" if a.get("mean") is None else f"{a['mean']:.3f}"
            fb = "n/a" if b.get("mean") is None else f"{b['mean']:.3f}"
            lines.append(f"| {metric} ({n} problems) | {fa} | {fb} | {_delta(a, b, 3)} |")
        else:
            bold = "**" if metric.endswith("overall") else ""
            lines.append(
                f"| {bold}{metric}{bold} | {fmt_score(a)} | {fmt_score(b)} | {_delta(a, b, 2)} |"
            )
    scores = summary["codal"]["scores"]
    unparsed = [scores.get(k, {}).get("overall", {}).get("unparsed", 0) for k in LABELS]
    lines.append(f"| CODAL unparsed grades | {unparsed[0]} | {unparsed[1]} | |")
    h = summary["head_to_head"]
    lines += [
        "",
        f"Tuned vs base on the same CODAL items: {h['wins']} wins, {h['ties']} ties, "
        f"{h['losses']} losses. Judge scores are 1-10 means with a bootstrap 95% interval over "
        f"{summary['codal']['items']} items.",
    ]
    return "\n".join(lines) + "\n"


def compare_frame(summary: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for metric, a, b in _rows(summary):
        for label, s in zip(LABELS, (a, b), strict=True):
            rows.append(
                {
                    "metric": metric,
                    "model": label,
                    "value": s.get("mean"),
                    "ci_low": s.get("ci_low"),
                    "ci_high": s.get("ci_high"),
                }
            )
    return pd.DataFrame(rows)


def plot_before_after(summary: dict[str, Any], path: Path) -> Path:
    """Left: CODAL scores per preference (1-10, 95% CI); right: HumanEval pass@1."""
    rows = _rows(summary)
    codal, he = rows[:-1], rows[-1]
    fig = Figure(figsize=(9.5, 3.8))
    fig.set_layout_engine("constrained")
    grid = fig.add_gridspec(1, 4)
    ax = fig.add_subplot(grid[0, :3])
    width = 0.38
    for s, label in enumerate(LABELS):
        vals, lo, hi = [], [], []
        for _, *stats in codal:
            st = stats[s]
            v = st.get("mean")
            vals.append(0.0 if v is None else v)
            lo.append(0.0 if v is None or st.get("ci_low") is None else v - st["ci_low"])
            hi.append(0.0 if v is None or st.get("ci_high") is None else st["ci_high"] - v)
        xs = [i + (s - 0.5) * width for i in range(len(codal))]
        ax.bar(xs, vals, width, yerr=[lo, hi], capsize=3, label=label, color=COLORS[s])
    names = [m.removeprefix("CODAL ") for m, *_ in codal]
    ax.set_xticks(range(len(codal)), names, rotation=20, fontsize=8)
    ax.set_ylim(0, 10)
    ax.set_ylabel("judge score (1-10)")
    ax.set_title("CODAL-style judge score", fontsize=10)
    ax.legend(fontsize=8)
    ax2 = fig.add_subplot(grid[0, 3])
    vals = [he[1].get("mean"), he[2].get("mean")]
    ax2.bar(
        list(LABELS), [0.0 if v is None or math.isnan(v) else v for v in vals], color=COLORS[:2]
    )
    ax2.set_ylim(0, 1)
    ax2.set_title("HumanEval pass@1", fontsize=10)
    _save(fig, path)
    return path
