"""The RLAIF pipeline: sft -> sample -> feedback -> reward -> rl -> evaluate.

Every step is resumable on its own (cells for generation and judging, done markers and
TRL checkpoints for training), so `run_all` simply runs them in order and a rerun skips
whatever is finished. Timings of every step land in pipeline.json.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codeultra.backends.base import Backend
from codeultra.config import Recipe, load_recipe
from codeultra.errors import UserError
from codeultra.io import write_json, write_parquet
from codeultra.rlaif.config import RlaifConfig, load_rlaif_config
from codeultra.rlaif.data import Slices, build_slices, resolve_apibench
from codeultra.rlaif.steps import Layout

STEPS = ("sft", "sample", "feedback", "reward", "rl", "evaluate")


@dataclass
class Context:
    recipe: Recipe
    cfg: RlaifConfig
    layout: Layout
    apibench: Path
    slices: Slices
    judge: Backend | None = None  # an already-open judge backend (tests, notebooks)


def make_context(
    recipe: Recipe | str | Path,
    apibench: str | Path | None = None,
    limit: int | None = None,
    judge: Backend | None = None,
) -> Context:
    """Read the recipe, cap every per-hub slice at `limit`, build and save the data slices."""
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    cfg = load_rlaif_config(recipe)
    if limit is not None:
        data = cfg.data
        cap = {
            "sft_per_hub": min(limit, data.sft_per_hub or limit),
            "rl_per_hub": min(limit, data.rl_per_hub),
            "eval_per_hub": min(limit, data.eval_per_hub or limit),
        }
        cfg = cfg.model_copy(update={"data": data.model_copy(update=cap)})
    layout = Layout(recipe.work_dir)
    apibench_dir = resolve_apibench(cfg.data, apibench)
    slices = build_slices(cfg.data, apibench_dir)
    for name in ("sft", "rl", "eval"):
        write_parquet(getattr(slices, name), layout.data / f"{name}.parquet")
    write_json({"apibench": str(apibench_dir), **slices.summary()}, layout.data / "summary.json")
    return Context(recipe, cfg, layout, apibench_dir, slices, judge)


def _runner(name: str) -> Callable[[Context], dict[str, Any]]:
    if name == "sft":
        from codeultra.rlaif.sft import run_sft

        return lambda c: run_sft(c.cfg, c.layout, c.slices)
    if name == "sample":
        from codeultra.rlaif.sample import run_sample

        return lambda c: run_sample(c.cfg, c.layout, c.slices)
    if name == "feedback":
        from codeultra.rlaif.feedback import run_feedback

        return lambda c: run_feedback(c.recipe, c.cfg, c.layout, backend=c.judge)
    if name == "reward":
        from codeultra.rlaif.reward import run_reward

        return lambda c: run_reward(c.cfg, c.layout)
    if name == "rl":
        from codeultra.rlaif.rl import run_rl

        return lambda c: run_rl(c.cfg, c.layout, c.slices, c.apibench)
    if name == "evaluate":
        from codeultra.rlaif.evaluate import run_evaluate

        return lambda c: run_evaluate(c.cfg, c.layout, c.slices, c.apibench)
    raise UserError(f"unknown rlaif step {name!r}; steps: {', '.join(STEPS)}")


def run_step(ctx: Context, name: str) -> dict[str, Any]:
    started = time.perf_counter()
    summary = _runner(name)(ctx)
    summary["step_wall_s"] = round(time.perf_counter() - started, 1)
    return summary


def run_all(ctx: Context, steps: tuple[str, ...] = STEPS) -> dict[str, Any]:
    results: dict[str, Any] = {"data": ctx.slices.summary(), "steps": {}, "timings_s": {}}
    started = time.perf_counter()
    for name in steps:
        summary = run_step(ctx, name)
        results["steps"][name] = summary
        results["timings_s"][name] = summary["step_wall_s"]
        write_json(results, ctx.layout.root / "pipeline.json")
    results["timings_s"]["total"] = round(time.perf_counter() - started, 1)
    write_json(results, ctx.layout.root / "pipeline.json")
    return results
