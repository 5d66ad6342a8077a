"""Training recipes: typed sections, TRL args checked against TRL's own dataclasses."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

from codeultra.errors import UserError
from codeultra.training.config import load_training_recipe, recipe_from_dict
from codeultra.training.run import build_trainer_args, train

REPO = Path(__file__).resolve().parents[1]
BASE = {
    "trainer": "dpo",
    "model": {"gguf": "smollm2-135m"},
    "data": {"train": "runs/demo/pairs"},
    "args": {"use_cpu": True, "bf16": False},
}


def _with(**changes) -> dict:
    raw = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = raw
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return raw


def _refused(raw: dict) -> str:
    with pytest.raises(UserError) as e:
        recipe_from_dict(raw)
    message = str(e.value)
    assert "\n" not in message
    return message


def test_unknown_keys_are_refused_with_their_name():
    assert "unknown key 'lora.rank'" in _refused(_with(lora__rank=8))
    assert "unknown key 'model.revison'" in _refused(_with(model__revison="main"))
    assert "unknown key 'epochs'" in _refused(_with(epochs=3))


def test_wrong_types_and_missing_sections_are_named():
    assert "lora.r" in _refused(_with(lora__r="many"))
    assert "trainer" in _refused(_with(trainer="ppo"))
    raw = _with()
    del raw["data"]
    assert "missing key 'data'" in _refused(raw)
    assert "exactly one of" in _refused(_with(model__name_or_path="some/model"))


def test_unknown_trl_arg_is_refused_with_closest_field():
    msg = _refused(_with(args__lerning_rate=1e-4))
    assert "unknown training arg 'lerning_rate' for DPOConfig" in msg
    assert "'learning_rate'" in msg
    sft = _with(trainer="sft", args__beta=0.1)  # a DPO-only field
    assert "unknown training arg 'beta' for SFTConfig" in _refused(sft)
    assert "warmup_steps" in _refused(_with(args__warmup_ratio=0.1))  # renamed upstream


def test_trl_arg_values_follow_trl_type_hints():
    recipe = recipe_from_dict(_with(args__learning_rate="2e-4", args__loss_type="sigmoid"))
    assert recipe.args["learning_rate"] == pytest.approx(2e-4)  # YAML reads 2e-4 as a string
    assert recipe.args["loss_type"] == "sigmoid"
    assert "'learning_rate' should be float" in _refused(_with(args__learning_rate="fast"))
    assert "model_init_kwargs" in _refused(_with(args__model_init_kwargs={"dtype": "float32"}))


def test_four_bit_on_cpu_is_refused():
    msg = _refused(_with(quantization__load_in_4bit=True))
    assert "CUDA" in msg and "load_in_4bit" in msg


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_gpu_recipe_is_refused_before_loading_anything():
    with pytest.raises(UserError, match="needs a CUDA"):
        train(REPO / "recipes" / "codellama-7b-instruct" / "dpo.yaml")


def test_yaml_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer: dpo\nmodel: [gguf\n", encoding="utf-8")
    with pytest.raises(UserError, match="invalid YAML") as e:
        load_training_recipe(bad)
    assert "\n" not in str(e.value) and "bad.yaml" in str(e.value)
    with pytest.raises(UserError, match="not found"):
        load_training_recipe(tmp_path / "missing.yaml")
    listing = tmp_path / "list.yaml"
    listing.write_text("- trainer\n", encoding="utf-8")
    with pytest.raises(UserError, match="mapping"):
        load_training_recipe(listing)


@pytest.mark.parametrize("path", sorted((REPO / "recipes").glob("*/*.yaml")), ids=str)
def test_shipped_recipes_load(path):
    recipe = load_training_recipe(path)
    assert recipe.trainer == path.stem
    assert recipe.lora.enabled


def test_cpu_recipes_build_real_trl_configs(tmp_path):
    for name in ("sft", "dpo"):
        recipe = load_training_recipe(REPO / "recipes" / "smollm2-135m" / f"{name}.yaml")
        args = build_trainer_args(recipe, tmp_path)
        assert type(args).__name__ == f"{name.upper()}Config"
        assert args.use_cpu and not args.bf16 and not args.gradient_checkpointing
        assert args.seed == 42 and args.output_dir == str(tmp_path)


def test_gpu_recipes_follow_the_paper():
    sft = load_training_recipe(REPO / "recipes" / "codellama-7b-instruct" / "sft.yaml")
    dpo = load_training_recipe(REPO / "recipes" / "codellama-7b-instruct" / "dpo.yaml")
    for r in (sft, dpo):
        assert r.model.name_or_path == "codellama/CodeLlama-7b-Instruct-hf"
        assert (r.lora.r, r.lora.alpha, r.lora.dropout) == (64, 128, 0.0)
        assert r.quantization.load_in_4bit and r.quantization.bnb_4bit_quant_type == "nf4"
        assert r.args["bf16"] and r.args["seed"] == 42
    assert sft.args["per_device_train_batch_size"] * sft.args["gradient_accumulation_steps"] == 64
    assert dpo.args["beta"] == 0.1 and dpo.args["num_train_epochs"] == 3


def test_recipe_roundtrips_through_yaml(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(_with(lora__r=4)), encoding="utf-8")
    recipe = load_training_recipe(path)
    assert recipe.lora.r == 4 and recipe.source == path
