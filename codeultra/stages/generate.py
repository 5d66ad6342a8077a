"""`generate`: every instruction answered by k models drawn from the pool.

Cells are (instruction, principle, model, sampling, template version). Models are drawn
per instruction by rendezvous hashing on (seed, instruction, model): seeded and
reproducible, and adding a model to the pool only ever adds that model's cells.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pandas as pd

from codeultra.backends import make_backend
from codeultra.backends.base import ChatRequest, ChatResult
from codeultra.cells import Cell, CellStore, ShardSpec, cell_key, shard_of
from codeultra.config import GenerateConfig, Recipe, Sampling
from codeultra.errors import BudgetExhausted, UserError
from codeultra.io import load_table, rename_columns, require_columns, write_json, write_parquet
from codeultra.prompts import load_yaml, render, template_version
from codeultra.stages.runner import RunStats, run_cells

PREFERENCES = ("instruction-following", "explanation", "complexity", "readability", "style")


def _h(*parts: Any) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:16], 16)


def draw_models(instruction: str, pool: list[str], k: int | str, seed: int) -> list[str]:
    """The k pool members with the smallest hash for this instruction (all if k='all')."""
    ranked = sorted(pool, key=lambda m: _h(seed, instruction, m))
    return ranked if k == "all" else ranked[: int(k)]


def pick_principle(instruction: str, preference: str, principles: dict, seed: int) -> str:
    options = principles.get(preference)
    if not options:
        raise UserError(f"no principle for preference {preference!r} in the principles file")
    return options[_h(seed, "principle", instruction) % len(options)]


def load_instructions(recipe: Recipe, input_path: str | None, limit: int | None) -> pd.DataFrame:
    source = input_path or recipe.data.path
    df = load_table(source, recipe.data.split)
    if recipe.data.columns:
        df = rename_columns(df, recipe.data.columns, source)
    require_columns(df, ["instruction", "preference"], source, "an instructions file")
    if recipe.data.subset != "all" and "split" in df.columns:
        df = df[df["split"] == recipe.data.subset]
    df = df[df["instruction"].astype(str).str.strip() != ""].reset_index(drop=True)
    if limit is not None:
        df = df.head(limit)
    if df.empty:
        raise UserError(f"{source}: no instructions to run")
    return df


def _sampling(cfg: GenerateConfig, recipe: Recipe, model: str) -> Sampling:
    return cfg.sampling or recipe.model(model).sampling


def build_cells(df: pd.DataFrame, recipe: Recipe) -> tuple[list[Cell], list[list[str]]]:
    cfg = recipe.generate
    assert cfg is not None
    principles = load_yaml(cfg.principles)
    version = template_version(cfg.template)
    cells, drawn = [], []
    for idx, row in enumerate(df.itertuples(index=False)):
        instruction, preference = str(row.instruction), str(row.preference)
        models = draw_models(instruction, cfg.pool, cfg.models_per_instruction, cfg.seed)
        drawn.append(models)
        principle = pick_principle(instruction, preference, principles, cfg.seed)
        for m in models:
            spec = recipe.model(m)
            sampling = _sampling(cfg, recipe, m)
            key = cell_key(
                {
                    "stage": "generate",
                    "instruction": instruction,
                    "principle": principle,
                    "model": {"name": m, "backend": spec.backend, "id": spec.model},
                    "sampling": sampling.model_dump(),
                    "template": [cfg.template, version],
                }
            )
            payload = {
                "row": idx,
                "model": m,
                "system": principle,
                "user": render(cfg.template, instruction=instruction, preference=preference),
                "sampling": sampling.model_dump(),
                "template_version": version,
            }
            cells.append(Cell(key, shard_of(idx, cfg.shard_size), payload))
    return cells, drawn


def _request(cell: Cell) -> ChatRequest:
    s = cell.payload["sampling"]
    return ChatRequest(
        messages=[
            {"role": "system", "content": cell.payload["system"]},
            {"role": "user", "content": cell.payload["user"]},
        ],
        temperature=s["temperature"],
        top_p=s["top_p"],
        max_tokens=s["max_tokens"],
        seed=s["seed"],
    )


def _record(cell: Cell, res: ChatResult) -> dict[str, Any]:
    choice = res.choices[0] if res.choices else None
    return {
        "model": cell.payload["model"],
        "response": choice.text if choice and res.ok else "",
        "finish_reason": choice.finish_reason if choice else None,
        "error": res.error,
        "prompt_tokens": res.usage.prompt_tokens,
        "completion_tokens": res.usage.completion_tokens,
        "latency_s": round(res.latency_s, 4),
        "cost_usd": res.cost_usd,
        "attempts": res.attempts,
        "finished_at": time.time(),
    }


def run_generate(
    recipe: Recipe,
    *,
    input_path: str | None = None,
    output: str | Path | None = None,
    limit: int | None = None,
    shard: ShardSpec | None = None,
) -> dict[str, Any]:
    if recipe.generate is None:
        raise UserError("recipe has no `generate` section")
    cfg = recipe.generate
    shard = shard or ShardSpec()
    out = Path(output) if output else recipe.work_dir / "responses.parquet"
    df = load_instructions(recipe, input_path, limit)
    cells, drawn = build_cells(df, recipe)
    mine = [c for c in cells if shard.owns(c.shard)]
    stats = RunStats()
    started = time.perf_counter()
    with CellStore(recipe.work_dir / "cells", "generate") as store:
        pending = store.pending(mine, cfg.retry_errors)
        by_model: dict[str, list[Cell]] = {}
        for c in pending:
            by_model.setdefault(c.payload["model"], []).append(c)
        for model in cfg.pool:
            todo = by_model.get(model)
            if not todo:
                continue
            budget = None if cfg.budget_usd is None else cfg.budget_usd - stats.cost_usd
            if budget is not None and budget <= 0:
                raise BudgetExhausted(f"budget ${cfg.budget_usd:.2f} reached; rerun to resume")
            with make_backend(model, recipe.model(model), budget_usd=budget) as backend:
                run_cells(
                    store, todo, backend, _request, _record, stats=stats, desc=f"generate {model}"
                )
        missing = [c for c in cells if store.get(c.key) is None]
        summary = {
            "stage": "generate",
            "instructions": len(df),
            "cells": len(cells),
            "cells_this_shard": len(mine),
            "computed": stats.requests,
            "reused": len(mine) - len(pending),
            "failed_cells": sum(1 for c in cells if (store.get(c.key) or {}).get("error")),
            "wall_s": round(time.perf_counter() - started, 2),
            **{k: v for k, v in stats.as_dict().items() if k != "requests"},
        }
        if missing:  # other shards still running: keep the journal, write no output yet
            summary["output"] = None
            summary["missing_cells"] = len(missing)
            return summary
        table = assemble(df, cells, drawn, store, recipe)
    write_parquet(table, out, metadata={"recipe": recipe.model_dump(), "summary": summary})
    write_json(summary, out.with_suffix(".summary.json"))
    summary["output"] = str(out)
    return summary


def assemble(
    df: pd.DataFrame, cells: list[Cell], drawn: list[list[str]], store: CellStore, recipe: Recipe
) -> pd.DataFrame:
    by_row: dict[int, dict[str, dict[str, Any]]] = {}
    for c in cells:
        rec = store.get(c.key)
        assert rec is not None
        by_row.setdefault(c.payload["row"], {})[c.payload["model"]] = {
            **rec,
            "cell_key": c.key,
            "principle": c.payload["system"],
            "sampling": c.payload["sampling"],
            "template_version": c.payload["template_version"],
        }
    rows = []
    keep = [c for c in ("id", "split") if c in df.columns]
    for idx, row in enumerate(df.itertuples(index=False)):
        recs = by_row[idx]
        models = drawn[idx]
        first = recs[models[0]]
        out = {k: getattr(row, k) for k in keep}
        out.update(
            {
                "instruction": str(row.instruction),
                "preference": str(row.preference),
                "principle": first["principle"],
                "models": models,
                "responses": [{"model": m, "response": recs[m]["response"]} for m in models],
                "generation": [
                    {
                        "model": m,
                        "status": "error" if recs[m]["error"] else "ok",
                        "error": recs[m]["error"],
                        "finish_reason": recs[m]["finish_reason"],
                        "temperature": recs[m]["sampling"]["temperature"],
                        "top_p": recs[m]["sampling"]["top_p"],
                        "max_tokens": recs[m]["sampling"]["max_tokens"],
                        "prompt_tokens": recs[m]["prompt_tokens"],
                        "completion_tokens": recs[m]["completion_tokens"],
                        "latency_s": recs[m]["latency_s"],
                        "cost_usd": recs[m]["cost_usd"],
                        "attempts": recs[m]["attempts"],
                        "cell_key": recs[m]["cell_key"],
                    }
                    for m in models
                ],
                "template_version": first["template_version"],
            }
        )
        rows.append(out)
    return pd.DataFrame(rows)
