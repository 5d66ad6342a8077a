"""`codeultra rlaif ...`: one subcommand per RLAIF step, and `all` to run them in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

rlaif_app = typer.Typer(
    no_args_is_help=True,
    help="RLAIF for API-call code: SFT, sampling, AI feedback, reward model, RL, evaluation.",
)

RecipeOpt = Annotated[
    Path, typer.Option("--recipe", "-r", help="Run recipe with an rlaif: section.")
]
ApibenchOpt = Annotated[
    Path | None,
    typer.Option("--apibench", help="Gorilla's data/ folder (default ../shared/data/apibench)."),
]
LimitOpt = Annotated[
    int | None, typer.Option("--limit", "-n", min=1, help="At most N items per hub in every slice.")
]
DEFAULT_RECIPE = Path("recipes/rlaif-cpu.yaml")


def _print(summary: dict[str, Any]) -> None:
    table = summary.pop("table_markdown", None)
    typer.echo(json.dumps(summary, indent=2, default=str))
    if table:
        typer.echo("")
        typer.echo(table)


def _step(name: str, recipe: Path, apibench: Path | None, limit: int | None) -> None:
    from codeultra.rlaif.pipeline import make_context, run_step

    _print(run_step(make_context(recipe, apibench, limit), name))


@rlaif_app.command()
def sft(recipe: RecipeOpt = DEFAULT_RECIPE, apibench: ApibenchOpt = None, limit: LimitOpt = None):
    """1. Fine-tune the small policy on APIBench instruction -> answer pairs."""
    _step("sft", recipe, apibench, limit)


@rlaif_app.command()
def sample(
    recipe: RecipeOpt = DEFAULT_RECIPE, apibench: ApibenchOpt = None, limit: LimitOpt = None
):
    """2. Sample several candidate answers per training instruction from the SFT policy."""
    _step("sample", recipe, apibench, limit)


@rlaif_app.command()
def feedback(
    recipe: RecipeOpt = DEFAULT_RECIPE, apibench: ApibenchOpt = None, limit: LimitOpt = None
):
    """3. AI feedback: the judge's P(Yes) on fixed yes/no questions per candidate."""
    _step("feedback", recipe, apibench, limit)


@rlaif_app.command()
def reward(
    recipe: RecipeOpt = DEFAULT_RECIPE, apibench: ApibenchOpt = None, limit: LimitOpt = None
):
    """4. Train the reward model on pairs from the feedback; report held-out accuracy."""
    _step("reward", recipe, apibench, limit)


@rlaif_app.command()
def rl(recipe: RecipeOpt = DEFAULT_RECIPE, apibench: ApibenchOpt = None, limit: LimitOpt = None):
    """5. Online RL (GRPO or RLOO) of the SFT policy against the reward model."""
    _step("rl", recipe, apibench, limit)


@rlaif_app.command()
def evaluate(
    recipe: RecipeOpt = DEFAULT_RECIPE, apibench: ApibenchOpt = None, limit: LimitOpt = None
):
    """6. Score base, SFT and RLAIF policies on the held-out split (four metrics, per hub)."""
    _step("evaluate", recipe, apibench, limit)


@rlaif_app.command("all")
def all_steps(
    recipe: RecipeOpt = DEFAULT_RECIPE, apibench: ApibenchOpt = None, limit: LimitOpt = None
):
    """Every step in order; finished work is skipped, so a rerun resumes."""
    from codeultra.rlaif.pipeline import make_context, run_all

    results = run_all(make_context(recipe, apibench, limit))
    table = results["steps"]["evaluate"].pop("table_markdown", "")
    typer.echo(json.dumps(results, indent=2, default=str))
    typer.echo("")
    typer.echo(table)
