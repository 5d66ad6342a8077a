"""Contamination figures on a constructed overlap: exact duplicates, near duplicates, disjoint."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from codeultra.errors import UserError
from codeultra.evaluation.cli import contamination_command
from codeultra.evaluation.contamination import contamination, ngrams, run_contamination, tokens

TRAIN = [
    "Write a Python function that merges two sorted lists into one sorted list without using sort.",
    "Implement a stack class in Python with push, pop, peek and an is_empty method for integers.",
    "Write a SQL query that returns the five customers with the highest total order amount.",
]
# 16 words; changing word 9 of 16 breaks the 5 of its 12 5-grams that contain it.
NEAR = (
    "Implement a stack class in Python with push, POP_IT, peek and an is_empty method for integers."
)
EXACT = (
    "write a PYTHON function that merges two sorted lists into one sorted list without using sort"
)
DISJOINT = (
    "Explain the difference between TCP and UDP congestion control to a new network engineer."
)


def test_ngrams_and_tokens() -> None:
    assert tokens("Hello, World! x_1") == ["hello", "world", "x_1"]
    assert ngrams(["a", "b", "c"], 2) == {("a", "b"), ("b", "c")}
    assert ngrams(["a", "b"], 5) == {("a", "b")}  # shorter than n: one gram
    assert ngrams([], 3) == set()


def test_constructed_overlap_figures() -> None:
    evals = {"mine": [("e", EXACT), ("n", NEAR), ("d", DISJOINT)]}
    report = contamination(TRAIN, evals, n=5, threshold=0.5)
    s = report["sets"]["mine"]
    assert (s["items"], s["exact"], s["flagged"]) == (3, 1, 2)
    assert s["flagged_share"] == pytest.approx(2 / 3)
    by_id = {r["id"]: r for r in s["flagged_items"]}
    assert by_id["e"]["exact"] and by_id["e"]["overlap"] == 1.0
    assert by_id["e"]["best_train"] == TRAIN[0]
    assert by_id["n"]["overlap"] == pytest.approx(7 / 12)
    assert not by_id["n"]["exact"] and by_id["n"]["best_train"] == TRAIN[1]
    assert s["mean_overlap"] == pytest.approx((1 + 7 / 12 + 0) / 3)
    # A stricter threshold keeps only the exact duplicate.
    strict = contamination(TRAIN, evals, n=5, threshold=0.8)["sets"]["mine"]
    assert strict["flagged"] == 1 and strict["flagged_items"][0]["id"] == "e"
    with pytest.raises(UserError):
        contamination([], evals)
    with pytest.raises(UserError):
        contamination(TRAIN, evals, threshold=0)


def _pairs_folder(tmp: Path) -> Path:
    folder = tmp / "pairs"
    folder.mkdir()
    msgs = [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": t}] for t in TRAIN
    ]
    pd.DataFrame({"prompt": msgs, "instruction": TRAIN}).to_parquet(folder / "train.parquet")
    # The test split was never trained on: the disjoint item matching it must not count.
    pd.DataFrame(
        {"prompt": [[{"role": "user", "content": DISJOINT}]], "instruction": [DISJOINT]}
    ).to_parquet(folder / "test.parquet")
    return folder


def test_pairs_folder_and_files_through_the_cli(tmp_path: Path) -> None:
    pairs = _pairs_folder(tmp_path)
    ev = tmp_path / "heldout.jsonl"
    pd.DataFrame({"id": ["e", "n", "d"], "instruction": [EXACT, NEAR, DISJOINT]}).to_json(
        ev, orient="records", lines=True
    )
    app = typer.Typer()
    app.command()(contamination_command)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        ["--train", str(pairs), "--eval", str(ev), "--eval", "humaneval", "--output", str(out)]
        + ["--ngram", "5"],
    )
    assert res.exit_code == 0, res.output
    report = json.loads((out / "contamination.json").read_text())
    assert report["sets"]["heldout"]["flagged"] == 2 and report["sets"]["heldout"]["exact"] == 1
    assert report["sets"]["humaneval"]["items"] == 164
    assert report["sets"]["humaneval"]["exact"] == 0
    flagged = pd.read_csv(out / "contamination.csv")
    assert sorted(flagged[flagged["set"] == "heldout"]["id"]) == ["e", "n"]
    assert "| heldout | 3 | 1 | 2 | 66.7%" in res.output


def test_prompt_message_column_and_bad_inputs(tmp_path: Path) -> None:
    msgs = tmp_path / "train.parquet"
    pd.DataFrame({"prompt": [[{"role": "user", "content": t}] for t in TRAIN]}).to_parquet(msgs)
    ev = tmp_path / "ev.jsonl"
    pd.DataFrame({"prompt": [NEAR]}).to_json(ev, orient="records", lines=True)
    report = run_contamination(msgs, [str(ev)], tmp_path / "o", n=5)
    assert report["sets"]["ev"]["flagged"] == 1
    bad = tmp_path / "bad.jsonl"
    pd.DataFrame({"body": ["x"]}).to_json(bad, orient="records", lines=True)
    with pytest.raises(UserError, match="no instruction/prompt column"):
        run_contamination(bad, [str(ev)], tmp_path / "o2")
    with pytest.raises(UserError, match="at least one --eval"):
        run_contamination(msgs, [], tmp_path / "o3")
    with pytest.raises(UserError, match="needs --recipe"):
        run_contamination(msgs, ["codal"], tmp_path / "o4")
