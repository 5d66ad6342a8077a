"""HumanEval (and HumanEval+) through any backend: generate, extract, run in the sandbox, pass@k.

Each (problem, sample) is a journaled cell; sample j uses seed `seed + j`, so backends batch a
whole sample round together and a rerun resumes. Code is pulled out of chat answers with
`extract_function_body`; programs run in codeultra's sandbox (time and memory limits, no
network, scratch directory, scrubbed environment) on parallel workers.

HumanEval+ (evalplus) replaces each problem's tests with its base + plus inputs, checked against
the canonical solution's outputs. evalplus downloads that data at run time, so offline it needs
`plus_data` (a HumanEvalPlus .jsonl or .jsonl.gz) or an evalplus cache from an earlier run.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd

from codeultra.backends.base import ChatRequest
from codeultra.errors import UserError
from codeultra.evaluation.codal import Contestant
from codeultra.evaluation.config import HumanEvalConfig, cached_chat
from codeultra.evaluation.humaneval import build_chat_prompt, execute, load_problems, score
from codeultra.io import write_json, write_parquet
from codeultra.sandbox import SandboxLimits, extract_function_body

PLUS_HINT = (
    "HumanEval+ data is not present: evalplus downloads HumanEvalPlus.jsonl.gz at run time and "
    "this machine is offline (or evalplus is not installed); pass --plus-data FILE with a "
    "HumanEvalPlus .jsonl(.gz), or run once with network access and `pip install evalplus`"
)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("CODEULTRA_OFFLINE") == "1"


def _read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read HumanEval+ data: {exc}") from None


def load_plus_problems(plus_data: str | None = None) -> list[dict]:
    """HumanEval+ problems from a file, else from evalplus (which may download them)."""
    if plus_data:
        path = Path(plus_data)
        if not path.is_file():
            raise UserError(f"HumanEval+ data file not found: {path}")
        problems = _read_jsonl(path)
    else:
        problems = _evalplus_problems()
    missing = [p.get("task_id", "?") for p in problems if "plus_input" not in p]
    if not problems or missing:
        raise UserError(f"not HumanEval+ data: no plus_input for {missing[:1] or 'any problem'}")
    return problems


def _evalplus_problems() -> list[dict]:
    import importlib.util

    if importlib.util.find_spec("evalplus") is None:
        raise UserError(PLUS_HINT)
    cache = Path.home() / ".cache" / "evalplus"
    cached = sorted(cache.glob("HumanEvalPlus*.jsonl*")) if cache.is_dir() else []
    if cached:
        return _read_jsonl(cached[-1])
    if _offline():
        raise UserError(PLUS_HINT)
    try:
        from evalplus.data import get_human_eval_plus

        return list(get_human_eval_plus().values())
    except Exception as exc:  # noqa: BLE001 - network errors of every kind
        raise UserError(f"{PLUS_HINT} ({type(exc).__name__})") from None


_PLUS_CHECK = """
def check(candidate):
    import copy as _copy, json as _json, math as _math
    _ns = {{}}
    exec({solution!r}, _ns)
    _reference = _ns[{entry!r}]
    _atol = {atol!r}

    def _same(a, b):
        if isinstance(a, float) or isinstance(b, float):
            if isinstance(a, (int, float)) and isinstance(b, (int, float)):
                if _math.isnan(a) and _math.isnan(b):
                    return True
                return _math.isclose(a, b, rel_tol=1e-6, abs_tol=max(_atol, 1e-6))
            return False
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
        return a == b

    for _args in _json.loads({inputs!r}):
        _want = _reference(*_copy.deepcopy(_args))
        _got = candidate(*_copy.deepcopy(_args))
        assert _same(_got, _want), f"input {{str(_args)[:200]}}: got {{str(_got)[:200]}}"
"""


def plus_problem(problem: dict) -> dict:
    """The problem with its tests replaced by base + plus inputs vs the canonical outputs."""
    inputs = list(problem.get("base_input") or []) + list(problem.get("plus_input") or [])
    test = _PLUS_CHECK.format(
        solution=problem["prompt"] + problem["canonical_solution"],
        entry=problem["entry_point"],
        atol=float(problem.get("atol") or 0.0),
        inputs=json.dumps(inputs),
    )
    return {**problem, "test": test}


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "model"


def run_humaneval(
    who: Contestant,
    cells_dir: Path,
    cfg: HumanEvalConfig,
    *,
    output: str | Path,
    limit: int | None = None,
) -> dict[str, Any]:
    """Generate, extract, execute and score; writes samples.parquet and summary.json."""
    if cfg.n > 1 and cfg.temperature == 0:
        raise UserError("HumanEval with n > 1 needs temperature > 0 (greedy samples are identical)")
    ks = sorted({k for k in cfg.ks if k <= cfg.n} | {1})
    started = time.perf_counter()
    name = "humaneval+" if cfg.plus else "humaneval"
    problems = load_plus_problems(cfg.plus_data) if cfg.plus else load_problems()
    problems = problems[: limit or cfg.limit]
    requests, index = [], []
    for j in range(cfg.n):
        for p in problems:
            requests.append(
                ChatRequest(
                    messages=build_chat_prompt(p),
                    temperature=cfg.temperature,
                    top_p=cfg.top_p if cfg.temperature > 0 else 1.0,
                    max_tokens=cfg.max_tokens,
                    seed=cfg.seed + j,
                )
            )
            index.append((p["task_id"], j))
    assert who.backend is not None
    records = cached_chat(
        cells_dir, "eval-humaneval", requests, who.backend, who.identity, f"{name} {who.name}"
    )
    by_id = {p["task_id"]: p for p in problems}
    completions: dict[str, list[str]] = {p["task_id"]: [""] * cfg.n for p in problems}
    raw: dict[tuple[str, int], dict] = {}
    for (task_id, j), rec in zip(index, records, strict=True):
        p = by_id[task_id]
        raw[(task_id, j)] = rec
        completions[task_id][j] = extract_function_body(
            rec.get("text") or "", p["prompt"], p["entry_point"]
        )
    limits = SandboxLimits(timeout_s=cfg.timeout_s, cpu_s=max(1, int(cfg.timeout_s)))
    runnable = [plus_problem(p) for p in problems] if cfg.plus else problems
    rows = execute(runnable, completions, limits, workers=cfg.workers)
    for row in rows:
        rec = raw[(row["task_id"], row["sample_index"])]
        row["response"] = rec.get("text") or ""
        row["generation_error"] = rec.get("error")
    scored = score(rows, ks)
    summary = {
        "benchmark": name,
        "model": who.name,
        "n": cfg.n,
        "temperature": cfg.temperature,
        "max_tokens": cfg.max_tokens,
        **scored,
        "generation_errors": sum(1 for r in rows if r["generation_error"]),
        "wall_s": round(time.perf_counter() - started, 2),
    }
    out = Path(output)
    files = {"samples": str(out / "samples.parquet"), "summary": str(out / "summary.json")}
    write_parquet(pd.DataFrame(rows), files["samples"])
    summary["files"] = files
    write_json(summary, files["summary"])
    return summary


def default_output(base: Path, model_name: str, plus: bool) -> Path:
    return base / ("humaneval-plus" if plus else "humaneval") / _safe(model_name)
