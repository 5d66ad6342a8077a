"""Step 1: supervised fine-tuning of the small policy on APIBench instruction -> answer pairs.

Training itself is codeultra.training (TRL's SFTTrainer, LoRA or full, resumable from
its checkpoints); this step builds the prompt/completion rows and the training recipe.
The SFT policy is `sft/merged/`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from codeultra.io import write_parquet
from codeultra.rlaif.config import RlaifConfig
from codeultra.rlaif.data import Slices, policy_messages, policy_prompt_version
from codeultra.rlaif.policy import resolve_policy_model
from codeultra.rlaif.steps import Layout, Step, model_fingerprint, remove_checkpoints, step_key


def trainer_defaults() -> dict[str, Any]:
    """Device and progress-bar settings codeultra picks unless the recipe's args say otherwise."""
    import torch

    out: dict[str, Any] = {"disable_tqdm": os.environ.get("CODEULTRA_NO_PROGRESS") == "1"}
    if not torch.cuda.is_available():
        out.update(use_cpu=True, bf16=False)
    return out


SFT_DEFAULTS: dict[str, Any] = {
    "num_train_epochs": 1,
    "per_device_train_batch_size": 8,
    "learning_rate": 5.0e-5,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.1,
    "max_length": 384,
    "packing": False,
    "activation_checkpointing": False,
    "logging_steps": 1,
    "save_strategy": "steps",
    "save_steps": 50,
    "save_total_limit": 1,
    "report_to": "none",
    "seed": 42,
}


def sft_rows(slices: Slices) -> pd.DataFrame:
    rows = [
        {
            "hub": r.hub,
            "item_id": r.item_id,
            "prompt": policy_messages(r.instruction, r.hub),
            "completion": [{"role": "assistant", "content": r.target}],
        }
        for r in slices.sft.itertuples(index=False)
    ]
    return pd.DataFrame(rows)


def sft_policy_dir(layout: Layout) -> Path:
    return layout.sft / "merged"


def run_sft(cfg: RlaifConfig, layout: Layout, slices: Slices) -> dict:
    from codeultra.training.config import recipe_from_dict
    from codeultra.training.run import train

    rows = sft_rows(slices)
    base = resolve_policy_model(cfg.policy)
    args = {**SFT_DEFAULTS, **trainer_defaults(), **cfg.sft.args}
    key = step_key(
        {
            "step": "sft",
            "base": model_fingerprint(base),
            "policy": cfg.policy.model_dump(),
            "rows": rows[["item_id", "prompt", "completion"]].to_dict("records"),
            "prompts": policy_prompt_version(),
            "lora": cfg.sft.lora.model_dump(),
            "args": args,
        }
    )
    step = Step(layout.sft, key)
    done = step.done()
    if done is not None:
        return {**done, "skipped": "already done"}
    step.begin()
    started = time.perf_counter()
    data = write_parquet(rows, layout.sft / "train.parquet")
    model: dict[str, Any] = {"name_or_path": base, "dtype": cfg.policy.dtype}
    if cfg.policy.chat_template:
        model["chat_template"] = cfg.policy.chat_template
    recipe = recipe_from_dict(
        {
            "description": "rlaif sft",
            "trainer": "sft",
            "model": model,
            "lora": cfg.sft.lora.model_dump(),
            "data": {"train": str(data)},
            "args": args,
        }
    )
    metrics = train(recipe, output_dir=layout.sft, resume=True)
    remove_checkpoints(layout.sft)
    summary = {
        "step": "sft",
        "base_model": base,
        "policy": str(sft_policy_dir(layout)),
        "rows": len(rows),
        "rows_per_hub": rows["hub"].value_counts().sort_index().to_dict(),
        "train_loss": metrics.get("train_loss"),
        "global_step": metrics.get("global_step"),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    step.finish(summary)
    return summary
