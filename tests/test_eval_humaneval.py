"""HumanEval through real backends: a scripted HTTP model and a tiny random transformers model,
code extracted from chat answers, tests run in the sandbox, pass@k from the real estimator."""

from __future__ import annotations

import json
import re
from math import comb
from pathlib import Path

import pandas as pd
import pytest

from codeultra.config import ModelSpec, Recipe
from codeultra.errors import UserError
from codeultra.evaluation.codal import Contestant
from codeultra.evaluation.config import HumanEvalConfig, resolve_model
from codeultra.evaluation.humaneval import load_problems
from codeultra.evaluation.humaneval_run import load_plus_problems, run_humaneval
from codeultra.testing.fake_openai import FakeOpenAIServer

PROBLEMS = {p["task_id"]: p for p in load_problems(limit=4)}


def _problem_of(payload: dict) -> dict:
    user = payload["messages"][-1]["content"]
    name = re.search(r"def (\w+)\(", user.split("```python", 1)[1]).group(1)
    return next(p for p in PROBLEMS.values() if p["entry_point"] == name)


def canonical_chat(payload: dict) -> str:
    """A chat-style answer: prose, the full function in a fenced block, then a usage example."""
    p = _problem_of(payload)
    return (
        "Sure! Here is an implementation.\n\n```python\n"
        f"{p['prompt']}{p['canonical_solution']}```\n\n"
        f"Example:\n```python\nprint({p['entry_point']}([]))\n```\nIt runs in linear time."
    )


def garbage(payload: dict) -> str:
    return "I am not sure how to do this, sorry. Maybe try a loop?"


def seed_dependent(payload: dict) -> str:
    """Right for even seeds, wrong for odd ones: 2 of 3 samples (seeds 0, 1, 2) pass."""
    p = _problem_of(payload)
    if payload.get("seed", 0) % 2 == 0:
        return canonical_chat(payload)
    return f"```python\ndef {p['entry_point']}(*args):\n    return None\n```"


def contestant(url: str) -> Contestant:
    spec = ModelSpec(backend="openai", model="openai/m", api_base=url, max_retries=0)
    return Contestant("fake", spec)


def run(responder, tmp: Path, **cfg) -> dict:
    with FakeOpenAIServer(responder=responder) as srv:
        who = contestant(srv.url)
        try:
            summary = run_humaneval(
                who, tmp / "cells", HumanEvalConfig(workers=2, **cfg), output=tmp / "out", limit=4
            )
        finally:
            who.backend.close()
        summary["_requests"] = srv.requests
    return summary


def test_canonical_answers_in_chat_markdown_pass(tmp_path: Path) -> None:
    summary = run(canonical_chat, tmp_path)
    assert summary["problems"] == 4 and summary["samples"] == 4
    assert summary["pass@1"] == 1.0
    body = summary["_requests"][0]["body"]
    assert body["temperature"] == 0.0
    samples = pd.read_parquet(summary["files"]["samples"])
    assert samples["passed"].all() and samples["response"].str.contains("Sure!").all()
    assert json.loads(Path(summary["files"]["summary"]).read_text())["pass@1"] == 1.0


def test_garbage_answers_score_zero(tmp_path: Path) -> None:
    summary = run(garbage, tmp_path)
    assert summary["pass@1"] == 0.0
    samples = pd.read_parquet(summary["files"]["samples"])
    assert not samples["passed"].any() and (samples["error"] != "").all()


def test_sampled_pass_at_k_matches_the_estimator(tmp_path: Path) -> None:
    summary = run(seed_dependent, tmp_path, n=3, temperature=0.8, ks=[1, 2, 3, 10])
    assert summary["samples"] == 12
    assert {r["body"]["seed"] for r in summary["_requests"]} == {0, 1, 2}
    assert summary["pass@1"] == pytest.approx(1 - comb(1, 1) / comb(3, 1))  # 2/3
    assert summary["pass@2"] == pytest.approx(1.0)  # one failing sample cannot fill 2 draws
    assert "pass@10" not in summary  # more than the 3 samples


def test_greedy_with_several_samples_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="temperature > 0"):
        run_humaneval(
            contestant("http://127.0.0.1:9/v1"),
            tmp_path,
            HumanEvalConfig(n=5, temperature=0.0),
            output=tmp_path,
        )


