"""`eval compare` (make eval): base vs tuned served over real HTTP, graded by a scripted judge;
the table, CSV, chart and run report are read back."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from codeultra.config import load_recipe
from codeultra.errors import UserError
from codeultra.evaluation.compare import run_compare
from codeultra.evaluation.humaneval import load_problems
from codeultra.evaluation.run_report import long_ratings, win_rates, write_run_report
from codeultra.testing.fake_openai import FakeOpenAIServer

PREFS = ["instruction-following", "explanation", "complexity", "readability", "style"]
PROBLEMS = load_problems(limit=2)


def model(quality: int, solves: bool):
    """A scripted model: CODAL answers carry a quality tag; HumanEval is solved or not."""

    def reply(payload: dict) -> str:
        user = payload["messages"][-1]["content"]
        if "Complete the following Python function" in user:
            p = next(p for p in PROBLEMS if f"def {p['entry_point']}(" in user)
            body = p["canonical_solution"] if solves else "    return None\n"
            return f"Here you go:\n```python\n{p['prompt']}{body}```"
        return f"```python\nprint('answer')\n```\nquality={quality}"

    return reply


def judge(payload: dict) -> str:
    user = payload["messages"][-1]["content"]
    if "## Assistant's answer" not in user:
        return "A reference answer."
    q = re.search(r"quality=(\d+)", user.split("## Assistant's answer", 1)[1]).group(1)
    return f"Rationale: fine.\nRating: {q}/10"


def recipe_file(tmp: Path, urls: dict[str, str], **eval_section) -> Path:
    rows = [
        {"instruction": f"Task {i}: write code.", "preference": PREFS[i % 5], "split": "heldout"}
        for i in range(5)
    ]
    pd.DataFrame(rows).to_json(tmp / "instr.jsonl", orient="records", lines=True)
    models = {
        name: {"backend": "openai", "model": f"openai/{name}", "api_base": url, "max_retries": 0}
        for name, url in urls.items()
    }
    data = {
        "run": {"work_dir": str(tmp / "work")},
        "data": {"path": str(tmp / "instr.jsonl")},
        "models": models,
        "eval": {
            "base": "base",
            "tuned": "tuned",
            "judge": "judge",
            "codal": {"reference_model": "judge"},
            "humaneval": {"limit": 2, "workers": 2},
        }
        | eval_section,
    }
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_compare_table_chart_and_report(tmp_path: Path) -> None:
    with (
        FakeOpenAIServer(responder=model(4, solves=False)) as base,
        FakeOpenAIServer(responder=model(7, solves=True)) as tuned,
        FakeOpenAIServer(responder=judge) as j,
    ):
        urls = {"base": base.url, "tuned": tuned.url, "judge": j.url}
        summary = run_compare(load_recipe(recipe_file(tmp_path, urls)))
    scores = summary["codal"]["scores"]
    assert scores["base"]["overall"]["mean"] == 4 and scores["tuned"]["overall"]["mean"] == 7
    assert summary["head_to_head"] == {"wins": 5, "ties": 0, "losses": 0}
    assert summary["humaneval"]["base"]["pass@1"] == 0.0
    assert summary["humaneval"]["tuned"]["pass@1"] == 1.0
    table = Path(summary["files"]["table"]).read_text()
    assert "| HumanEval pass@1 (2 problems) | 0.000 | 1.000 | +1.000 |" in table
    assert re.search(
        r"\| \*\*CODAL overall\*\* \| 4\.00 \[4\.00, 4\.00\] \| 7\.00 .* \| \+3\.00 \|", table
    )
    csv = pd.read_csv(summary["files"]["csv"])
    assert len(csv) == 2 * (len(PREFS) + 2)
    saved = json.loads(Path(summary["files"]["json"]).read_text())
    assert saved["models"] == {"base": "openai/base", "tuned": "openai/tuned"}
    assert Path(summary["files"]["chart"]).read_bytes()[:4] == b"\x89PNG"

    report = write_run_report(tmp_path / "work")
    text = Path(report["report"]).read_text()
    assert "## Before / after" in text and "before_after.png" in text
    assert set(report["missing"]) == {"generate", "judge", "pairs", "dpo", "contamination"}
    assert Path(report["plots"]["before_after"]).is_file()


def test_missing_tuned_model_is_a_user_error(tmp_path: Path) -> None:
    urls = {"base": "http://127.0.0.1:9/v1", "judge": "http://127.0.0.1:9/v1"}
    recipe = load_recipe(recipe_file(tmp_path, urls, tuned=None))
    with pytest.raises(UserError, match="tuned model not found: .*dpo/merged.*make dpo"):
        run_compare(recipe)


def test_win_rates_on_constructed_ratings() -> None:
    ratings = pd.DataFrame(
        {
            "annotations": [
                [
                    {"model": "a", "rating": 5},
                    {"model": "b", "rating": 3},
                    {"model": "c", "rating": 3},
                ],
                [
                    {"model": "a", "rating": 2},
                    {"model": "b", "rating": 4},
                    {"model": "c", "rating": None},
                ],
            ]
        }
    )
    rates = win_rates(long_ratings(ratings))
    # a: beats b and c, loses to b -> 2/3; b: loses to a, ties c, beats a -> 1.5/3; c: 0.5/2.
    assert rates["a"] == {"win_rate": pytest.approx(2 / 3), "comparisons": 3}
    assert rates["b"] == {"win_rate": pytest.approx(0.5), "comparisons": 3}
    assert rates["c"] == {"win_rate": pytest.approx(0.25), "comparisons": 2}
