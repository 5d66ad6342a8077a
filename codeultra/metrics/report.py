"""All APIBench metrics for one responses file: per-item table, summary JSON, Markdown.

Responses file formats (``load_responses``):
- Gorilla's JSONL: one ``{"question_id": int, "text": str, ...}`` per line (their
  ``eval/eval-data/responses/*`` files and what `codeultra` writes);
- JSONL or Parquet with ``question_id`` and ``response`` (or ``text``) columns.
``question_id`` is the 1-based row of the hub's eval file, as in Gorilla's question files.

ROUGE-L and CodeBLEU compare the *code* of the answer with the reference answer's code
(the ``<<<code>>>`` section, the ``'code'`` value, a markdown block, or the plain text).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from codeultra.errors import UserError
from codeultra.metrics.answer import parse_answer
from codeultra.metrics.ast_match import MatchMode, load_gorilla_responses, response_text, score_ast
from codeultra.metrics.codebleu_metric import codebleu_scores
from codeultra.metrics.executability import executability
from codeultra.metrics.rouge import rouge_l_many
from codeultra.rlaif.apibench import ApiEntry, check_hub, load_api_database, load_references


def load_responses(path: str | Path) -> list[dict[str, Any]]:
    """[{"question_id": int, "text": str}] from Gorilla JSONL or a JSONL/Parquet table."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"responses file not found: {path}")
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        column = next((c for c in ("response", "text") if c in frame.columns), None)
        if "question_id" not in frame.columns or column is None:
            raise UserError(f"{path}: needs a question_id and a response (or text) column")
        return [
            {"question_id": int(q), "text": "" if pd.isna(t) else str(t)}
            for q, t in zip(frame["question_id"], frame[column], strict=True)
        ]
    rows = load_gorilla_responses(path)
    return [{"question_id": r["question_id"], "text": response_text(r)} for r in rows]


def _reference_code(ref: Mapping[str, Any]) -> str:
    return parse_answer(str(ref.get("answer") or "")).code


def score_all(
    responses: Sequence[Mapping[str, Any]],
    references: Mapping[int, Mapping[str, Any]],
    hub: str,
    api_db: Sequence[ApiEntry],
    workers: int = 1,
    *,
    match: MatchMode = "exact",
    run_code: bool = True,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(per-item DataFrame, summary) for AST match, ROUGE-L, CodeBLEU and executability."""
    hub = check_hub(hub)
    missing = [r.get("question_id") for r in responses if r.get("question_id") not in references]
    if missing:
        raise UserError(f"{len(missing)} responses have no {hub} reference, e.g. {missing[:3]}")
    texts = [response_text(r) for r in responses]
    refs = [references[r["question_id"]] for r in responses]
    codes = [parse_answer(t).code for t in texts]
    ref_codes = [_reference_code(ref) for ref in refs]

    ast = score_ast(responses, hub, api_db, references, match=match)
    rouge = rouge_l_many(codes, ref_codes)
    bleu = codebleu_scores(codes, ref_codes, workers=workers)
    frame = pd.DataFrame(
        {
            "question_id": [r["question_id"] for r in responses],
            "ast_verdict": [i["verdict"] for i in ast["items"]],
            "api_call": [i["api_call"] for i in ast["items"]],
            "matched_api_name": [i["matched_api_name"] for i in ast["items"]],
            "matched_domain": [i["matched_domain"] for i in ast["items"]],
            "reference_domain": [i["reference_domain"] for i in ast["items"]],
            "rouge_l": rouge,
            "codebleu": bleu["items"],
        }
    )
    summary: dict[str, Any] = {
        "hub": hub,
        "n": len(responses),
        "ast": {k: ast[k] for k in ("match", "accuracy", "hallucination_rate", "counts")},
        "rouge_l": sum(rouge) / len(rouge) if rouge else None,
        "codebleu": {"mean": bleu["mean"], "corpus": bleu["corpus"]},
    }
    if run_code:
        run = executability(texts, hub, api_db, workers=workers, codes=codes)
        frame["exec_status"] = [i["status"] for i in run["items"]]
        frame["exec_reason"] = [i["reason"] for i in run["items"]]
        frame["exec_lenient_reason"] = [i["lenient_reason"] for i in run["items"]]
        frame["exec_placeholders"] = [",".join(i["placeholders"]) for i in run["items"]]
        frame["exec_detail"] = [i["detail"] for i in run["items"]]
        frame["exec_duration_s"] = [i["duration_s"] for i in run["items"]]
        keys = ("rate", "rate_with_placeholders", "counts")
        summary["executability"] = {k: run[k] for k in keys}
    return frame, summary


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def summary_markdown(summary: Mapping[str, Any]) -> str:
    ast = summary["ast"]
    lines = [
        f"# APIBench evaluation: {summary['hub']} ({summary['n']} responses)",
        "",
        "| metric | value |",
        "|---|---|",
        f"| AST accuracy ({ast['match']} match) | {_pct(ast['accuracy'])} |",
        f"| hallucination rate | {_pct(ast['hallucination_rate'])} |",
        f"| ROUGE-L (code) | {_pct(summary['rouge_l'])} |",
        f"| CodeBLEU mean / corpus | {_pct(summary['codebleu']['mean'])} / "
        f"{_pct(summary['codebleu']['corpus'])} |",
    ]
    run = summary.get("executability")
    if run:
        lines.append(f"| executable (strict) | {_pct(run['rate'])} |")
        lines.append(f"| executable (placeholders bound) | {_pct(run['rate_with_placeholders'])} |")
    lines += ["", "AST verdicts: " + ", ".join(f"{k} {v}" for k, v in ast["counts"].items())]
    if run:
        lines.append(
            "Execution failures: " + ", ".join(f"{k} {v}" for k, v in run["counts"].items())
        )
    return "\n".join(lines) + "\n"


def eval_apibench_file(
    responses_path: str | Path,
    apibench_dir: str | Path,
    hub: str,
    out_dir: str | Path,
    workers: int = 1,
    *,
    match: MatchMode = "exact",
    run_code: bool = True,
) -> dict[str, Any]:
    """Score a responses file; write items.parquet, summary.json and summary.md to out_dir."""
    hub = check_hub(hub)
    responses = load_responses(responses_path)
    if not responses:
        raise UserError(f"{responses_path}: no responses")
    frame, summary = score_all(
        responses,
        load_references(apibench_dir, hub),
        hub,
        load_api_database(apibench_dir, hub),
        workers,
        match=match,
        run_code=run_code,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary["responses"] = str(responses_path)
    summary["files"] = {
        "items": str(out / f"apibench_{hub}_items.parquet"),
        "summary": str(out / f"apibench_{hub}_summary.json"),
        "markdown": str(out / f"apibench_{hub}_summary.md"),
    }
    frame.to_parquet(summary["files"]["items"], index=False)
    Path(summary["files"]["summary"]).write_text(json.dumps(summary, indent=2) + "\n")
    Path(summary["files"]["markdown"]).write_text(summary_markdown(summary))
    return summary