def test_humaneval_plus_offline_message_and_local_data(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no evalplus cache
    with pytest.raises(UserError, match="HumanEval\\+ data is not present.*--plus-data"):
        load_plus_problems(None)
    # Local HumanEval+-style data: tests become base + plus inputs vs the canonical outputs.
    p0 = PROBLEMS["HumanEval/0"]
    plus = {
        **p0,
        "base_input": [[[1.0, 2.0, 3.0], 0.5]],
        "plus_input": [[[1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3], [[1.0, 1.05], 0.01]],
        "atol": 0,
    }
    data = tmp_path / "plus.jsonl"
    data.write_text(json.dumps(plus) + "\n")
    assert load_plus_problems(str(data))[0]["plus_input"] == plus["plus_input"]

    def near_miss(payload: dict) -> str:
        # Wrong only at the boundary (distance == threshold), which the plus input probes.
        return (
            "```python\ndef has_close_elements(numbers, threshold):\n"
            "    return any(abs(a - b) <= threshold for i, a in enumerate(numbers)"
            " for b in numbers[i + 1:])\n```"
        )

    good = run(canonical_chat, tmp_path / "g", plus=True, plus_data=str(data))
    assert good["benchmark"] == "humaneval+" and good["pass@1"] == 1.0
    bad_data = tmp_path / "plus_edge.jsonl"
    bad_data.write_text(json.dumps({**plus, "plus_input": [[[1.0, 2.0], 1.0]]}) + "\n")
    bad = run(near_miss, tmp_path / "b", plus=True, plus_data=str(bad_data))
    assert bad["pass@1"] == 0.0
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps(PROBLEMS["HumanEval/1"]) + "\n")
    with pytest.raises(UserError, match="no plus_input"):
        load_plus_problems(str(plain))


@pytest.mark.slow
def test_transformers_backend_on_a_tiny_model(tmp_path: Path) -> None:
    from codeultra.training.tiny import build_tiny_chat_model

    tiny = build_tiny_chat_model(tmp_path / "tiny", [p["prompt"] for p in PROBLEMS.values()])
    name, spec = resolve_model(str(tiny), Recipe(), engine="auto", batch_size=4)
    assert spec.backend == "transformers" and name == "tiny"
    who = Contestant(name, spec)
    cfg = HumanEvalConfig(max_tokens=12, workers=2)
    try:
        summary = run_humaneval(who, tmp_path / "cells", cfg, output=tmp_path / "o", limit=3)
    finally:
        who.backend.close()
    again = run_humaneval(who, tmp_path / "cells", cfg, output=tmp_path / "o2", limit=3)
    samples = pd.read_parquet(summary["files"]["samples"])
    assert len(samples) == 3 and summary["pass@1"] == 0.0  # random weights solve nothing
    assert samples["generation_error"].isna().all()
    assert (samples["response"].str.len() > 0).all()
    # The rerun came from the cell journal: the same texts without loading the model.
    assert who.backend._backend is None
    assert list(pd.read_parquet(again["files"]["samples"])["response"]) == list(samples["response"])


def test_cli_humaneval_runs_a_recipe_model(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from codeultra.evaluation.cli import eval_app

    with FakeOpenAIServer(responder=canonical_chat) as srv:
        spec = {"backend": "openai", "model": "openai/m", "api_base": srv.url, "max_retries": 0}
        recipe = tmp_path / "r.yaml"
        recipe.write_text(
            yaml.safe_dump({"run": {"work_dir": str(tmp_path)}, "models": {"m": spec}})
        )
        args = [
            "humaneval",
            "-r",
            str(recipe),
            "-m",
            "m",
            "--limit",
            "3",
            "-o",
            str(tmp_path / "o"),
        ]
        res = CliRunner().invoke(eval_app, args)
        assert res.exit_code == 0, res.output
        bad = CliRunner().invoke(eval_app, [*args, "--engine", "onnx"])
    summary = json.loads(res.output)
    assert summary["problems"] == 3 and summary["pass@1"] == 1.0
    assert isinstance(bad.exception, UserError) and "--engine" in str(bad.exception)
