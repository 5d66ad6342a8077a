"""Step 5: online RL of the SFT policy against the reward model (TRL GRPO or RLOO).

TRL 1.16 has no PPO. The reward model (a sequence classifier) is GRPO's/RLOO's first
`reward_funcs` entry; with `exec_reward_weight > 0` the executability of each sampled
answer (the APIBench sandbox run, 1 or 0) is a second one. With beta > 0 the trainer
logs its per-step KL to the SFT policy (the reference); after training, KL(RLAIF || SFT)
is also estimated directly: answers sampled from the RLAIF policy at temperature 1,
sum over tokens of log p_RLAIF - log p_SFT, averaged. The policy is rl/merged/.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from codeultra.backends.transformers_local import default_device
from codeultra.errors import UserError
from codeultra.io import write_json, write_parquet
from codeultra.rlaif.config import RlaifConfig
from codeultra.rlaif.data import Slices, policy_messages
from codeultra.rlaif.policy import load_tokenizer
from codeultra.rlaif.reward import reward_model_dir
from codeultra.rlaif.sft import sft_policy_dir, trainer_defaults
from codeultra.rlaif.steps import (
    Layout,
    Step,
    latest_checkpoint,
    model_fingerprint,
    remove_checkpoints,
    step_key,
)

RL_DEFAULTS: dict[str, Any] = {
    "num_generations": 4,
    "per_device_train_batch_size": 8,
    "max_completion_length": 128,
    "max_steps": 8,
    "learning_rate": 1.0e-5,
    "lr_scheduler_type": "constant",
    "beta": 0.04,
    "temperature": 0.9,
    "activation_checkpointing": False,
    "logging_steps": 1,
    "save_strategy": "steps",
    "save_steps": 4,
    "save_total_limit": 1,
    "report_to": "none",
    "seed": 42,
}


def rl_policy_dir(layout: Layout) -> Path:
    return layout.rl / "merged"


def make_exec_reward(apibench_dir: str | Path, timeout_s: float) -> Any:
    """A TRL reward function: 1.0 when an answer's code runs in the APIBench sandbox."""
    from codeultra.metrics.executability import executability
    from codeultra.rlaif.apibench import load_api_database
    from codeultra.sandbox import SandboxLimits

    limits = SandboxLimits(timeout_s=timeout_s, cpu_s=max(1, int(timeout_s)), memory_mb=1024)
    databases: dict[str, Any] = {}

    def executability_reward(prompts, completions, hub, **_: Any) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else str(c) for c in completions]
        out = [0.0] * len(texts)
        for h in sorted(set(hub)):
            idx = [i for i, x in enumerate(hub) if x == h]
            db = databases.setdefault(h, load_api_database(apibench_dir, h))
            run = executability([texts[i] for i in idx], h, db, workers=1, limits=limits)
            for i, item in zip(idx, run["items"], strict=True):
                out[i] = 1.0 if item["status"] == "ok" else 0.0
        return out

    return executability_reward


