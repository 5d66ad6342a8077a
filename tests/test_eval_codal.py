"""CODAL-Bench grading: grade parsing, bootstrap intervals, and runs against scripted judges
served over real HTTP (FakeOpenAIServer), with real Parquet/CSV/PNG outputs read back."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from codeultra.config import load_recipe
from codeultra.errors import UserError
from codeultra.evaluation.codal import (
    Contestant,
    balanced_head,
    bootstrap_ci,
    parse_grade,
    run_codal,
)
from codeultra.evaluation.config import load_eval_config, resolve_model
from codeultra.testing.fake_openai import FakeOpenAIServer

PREFS = ["instruction-following", "explanation", "complexity", "readability", "style"]


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        ("Rationale: fine.\nRating: 7/10", 7),
        ("**Rating:** 8 / 10", 8),
        ("The answer is close to the reference.\nRating: [[8]]", 8),
        ("Solid work overall. [[6]]", 6),
        ("I would give it a 6 out of 10.", 6),
        ("Rating: 7.5/10", 7.5),
        ("rating: 10", 10),
        ("Rating for the assistant's answer: 4", 4),
        ("Rationale: the reference rating: 9 is too kind.\nRating: 3/10", 3),
        ("Rating: 7/10\n\nNote: this rating reflects missing tests.", 7),
        ("Rationale: ok\nRating: 9 out of 10", 9),
    ],
)
def test_parse_grade_reads_messy_ratings(reply: str, rating: float) -> None:
    grade = parse_grade(reply)
    assert grade.rating == rating and grade.reason is None


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("Rating: 12/10", "outside 1-10"),
        ("Rating: 0/10", "outside 1-10"),
        ("Rating: 4/5", "not on the 1-10 scale"),
        ("Rating: 7-8", "range"),
        ("Rating: N/A", "no rating"),
        ("The rating is subjective; both answers are fine.", "no rating"),
        ("", "empty"),
    ],
)
def test_parse_grade_never_guesses(reply: str, why: str) -> None:
    grade = parse_grade(reply)
    assert grade.rating is None and why in grade.reason


def test_bootstrap_ci_is_seeded_and_contains_the_mean() -> None:
    rng = np.random.default_rng(3)
    values = rng.integers(1, 11, size=40).tolist()
    lo, hi = bootstrap_ci(values, n_resamples=2000, seed=5)
    assert (lo, hi) == bootstrap_ci(values, n_resamples=2000, seed=5)
    assert lo < float(np.mean(values)) < hi
    assert bootstrap_ci(values, n_resamples=2000, seed=6) != (lo, hi)
    # More data of the same spread: a narrower interval.
    lo4, hi4 = bootstrap_ci(values * 4, n_resamples=2000, seed=5)
    assert hi4 - lo4 < hi - lo
    assert bootstrap_ci([6.0]) == (6.0, 6.0)
    assert bootstrap_ci([5.0] * 10) == (5.0, 5.0)
    with pytest.raises(UserError):
        bootstrap_ci([])


def test_balanced_head_takes_preferences_in_turn() -> None:
    df = pd.DataFrame(
        {"instruction": [f"t{i}" for i in range(15)], "preference": sorted(PREFS * 3)}
    )
    head = balanced_head(df, 7)
    assert len(head) == 7
    assert set(head["preference"]) == set(PREFS)
    assert head["preference"].value_counts().max() == 2


# ---------------------------------------------------------------- end to end, fake servers

QUALITY = re.compile(r"quality=(\d+)")


def student(payload: dict) -> str:
    """Answers with a quality tag derived from the instruction: 'Task 3' -> quality 3+2."""
    user = payload["messages"][-1]["content"]
    n = int(re.search(r"Task (\d+)", user).group(1))
    return f"```python\ndef solve():\n    return {n}\n```\nquality={n % 5 + 4}"


def grader(payload: dict) -> str:
    """Grades the assistant's answer by its quality tag (reference text is ignored)."""
    user = payload["messages"][1]["content"]
    answer = user.split("## Assistant's answer", 1)[1]
    q = QUALITY.search(answer)
    return f"Rationale: matches the reference to degree {q.group(1)}.\nRating: {q.group(1)}/10"


def codal_file(path: Path, n: int = 5) -> Path:
    df = pd.DataFrame(
        {
            "instruction": [f"Task {i}: write a function." for i in range(n)],
            "preference": [PREFS[i % 5] for i in range(n)],
            "gpt-3.5-turbo_response": [f"REFERENCE-{i}" for i in range(n)],
            "claude-3-sonnet-20240229_response": [f"CLAUDE-{i}" for i in range(n)],
        }
    )
    df.to_parquet(path)
    return path


