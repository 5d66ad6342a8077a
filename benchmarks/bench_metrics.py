"""Time the four APIBench metrics over the HuggingFace eval file, serial vs parallel.

The "responses" are the reference answers, every third one perturbed (a model id
altered, or the last code line dropped) so the failure paths run too. AST match and
ROUGE-L have no parallel path (they take well under a second); CodeBLEU uses a process
pool and executability runs sandboxes concurrently.

    .venv/bin/python benchmarks/bench_metrics.py [--limit N] [--workers W]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from codeultra.metrics.answer import parse_answer  # noqa: E402
from codeultra.metrics.ast_match import score_ast  # noqa: E402
from codeultra.metrics.codebleu_metric import codebleu_scores  # noqa: E402
from codeultra.metrics.executability import executability  # noqa: E402
from codeultra.metrics.rouge import rouge_l_many  # noqa: E402
from codeultra.rlaif.apibench import (  # noqa: E402
    default_apibench_dir,
    load_api_database,
    load_pairs,
    load_references,
)


def perturb(i: int, answer: str) -> str:
    if i % 3 == 1:  # alter the first quoted id everywhere it occurs
        found = re.search(r"'([^'\n]{3,})'", answer)
        return answer.replace(found.group(0), f"'{found.group(1)}-x'") if found else answer
    if i % 3 == 2:  # drop the last code line
        return answer.rstrip().rsplit("\n", 1)[0]
    return answer


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N answers")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--apibench", type=Path, default=None)
    args = parser.parse_args()

    apibench = args.apibench or default_apibench_dir(REPO)
    hub = "huggingface"
    pairs, _ = load_pairs(apibench, hub, "eval")
    pairs = pairs[: args.limit] if args.limit else pairs
    refs = load_references(apibench, hub)
    db = load_api_database(apibench, hub)
    texts = [perturb(i, p.answer) for i, p in enumerate(pairs)]
    qids = [p.question_id for p in pairs]
    responses = [{"question_id": q, "text": t} for q, t in zip(qids, texts, strict=True)]
    codes = [parse_answer(t).code for t in texts]
    ref_codes = [parse_answer(p.answer).code for p in pairs]
    n = len(pairs)

    metrics: dict[str, Callable[[int], object]] = {
        "ast_match": lambda w: score_ast(responses, hub, db, refs),
        "rouge_l": lambda w: rouge_l_many(codes, ref_codes),
        "codebleu": lambda w: codebleu_scores(codes, ref_codes, workers=w),
        "executability": lambda w: executability(texts, hub, db, workers=w, codes=codes),
    }
    print(f"{n} HuggingFace eval answers (1/3 perturbed); workers: 1 vs {args.workers}")
    print(f"{'metric':<14} {'serial s/1k':>12} {'parallel s/1k':>14} {'speed-up':>9}")
    results: dict[str, object] = {}
    for name, run in metrics.items():
        serial_only = name in ("ast_match", "rouge_l")
        serial, results[name] = timed(lambda run=run: run(1))
        parallel = serial if serial_only else timed(lambda run=run: run(args.workers))[0]
        per_k = 1000 / n
        note = "  (serial only)" if serial_only else ""
        print(
            f"{name:<14} {serial * per_k:>12.2f} {parallel * per_k:>14.2f} "
            f"{serial / parallel:>8.2f}x{note}"
        )
    ast, run = results["ast_match"], results["executability"]
    print(f"AST accuracy {ast['accuracy']:.3f}, hallucination {ast['hallucination_rate']:.3f}")
    print(f"executable {run['rate']:.3f} strict, {run['rate_with_placeholders']:.3f} lenient")
    print(f"failure reasons: {run['counts']}")


if __name__ == "__main__":
    main()
