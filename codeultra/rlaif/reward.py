"""Step 4: a reward model trained on the AI feedback (TRL's RewardTrainer, Bradley-Terry).

Pairs come from score differences: for each instruction, every two candidates whose
combined judge scores differ by at least `min_margin` (identical texts never pair),
the higher one chosen. Instructions, not pairs, are split into train and held-out, so
no held-out prompt is seen in training; the held-out pairwise accuracy (share of pairs
the trained model ranks like the judge) is reported. Writes reward_pairs.parquet and
the model to reward/model/.
"""

from __future__ import annotations

import itertools
import random
import time
from pathlib import Path
from typing import Any

import pandas as pd

from codeultra.errors import UserError
from codeultra.io import load_table, write_json, write_parquet
from codeultra.rlaif.config import RlaifConfig
from codeultra.rlaif.data import policy_messages
from codeultra.rlaif.policy import load_tokenizer, resolve_policy_model
from codeultra.rlaif.sft import sft_policy_dir, trainer_defaults
from codeultra.rlaif.steps import (
    Layout,
    Step,
    latest_checkpoint,
    model_fingerprint,
    remove_checkpoints,
    step_key,
)

REWARD_DEFAULTS: dict[str, Any] = {
    "num_train_epochs": 2,
    "per_device_train_batch_size": 8,
    "learning_rate": 5.0e-5,
    "lr_scheduler_type": "linear",
    "max_length": 512,
    "activation_checkpointing": False,
    "logging_steps": 1,
    "save_strategy": "steps",
    "save_steps": 50,
    "save_total_limit": 1,
    "report_to": "none",
    "seed": 42,
}


def make_pairs(feedback: pd.DataFrame, min_margin: float) -> pd.DataFrame:
    """Chosen/rejected rows from candidates of the same instruction."""
    rows = []
    scored = feedback[feedback["score"].notna()]
    for item_id, group in scored.groupby("item_id", sort=True):
        cands = group.drop_duplicates("candidate").sort_values("sample")
        for a, b in itertools.combinations(cands.itertuples(index=False), 2):
            gap = float(a.score) - float(b.score)
            if abs(gap) < min_margin or abs(gap) == 0:
                continue
            hi, lo = (a, b) if gap > 0 else (b, a)
            rows.append(
                {
                    "item_id": item_id,
                    "hub": hi.hub,
                    "prompt": policy_messages(hi.instruction, hi.hub),
                    "chosen": [{"role": "assistant", "content": hi.candidate}],
                    "rejected": [{"role": "assistant", "content": lo.candidate}],
                    "chosen_score": float(hi.score),
                    "rejected_score": float(lo.score),
                    "margin": abs(gap),
                }
            )
    return pd.DataFrame(rows)


def split_by_instruction(pairs: pd.DataFrame, fraction: float, seed: int) -> pd.DataFrame:
    """Add split = train|heldout by instruction; at least one of each when possible."""
    items = sorted(pairs["item_id"].unique())
    random.Random(seed).shuffle(items)
    n_held = round(fraction * len(items))
    n_held = max(1, n_held) if len(items) >= 2 else 0
    n_held = min(n_held, len(items) - 1) if items else 0
    held = set(items[:n_held])
    out = pairs.copy()
    out["split"] = ["heldout" if i in held else "train" for i in out["item_id"]]
    return out


def reward_model_dir(layout: Layout) -> Path:
    return layout.reward / "model"


def _init_model(cfg: RlaifConfig, layout: Layout) -> str:
    if cfg.reward.init == "sft":
        path = sft_policy_dir(layout)
        if not (path / "config.json").is_file():
            raise UserError(f"no SFT policy at {path}: run `codeultra rlaif sft` first")
        return str(path)
    if cfg.reward.init == "base":
        return resolve_policy_model(cfg.policy)
    return cfg.reward.init


def score_texts(
    model: Any, tokenizer: Any, conversations: list[list[dict]], batch: int = 8
) -> list[float]:
    """Scalar rewards of whole conversations, rendered as GRPO renders them."""
    import torch

    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
    device = next(model.parameters()).device
    out: list[float] = []
    model.eval()
    with torch.no_grad():
        for s in range(0, len(texts), batch):
            enc = tokenizer(
                texts[s : s + batch],
                return_tensors="pt",
                padding=True,
                padding_side="right",
                add_special_tokens=False,
            ).to(device)
            out += model(**enc).logits[:, 0].float().tolist()
    return out


