"""Training recipes: one YAML file = one run (alignment-handbook style).

The `args:` section maps straight onto TRL's SFTConfig/DPOConfig. Its keys are checked against
that dataclass's own fields, and values against its type hints, when the recipe is loaded, so a
typo fails in a second with its name instead of after the model has loaded.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from codeultra.errors import UserError

DType = Literal["auto", "float32", "bfloat16", "float16"]

# args keys that codeultra sets itself, with where to set them instead.
_MANAGED_ARGS = {
    "model_init_kwargs": "use the model: section (dtype, attn_implementation, trust_remote_code)",
    "resume_from_checkpoint": "codeultra resumes from the last checkpoint by itself (--no-resume)",
}
# Keys that older TRL/transformers had, with their replacement.
_RENAMED_ARGS = {
    "warmup_ratio": "warmup_steps (a float below 1 is a ratio of the total steps)",
    "max_prompt_length": "max_length and truncation_mode",
    "max_seq_length": "max_length",
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ModelSection(_Section):
    """Which weights to start from and how to load them."""

    name_or_path: str | None = None  # Hub id or local folder
    gguf: str | None = None  # alias of a bundled GGUF (smollm2-135m) or a .gguf path
    chat_template: str | None = None  # Jinja text, or a path to a .jinja file
    dtype: DType = "auto"
    attn_implementation: str | None = None  # eager, sdpa, flash_attention_2, ...
    trust_remote_code: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> ModelSection:
        if (self.name_or_path is None) == (self.gguf is None):
            raise ValueError("set exactly one of model.name_or_path and model.gguf")
        return self


class LoraSection(_Section):
    enabled: bool = True
    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"

    def peft(self, task_type: str = "CAUSAL_LM") -> Any:
        """A peft LoraConfig, or None when LoRA is off (full fine-tuning)."""
        if not self.enabled:
            return None
        from peft import LoraConfig

        return LoraConfig(
            task_type=task_type,
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=self.target_modules,
            bias="none",
        )


class QuantizationSection(_Section):
    """bitsandbytes settings (QLoRA); these need a CUDA GPU."""

    load_in_4bit: bool = False
    load_in_8bit: bool = False
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = "nf4"
    bnb_4bit_compute_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    bnb_4bit_use_double_quant: bool = True

    @property
    def enabled(self) -> bool:
        return self.load_in_4bit or self.load_in_8bit

    @model_validator(mode="after")
    def _one_mode(self) -> QuantizationSection:
        if self.load_in_4bit and self.load_in_8bit:
            raise ValueError("set at most one of quantization.load_in_4bit and load_in_8bit")
        return self


class DataSection(_Section):
    """Where the rows come from; columns are renamed to TRL's names before training."""

    train: str  # pairs folder (train.parquet [+ test.parquet]), a .parquet file, or hub:ORG/NAME
    test: str | None = None  # .parquet file; defaults to test.parquet beside train.parquet
    train_split: str = "train"  # for hub: datasets
    test_split: str = "test"
    prompt_column: str = "prompt"
    chosen_column: str = "chosen"
    rejected_column: str = "rejected"
    completion_column: str = "completion"  # SFT; set to `chosen` to fine-tune on the pairs
    messages_column: str = "messages"  # SFT


class TrainingRecipe(_Section):
    description: str | None = None
    trainer: Literal["sft", "dpo"]
    model: ModelSection
    lora: LoraSection = LoraSection()
    quantization: QuantizationSection = QuantizationSection()
    data: DataSection
    args: dict[str, Any] = {}
    source: Path | None = Field(None, exclude=True)  # the YAML it came from, for messages

    @model_validator(mode="after")
    def _check_args(self) -> TrainingRecipe:
        self.args = validate_trainer_args(self.trainer, self.args)
        if self.quantization.enabled and self.args.get("use_cpu"):
            raise ValueError(
                "quantization (bitsandbytes 4/8-bit) needs a CUDA GPU but args.use_cpu is true; "
                "set quantization.load_in_4bit: false for CPU runs"
            )
        return self


def trainer_config_class(trainer: str) -> type:
    """TRL's config dataclass for `trainer` (imported lazily: TRL takes seconds to import)."""
    if trainer == "dpo":
        from trl import DPOConfig

        return DPOConfig
    from trl import SFTConfig

    return SFTConfig


@cache
def _fields_and_hints(trainer: str) -> tuple[str, dict[str, Any], frozenset[str]]:
    cls = trainer_config_class(trainer)
    hints = typing.get_type_hints(cls)
    names = frozenset(f.name for f in dataclasses.fields(cls) if f.init)
    return cls.__name__, hints, names


def validate_trainer_args(trainer: str, args: dict[str, Any]) -> dict[str, Any]:
    """Refuse keys that are not fields of TRL's config class; coerce values to its type hints.

    Coercion matters because YAML reads `2e-4` as a string; TRL would fail on it much later.
    """
    cls_name, hints, names = _fields_and_hints(trainer)
    out: dict[str, Any] = {}
    for key, value in args.items():
        if key in _MANAGED_ARGS:
            raise ValueError(f"training arg '{key}' is set by codeultra: {_MANAGED_ARGS[key]}")
        if key not in names:
            hint = _RENAMED_ARGS.get(key)
            if hint is None:
                close = difflib.get_close_matches(key, sorted(names), n=1)
                hint = f"'{close[0]}'" if close else None
            tail = f" (did you mean {hint}?)" if hint else ""
            raise ValueError(f"unknown training arg '{key}' for {cls_name}{tail}")
        out[key] = _coerce(key, value, hints.get(key))
    return out


def _coerce(key: str, value: Any, hint: Any) -> Any:
    if hint is None or value is None:
        return value
    adapter = TypeAdapter(hint)
    try:
        return adapter.validate_python(value)
    except ValidationError:
        pass
    # TRL accepts a single string where its hint says list[str] (e.g. loss_type: sigmoid).
    if typing.get_origin(hint) is list and not isinstance(value, list):
        try:
            adapter.validate_python([value])
            return value
        except ValidationError:
            pass
    raise ValueError(f"training arg '{key}' should be {_type_name(hint)}, got {value!r}")


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def load_training_recipe(path: str | Path) -> TrainingRecipe:
    """Read and validate a recipe YAML; any problem is a one-line UserError naming it."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"training recipe not found: {path}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{path}:{where} invalid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a training recipe must be a YAML mapping")
    return recipe_from_dict(raw, source=path)


def recipe_from_dict(raw: dict[str, Any], source: Path | None = None) -> TrainingRecipe:
    where = f"{source}: " if source else ""
    try:
        recipe = TrainingRecipe.model_validate(raw)
    except ValidationError as e:
        raise UserError(where + _describe(e)) from None
    recipe.source = source
    return recipe


def _describe(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}'")
        elif err["type"] == "missing":
            parts.append(f"missing key '{loc}'")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            value = err.get("input")
            if err["type"] != "value_error" and not isinstance(value, dict | list):
                msg += f", got {value!r}"
            parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)
