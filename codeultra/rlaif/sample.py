"""Step 2: several candidate answers per RL instruction from the SFT policy.

One cell per instruction (n samples in one batched `generate`), keyed by the SFT
policy's identity, the prompt and the sampling settings: a rerun samples only what is
missing, and a retrained SFT policy is sampled afresh. Writes candidates.parquet.
"""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from codeultra.errors import UserError
from codeultra.io import write_parquet
from codeultra.metrics.answer import parse_answer
from codeultra.rlaif.config import RlaifConfig
from codeultra.rlaif.data import Slices, policy_messages
from codeultra.rlaif.policy import Sampling, generate
from codeultra.rlaif.sft import sft_policy_dir
from codeultra.rlaif.steps import Layout


def run_sample(cfg: RlaifConfig, layout: Layout, slices: Slices) -> dict:
    policy = sft_policy_dir(layout)
    if not (policy / "config.json").is_file():
        raise UserError(f"no SFT policy at {policy}: run `codeultra rlaif sft` first")
    rl = slices.rl
    s = cfg.sample
    items = [{"messages": policy_messages(r.instruction, r.hub)} for r in rl.itertuples()]
    started = time.perf_counter()
    outs, stats = generate(
        layout.cells,
        "rlaif-sample",
        str(policy),
        items,
        Sampling(s.n, s.temperature, s.top_p, s.max_new_tokens, s.seed),
        batch_size=s.batch_size,
        chat_template=cfg.policy.chat_template,
        desc="sample",
    )
    rows: list[dict[str, Any]] = []
    for r, answers in zip(rl.itertuples(index=False), outs, strict=True):
        for j, a in enumerate(answers):
            rows.append(
                {
                    "hub": r.hub,
                    "item_id": r.item_id,
                    "instruction": r.instruction,
                    "reference": r.reference,
                    "target": r.target,
                    "sample": j,
                    "candidate": a["text"],
                    "api_call": parse_answer(a["text"]).api_call,
                    "finish_reason": a["finish_reason"],
                    "error": a["error"],
                }
            )
    df = pd.DataFrame(rows)
    summary = {
        "step": "sample",
        "policy": str(policy),
        "instructions": len(rl),
        "candidates": len(df),
        "generated": stats.requests,
        "errors": int(df["error"].notna().sum()),
        "no_api_call": int(df["api_call"].isna().sum()),
        "truncated": int((df["finish_reason"] == "length").sum()),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    write_parquet(df, layout.candidates, metadata={"summary": summary})
    return summary
