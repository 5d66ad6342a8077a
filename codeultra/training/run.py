"""Run one training recipe with TRL: SFT or DPO, LoRA/QLoRA, resumable, atomic outputs.

Layout of the output folder: checkpoint-*/ (TRL's, for resuming), adapter/ (LoRA weights +
tokenizer), merged/ (base + adapter as one safetensors model + tokenizer), metrics.json.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import resource
import shutil
import time
from pathlib import Path
from typing import Any

from codeultra.errors import UserError
from codeultra.training.config import TrainingRecipe, load_training_recipe, trainer_config_class
from codeultra.training.convert_gguf import ensure_hf_model
from codeultra.training.data import load_training_data
from codeultra.training.save import save_outputs
from codeultra.training.validate import check_chat_template

_CHECKPOINT = re.compile(r"^checkpoint-\d+$")


def train(
    recipe: str | Path | TrainingRecipe,
    *,
    output_dir: str | Path | None = None,
    resume: bool = True,
    limit: int | None = None,
    data: str | Path | None = None,
) -> dict[str, Any]:
    """Train as the recipe says; returns metrics (also written to output_dir/metrics.json).

    `resume` continues from the newest checkpoint-* in output_dir; without it old checkpoints
    are deleted first. `limit` keeps the first N training rows; `data` replaces data.train.
    """
    if not isinstance(recipe, TrainingRecipe):
        recipe = load_training_recipe(recipe)
    if data is not None:
        new_data = recipe.data.model_copy(update={"train": str(data)})
        recipe = recipe.model_copy(update={"data": new_data})
    _check_hardware(recipe)
    out = Path(output_dir or recipe.args.get("output_dir") or default_output_dir(recipe))

    with_test = recipe.args.get("eval_strategy", "no") != "no"
    train_rows, test_rows = load_training_data(
        recipe.data, recipe.trainer, limit=limit, with_test=with_test
    )
    model_path = resolve_model(recipe)
    tokenizer = load_tokenizer(recipe, model_path)
    args = build_trainer_args(recipe, out)
    checkpoint = _prepare_output_dir(out, resume)

    if args.disable_tqdm:
        from datasets import disable_progress_bars

        disable_progress_bars()  # TRL's tokenize/map bars too
    trainer = _make_trainer(recipe, model_path, tokenizer, args, train_rows, test_rows)
    cpu_start = time.process_time()
    result = trainer.train(resume_from_checkpoint=True if checkpoint else None)
    cpu_s = time.process_time() - cpu_start
    saved = save_outputs(trainer, tokenizer, recipe, model_path, out)

    metrics = _metrics(trainer, result, checkpoint, recipe, len(train_rows), cpu_s)
    metrics.update(output_dir=str(out), **{k: str(v) for k, v in saved.items()})
    _write_json(out / "metrics.json", metrics)
    return metrics


def default_output_dir(recipe: TrainingRecipe) -> Path:
    """runs/train/<recipe folder>-<trainer>, e.g. runs/train/smollm2-135m-dpo."""
    stem = recipe.source.parent.name if recipe.source else "recipe"
    return Path("runs") / "train" / f"{stem}-{recipe.trainer}"


def resolve_model(recipe: TrainingRecipe) -> str:
    """A local folder or Hub id that from_pretrained accepts (GGUF converted once, cached)."""
    if recipe.model.gguf:
        return str(ensure_hf_model(recipe.model.gguf))
    return recipe.model.name_or_path or ""


def load_tokenizer(recipe: TrainingRecipe, model_path: str) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            model_path, trust_remote_code=recipe.model.trust_remote_code
        )
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load model '{model_path}': {str(e).splitlines()[0]}") from None
    template = recipe.model.chat_template
    if template:
        tokenizer.chat_template = _read_template(template, recipe.source)
    check_chat_template(tokenizer, model_path)
    return tokenizer


def _read_template(template: str, source: Path | None) -> str:
    """Jinja text, or a .jinja file path (relative to the recipe's folder, else the cwd)."""
    if not template.endswith(".jinja"):
        return template
    candidates = [Path(template)]
    if source is not None:
        candidates.insert(0, source.parent / template)
    for path in candidates:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise UserError(f"model.chat_template file not found: {template}")


def build_trainer_args(recipe: TrainingRecipe, out: Path) -> Any:
    """TRL's SFTConfig/DPOConfig from recipe.args plus what codeultra owns."""
    cls = trainer_config_class(recipe.trainer)
    kwargs = dict(recipe.args)
    kwargs["output_dir"] = str(out)
    if os.environ.get("CODEULTRA_NO_PROGRESS") == "1":  # tests and CI logs
        kwargs.setdefault("disable_tqdm", True)
    kwargs["model_init_kwargs"] = {
        "dtype": recipe.model.dtype,
        "trust_remote_code": recipe.model.trust_remote_code,
        **({"attn_implementation": a} if (a := recipe.model.attn_implementation) else {}),
    }
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        raise UserError(f"invalid training args for {cls.__name__}: {e}") from None


def quantization_config(recipe: TrainingRecipe) -> Any:
    q = recipe.quantization
    if not q.enabled:
        return None
    import torch
    from transformers import BitsAndBytesConfig

    if q.load_in_8bit:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=q.bnb_4bit_quant_type,
        bnb_4bit_compute_dtype=getattr(torch, q.bnb_4bit_compute_dtype),
        bnb_4bit_use_double_quant=q.bnb_4bit_use_double_quant,
    )


