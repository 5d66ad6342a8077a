"""HumanEval execution throughput: all 164 canonical solutions, 1 worker vs os.cpu_count() workers.

Usage: .venv/bin/python benchmarks/bench_eval.py [--json out.json] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codeultra.evaluation.humaneval import execute, load_problems  # noqa: E402


def _timed_run(problems: list[dict], workers: int) -> dict:
    completions = {p["task_id"]: [p["canonical_solution"]] for p in problems}
    start = time.perf_counter()
    rows = execute(problems, completions, workers=workers)
    seconds = time.perf_counter() - start
    passed = sum(r["passed"] for r in rows)
    if passed != len(rows):
        failing = [r["task_id"] for r in rows if not r["passed"]]
        raise SystemExit(f"canonical solutions failed: {failing[:5]}")
    return {
        "workers": workers,
        "problems": len(problems),
        "seconds": round(seconds, 3),
        "problems_per_s": round(len(problems) / seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--limit", type=int, default=None, help="first N problems only")
    args = parser.parse_args()

    problems = load_problems(args.limit)
    cpus = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    serial = _timed_run(problems, 1)
    parallel = _timed_run(problems, cpus)
    figures = {
        "benchmark": "humaneval_canonical_execution",
        "python": platform.python_version(),
        "cpu_count": cpus,
        "loadavg_1m_before": round(load_before, 2),  # other work on a shared machine skews it
        "serial": serial,
        "parallel": parallel,
        "speedup": round(serial["seconds"] / parallel["seconds"], 2),
    }
    print(f"1 worker:  {serial['problems_per_s']:8.2f} problems/s ({serial['seconds']} s)")
    print(f"{cpus} workers: {parallel['problems_per_s']:8.2f} problems/s ({parallel['seconds']} s)")
    print(f"speed-up:  {figures['speedup']:.2f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
