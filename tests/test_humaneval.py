"""HumanEval in the sandbox: real problems, real tests, real child processes; pass@k arithmetic."""

from __future__ import annotations

import itertools
from math import comb

import pytest

from codeultra.errors import UserError
from codeultra.evaluation.humaneval import (
    build_chat_prompt,
    build_program,
    execute,
    load_problems,
    score,
)
from codeultra.evaluation.passk import aggregate_pass_at_k, pass_at_k
from codeultra.sandbox import SandboxLimits, extract_function_body


@pytest.fixture(scope="module")
def problems() -> list[dict]:
    return load_problems()


def test_load_problems(problems):
    assert len(problems) == 164
    assert [p["task_id"] for p in problems[:2]] == ["HumanEval/0", "HumanEval/1"]
    assert len({p["task_id"] for p in problems}) == 164
    for key in ("prompt", "canonical_solution", "test", "entry_point"):
        assert all(isinstance(p[key], str) and p[key] for p in problems)
    assert load_problems(limit=3) == problems[:3]
    with pytest.raises(UserError):
        load_problems(limit=-1)


def test_all_canonical_solutions_pass_and_empty_completions_fail(problems):
    completions = {p["task_id"]: [p["canonical_solution"], ""] for p in problems}
    rows = execute(problems, completions, workers=2)
    assert len(rows) == 2 * 164
    canonical = [r for r in rows if r["sample_index"] == 0]
    empty = [r for r in rows if r["sample_index"] == 1]
    failed = [(r["task_id"], r["error"]) for r in canonical if not r["passed"]]
    assert failed == []
    assert all(r["status"] == "ok" and r["error"] == "" for r in canonical)
    assert not any(r["passed"] for r in empty)
    assert all(r["status"] != "ok" and r["error"] for r in empty)
    assert [r["task_id"] for r in canonical] == [p["task_id"] for p in problems]

    summary = score(rows, ks=(1, 2, 10))
    assert summary["problems"] == 164 and summary["samples"] == 328
    assert summary["pass@1"] == pytest.approx(0.5)
    assert summary["pass@2"] == pytest.approx(1.0)
    assert "pass@10" not in summary  # only 2 samples per problem
    assert summary["status_counts"]["ok"] == 164


def test_early_exit_and_hang_do_not_pass(problems):
    first = problems[0]
    completions = {
        first["task_id"]: [
            "    import sys\n    sys.exit(0)\n",
            "    import os\n    os._exit(0)\n",
            "    while True:\n        pass\n",
        ]
    }
    rows = execute([first], completions, limits=SandboxLimits(timeout_s=1.5, cpu_s=30))
    assert [r["passed"] for r in rows] == [False, False, False]
    assert [r["status"] for r in rows] == ["error", "error", "timeout"]
    assert "timed out" in rows[2]["error"]


def test_build_program_and_bad_input(problems):
    problem = problems[2]
    program = build_program(problem, problem["canonical_solution"])
    assert program.startswith(problem["prompt"] + problem["canonical_solution"])
    assert program.rstrip().endswith(f"check({problem['entry_point']})")
    with pytest.raises(UserError):
        build_program({"task_id": "x", "prompt": "def f():\n"}, "    pass\n")
    with pytest.raises(UserError):
        execute(problems[:1], {"HumanEval/999": ["    pass\n"]})


def test_chat_prompt_carries_the_problem(problems):
    messages = build_chat_prompt(problems[5])
    assert [m["role"] for m in messages] == ["system", "user"]
    assert problems[5]["prompt"].strip() in messages[1]["content"]
    assert "```python" in messages[1]["content"]


def _wrap_full(problem: dict) -> str:
    code = problem["prompt"] + problem["canonical_solution"]
    return (
        "Sure! Here is a complete implementation.\n\n```python\n"
        f"{code}\n\nif __name__ == '__main__':\n    print('demo')\n```\n\n"
        f"Example usage:\n```python\nprint({problem['entry_point']})\n```\n"
        "It handles the edge cases listed in the docstring."
    )


def _wrap_body(problem: dict) -> str:
    return (
        "The body of the function is:\n\n```python\n"
        f"{problem['canonical_solution']}```\n\nThat's all there is to it."
    )


def test_completions_extracted_from_chat_answers_pass(problems):
    chosen = [problems[i] for i in (0, 10, 38, 53, 100, 163)]  # 10 and 38 have prompt helpers
    completions = {
        p["task_id"]: [
            extract_function_body(wrap(p), p["prompt"], p["entry_point"])
            for wrap in (_wrap_full, _wrap_body)
        ]
        for p in chosen
    }
    rows = execute(chosen, completions, workers=2)
    assert [(r["task_id"], r["error"]) for r in rows if not r["passed"]] == []
    assert len(rows) == 2 * len(chosen)


def _brute_force(n: int, c: int, k: int) -> float:
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(samples, k))
    return sum(any(s) for s in subsets) / len(subsets)


def test_pass_at_k_known_values():
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 0, 10) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 10, 10) == 1.0
    assert pass_at_k(5, 1, 1) == pytest.approx(0.2)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - comb(7, 5) / comb(10, 5))
    assert pass_at_k(10, 3, 5) == pytest.approx(11 / 12)  # 1 - 21/252 by hand
    assert pass_at_k(200, 1, 100) == pytest.approx(0.5)


def test_pass_at_k_matches_brute_force():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(_brute_force(n, c, k)), (n, c, k)


def test_pass_at_k_stable_for_large_n():
    value = pass_at_k(10_000, 37, 1000)
    assert value == pytest.approx(1 - comb(9963, 1000) / comb(10_000, 1000))
    assert 0.0 <= value <= 1.0


@pytest.mark.parametrize("args", [(0, 0, 1), (5, 6, 1), (5, -1, 1), (5, 1, 0), (5, 1, 6)])
def test_pass_at_k_bad_input(args):
    with pytest.raises(UserError):
        pass_at_k(*args)


def test_aggregate_pass_at_k():
    results = {"a": [True, False, False, False], "b": [False] * 4, "c": [True] * 2}
    out = aggregate_pass_at_k(results, ks=(1, 2, 4))
    assert out == pytest.approx({"pass@1": (0.25 + 0 + 1) / 3, "pass@2": (0.5 + 0 + 1) / 3})
    with pytest.raises(UserError):
        aggregate_pass_at_k({})
    with pytest.raises(UserError):
        aggregate_pass_at_k({"a": []})
