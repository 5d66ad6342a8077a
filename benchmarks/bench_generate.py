"""`make bench-generate`: the generate stage vs a raw load generator, same server, same prompts.

Both send the bundled instructions at the same concurrency to one embedded llama.cpp
server (SmolLM2-135M, greedy, fixed max tokens, so both produce the same tokens).
Rounds alternate raw/stage to spread machine noise; we print both throughputs and
the ratio (target: the stage reaches >= 0.95 of raw).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import httpx
import yaml

os.environ.setdefault("CODEULTRA_NO_PROGRESS", "1")

from codeultra.backends.llamacpp import LlamaCppServer  # noqa: E402
from codeultra.config import load_recipe  # noqa: E402
from codeultra.io import load_table  # noqa: E402
from codeultra.models import smollm2_gguf  # noqa: E402
from codeultra.prompts import load_yaml  # noqa: E402
from codeultra.stages.generate import pick_principle, run_generate  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


async def raw_load(url: str, bodies: list[dict], concurrency: int) -> tuple[float, int]:
    it = iter(bodies)
    tokens = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal tokens
        for body in it:
            r = await client.post(f"{url}/v1/chat/completions", json=body, timeout=600)
            r.raise_for_status()
            tokens += r.json()["usage"]["completion_tokens"]

    start = time.perf_counter()
    async with httpx.AsyncClient() as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return time.perf_counter() - start, tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instructions", type=int, default=24)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    df = load_table(REPO / "data/instructions.jsonl").head(args.instructions)
    principles = load_yaml("generate/principles.yaml")
    server = LlamaCppServer(smollm2_gguf(), n_ctx=2048, n_parallel=args.concurrency)
    sampling = {"temperature": 0.0, "top_p": 1.0, "max_tokens": args.max_tokens, "seed": 1}
    bodies = [
        {
            "model": "smollm2",
            "messages": [
                {"role": "system", "content": pick_principle(i, p, principles, 42)},
                {"role": "user", "content": i},
            ],
            **sampling,
        }
        for i, p in zip(df.instruction, df.preference, strict=True)
    ]
    asyncio.run(raw_load(server.url, bodies[: args.concurrency], args.concurrency))  # warm-up
    import litellm  # noqa: F401 - a one-off import cost (~3 s), not per-request throughput

    raw_s, stage_s, raw_tok, stage_tok = 0.0, 0.0, 0, 0

    def raw_round() -> tuple[float, int]:
        return asyncio.run(raw_load(server.url, bodies, args.concurrency))

    for r in range(args.rounds):
        if r % 2 == 0:  # alternate who goes first, so drift in machine load hits both
            secs, tok = raw_round()
        with tempfile.TemporaryDirectory() as tmp:
            recipe = {
                "run": {"work_dir": tmp},
                "data": {"path": str(REPO / "data/instructions.jsonl"), "subset": "all"},
                "models": {
                    "smollm2": {
                        "backend": "openai",
                        "model": "openai/smollm2",
                        "api_base": server.url + "/v1",
                        "max_concurrency": args.concurrency,
                        "sampling": sampling,
                    }
                },
                "generate": {"pool": ["smollm2"], "models_per_instruction": 1, "seed": 42},
            }
            path = Path(tmp) / "r.yaml"
            path.write_text(yaml.safe_dump(recipe))
            start = time.perf_counter()
            summary = run_generate(load_recipe(path), limit=args.instructions)
            s_secs = time.perf_counter() - start
            stage_s += s_secs
            stage_tok += summary["completion_tokens"]
        if r % 2 == 1:
            secs, tok = raw_round()
        raw_s, raw_tok = raw_s + secs, raw_tok + tok
        s_tps = summary["completion_tokens"] / s_secs
        print(f"round {r + 1}: raw {tok / secs:.1f} tok/s, stage {s_tps:.1f} tok/s", flush=True)
    server.close()
    raw_tps, stage_tps = raw_tok / raw_s, stage_tok / stage_s
    result = {
        "instructions": args.instructions,
        "concurrency": args.concurrency,
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "raw_tokens_per_s": round(raw_tps, 1),
        "stage_tokens_per_s": round(stage_tps, 1),
        "raw_requests_per_s": round(args.rounds * len(bodies) / raw_s, 3),
        "stage_requests_per_s": round(args.rounds * len(bodies) / stage_s, 3),
        "ratio": round(stage_tps / raw_tps, 3),
        "target": 0.95,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
