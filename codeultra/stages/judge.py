"""`judge`: rate every response on its instruction's coding preference, number + rationale.

CodeUltraFeedback's protocol by default: one call sees the instruction and all k responses
in a seeded shuffled order (recorded per row) and rates each. Ratings are mapped back
through that recorded order, never by searching response text. An unparseable reply is
re-asked up to `max_reasks` times, then stored as null ratings with a reason; the raw
replies are always kept. Cells: (instruction, responses, judge, templates, order, mode).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from codeultra.backends import make_backend
from codeultra.backends.base import Backend, ChatRequest, ChatResult
from codeultra.cells import Cell, CellStore, ShardSpec, cell_key, shard_of
from codeultra.config import JudgeConfig, ModelSpec, Recipe, Sampling
from codeultra.errors import UserError
from codeultra.io import load_table, require_columns, write_json, write_parquet
from codeultra.judging import (
    judge_json_schema,
    judge_prompt_version,
    judge_response_format,
    make_nonce,
    parse_judge_reply,
    render_judge_messages,
    shuffle_order,
)
from codeultra.judging.rubrics import PREFERENCES
from codeultra.models import available_packs
from codeultra.progress import bar
from codeultra.stages.runner import RunStats

ANNOTATION = pa.list_(
    pa.struct([("model", pa.string()), ("rating", pa.int32()), ("rationale", pa.string())])
)
SIGNALS = pa.list_(
    pa.struct(
        [
            ("model", pa.string()),
            ("has_code", pa.bool_()),
            ("parses", pa.bool_()),
            ("ruff_issues", pa.int32()),
            ("self_contained", pa.bool_()),
            ("runs", pa.string()),
        ]
    )
)


def resolve_judge(recipe: Recipe, cfg: JudgeConfig) -> tuple[str, ModelSpec]:
    """`auto` is the strongest local GGUF present (Qwen2.5-Coder-1.5B with the model pack)."""
    if cfg.model != "auto":
        return cfg.model, recipe.model(cfg.model)
    alias = available_packs()[-1]
    if alias in recipe.models:
        return alias, recipe.models[alias]
    spec = ModelSpec(
        backend="llamacpp",
        model=alias,
        n_ctx=4096,
        n_parallel=2,
        sampling=Sampling(temperature=0.0, top_p=1.0, max_tokens=cfg.max_tokens),
    )
    return alias, spec


def read_responses(path: str, limit: int | None = None) -> pd.DataFrame:
    df = load_table(path)
    require_columns(
        df, ["instruction", "preference", "models", "responses"], path, "a responses file"
    )
    bad = sorted(set(df["preference"]) - set(PREFERENCES))
    if bad:
        raise UserError(f"{path}: unknown preference value(s) {bad[:3]}; expected {PREFERENCES}")
    return df.head(limit) if limit else df


def _valid_indices(row: Any) -> list[int]:
    """Responses worth judging: non-empty text whose generation did not fail."""
    gens = getattr(row, "generation", None)
    failed = set()
    if gens is not None and not isinstance(gens, float):
        failed = {i for i, g in enumerate(gens) if g.get("status") == "error"}
    return [
        i
        for i, r in enumerate(row.responses)
        if i not in failed and str(r.get("response") or "").strip()
    ]


@dataclass
class Pass:
    """One judging pass over rows: the main run, or a reliability re-judge."""

    name: str = "main"
    order: str = "shuffled"  # shuffled | reversed
    temperature: float | None = None  # None: the judge config's
    seed_offset: int = 0


def build_cells(
    df: pd.DataFrame,
    cfg: JudgeConfig,
    judge_name: str,
    spec: ModelSpec,
    signals: list[list[dict]] | None,
    p: Pass,
) -> list[Cell]:
    cells = []
    temperature = cfg.temperature if p.temperature is None else p.temperature
    for idx, row in enumerate(df.itertuples(index=False)):
        valid = _valid_indices(row)
        if not valid:
            continue
        texts = [str(row.responses[i]["response"]) for i in valid]
        models = [str(row.responses[i]["model"]) for i in valid]
        order = shuffle_order(len(valid), cfg.seed, str(row.instruction))
        if p.order == "reversed":
            order = order[::-1]
        groups = [order] if cfg.mode == "all" else [[j] for j in order]
        for shown in groups:
            display = [valid[j] for j in shown]  # original response indices, shown order
            evidence = None
            if cfg.evidence and signals is not None:
                from codeultra.judging.signals import evidence_for_judge

                evidence = [evidence_for_judge(signals[idx][i]) for i in display]
            key = cell_key(
                {
                    "stage": "judge",
                    "instruction": str(row.instruction),
                    "preference": str(row.preference),
                    "responses": list(zip(models, texts, strict=True)),
                    "shown": display,
                    "judge": {"name": judge_name, "backend": spec.backend, "id": spec.model},
                    "prompt": judge_prompt_version(str(row.preference), cfg.mode),
                    "mode": cfg.mode,
                    "evidence": evidence,
                    "temperature": temperature,
                    "seed": cfg.seed + p.seed_offset,
                    "max_tokens": cfg.max_tokens,
                    # The reply schema shapes the answer as much as the prompt does.
                    "structured": cfg.structured and _schema_id(len(display)),
                }
            )
            shown_texts = [str(row.responses[i]["response"]) for i in display]
            nonce = make_nonce(str(row.instruction), *shown_texts)
            payload = {
                "row": idx,
                "shown": display,
                "messages": render_judge_messages(
                    str(row.instruction),
                    str(row.preference),
                    shown_texts,
                    mode=cfg.mode,
                    evidence=evidence,
                    nonce=nonce,
                ),
                "temperature": temperature,
            }
            cells.append(Cell(key, shard_of(idx, cfg.shard_size), payload))
    return cells


@functools.cache
def _schema_id(k: int) -> str:
    """Short id of the reply schema for k responses; computed once per k, not per row."""
    return cell_key(judge_json_schema(k))


def _request(cell: Cell, cfg: JudgeConfig, backend: Backend, history: list[dict]) -> ChatRequest:
    k = len(cell.payload["shown"])
    fmt = judge_response_format(k) if cfg.structured and backend.supports_response_format else None
    return ChatRequest(
        messages=cell.payload["messages"] + history,
        temperature=cell.payload["temperature"],
        top_p=1.0,
        max_tokens=cfg.max_tokens,
        seed=cfg.seed,
        response_format=fmt,
    )


def _reask(reply: str, reasons: list[str | None], k: int) -> list[dict[str, str]]:
    why = "; ".join(sorted({r for r in reasons if r})) or "no ratings found"
    return [
        {"role": "assistant", "content": reply},
        {
            "role": "user",
            "content": (
                f"Your reply could not be read ({why}). Reply again with, for each of the {k} "
                "responses, a rationale and an integer rating from 1 to 5, in the required format."
            ),
        },
    ]


def run_judge_cells(
    store: CellStore,
    cells: list[Cell],
    backend: Backend,
    cfg: JudgeConfig,
    stats: RunStats,
    desc: str,
) -> None:
    """Rounds of requests; cells whose reply does not parse are re-asked in the next round."""
    state: dict[str, dict[str, Any]] = {
        c.key: {"history": [], "raw": [], "attempts": 0, "pt": 0, "ct": 0} for c in cells
    }
    todo = list(cells)
    progress = bar(len(cells), desc)
    try:
        for round_no in range(cfg.max_reasks + 1):
            if not todo:
                break
            last = round_no == cfg.max_reasks
            retry: list[Cell] = []

            def on_result(i: int, res: ChatResult, todo=todo, last=last, retry=retry) -> None:
                cell = todo[i]
                st = state[cell.key]
                k = len(cell.payload["shown"])
                st["attempts"] += res.attempts
                st["pt"] += res.usage.prompt_tokens
                st["ct"] += res.usage.completion_tokens
                stats.add(backend.name, res)
                if not res.ok:
                    store.put(cell.shard, cell.key, _record(st, None, k, res.error))
                    progress.update(1)
                    return
                reply = res.choices[0].text if res.choices else ""
                st["raw"].append(reply)
                parsed = parse_judge_reply(reply, k)
                if parsed.status != "ok" and not last:
                    st["history"] = st["history"] + _reask(reply, parsed.reasons, k)
                    retry.append(cell)
                    return
                store.put(cell.shard, cell.key, _record(st, parsed, k, None))
                progress.update(1)

            requests = [_request(c, cfg, backend, state[c.key]["history"]) for c in todo]
            backend.chat_many(requests, on_result)
            todo = retry
    finally:
        progress.close()


def _record(st: dict[str, Any], parsed: Any, k: int, error: str | None) -> dict[str, Any]:
    if parsed is None:
        ratings, rationales = [None] * k, [None] * k
        reasons, status = ["request_error"] * k, "request_error"
    else:
        ratings, rationales = parsed.ratings, parsed.rationales
        reasons, status = parsed.reasons, parsed.status
    return {
        "ratings": ratings,
        "rationales": rationales,
        "reasons": reasons,
        "status": status,
        "raw": st["raw"],
        "attempts": st["attempts"],
        "prompt_tokens": st["pt"],
        "completion_tokens": st["ct"],
        "error": error,
        "finished_at": time.time(),
    }


def judge_frame(
    df: pd.DataFrame,
    recipe: Recipe,
    cfg: JudgeConfig,
    *,
    p: Pass | None = None,
    signals: list[list[dict]] | None = None,
    shard: ShardSpec | None = None,
    backend: Backend | None = None,
) -> tuple[list[dict[str, Any]] | None, RunStats, str]:
    """Judge every row; returns per-row results (None while other shards are unfinished)."""
    p = p or Pass()
    shard = shard or ShardSpec()
    judge_name, spec = resolve_judge(recipe, cfg)
    cells = build_cells(df, cfg, judge_name, spec, signals, p)
    stats = RunStats()
    with CellStore(recipe.work_dir / "cells", "judge") as store:
        pending = store.pending([c for c in cells if shard.owns(c.shard)], cfg.retry_errors)
        if pending:
            own = backend is None
            backend = backend or make_backend(judge_name, spec)
            try:
                run_judge_cells(store, pending, backend, cfg, stats, f"judge ({p.name})")
            finally:
                if own:
                    backend.close()
            failed = [store.get(c.key) for c in pending]
            if failed and all(r and r.get("status") == "request_error" for r in failed):
                raise UserError(
                    f"judge {judge_name}: all {len(failed)} requests failed; "
                    f"first: {failed[0]['error']}"
                )
        if any(store.get(c.key) is None for c in cells):
            return None, stats, judge_name
        return _per_row(df, cells, store), stats, judge_name


def _per_row(df: pd.DataFrame, cells: list[Cell], store: CellStore) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {
            "ratings": [None] * len(r.responses),
            "rationales": [None] * len(r.responses),
            "reasons": [None] * len(r.responses),
            "order": [],
            "raw": [],
            "statuses": [],
            "attempts": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
        }
        for r in df.itertuples(index=False)
    ]
    for c in cells:
        rec = store.get(c.key)
        out = rows[c.payload["row"]]
        for pos, orig in enumerate(c.payload["shown"]):
            out["ratings"][orig] = rec["ratings"][pos]
            out["rationales"][orig] = rec["rationales"][pos]
            out["reasons"][orig] = rec["reasons"][pos]
        out["order"].extend(c.payload["shown"])
        out["raw"].extend(rec["raw"])
        out["statuses"].append(rec["status"])
        for k in ("attempts", "prompt_tokens", "completion_tokens"):
            out[k] += rec[k]
    for r, row in zip(rows, df.itertuples(index=False), strict=True):
        shown = set(r["order"])
        for i, resp in enumerate(row.responses):
            if i not in shown:
                empty = not str(resp.get("response") or "").strip()
                r["reasons"][i] = "empty_response" if empty else "generation_failed"
    return rows


def _row_status(statuses: list[str], n_valid: int) -> str:
    if n_valid == 0:
        return "no_responses"
    if all(s == "ok" for s in statuses):
        return "ok"
    if all(s in ("failed", "request_error") for s in statuses):
        return "request_error" if "request_error" in statuses else "failed"
    return "partial"


def assemble(
    df: pd.DataFrame,
    results: list[dict[str, Any]],
    judge_name: str,
    signals: list[list[dict]] | None,
) -> pa.Table:
    out = df.copy()
    out["annotations"] = [
        [
            {"model": str(resp["model"]), "rating": rating, "rationale": why}
            for resp, rating, why in zip(row.responses, r["ratings"], r["rationales"], strict=True)
        ]
        for row, r in zip(df.itertuples(index=False), results, strict=True)
    ]
    out["judge_model"] = judge_name
    out["judge_order"] = [r["order"] for r in results]
    out["judge_raw"] = [r["raw"] for r in results]
    out["parse_status"] = [_row_status(r["statuses"], len(r["order"])) for r in results]
    out["parse_reasons"] = [r["reasons"] for r in results]
    out["judge_attempts"] = [r["attempts"] for r in results]
    out["judge_prompt_tokens"] = [r["prompt_tokens"] for r in results]
    out["judge_completion_tokens"] = [r["completion_tokens"] for r in results]
    out["judge_flags"] = [
        ["fewer_than_2_responses"] if len(r["order"]) < 2 else [] for r in results
    ]
    if signals is not None:
        out["code_signals"] = [
            [
                {"model": str(resp["model"]), **sig}
                for resp, sig in zip(row.responses, s, strict=True)
            ]
            for row, s in zip(df.itertuples(index=False), signals, strict=True)
        ]
    table = pa.Table.from_pandas(out, preserve_index=False)
    table = table.set_column(
        table.schema.get_field_index("annotations"),
        "annotations",
        pa.array(out["annotations"].tolist(), type=ANNOTATION),
    )
    if signals is not None:
        table = table.set_column(
            table.schema.get_field_index("code_signals"),
            "code_signals",
            pa.array(out["code_signals"].tolist(), type=SIGNALS),
        )
    return table


SIGNALS_VERSION = 1  # bump when code_signals changes what it reports


def compute_signals(
    df: pd.DataFrame, cfg: JudgeConfig, store_root: Path, shard: int = 0
) -> list[list[dict]]:
    """Code evidence per response, journaled by response text under `store_root`.

    A sandbox run can time out on a busy machine and pass on a quiet one; with evidence in the
    judge prompt that would change the prompt, so a resume would judge the row again. Reusing
    the journaled signals keeps prompts, and so judge cells, stable.
    """
    from codeultra.judging.signals import code_signals

    flat = [str(r.get("response") or "") for row in df.responses for r in row]
    keys = [
        cell_key({"text": t, "timeout_s": cfg.sandbox_timeout_s, "v": SIGNALS_VERSION})
        for t in flat
    ]
    with CellStore(store_root, "judge-signals") as store:
        # One run per distinct text, however many rows repeat it.
        todo = sorted({k: i for i, k in enumerate(keys) if store.get(k) is None}.values())
        fresh = code_signals([flat[i] for i in todo], timeout_s=cfg.sandbox_timeout_s)
        for i, sig in zip(todo, fresh, strict=True):
            store.put(shard, keys[i], {"signals": sig})
        sigs = [store.get(k)["signals"] for k in keys]  # type: ignore[index]
    out, i = [], 0
    for row in df.responses:
        out.append(sigs[i : i + len(row)])
        i += len(row)
    return out


def run_judge(
    recipe: Recipe,
    *,
    input_path: str | None = None,
    output: str | Path | None = None,
    limit: int | None = None,
    shard: ShardSpec | None = None,
) -> dict[str, Any]:
    cfg = recipe.judge or JudgeConfig()
    src = input_path or str(recipe.work_dir / "responses.parquet")
    out = Path(output) if output else recipe.work_dir / "ratings.parquet"
    df = read_responses(src, limit)
    started = time.perf_counter()
    signals = None
    if cfg.signals or cfg.evidence:
        # Each shard process journals into its own file, so machines never share one.
        signals = compute_signals(df, cfg, recipe.work_dir / "cells", (shard or ShardSpec()).index)
    results, stats, judge_name = judge_frame(df, recipe, cfg, signals=signals, shard=shard)
    summary: dict[str, Any] = {
        "stage": "judge",
        "judge": judge_name,
        "rows": len(df),
        "computed": stats.requests,
        "wall_s": round(time.perf_counter() - started, 2),
        **{k: v for k, v in stats.as_dict().items() if k != "requests"},
    }
    if results is None:
        summary["output"] = None
        return summary
    table = assemble(df, results, judge_name, signals if cfg.signals else None)
    statuses = table.column("parse_status").to_pylist()
    ratings = [a["rating"] for row in table.column("annotations").to_pylist() for a in row]
    summary.update(
        {
            "parse_status": pd.Series(statuses).value_counts().to_dict(),
            "ratings": len(ratings),
            "null_ratings": sum(r is None for r in ratings),
            "parseable_share": round(1 - sum(r is None for r in ratings) / max(1, len(ratings)), 3),
        }
    )
    write_parquet(table, out, metadata={"recipe": recipe.model_dump(), "summary": summary})
    write_json(summary, out.with_suffix(".summary.json"))
    summary["output"] = str(out)
    return summary
