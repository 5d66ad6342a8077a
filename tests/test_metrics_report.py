"""End to end: a Gorilla-format responses file scored against the real APIBench data."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from codeultra.errors import UserError
from codeultra.metrics.report import eval_apibench_file, load_responses
from codeultra.rlaif.apibench import default_apibench_dir

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "data" / "gorilla" / "response_huggingface_handmade.jsonl"


@pytest.fixture(scope="module")
def apibench() -> Path:
    try:
        return default_apibench_dir(REPO)
    except UserError:
        pytest.skip("shared APIBench data not present")


def test_eval_apibench_file_writes_readable_outputs(apibench: Path, tmp_path: Path) -> None:
    summary = eval_apibench_file(FIXTURE, apibench, "huggingface", tmp_path / "out", workers=2)
    items = pd.read_parquet(summary["files"]["items"])
    assert list(items["question_id"]) == [1, 2, 3, 4, 5]
    assert list(items["ast_verdict"]) == ["correct", "wrong", "hallucination", "correct", "no_call"]
    reasons = [None if pd.isna(r) else r for r in items["exec_reason"]]
    assert reasons == [None, None, "unknown_model", "runtime_error", "no_code"]
    assert list(items["exec_status"]) == ["ok", "ok", "fail", "fail", "fail"]
    assert pd.isna(items.loc[3, "exec_lenient_reason"])  # only a placeholder was missing
    assert items.loc[3, "exec_placeholders"] == "sentence_batch"
    assert items.loc[4, "rouge_l"] == 0.0 and items.loc[4, "codebleu"] == 0.0
    assert items["rouge_l"].between(0, 1).all()

    written = json.loads(Path(summary["files"]["summary"]).read_text())
    assert written["ast"]["accuracy"] == pytest.approx(0.4) == summary["ast"]["accuracy"]
    assert written["executability"]["rate"] == pytest.approx(0.4)
    assert written["executability"]["rate_with_placeholders"] == pytest.approx(0.6)
    assert written["rouge_l"] == pytest.approx(items["rouge_l"].mean())
    markdown = Path(summary["files"]["markdown"]).read_text()
    assert "| AST accuracy (exact match) | 40.0% |" in markdown

    counted = duckdb.sql(
        f"select count(*) from '{summary['files']['items']}' where ast_verdict = 'correct'"
    ).fetchall()
    assert counted == [(2,)]


def test_load_responses_from_parquet_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    pd.DataFrame({"question_id": [3, 1], "response": ["a", None]}).to_parquet(path)
    assert load_responses(path) == [
        {"question_id": 3, "text": "a"},
        {"question_id": 1, "text": ""},
    ]
    pd.DataFrame({"id": [1], "response": ["a"]}).to_parquet(path)
    with pytest.raises(UserError, match="question_id"):
        load_responses(path)
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_text(json.dumps({"question_id": 2, "response": "b"}) + "\n")
    assert load_responses(jsonl) == [{"question_id": 2, "text": "b"}]


def test_unknown_question_ids_are_user_errors(apibench: Path, tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"question_id": 99999, "text": "x"}) + "\n")
    with pytest.raises(UserError, match="no huggingface reference"):
        eval_apibench_file(path, apibench, "huggingface", tmp_path, run_code=False)
