"""The recipe's rlaif: section: defaults, shipped recipes, and one-line errors for mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeultra.config import Recipe, load_recipe
from codeultra.errors import UserError
from codeultra.prompts import render, template_version
from codeultra.rlaif.config import DEFAULT_QUESTIONS, RlaifConfig, load_rlaif_config
from codeultra.rlaif.feedback import question_template

REPO = Path(__file__).resolve().parents[1]


def _parse(section: dict) -> RlaifConfig:
    return load_rlaif_config(Recipe(rlaif=section))


def test_an_empty_section_gives_the_cpu_defaults():
    cfg = _parse({})
    assert cfg.policy.model == "smollm2-135m"
    assert cfg.feedback.judge == "auto"
    assert cfg.feedback.questions == DEFAULT_QUESTIONS
    assert cfg.rl.algorithm == "grpo"
    assert cfg.evaluate.policies == ["base", "sft", "rlaif"]


@pytest.mark.parametrize("name", ["rlaif-cpu.yaml", "rlaif-gpt2-large-gpu.yaml"])
def test_shipped_recipes_parse(name):
    cfg = load_rlaif_config(load_recipe(REPO / "recipes" / name))
    assert cfg.data.hubs
    assert cfg.sample.n >= 2


def test_every_default_question_has_a_versioned_template():
    for qid in DEFAULT_QUESTIONS:
        assert template_version(question_template(qid))
        text = render(question_template(qid), hub_name="TensorFlow Hub")
        assert text.endswith("?")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"feedbak": {}}, "recipe rlaif: feedbak: unknown key"),
        ({"feedback": {"questionz": []}}, "feedback.questionz: unknown key"),
        ({"data": {"hubs": ["pypi"]}}, "data.hubs.0"),
        ({"data": {"hubs": ["torchhub", "torchhub"]}}, "listed twice"),
        ({"sample": {"n": 1}}, "sample.n"),
        ({"feedback": {"weights": {"vibes": 1.0}}}, "weights for questions not asked"),
        ({"feedback": {"questions": ["runs"], "weights": {"runs": 0}}}, "at least one > 0"),
        ({"rl": {"reward_weight": 0}}, "nothing to learn"),
        ({"rl": {"args": {"num_generation": 4}}}, "did you mean 'num_generations'"),
        ({"rl": {"algorithm": "ppo"}}, "rl.algorithm"),
        ({"sft": {"args": {"output_dir": "x"}}}, "args.output_dir is set by codeultra"),
        ({"reward": {"args": {"learning_rate": "fast"}}}, "args.learning_rate"),
    ],
)
def test_mistakes_are_one_line_user_errors(section, message):
    with pytest.raises(UserError) as err:
        _parse(section)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_trainer_args_are_coerced_to_trl_types():
    cfg = _parse({"rl": {"args": {"learning_rate": "1e-5", "max_steps": "3"}}})
    assert cfg.rl.args == {"learning_rate": 1e-5, "max_steps": 3}
    cfg = _parse({"rl": {"algorithm": "rloo", "args": {"num_generations": 2}}})
    assert cfg.rl.args == {"num_generations": 2}
