"""Write the trained adapter and the merged model, each into a temp folder renamed into place."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any


def save_outputs(trainer: Any, tokenizer: Any, recipe: Any, model_path: str, out: Path) -> dict:
    """Save adapter/ (LoRA only) and merged/; returns their paths."""
    from peft import PeftModel

    model = trainer.accelerator.unwrap_model(trainer.model)
    saved: dict[str, Path] = {}
    if isinstance(model, PeftModel):
        saved["adapter_dir"] = atomic_dir(out / "adapter", lambda tmp: _save(model, tokenizer, tmp))
        if recipe.quantization.enabled:
            # Merging into 4-bit weights would round the update away: use a full-precision base.
            merged = _merge_into_fresh_base(recipe, model_path, saved["adapter_dir"])
        else:
            merged = model.merge_and_unload()
    else:
        merged = model
    merged.config.use_cache = True  # training turns it off; generation wants it
    saved["merged_dir"] = atomic_dir(out / "merged", lambda tmp: _save(merged, tokenizer, tmp))
    return saved


def _save(model: Any, tokenizer: Any, folder: Path) -> None:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _merge_into_fresh_base(recipe: Any, model_path: str, adapter_dir: Path) -> Any:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    dtype = recipe.quantization.bnb_4bit_compute_dtype
    base = AutoModelForCausalLM.from_pretrained(
        model_path, dtype=getattr(torch, dtype), trust_remote_code=recipe.model.trust_remote_code
    )
    return PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()


def atomic_dir(dest: Path, write: Callable[[Path], None]) -> Path:
    """Fill a temp sibling of `dest`, then swap it in, so `dest` is never half-written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    for leftover in (tmp, old):
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        write(tmp)
        if dest.exists():
            dest.rename(old)
        try:
            tmp.rename(dest)
        except OSError:
            if old.exists():
                old.rename(dest)  # put the previous result back
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return dest
