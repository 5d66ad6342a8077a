"""`codeultra demo`: the whole loop on the embedded default, ending with one before/after table.

set-up (GGUF -> HF conversion of the base), generate, judge, pairs, DPO, eval (base vs tuned:
CODAL-style judge scores and HumanEval pass@1), contamination, run report. Every stage is
resumable, so rerunning after a crash continues where it stopped: generate/judge/eval through
their cell journals, DPO from its last checkpoint (retrained from scratch only when the pairs
changed). Stage timings go to `<work_dir>/demo-timings.json`: this run's, and the sum over
all runs, so a resumed run's report still shows what the results cost.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from codeultra.config import PairsConfig, Recipe, load_recipe
from codeultra.errors import UserError
from codeultra.evaluation.config import EvalConfig, eval_dir, load_eval_config, train_dir
from codeultra.io import write_json

STAMP = "demo-pairs.sha256"


def _log(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def run_dpo(recipe: Recipe, cfg: EvalConfig) -> dict[str, Any]:
    """Train on the run's pairs unless this exact pairs file was already trained on."""
    from codeultra.training.run import train

    pairs = recipe.work_dir / "pairs"
    out = train_dir(recipe, cfg)
    digest = _file_hash(pairs / "train.parquet")
    stamp = out / STAMP
    same = stamp.is_file() and stamp.read_text().strip() == digest
    metrics_path = out / "metrics.json"
    if same and metrics_path.is_file() and (out / "merged").is_dir():
        _log(f"dpo: {out} already trained on these pairs, skipping")
        return {**json.loads(metrics_path.read_text()), "skipped": True}
    out.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest + "\n")
    return train(
        cfg.train_recipe, output_dir=out, resume=same, limit=cfg.train_limit, data=str(pairs)
    )


def run_demo(recipe_path: str | Path) -> dict[str, Any]:
    """Run every stage in order; returns the comparison, contamination and artifact paths."""
    from codeultra.evaluation.compare import run_compare
    from codeultra.evaluation.contamination import run_contamination
    from codeultra.evaluation.run_report import write_run_report
    from codeultra.stages.generate import run_generate
    from codeultra.stages.judge import run_judge
    from codeultra.stages.pairs import run_pairs

    recipe = load_recipe(recipe_path)
    cfg = load_eval_config(recipe)
    if recipe.generate is None:
        raise UserError(f"{recipe_path}: the demo needs a `generate` section")
    work = recipe.work_dir
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    results: dict[str, Any] = {}
    earlier = _earlier_timings(work / "demo-timings.json")

    def stage(name: str, fn: Callable[[], Any]) -> Any:
        _log(f"{name} ...")
        t = time.perf_counter()
        results[name] = fn()
        timings[name] = round(time.perf_counter() - t, 1)
        every = {k: round(earlier.get(k, 0.0) + timings.get(k, 0.0), 1) for k in earlier | timings}
        write_json({"this run": timings, "all runs": every}, work / "demo-timings.json")
        _log(f"{name} done in {timings[name]:.0f} s")
        return results[name]

    pcfg = recipe.pairs or PairsConfig()
    ev = eval_dir(recipe, cfg)
    started = time.perf_counter()
    stage("setup", lambda: _setup(recipe, cfg))
    stage("generate", lambda: run_generate(recipe, limit=cfg.demo_limit))
    stage("judge", lambda: run_judge(recipe))
    stage(
        "pairs",
        lambda: run_pairs(
            work / "ratings.parquet",
            work / "pairs",
            strategy=pcfg.strategy,
            margin=pcfg.margin,
            seed=pcfg.seed,
            test_fraction=pcfg.test_fraction,
        ),
    )
    stage("dpo", lambda: run_dpo(recipe, cfg))
    compare = stage("eval", lambda: run_compare(recipe))
    cont = stage(
        "contamination",
        lambda: run_contamination(
            work / "pairs",
            cfg.contamination.evals,
            ev / "contamination",
            recipe=recipe,
            n=cfg.contamination.n,
            threshold=cfg.contamination.threshold,
        ),
    )
    report = stage(
        "report", lambda: write_run_report(work, train_dir=train_dir(recipe, cfg), eval_dir=ev)
    )
    total = round(time.perf_counter() - started, 1)
    tdir = train_dir(recipe, cfg)
    artifacts = {
        "responses": str(work / "responses.parquet"),
        "ratings": str(work / "ratings.parquet"),
        "pairs": str(work / "pairs"),
        "tuned model": str(tdir / "merged"),
        "adapter": str(tdir / "adapter"),
        "CODAL scores": compare["codal"]["files"]["table"],
        "HumanEval": str(ev / "humaneval"),
        "comparison": compare["files"]["table"],
        "contamination": cont["files"]["md"],
        "report": report["report"],
        "timings": str(work / "demo-timings.json"),
    }
    return {
        "compare": compare,
        "contamination": cont,
        "artifacts": artifacts,
        "timings": timings,
        "total_s": total,
        "all_runs_s": round(total + sum(earlier.values()), 1),
    }


def _earlier_timings(path: Path) -> dict[str, float]:
    """Seconds per stage summed over the earlier runs of this work folder."""
    if not path.is_file():
        return {}
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # a damaged timings file only loses the history
    if isinstance(old, dict) and isinstance(old.get("all runs"), dict):
        old = old["all runs"]
    return {k: float(v) for k, v in old.items() if isinstance(v, (int, float))}


def _setup(recipe: Recipe, cfg: EvalConfig) -> dict[str, str]:
    """Convert the base GGUF for transformers once (training and the fair comparison use it)."""
    from codeultra.evaluation.config import resolve_model

    _, spec = resolve_model(cfg.base, recipe, engine=cfg.engine, batch_size=cfg.batch_size)
    return {"base": spec.model}


def final_table(result: dict[str, Any]) -> str:
    from codeultra.evaluation.compare import compare_markdown

    lines = ["", "## codeultra demo: base vs tuned", "", compare_markdown(result["compare"])]
    for name, s in result["contamination"]["sets"].items():
        lines.append(
            f"Contamination ({name}): {s['flagged']}/{s['items']} items flagged "
            f"({s['flagged_share']:.1%}), {s['exact']} exact matches, "
            f"mean {result['contamination']['n']}-gram overlap {s['mean_overlap']:.1%}."
        )
    lines += ["", "Artifacts:"]
    width = max(len(k) for k in result["artifacts"])
    lines += [f"  {k.ljust(width)}  {v}" for k, v in result["artifacts"].items()]
    stages = ", ".join(f"{k} {v:.0f}s" for k, v in result["timings"].items())
    total = f"total {result['total_s'] / 60:.1f} min"
    if result.get("all_runs_s", 0) - result["total_s"] >= 1:  # resumed: say what it cost
        total += f" (this run; {result['all_runs_s'] / 60:.1f} min over all runs)"
    lines += ["", f"Stage timings: {stages}; {total}."]
    return "\n".join(lines)


def demo_command(
    recipe: Annotated[Path, typer.Option("--recipe", "-r", help="Run recipe (YAML).")] = Path(
        "recipes/demo.yaml"
    ),
) -> None:
    """Generate, judge, pairs, DPO and evaluation on the embedded default; one final table."""
    typer.echo(final_table(run_demo(recipe)))