def run_rl(cfg: RlaifConfig, layout: Layout, slices: Slices, apibench_dir: Path) -> dict[str, Any]:
    sft, rm = sft_policy_dir(layout), reward_model_dir(layout)
    for path, step in ((sft, "sft"), (rm, "reward")):
        if not (path / "config.json").is_file():
            raise UserError(f"no model at {path}: run `codeultra rlaif {step}` first")
    rc = cfg.rl
    rl = slices.rl
    prompts = [
        {"prompt": policy_messages(r.instruction, r.hub), "hub": r.hub} for r in rl.itertuples()
    ]
    args = {**RL_DEFAULTS, **trainer_defaults(), **rc.args}
    key = step_key(
        {
            "step": "rl",
            "algorithm": rc.algorithm,
            "policy": model_fingerprint(sft),
            "reward": model_fingerprint(rm),
            "prompts": prompts,
            "weights": [rc.reward_weight, rc.exec_reward_weight, rc.exec_timeout_s],
            "lora": rc.lora.model_dump(),
            "kl": [rc.kl_prompts, rc.kl_max_new_tokens],
            "args": args,
        }
    )
    step = Step(layout.rl, key)
    done = step.done()
    if done is not None:
        return {**done, "skipped": "already done"}
    step.begin()
    started = time.perf_counter()
    model, tokenizer, history = _train(cfg, layout, prompts, args, apibench_dir)
    _save(model, tokenizer, rl_policy_dir(layout))
    log = pd.DataFrame(history)
    write_parquet(log, layout.rl / "log.parquet")
    train_s = round(time.perf_counter() - started, 1)
    kl = estimate_kl(
        str(rl_policy_dir(layout)),
        str(sft),
        [p["prompt"] for p in prompts][: rc.kl_prompts],
        rc.kl_max_new_tokens,
        seed=int(args.get("seed", 0)),
        chat_template=cfg.policy.chat_template,
    )
    summary = {
        "step": "rl",
        "algorithm": rc.algorithm,
        "policy": str(rl_policy_dir(layout)),
        "prompts": len(prompts),
        "steps": int(log["step"].max()) if "step" in log else 0,
        "reward_first": _first(log, "reward"),
        "reward_last": _last(log, "reward"),
        "kl_logged_last": _last(log, "kl"),
        "kl_logged_mean": _mean(log, "kl"),
        "kl_to_sft_estimate": kl,
        "train_wall_s": train_s,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    write_json(summary, layout.rl / "metrics.json")
    remove_checkpoints(layout.rl)
    step.finish(summary)
    return summary


def _first(log: pd.DataFrame, col: str) -> float | None:
    vals = log[col].dropna() if col in log else []
    return round(float(vals.iloc[0]), 5) if len(vals) else None


def _last(log: pd.DataFrame, col: str) -> float | None:
    vals = log[col].dropna() if col in log else []
    return round(float(vals.iloc[-1]), 5) if len(vals) else None


def _mean(log: pd.DataFrame, col: str) -> float | None:
    vals = log[col].dropna() if col in log else []
    return round(float(vals.mean()), 5) if len(vals) else None


def _train(cfg: RlaifConfig, layout: Layout, prompts: list[dict], args: dict, apibench_dir: Path):
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification

    rc = cfg.rl
    if rc.algorithm == "grpo":
        from trl import GRPOConfig as Config
        from trl import GRPOTrainer as Trainer
    else:
        from trl import RLOOConfig as Config
        from trl import RLOOTrainer as Trainer

    sft = str(sft_policy_dir(layout))
    tokenizer = load_tokenizer(sft, cfg.policy.chat_template)
    tokenizer.padding_side = "left"
    rm_path = str(reward_model_dir(layout))
    reward_tok = load_tokenizer(rm_path, cfg.policy.chat_template)
    reward_model = AutoModelForSequenceClassification.from_pretrained(rm_path, num_labels=1)
    reward_model.config.pad_token_id = reward_tok.pad_token_id
    funcs: list[Any] = []
    weights: list[float] = []
    procs: list[Any] = []
    if rc.reward_weight > 0:
        funcs.append(reward_model)
        weights.append(rc.reward_weight)
        procs.append(reward_tok)
    if rc.exec_reward_weight > 0:
        funcs.append(make_exec_reward(apibench_dir, rc.exec_timeout_s))
        weights.append(rc.exec_reward_weight)
        procs.append(None)
    config = Config(
        output_dir=str(layout.rl / "checkpoints"),
        model_init_kwargs={"dtype": cfg.policy.dtype},
        reward_weights=weights,
        **args,
    )
    trainer = Trainer(
        model=sft,
        reward_funcs=funcs,
        args=config,
        train_dataset=Dataset.from_list(prompts),
        processing_class=tokenizer,
        reward_processing_classes=procs,
        peft_config=rc.lora.peft(),
    )
    checkpoint = latest_checkpoint(layout.rl / "checkpoints")
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    model = trainer.accelerator.unwrap_model(trainer.model)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.config.use_cache = True
    return model, tokenizer, list(trainer.state.log_history)


def _save(model: Any, tokenizer: Any, dest: Path) -> None:
    from codeultra.training.save import atomic_dir

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    atomic_dir(dest, write)


def estimate_kl(
    policy_dir: str,
    ref_dir: str,
    prompts: list[list[dict[str, str]]],
    max_new_tokens: int,
    *,
    seed: int = 0,
    chat_template: str | None = None,
) -> dict[str, Any] | None:
    """Monte Carlo KL(policy || ref) over answers sampled from the policy at temperature 1."""
    if not prompts:
        return None
    import torch
    from transformers import AutoModelForCausalLM

    dev = default_device()
    tok = load_tokenizer(policy_dir, chat_template)
    tok.padding_side = "left"
    policy = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.float32).to(dev).eval()
    ref = AutoModelForCausalLM.from_pretrained(ref_dir, dtype=torch.float32).to(dev).eval()
    texts = [
        tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts
    ]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(dev)
    torch.manual_seed(seed)
    with torch.no_grad():
        seqs = policy.generate(
            **enc,
            do_sample=True,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            max_new_tokens=max_new_tokens,
            pad_token_id=tok.pad_token_id,
        )
        plen = enc["input_ids"].shape[1]
        completion = seqs[:, plen:]
        eos = tok.eos_token_id
        # Keep completion tokens up to and including the first eos.
        is_eos = (completion == eos).int()
        after = (is_eos.cumsum(1) - is_eos) > 0
        comp_mask = (~after).int()
        mask = torch.cat([enc["attention_mask"], comp_mask], dim=1)
        lp_pol = _token_logprobs(policy, seqs, mask)[:, plen - 1 :]
        lp_ref = _token_logprobs(ref, seqs, mask)[:, plen - 1 :]
    diff = (lp_pol - lp_ref) * comp_mask
    per_seq = diff.sum(1)
    tokens = comp_mask.sum(1).clamp(min=1)
    return {
        "prompts": len(prompts),
        "kl_per_answer": round(float(per_seq.mean()), 5),
        "kl_per_token": round(float((per_seq / tokens).mean()), 6),
        "mean_answer_tokens": round(float(comp_mask.sum(1).float().mean()), 1),
    }


def _token_logprobs(model: Any, ids: Any, mask: Any) -> Any:
    """log p(token t | tokens < t) for t >= 1, shape (batch, len - 1)."""
    import torch

    positions = (mask.cumsum(1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, :-1]
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
