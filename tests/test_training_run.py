"""Real TRL training on a tiny random model: DPO + LoRA, resume, SFT, and TRL's own CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from codeultra.training.config import recipe_from_dict
from codeultra.training.run import train
from codeultra.training.tiny import build_tiny_chat_model

pytestmark = pytest.mark.slow


def _pair(i: int) -> dict:
    prompt = [
        {"role": "user", "content": f"Write a Python function that returns {i} plus {i + 1}."}
    ]
    if i % 3 == 0:
        prompt.insert(0, {"role": "system", "content": "You write short Python."})
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": f"def f():\n    return {i} + {i + 1}\n"}],
        "rejected": [{"role": "assistant", "content": f"def f():\n    return {i} - {i + 1}\n"}],
        "preference": 1.0,
        "rating_chosen": 5.0,
        "rating_rejected": 1.0,
        "model_chosen": "model-a",
        "model_rejected": None if i % 2 else "model-b",  # nulls in extra columns are fine
    }


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pairs")
    pd.DataFrame([_pair(i) for i in range(24)]).to_parquet(folder / "train.parquet")
    pd.DataFrame([_pair(i) for i in range(100, 106)]).to_parquet(folder / "test.parquet")
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, pairs) -> Path:
    frame = pd.read_parquet(pairs / "train.parquet")
    texts = [m["content"] for col in ("prompt", "chosen") for msgs in frame[col] for m in msgs]
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny"), texts)


def _recipe(tiny: Path, pairs: Path, trainer: str = "dpo", **args):
    base_args = {
        "use_cpu": True,
        "bf16": False,
        "activation_checkpointing": False,
        "per_device_train_batch_size": 2,
        "learning_rate": 5e-3,
        "max_length": 128,
        "max_steps": 4,
        "logging_steps": 1,
        "save_steps": 2,
        "seed": 7,
        "disable_tqdm": True,
    }
    return recipe_from_dict(
        {
            "trainer": trainer,
            "model": {"name_or_path": str(tiny)},
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
            "data": {"train": str(pairs)}
            | ({"completion_column": "chosen"} if trainer == "sft" else {}),
            "args": base_args | args,
        }
    )


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def test_dpo_with_lora_writes_adapter_and_merged_model(tmp_path, tiny, pairs):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "dpo"
    metrics = train(_recipe(tiny, pairs), output_dir=out)

    assert metrics["global_step"] == 4 and metrics["resumed_from"] is None
    assert metrics["train_tokens"] > 0 and metrics["tokens_per_s"] > 0
    assert metrics["peak_rss_mb"] > 0 and metrics["train_loss"] > 0
    assert json.loads((out / "metrics.json").read_text())["global_step"] == 4
    adapter_cfg = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert adapter_cfg["r"] == 4 and (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "merged" / "model.safetensors").is_file()
    assert not list(out.glob(".*tmp*"))  # atomic writes left no temp folders

    # The merged model is the base plus the trained adapter, and training moved it.
    base, merged = _weights(tiny), _weights(out / "merged")
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(base[key], merged[key])
    remerged = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny), out / "adapter"
    ).merge_and_unload()
    assert torch.allclose(remerged.state_dict()[key], merged[key], atol=1e-6)

    tokenizer = AutoTokenizer.from_pretrained(out / "merged")
    model = AutoModelForCausalLM.from_pretrained(out / "merged")
    prompt = [{"role": "user", "content": "Write a Python function that returns 1 plus 2."}]
    inputs = tokenizer.apply_chat_template(
        prompt, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    generated = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]
    assert isinstance(tokenizer.decode(generated[0]), str)


def test_rerun_resumes_from_the_last_checkpoint(tmp_path, tiny, pairs):
    out = tmp_path / "resumed"
    # A constant rate keeps the schedule independent of max_steps, so the runs are comparable.
    first = train(_recipe(tiny, pairs, max_steps=2, lr_scheduler_type="constant"), output_dir=out)
    assert first["global_step"] == 2 and (out / "checkpoint-2").is_dir()

    second = train(_recipe(tiny, pairs, max_steps=4, lr_scheduler_type="constant"), output_dir=out)
    assert second["resumed_from"] == str(out / "checkpoint-2")
    assert second["global_step"] == 4
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    resumed_losses = {e["step"]: e["loss"] for e in state["log_history"] if "loss" in e}
    assert sorted(resumed_losses) == [1, 2, 3, 4]  # steps 1-2 carried over from the first run

    # Same losses as one uninterrupted run: the optimizer, scheduler and data order resumed.
    recipe = _recipe(tiny, pairs, max_steps=4, lr_scheduler_type="constant")
    straight = train(recipe, output_dir=tmp_path / "straight")
    state = json.loads((tmp_path / "straight" / "checkpoint-4" / "trainer_state.json").read_text())
    straight_losses = {e["step"]: e["loss"] for e in state["log_history"] if "loss" in e}
    for step in (3, 4):
        assert resumed_losses[step] == pytest.approx(straight_losses[step], rel=1e-3)
    assert straight["resumed_from"] is None

    fresh = train(_recipe(tiny, pairs, max_steps=2), output_dir=out, resume=False)
    assert fresh["resumed_from"] is None and not (out / "checkpoint-4").exists()


def test_sft_on_chosen_answers_with_eval(tmp_path, tiny, pairs):
    out = tmp_path / "sft"
    recipe = _recipe(tiny, pairs, "sft", max_steps=2, eval_strategy="steps", eval_steps=2)
    metrics = train(recipe, output_dir=out, limit=8)
    assert metrics["trainer"] == "sft" and metrics["train_rows"] == 8
    assert metrics["global_step"] == 2
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert any("eval_loss" in e for e in state["log_history"])  # the test split was used
    assert (out / "merged" / "model.safetensors").is_file()


def test_pairs_folder_trains_unchanged_with_trl_cli(tmp_path, tiny, pairs):
    out = tmp_path / "cli"
    trl = Path(sys.executable).parent / "trl"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "WANDB_MODE": "off"}
    command = [str(trl), "dpo", "--model_name_or_path", str(tiny), "--dataset_name", str(pairs)]
    command += ["--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "2"]
    command += ["--use_cpu", "--bf16", "false", "--activation_checkpointing", "false"]
    command += ["--max_length", "128", "--report_to", "none", "--use_peft", "--lora_r", "4"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "adapter_model.safetensors").is_file()
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