def make_recipe(tmp: Path, student_url: str, judge_url: str, **eval_section) -> Path:
    def http(url: str) -> dict:
        return {"backend": "openai", "model": "openai/x", "api_base": url, "max_retries": 0}

    data = {
        "run": {"work_dir": str(tmp / "work")},
        "data": {"path": str(tmp / "instructions.jsonl")},
        "models": {"student": http(student_url), "judge": http(judge_url)},
        "eval": {"judge": "judge", "codal": {"reference_model": "judge", "max_reasks": 2}}
        | eval_section,
    }
    p = tmp / "recipe.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def run(recipe_path: Path, models: list[str], **kw) -> dict:
    recipe = load_recipe(recipe_path)
    cfg = load_eval_config(recipe)
    who = [Contestant(*resolve_model(m, recipe)) for m in models]
    judge = Contestant(*resolve_model(cfg.judge, recipe))
    try:
        return run_codal(recipe, cfg, who, judge, **kw)
    finally:
        for c in (*who, judge):
            c.backend.close()


def test_codal_end_to_end_scores_files_and_resume(tmp_path: Path) -> None:
    src = codal_file(tmp_path / "codal.parquet")
    with FakeOpenAIServer(responder=student) as s, FakeOpenAIServer(responder=grader) as j:
        summary = run(make_recipe(tmp_path, s.url, j.url), ["student"], input_path=str(src))
        assert len(s.requests) == 5 and len(j.requests) == 5
        first = s.requests[0]["body"]
        assert first["temperature"] == 0.0 and first["messages"][0]["role"] == "system"
        # The grader saw the paper's reference column, not the other one.
        shown = j.requests[0]["body"]["messages"][1]["content"]
        assert "REFERENCE-" in shown and "CLAUDE-" not in shown
    assert summary["reference"] == "gpt-3.5-turbo_response"
    scores = summary["scores"]["student"]
    expected = {PREFS[i]: i % 5 + 4 for i in range(5)}
    assert {p: s["mean"] for p, s in scores["preferences"].items()} == expected
    overall = scores["overall"]
    assert overall["mean"] == pytest.approx(np.mean(list(expected.values())))
    assert overall["ci_low"] <= overall["mean"] <= overall["ci_high"]
    assert overall["unparsed"] == 0 and overall["graded"] == 5

    items = pd.read_parquet(summary["files"]["items"])
    assert len(items) == 5 and set(items["status"]) == {"ok"}
    csv = pd.read_csv(summary["files"]["csv"])
    assert set(csv["preference"]) == {*PREFS, "overall"}
    table = Path(summary["files"]["table"]).read_text()
    assert "| **overall** |" in table and "unparsed grades | 0" in table
    assert Path(summary["files"]["chart"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # A rerun is a resume: no request reaches either server.
    with FakeOpenAIServer(responder=student) as s2, FakeOpenAIServer(responder=grader) as j2:
        again = run(make_recipe(tmp_path, s2.url, j2.url), ["student"], input_path=str(src))
        assert s2.requests == [] and j2.requests == []
    assert again["scores"] == summary["scores"]


def test_unparseable_grades_are_reasked_then_counted_separately(tmp_path: Path) -> None:
    src = codal_file(tmp_path / "codal.parquet")
    calls: dict[str, int] = {}

    def moody(payload: dict) -> str:
        user = payload["messages"][1]["content"]
        task = re.search(r"Task (\d+)", user).group(1)
        calls[task] = calls.get(task, 0) + 1
        if task == "0":
            return "Both are fine, I think."  # never a rating
        if task == "1" and calls[task] == 1:
            return "Hmm, hard to say."  # recovers when re-asked
        return grader(payload)

    with FakeOpenAIServer(responder=student) as s, FakeOpenAIServer(responder=moody) as j:
        summary = run(make_recipe(tmp_path, s.url, j.url), ["student"], input_path=str(src))
        reasks = [r for r in j.requests if len(r["body"]["messages"]) > 2]
        assert "could not be read" in reasks[0]["body"]["messages"][-1]["content"]
    assert calls["0"] == 3 and calls["1"] == 2  # 1 + max_reasks, and 1 + one re-ask
    overall = summary["scores"]["student"]["overall"]
    assert overall["unparsed"] == 1 and overall["graded"] == 4
    assert overall["mean"] == pytest.approx(np.mean([5, 6, 7, 8]))  # not dragged down by a 0
    items = pd.read_parquet(summary["files"]["items"]).set_index("item")
    assert items.loc[0, "status"] == "unparsed" and np.isnan(items.loc[0, "rating"])
    assert items.loc[1, "rating"] == 5 and items.loc[1, "judge_attempts"] == 2


def test_offline_default_writes_references_in_codal_layout(tmp_path: Path) -> None:
    rows = [
        {"id": f"x{i}", "instruction": f"Task {i}: do it.", "preference": PREFS[i % 5]}
        | {"split": "heldout" if i >= 3 else "train"}
        for i in range(13)
    ]
    pd.DataFrame(rows).to_json(tmp_path / "instructions.jsonl", orient="records", lines=True)

    def reference_or_grade(payload: dict) -> str:
        if "## Assistant's answer" in payload["messages"][-1]["content"]:
            return grader(payload)
        return "REFERENCE ANSWER"

    with (
        FakeOpenAIServer(responder=student) as s,
        FakeOpenAIServer(responder=reference_or_grade) as j,
    ):
        recipe = make_recipe(tmp_path, s.url, j.url, codal={"reference_model": "judge", "limit": 6})
        summary = run(recipe, ["student"])
    bench = pd.read_parquet(tmp_path / "work" / "eval" / "codal" / "codal-bench.parquet")
    assert summary["reference"] == "judge_response"
    assert list(bench["judge_response"]) == ["REFERENCE ANSWER"] * 6
    assert set(bench["id"]) <= {f"x{i}" for i in range(3, 13)}  # held-out rows only
    assert set(bench["preference"]) == set(PREFS)  # the limit is balanced over preferences
    assert summary["items"] == 6


def test_bad_inputs_are_one_line_user_errors(tmp_path: Path) -> None:
    recipe = load_recipe(make_recipe(tmp_path, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"))
    cfg = load_eval_config(recipe)
    no_refs = tmp_path / "norefs.jsonl"
    pd.DataFrame({"instruction": ["a"], "preference": ["style"]}).to_json(
        no_refs, orient="records", lines=True
    )
    bad_pref = codal_file(tmp_path / "bad.parquet")
    pd.read_parquet(bad_pref).assign(preference="speed").to_parquet(bad_pref)
    judge = Contestant(*resolve_model("judge", recipe))
    who = [Contestant(*resolve_model("student", recipe))]
    for path, msg in [
        (no_refs, "no `<model>_response` column"),
        (bad_pref, "unknown preference"),
        (tmp_path / "missing.parquet", "input not found"),
        ("hub:coseal/codal-bench", "codal-bench.*offline"),
    ]:
        with pytest.raises(UserError, match=msg):
            run_codal(recipe, cfg, who, judge, input_path=str(path))
    with pytest.raises(UserError, match="no reference column 'gpt-4_response'"):
        cfg2 = cfg.model_copy(deep=True)
        cfg2.codal.reference_column = "gpt-4"
        run_codal(recipe, cfg2, who, judge, input_path=str(codal_file(tmp_path / "ok.parquet")))
    with pytest.raises(UserError, match="unknown model 'nope'"):
        resolve_model("nope", recipe)
    with pytest.raises(UserError, match="not found"):
        resolve_model("runs/none/merged", recipe)
    with pytest.raises(UserError, match="recipe eval: codal.max_tokens"):
        load_eval_config(recipe.model_copy(update={"eval": {"codal": {"max_tokens": 0}}}))
    with pytest.raises(UserError, match="unknown key"):
        load_eval_config(recipe.model_copy(update={"eval": {"bogus": 1}}))


def test_model_references_resolve_to_backends(tmp_path: Path) -> None:
    recipe = load_recipe(make_recipe(tmp_path, "http://127.0.0.1:9/v1", "http://127.0.0.1:9/v1"))
    assert resolve_model("student", recipe, engine="transformers")[1].backend == "openai"
    name, spec = resolve_model("qwen2.5-coder-0.5b", recipe)
    assert (name, spec.backend, spec.model) == (
        "qwen2.5-coder-0.5b",
        "llamacpp",
        "qwen2.5-coder-0.5b",
    )
    name, spec = resolve_model("codellama/CodeLlama-7b-Instruct-hf", recipe, engine="vllm")
    assert (name, spec.backend) == ("CodeLlama-7b-Instruct-hf", "vllm")
    ckpt = tmp_path / "runs" / "x" / "merged"
    ckpt.mkdir(parents=True)
    (ckpt / "model.safetensors").write_bytes(b"0")
    name, spec = resolve_model(str(ckpt), recipe, batch_size=3)
    assert (name, spec.backend, spec.batch_size) == ("x/merged", "transformers", 3)
    from codeultra.evaluation.config import model_identity

    before = model_identity(spec)
    (ckpt / "model.safetensors").write_bytes(b"01")  # retrained: new cells, not stale ones
    assert model_identity(spec) != before
