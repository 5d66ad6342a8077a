"""The recipe's `rlaif:` section: one sub-section per pipeline step, plus data and policy.

`args` of the training steps map straight onto TRL's SFTConfig / RewardConfig /
GRPOConfig (or RLOOConfig); their keys are checked against those dataclasses when the
recipe is read, so a typo fails at once instead of after a model has loaded.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from functools import cache
from typing import Any, Literal

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from codeultra.config import Recipe, Strict, parse_model
from codeultra.training.config import LoraSection

Hub = Literal["huggingface", "torchhub", "tensorflowhub"]
PolicyName = Literal["base", "sft", "rlaif"]
# args keys codeultra sets itself in every training step.
_MANAGED = ("output_dir", "model_init_kwargs", "resume_from_checkpoint")

DEFAULT_QUESTIONS = ["api_exists", "arguments", "does_task", "runs", "no_invented"]


class DataSection(Strict):
    apibench: str | None = None  # Gorilla's data/ folder; None: ../shared/data/apibench
    hubs: list[Hub] = Field(default_factory=lambda: ["torchhub", "huggingface", "tensorflowhub"])
    eval_fraction: float = Field(0.2, gt=0.0, lt=1.0)  # hubs without a train file
    seed: int = 0
    sft_per_hub: int | None = Field(32, ge=1)  # SFT pairs per hub (None: all)
    rl_per_hub: int = Field(4, ge=1)  # instructions per hub for sampling, feedback and RL
    eval_per_hub: int | None = Field(16, ge=1)  # held-out items per hub (None: all)
    target: Literal["compact", "raw"] = "compact"  # compact: no explanation, short code
    max_code_lines: int = Field(12, ge=1)  # compact targets keep a parseable prefix this long

    @field_validator("hubs")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("name at least one hub")
        if len(set(v)) != len(v):
            raise ValueError("hubs are listed twice")
        return v


class PolicySection(Strict):
    """The small model being aligned: a bundled GGUF alias, a .gguf, a folder or a Hub id."""

    model: str = "smollm2-135m"
    chat_template: str | None = None  # Jinja text; for models without one (GPT-2)
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"


class SftSection(Strict):
    lora: LoraSection = Field(default_factory=lambda: LoraSection(enabled=False))
    args: dict[str, Any] = Field(default_factory=dict)  # any trl.SFTConfig field

    @field_validator("args")
    @classmethod
    def _args(cls, v: dict[str, Any]) -> dict[str, Any]:
        return validate_args("sft", v)


class SampleSection(Strict):
    n: int = Field(3, ge=2)  # candidates per instruction (pairs need two)
    temperature: float = Field(0.9, gt=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(8, ge=1)
    seed: int = 0


class FeedbackSection(Strict):
    # A recipe model name, a list (the first one usable wins), or "auto": the strongest
    # local GGUF present (qwen2.5-coder-1.5b, else -0.5b, else smollm2-135m).
    judge: str | list[str] = "auto"
    questions: list[str] = Field(default_factory=lambda: list(DEFAULT_QUESTIONS))
    weights: dict[str, float] = Field(default_factory=dict)  # question -> weight (default 1)
    top_logprobs: int = Field(5, ge=2)
    fallback_samples: int = Field(5, ge=1)  # share-of-Yes samples when there are no logprobs
    fallback_temperature: float = Field(1.0, gt=0.0)
    show_reference: bool = True  # give the judge the reference API of the (training) item
    seed: int = 0
    retry_errors: bool = True

    @model_validator(mode="after")
    def _check(self) -> FeedbackSection:
        if not self.questions:
            raise ValueError("questions: name at least one question")
        if len(set(self.questions)) != len(self.questions):
            raise ValueError("questions: a question is listed twice")
        unknown = sorted(set(self.weights) - set(self.questions))
        if unknown:
            raise ValueError(f"weights for questions not asked: {unknown}")
        if any(w < 0 for w in self.weights.values()) or not any(
            self.weights.get(q, 1.0) > 0 for q in self.questions
        ):
            raise ValueError("weights must be >= 0 with at least one > 0")
        return self


class RewardSection(Strict):
    # What the reward model starts from: the SFT policy, the base policy, or a model path.
    init: str = "sft"
    min_margin: float = Field(0.05, ge=0.0)  # combined-score gap that makes a pair
    use_margin: bool = False  # pass the score gap to TRL's margin loss
    eval_fraction: float = Field(0.25, gt=0.0, lt=1.0)  # held-out instructions
    seed: int = 0
    lora: LoraSection = Field(default_factory=lambda: LoraSection(enabled=False))
    args: dict[str, Any] = Field(default_factory=dict)  # any trl.RewardConfig field

    @field_validator("args")
    @classmethod
    def _args(cls, v: dict[str, Any]) -> dict[str, Any]:
        return validate_args("reward", v)


class RlSection(Strict):
    algorithm: Literal["grpo", "rloo"] = "grpo"
    reward_weight: float = Field(1.0, ge=0.0)
    exec_reward_weight: float = Field(0.0, ge=0.0)  # executability as a second reward
    exec_timeout_s: float = Field(5.0, gt=0.0)
    lora: LoraSection = Field(default_factory=lambda: LoraSection(enabled=False))
    kl_prompts: int = Field(8, ge=0)  # prompts for the final KL(RLAIF || SFT) estimate
    kl_max_new_tokens: int = Field(96, ge=1)
    args: dict[str, Any] = Field(default_factory=dict)  # any trl.GRPOConfig / RLOOConfig field

    @model_validator(mode="after")
    def _check(self) -> RlSection:
        self.args = validate_args(self.algorithm, self.args)
        if self.reward_weight == 0 and self.exec_reward_weight == 0:
            raise ValueError("reward_weight and exec_reward_weight are both 0: nothing to learn")
        return self


class EvaluateSection(Strict):
    policies: list[PolicyName] = Field(default_factory=lambda: ["base", "sft", "rlaif"])
    max_new_tokens: int = Field(128, ge=1)
    batch_size: int = Field(8, ge=1)
    workers: int = Field(2, ge=1)  # sandbox / CodeBLEU processes
    match: Literal["exact", "gorilla"] = "exact"
    run_code: bool = True


class RlaifConfig(Strict):
    data: DataSection = Field(default_factory=DataSection)
    policy: PolicySection = Field(default_factory=PolicySection)
    sft: SftSection = Field(default_factory=SftSection)
    sample: SampleSection = Field(default_factory=SampleSection)
    feedback: FeedbackSection = Field(default_factory=FeedbackSection)
    reward: RewardSection = Field(default_factory=RewardSection)
    rl: RlSection = Field(default_factory=RlSection)
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)


def load_rlaif_config(recipe: Recipe) -> RlaifConfig:
    return parse_model(RlaifConfig, recipe.rlaif or {}, "recipe rlaif")


def trl_config_class(kind: str) -> type:
    """TRL's config dataclass of a step (imported lazily: TRL takes seconds to import)."""
    import trl

    names = {
        "sft": "SFTConfig",
        "reward": "RewardConfig",
        "grpo": "GRPOConfig",
        "rloo": "RLOOConfig",
    }
    return getattr(trl, names[kind])


@cache
def _fields(kind: str) -> tuple[str, frozenset[str], dict[str, Any]]:
    cls = trl_config_class(kind)
    names = frozenset(f.name for f in dataclasses.fields(cls) if f.init)
    return cls.__name__, names, typing.get_type_hints(cls)


def validate_args(kind: str, args: dict[str, Any]) -> dict[str, Any]:
    """Refuse unknown or managed keys; coerce values to TRL's hints (YAML reads 1e-4 as str)."""
    if not args:
        return {}
    cls_name, names, hints = _fields(kind)
    out: dict[str, Any] = {}
    for key, value in args.items():
        if key in _MANAGED:
            raise ValueError(f"args.{key} is set by codeultra")
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=1)
            tail = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(f"unknown {cls_name} arg '{key}'{tail}")
        hint = hints.get(key)
        if hint is None or value is None:
            out[key] = value
            continue
        try:
            adapter = TypeAdapter(hint)
        except Exception:  # noqa: BLE001 - a hint pydantic cannot read: TRL checks it
            out[key] = value
            continue
        try:
            out[key] = adapter.validate_python(value)
        except ValidationError:
            raise ValueError(f"args.{key} = {value!r} does not fit {hint}") from None
    return out
