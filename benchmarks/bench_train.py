"""DPO throughput: codeultra's train() against a plain TRL script, same data, config and seed.

Each run is its own subprocess (fresh memory, fair peak RSS); runs alternate so that load from
other processes hits both sides alike. Prints tokens/s of each, the ratio (target >= 0.98) and
the peak RSS of each.

    .venv/bin/python benchmarks/bench_train.py                # SmolLM2-135M (bundled GGUF)
    .venv/bin/python benchmarks/bench_train.py --model tiny   # a tiny random model, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from codeultra.training.convert_gguf import ensure_hf_model  # noqa: E402
from codeultra.training.tiny import build_tiny_chat_model  # noqa: E402


def synthetic_pairs(n: int, seed: int) -> pd.DataFrame:
    """Code answers of ~100-200 tokens in the pairs format, with the pipeline's extra columns."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        name = rng.choice(["total", "mean", "largest", "count_even", "reverse_words"])
        lines = [
            f"    value_{k} = items[{k}] * {rng.randint(2, 9)}" for k in range(rng.randint(4, 10))
        ]
        body = "\n".join(lines)
        doc = f'    """Return the {name} of items."""\n'
        good = f"def {name}(items):\n{doc}{body}\n    return value_0\n"
        bad = f"def {name}(items):\n{body}\n    return None\n"
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"Write a Python function `{name}` ({i})."}],
                "chosen": [{"role": "assistant", "content": good}],
                "rejected": [{"role": "assistant", "content": bad}],
                "preference": 1.0,
                "rating_chosen": 5.0,
                "rating_rejected": 2.0,
                "model_chosen": "a",
                "model_rejected": "b",
            }
        )
    return pd.DataFrame(rows)


def run_measured(command: list[str], log: Path) -> dict:
    """Run `command`, return its BENCH_JSON line plus its own peak RSS (from wait4)."""
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    if proc.returncode != 0:
        raise SystemExit(f"{command[1]} failed ({proc.returncode}); see {log}\n{text[-2000:]}")
    line = next(x for x in text.splitlines() if x.startswith("BENCH_JSON "))
    result = json.loads(line.removeprefix("BENCH_JSON "))
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m", help="smollm2-135m, tiny, or an HF folder")
    p.add_argument("--pairs", type=int, default=48)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--work-dir", type=Path, default=None)
    a = p.parse_args()

    work = a.work_dir or Path(tempfile.mkdtemp(prefix="bench-train-"))
    work.mkdir(parents=True, exist_ok=True)
    pairs = work / "pairs"
    pairs.mkdir(exist_ok=True)
    synthetic_pairs(a.pairs, seed=0).to_parquet(pairs / "train.parquet")
    if a.model == "tiny":
        model = build_tiny_chat_model(work / "tiny", hidden_size=64, layers=4)
    else:
        model = ensure_hf_model(a.model)

    settings = {"max_steps": a.steps, "batch": a.batch_size, "max_length": a.max_length}
    recipe = {
        "trainer": "dpo",
        "model": {"name_or_path": str(model), "dtype": "float32"},
        "lora": {"r": 16, "alpha": 32, "dropout": 0.0,
                 "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
        "data": {"train": str(pairs)},
        "args": {
            "use_cpu": True, "bf16": False, "activation_checkpointing": False,
            "max_steps": a.steps, "per_device_train_batch_size": a.batch_size,
            "max_length": a.max_length, "learning_rate": 1e-4, "seed": 42,
            "save_strategy": "no", "logging_steps": 1, "report_to": "none",
        },
    }  # fmt: skip
    recipe_path = work / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    codeultra_cmd = [
        sys.executable, "-c",
        "import json, sys; from codeultra.training.run import train; "
        "m = train(sys.argv[1], output_dir=sys.argv[2], resume=False); "
        "print('BENCH_JSON ' + json.dumps({'tokens': m['train_tokens'], "
        "'runtime_s': m['train_runtime_s'], 'tokens_per_s': m['tokens_per_s'], "
        "'cpu_s': m['train_cpu_s']}))",
        str(recipe_path), str(work / "out-codeultra"),
    ]  # fmt: skip
    plain_cmd = [
        sys.executable, str(REPO / "benchmarks" / "plain_trl_dpo.py"),
        "--model", str(model), "--data", str(pairs), "--output-dir", str(work / "out-plain"),
        "--max-steps", str(a.steps), "--batch-size", str(a.batch_size),
        "--max-length", str(a.max_length), "--learning-rate", "1e-4", "--seed", "42",
    ]  # fmt: skip

    runs: dict[str, list[dict]] = {"codeultra": [], "plain_trl": []}
    for i in range(a.repeats):
        order = ["plain_trl", "codeultra"] if i % 2 == 0 else ["codeultra", "plain_trl"]
        for name in order:
            cmd = codeultra_cmd if name == "codeultra" else plain_cmd
            result = run_measured(cmd, work / f"{name}-{i}.log")
            runs[name].append(result)
            print(f"[{i}] {name:9s} {result['tokens_per_s']:8.1f} tok/s  "
                  f"{result['tokens'] / result['cpu_s']:7.1f} tok/cpu-s  "
                  f"{result['tokens']} tokens  {result['runtime_s']:.1f} s  "
                  f"peak RSS {result['peak_rss_mb']:.0f} MiB", flush=True)  # fmt: skip

    summary = {name: _summary(rs) for name, rs in runs.items()}
    # Best-of is the least load-sensitive figure on a shared machine; the median is shown too.
    ratio = summary["codeultra"]["best_tokens_per_s"] / summary["plain_trl"]["best_tokens_per_s"]
    median = summary["codeultra"]["tokens_per_s"] / summary["plain_trl"]["tokens_per_s"]
    cpu = summary["codeultra"]["tokens_per_cpu_s"] / summary["plain_trl"]["tokens_per_cpu_s"]
    report = {"model": str(model), **settings, "runs": summary, "ratio": ratio}
    print(json.dumps(report | {"median_ratio": median, "cpu_ratio": cpu}, indent=2))
    print(f"codeultra/plain TRL tokens/s ratio: {ratio:.3f} best-of, {median:.3f} median, "
          f"{cpu:.3f} per CPU-second (target >= 0.98)")  # fmt: skip


def _summary(results: list[dict]) -> dict:
    return {
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in results),
        "best_tokens_per_s": max(r["tokens_per_s"] for r in results),
        "tokens_per_cpu_s": max(r["tokens"] / r["cpu_s"] for r in results),
        "tokens": results[0]["tokens"],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
        "all_tokens_per_s": [round(r["tokens_per_s"], 2) for r in results],
    }


if __name__ == "__main__":
    main()
