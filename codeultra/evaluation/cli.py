"""`codeultra eval ...` subcommands and `codeultra contamination`.

Wired into codeultra/cli.py as `app.add_typer(eval_app, name="eval")` and
`app.command("contamination")(contamination_command)`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from codeultra.errors import UserError

eval_app = typer.Typer(
    no_args_is_help=True,
    help="Evaluate models: CODAL-Bench, HumanEval(+), APIBench, base vs tuned.",
)

Recipe = Annotated[Path, typer.Option("--recipe", "-r", help="Run recipe (YAML).")]
Input = Annotated[str | None, typer.Option("--input", "-i", help="Input file, folder or hub:ID.")]
Output = Annotated[str | None, typer.Option("--output", "-o", help="Output folder.")]
Limit = Annotated[int | None, typer.Option("--limit", "-n", min=1, help="Only the first N items.")]
Engine = Annotated[
    str,
    typer.Option(help="How folders/GGUF models run: auto | transformers | llamacpp | vllm."),
]
ENGINES = ("auto", "transformers", "llamacpp", "vllm")


def _echo(summary: dict[str, Any]) -> None:
    typer.echo(json.dumps(summary, indent=2, default=str))


def _engine(value: str) -> Any:
    if value not in ENGINES:
        raise UserError(f"--engine must be one of {', '.join(ENGINES)}, got {value!r}")
    return value


@eval_app.command("codal")
def codal_command(
    model: Annotated[list[str], typer.Option("--model", "-m", help="Model(s) to evaluate.")],
    recipe: Recipe = Path("recipes/demo.yaml"),
    judge: Annotated[str | None, typer.Option(help="Judge model (default: the recipe's).")] = None,
    input: Input = None,
    output: Output = None,
    limit: Limit = None,
    max_tokens: Annotated[int | None, typer.Option(min=1, help="Answer length cap.")] = None,
    engine: Engine = "auto",
) -> None:
    """Single-answer grading (1-10) against reference answers, per coding preference."""
    from codeultra.config import load_recipe
    from codeultra.evaluation.codal import Contestant, run_codal
    from codeultra.evaluation.compare import judges_for
    from codeultra.evaluation.config import load_eval_config, resolve_model

    r = load_recipe(recipe)
    cfg = load_eval_config(r)
    if max_tokens:
        cfg.codal.max_tokens = max_tokens
    who = []
    for ref in model:
        name, spec = resolve_model(ref, r, engine=_engine(engine), batch_size=cfg.batch_size)
        who.append(Contestant(name, spec))
    judge_c, reference = judges_for(r, cfg, judge)
    try:
        summary = run_codal(
            r, cfg, who, judge_c, reference=reference, input_path=input, output=output, limit=limit
        )
    finally:
        for c in (*who, judge_c, reference):
            c.backend.close()
    from codeultra.evaluation.codal import scores_markdown

    typer.echo(scores_markdown(summary["scores"], summary))
    typer.echo(f"files: {json.dumps(summary['files'], indent=2)}")


@eval_app.command("humaneval")
def humaneval_command(
    model: Annotated[str, typer.Option("--model", "-m", help="Model to evaluate.")],
    recipe: Recipe = Path("recipes/demo.yaml"),
    output: Output = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N problems.")] = None,
    n: Annotated[int | None, typer.Option("--n", min=1, help="Samples per problem.")] = None,
    temperature: Annotated[float | None, typer.Option(min=0.0)] = None,
    max_tokens: Annotated[int | None, typer.Option(min=1)] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Parallel sandbox workers.")] = None,
    plus: Annotated[bool, typer.Option("--plus", help="HumanEval+ (evalplus data).")] = False,
    plus_data: Annotated[
        str | None, typer.Option(help="HumanEvalPlus .jsonl(.gz) to use offline.")
    ] = None,
    engine: Engine = "auto",
) -> None:
    """Generate, extract code, run the tests in the sandbox, report pass@1 and pass@k."""
    from codeultra.config import load_recipe
    from codeultra.evaluation.codal import Contestant
    from codeultra.evaluation.config import eval_dir, load_eval_config, resolve_model
    from codeultra.evaluation.humaneval_run import default_output, run_humaneval

    r = load_recipe(recipe)
    cfg = load_eval_config(r)
    updates = {
        "n": n,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "workers": workers,
        "plus_data": plus_data,
    }
    he = cfg.humaneval.model_copy(update={k: v for k, v in updates.items() if v is not None})
    if plus or plus_data:
        he = he.model_copy(update={"plus": True})
    name, spec = resolve_model(model, r, engine=_engine(engine), batch_size=cfg.batch_size)
    who = Contestant(name, spec)
    out = output or default_output(eval_dir(r, cfg), name, he.plus)
    try:
        summary = run_humaneval(who, r.work_dir / "cells", he, output=out, limit=limit)
    finally:
        who.backend.close()
    _echo(summary)


@eval_app.command("apibench")
def apibench_command(
    input: Annotated[str, typer.Option("--input", "-i", help="Responses file (JSONL/Parquet).")],
    hub: Annotated[str, typer.Option(help="huggingface | torchhub | tensorflowhub")],
    apibench: Annotated[
        str | None, typer.Option(help="APIBench data folder (default: shared/data/apibench).")
    ] = None,
    output: Output = None,
    workers: Annotated[int, typer.Option(min=1)] = 1,
    match: Annotated[str, typer.Option(help="AST match mode: exact | ...")] = "exact",
    run_code: Annotated[bool, typer.Option(help="Execute the answers' code.")] = True,
) -> None:
    """Score APIBench responses: AST match, hallucination, ROUGE-L, CodeBLEU, executability."""
    from codeultra.metrics.report import eval_apibench_file
    from codeultra.models import REPO_ROOT
    from codeultra.rlaif.apibench import default_apibench_dir

    data = apibench or str(default_apibench_dir(REPO_ROOT))
    out = output or str(Path(input).with_suffix("").parent / "apibench-eval")
    summary = eval_apibench_file(
        input,
        data,
        hub,
        out,
        workers,
        match=match,
        run_code=run_code,  # type: ignore[arg-type]
    )
    _echo(summary)


@eval_app.command("compare")
def compare_command(
    recipe: Recipe = Path("recipes/demo.yaml"),
    base: Annotated[str | None, typer.Option(help="Base model (default: eval.base).")] = None,
    tuned: Annotated[str | None, typer.Option(help="Tuned model (default: eval.tuned).")] = None,
    judge: Annotated[str | None, typer.Option(help="Judge (default: eval.judge).")] = None,
    output: Output = None,
    limit: Limit = None,
    humaneval_limit: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """Base vs tuned on the CODAL-style held-out set and HumanEval (`make eval`)."""
    from codeultra.config import load_recipe
    from codeultra.evaluation.compare import compare_markdown, run_compare

    summary = run_compare(
        load_recipe(recipe),
        base=base,
        tuned=tuned,
        judge=judge,
        output=output,
        limit=limit,
        humaneval_limit=humaneval_limit,
    )
    typer.echo(compare_markdown(summary))
    typer.echo(f"files: {json.dumps(summary['files'], indent=2)}")


@eval_app.command("report")
def report_command(
    recipe: Recipe = Path("recipes/demo.yaml"),
    input: Annotated[str | None, typer.Option("--input", "-i", help="Run folder.")] = None,
    output: Output = None,
) -> None:
    """Write the run report (Markdown + PNG plots) for a run folder."""
    from codeultra.config import load_recipe
    from codeultra.evaluation.config import eval_dir, load_eval_config, train_dir
    from codeultra.evaluation.run_report import write_run_report

    r = load_recipe(recipe)
    cfg = load_eval_config(r)
    work = input or str(r.work_dir)
    _echo(write_run_report(work, output, train_dir=train_dir(r, cfg), eval_dir=eval_dir(r, cfg)))


def contamination_command(
    train: Annotated[
        str | None, typer.Option(help="Training pairs folder or instructions file.")
    ] = None,
    eval: Annotated[
        list[str] | None,
        typer.Option("--eval", "-e", help="humaneval, codal, or a file; repeatable."),
    ] = None,
    recipe: Annotated[Path | None, typer.Option("--recipe", "-r", help="Run recipe.")] = None,
    output: Output = None,
    n: Annotated[int | None, typer.Option("--ngram", min=1, help="n-gram length (words).")] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Overlap share that flags an item.")
    ] = None,
) -> None:
    """N-gram overlap and exact matches between training instructions and evaluation sets."""
    from codeultra.config import load_recipe
    from codeultra.evaluation.config import ContaminationConfig, eval_dir, load_eval_config
    from codeultra.evaluation.contamination import contamination_markdown, run_contamination

    r = load_recipe(recipe) if recipe else None
    cfg = load_eval_config(r) if r else None
    cc = cfg.contamination if cfg else ContaminationConfig()
    src = train or (str(r.work_dir / "pairs") if r else None)
    if src is None:
        raise UserError("contamination needs --train or --recipe")
    out = output or (str(eval_dir(r, cfg) / "contamination") if r and cfg else "contamination")
    report = run_contamination(
        src,
        eval or cc.evals,
        out,
        recipe=r,
        n=n or cc.n,
        threshold=cc.threshold if threshold is None else threshold,
    )
    typer.echo(contamination_markdown(report))
    typer.echo(f"files: {json.dumps(report['files'], indent=2)}")