def pairwise_accuracy(model: Any, tokenizer: Any, pairs: pd.DataFrame) -> dict[str, Any]:
    if pairs.empty:
        return {"pairs": 0, "accuracy": None, "ties": 0}
    chosen = score_texts(
        model,
        tokenizer,
        [list(p) + list(c) for p, c in zip(pairs["prompt"], pairs["chosen"], strict=True)],
    )
    rejected = score_texts(
        model,
        tokenizer,
        [list(p) + list(r) for p, r in zip(pairs["prompt"], pairs["rejected"], strict=True)],
    )
    wins = sum(c > r for c, r in zip(chosen, rejected, strict=True))
    ties = sum(c == r for c, r in zip(chosen, rejected, strict=True))
    return {"pairs": len(pairs), "accuracy": (wins + 0.5 * ties) / len(pairs), "ties": ties}


def run_reward(cfg: RlaifConfig, layout: Layout) -> dict[str, Any]:
    if not layout.feedback.is_file():
        raise UserError(f"no feedback at {layout.feedback}: run `codeultra rlaif feedback` first")
    rc = cfg.reward
    feedback = load_table(layout.feedback)
    pairs = make_pairs(feedback, rc.min_margin)
    if pairs.empty:
        raise UserError(
            f"{layout.feedback}: no candidate pairs differ by >= {rc.min_margin} in judge score; "
            "sample more candidates (rlaif.sample.n) or lower rlaif.reward.min_margin"
        )
    pairs = split_by_instruction(pairs, rc.eval_fraction, rc.seed)
    init = _init_model(cfg, layout)
    args = {**REWARD_DEFAULTS, **trainer_defaults(), **rc.args}
    key = step_key(
        {
            "step": "reward",
            "init": model_fingerprint(init),
            "pairs": pairs.drop(columns=["hub"]).to_dict("records"),
            "use_margin": rc.use_margin,
            "lora": rc.lora.model_dump(),
            "args": args,
        }
    )
    step = Step(layout.reward, key)
    done = step.done()
    if done is not None:
        return {**done, "skipped": "already done"}
    step.begin()
    started = time.perf_counter()
    write_parquet(pairs, layout.reward / "pairs.parquet")
    train_rows, held_rows = pairs[pairs.split == "train"], pairs[pairs.split == "heldout"]
    model, tokenizer, history = _train(cfg, layout, init, args, train_rows)
    held = pairwise_accuracy(model, tokenizer, held_rows)
    train_acc = pairwise_accuracy(model, tokenizer, train_rows)
    _save(model, tokenizer, reward_model_dir(layout))
    write_parquet(pd.DataFrame(history), layout.reward / "log.parquet")
    summary = {
        "step": "reward",
        "init": init,
        "model": str(reward_model_dir(layout)),
        "pairs": len(pairs),
        "train_pairs": len(train_rows),
        "heldout_pairs": len(held_rows),
        "heldout_instructions": int(held_rows["item_id"].nunique()),
        "heldout_accuracy": held["accuracy"],
        "heldout_ties": held["ties"],
        "train_accuracy": train_acc["accuracy"],
        "final_loss": next((h["loss"] for h in reversed(history) if "loss" in h), None),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    write_json(summary, layout.reward / "metrics.json")
    remove_checkpoints(layout.reward)
    step.finish(summary)
    return summary


def _train(cfg: RlaifConfig, layout: Layout, init: str, args: dict, rows: pd.DataFrame):
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    tokenizer = load_tokenizer(init, cfg.policy.chat_template)
    columns = ["prompt", "chosen", "rejected"] + (["margin"] if cfg.reward.use_margin else [])
    data = Dataset.from_pandas(rows[columns].reset_index(drop=True), preserve_index=False)
    config = RewardConfig(output_dir=str(layout.reward / "checkpoints"), **args)
    trainer = RewardTrainer(
        model=init,
        args=config,
        train_dataset=data,
        processing_class=tokenizer,
        peft_config=cfg.reward.lora.peft("SEQ_CLS"),
    )
    checkpoint = latest_checkpoint(layout.reward / "checkpoints")
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer, list(trainer.state.log_history)


def _save(model: Any, tokenizer: Any, dest: Path) -> None:
    from codeultra.training.save import atomic_dir

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    atomic_dir(dest, write)
