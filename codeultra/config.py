"""Typed recipes: one YAML is one run.

Every section is a pydantic model with `extra="forbid"`, so a misspelt key is refused
with its dotted path instead of being silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from codeultra.errors import UserError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Sampling(Strict):
    temperature: float = Field(0.8, ge=0.0, le=5.0)
    top_p: float = Field(0.8, gt=0.0, le=1.0)
    max_tokens: int = Field(1024, ge=1)
    seed: int | None = None


class ModelSpec(Strict):
    """One entry of the model registry: name -> how to reach it."""

    backend: Literal["llamacpp", "openai", "vllm", "transformers"]
    model: str  # GGUF alias/path, litellm model id, or HF id/path
    api_base: str | None = None  # openai: server URL (vLLM, SGLang, Ollama, llama.cpp, ...)
    api_key_env: str | None = None  # name of the env var holding the key; never the key
    chat_template: str | None = None
    sampling: Sampling = Field(default_factory=Sampling)
    # Throughput and resilience.
    max_concurrency: int = Field(8, ge=1)
    rpm: float | None = Field(None, gt=0)  # client-side requests per minute
    tpm: float | None = Field(None, gt=0)  # client-side tokens per minute
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(5, ge=0)
    # Embedded llama.cpp server.
    n_ctx: int = Field(4096, ge=256)
    n_parallel: int = Field(4, ge=1)
    n_threads: int | None = Field(None, ge=1)
    sha256: str | None = None  # refuse a GGUF whose hash differs
    # Offline engines (vllm, transformers).
    batch_size: int = Field(8, ge=1)
    engine_args: dict[str, Any] = Field(default_factory=dict)


class DataSpec(Strict):
    path: str = "data/instructions.jsonl"  # local JSONL/Parquet/CSV or hub:ORG/NAME
    split: str = "train"
    columns: dict[str, str] = Field(default_factory=dict)  # our name -> source column
    subset: Literal["all", "train", "heldout"] = "train"


class GenerateConfig(Strict):
    pool: list[str] = Field(min_length=1)
    models_per_instruction: int | Literal["all"] = 4
    seed: int = 42
    template: str = "generate/principle.j2"
    principles: str = "generate/principles.yaml"
    sampling: Sampling | None = None  # overrides every model's own sampling
    shard_size: int = Field(64, ge=1)
    budget_usd: float | None = Field(None, gt=0)
    retry_errors: bool = True  # a rerun retries cells that failed before

    @field_validator("models_per_instruction")
    @classmethod
    def _positive(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 1:
            raise ValueError("must be >= 1 or 'all'")
        return v


class ReliabilityConfig(Strict):
    sample: int = Field(20, ge=1)  # rows re-judged for position bias and self-consistency
    temperature: float = Field(0.7, gt=0.0)  # self-consistency re-judging temperature
    seed: int = 7


class JudgeConfig(Strict):
    model: str = "auto"  # a registry name, or "auto": the strongest local GGUF present
    mode: Literal["all", "one"] = "all"  # one call sees all k responses, or one per response
    seed: int = 42  # display-order seed (recorded per row)
    temperature: float = Field(0.0, ge=0.0)
    max_tokens: int = Field(1024, ge=16)
    structured: bool = True  # JSON-schema output where the backend supports it
    max_reasks: int = Field(2, ge=0)  # re-asks for an unparseable reply before giving up
    signals: bool = True  # code-grounded evidence (parse, ruff, sandbox run) as columns
    evidence: bool = False  # show those signals to the judge
    sandbox_timeout_s: float = Field(5.0, gt=0)
    shard_size: int = Field(32, ge=1)
    retry_errors: bool = True
    reliability: ReliabilityConfig = Field(default_factory=ReliabilityConfig)


class PairsConfig(Strict):
    strategy: Literal["best-worst", "best-vs-random-lower", "all-pairs"] = "best-worst"
    margin: float = Field(1.0, ge=0)
    seed: int = 42
    test_fraction: float = Field(0.05, ge=0, lt=1)


class RunSpec(Strict):
    name: str = "run"
    work_dir: str = "runs/default"


class Recipe(Strict):
    """A whole run. Stage sections are optional: a stage refuses to run without its own."""

    run: RunSpec = Field(default_factory=RunSpec)
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    data: DataSpec = Field(default_factory=DataSpec)
    generate: GenerateConfig | None = None
    judge: JudgeConfig | None = None
    pairs: PairsConfig | None = None
    train: dict[str, Any] | None = None
    eval: dict[str, Any] | None = None  # validated by codeultra.evaluation.config
    rlaif: dict[str, Any] | None = None  # validated by codeultra.rlaif.config

    def model(self, name: str) -> ModelSpec:
        if name not in self.models:
            known = ", ".join(sorted(self.models)) or "none"
            raise UserError(f"unknown model {name!r} (recipe models: {known})")
        return self.models[name]

    @property
    def work_dir(self) -> Path:
        return Path(self.run.work_dir)


def format_validation_error(err: ValidationError, source: str) -> str:
    """First problem as one line: `recipe.yaml: models.smol.sampling.top_p: Input should be ...`."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "<root>"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    extra = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{source}: {loc}: {msg}{extra}"


def parse_model(cls: type[BaseModel], data: Any, source: str) -> Any:
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise UserError(format_validation_error(e, source)) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"recipe not found: {p}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{p}: invalid YAML{where}: {getattr(e, 'problem', e)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{p}: a recipe must be a mapping of sections, got {type(data).__name__}")
    return data


def load_recipe(path: str | Path) -> Recipe:
    data = {k: v for k, v in read_yaml(path).items() if not str(k).startswith("x-")}  # anchors
    recipe = parse_model(Recipe, data, str(path))
    for stage in ("generate",):
        section = getattr(recipe, stage)
        if section is not None:
            for name in section.pool:
                recipe.model(name)
    return recipe