def _check_hardware(recipe: TrainingRecipe) -> None:
    """Refuse early (before any download) what this machine cannot run."""
    if not recipe.quantization.enabled:
        return
    import torch

    if not torch.cuda.is_available():
        raise UserError(
            "this recipe loads the model in 4/8-bit (quantization.load_in_4bit), which needs a "
            "CUDA GPU and there is none; use a CPU recipe (recipes/smollm2-135m/) or turn "
            "quantization off"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError("quantization needs the bitsandbytes package: pip install bitsandbytes")


def _prepare_output_dir(out: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from, if any; a fresh start removes old checkpoints."""
    if not out.is_dir():
        return None
    checkpoints = sorted(
        (p for p in out.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)),
        key=lambda p: int(p.name.split("-")[1]),
    )
    if resume:
        return checkpoints[-1] if checkpoints else None
    for p in checkpoints:
        shutil.rmtree(p)
    return None


def _make_trainer(recipe, model_path, tokenizer, args, train_rows, test_rows) -> Any:
    if recipe.trainer == "dpo":
        from trl import DPOTrainer as trainer_cls
    else:
        from trl import SFTTrainer as trainer_cls
    # The model goes in as a path so TRL loads it (dtype, device map, quantization) exactly as
    # its own CLI does; with a peft_config, DPO's reference is the base model under the adapter.
    try:
        return trainer_cls(
            model=model_path,
            args=args,
            train_dataset=train_rows,
            eval_dataset=test_rows,
            processing_class=tokenizer,
            peft_config=recipe.lora.peft(),
            quantization_config=quantization_config(recipe),
        )
    except OSError as e:
        raise UserError(f"cannot load model '{model_path}': {str(e).splitlines()[0]}") from None


def _metrics(trainer, result, checkpoint, recipe, n_rows: int, cpu_s: float) -> dict[str, Any]:
    m = dict(result.metrics)
    runtime = float(m.get("train_runtime") or 0.0)
    tokens = getattr(trainer, "_total_train_tokens", None)  # counted by TRL's compute_loss
    metrics: dict[str, Any] = {
        "trainer": recipe.trainer,
        "train_rows": n_rows,
        "global_step": trainer.state.global_step,
        "resumed_from": str(checkpoint) if checkpoint else None,
        "train_loss": m.get("train_loss"),
        "train_runtime_s": runtime,
        "train_tokens": tokens,
        "tokens_per_s": (tokens / runtime) if tokens and runtime > 0 else None,
        # CPU seconds of this process: steadier than wall time on a shared machine.
        "train_cpu_s": cpu_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    import torch

    if torch.cuda.is_available():
        metrics["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return metrics


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
