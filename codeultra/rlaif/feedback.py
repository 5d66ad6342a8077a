"""Step 3: AI feedback. A judge answers fixed yes/no questions about every candidate.

Each (candidate, question) is one cell. The judge is asked for one token with its top
logprobs and the score is P(Yes) (see `yesno`); a judge that returns no logprobs (or no
yes/no among them) is asked again `fallback_samples` times with sampling, and the score
is the share of Yes. Questions are templates in prompts/rlaif/questions/<id>.j2; their
versions enter the cell keys. The combined score is the weighted mean of the question
scores; feedback.parquet keeps it and every question's score, method and raw reply.
Requests go out candidate by candidate, so the questions about one answer share a prompt
prefix that llama.cpp reuses from its cache.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pandas as pd

from codeultra.backends import make_backend
from codeultra.backends.base import Backend, ChatRequest, ChatResult
from codeultra.cells import Cell, CellStore, cell_key
from codeultra.config import ModelSpec, Recipe, Sampling
from codeultra.errors import UserError
from codeultra.io import load_table, write_parquet
from codeultra.models import PACKS, available_packs, resolve_gguf
from codeultra.progress import bar
from codeultra.prompts import render, template_version
from codeultra.rlaif.config import FeedbackSection, RlaifConfig
from codeultra.rlaif.data import HUB_NAMES
from codeultra.rlaif.steps import Layout
from codeultra.rlaif.yesno import combine, share_of_yes, yes_from_logprobs

AUTO_JUDGES = ("qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m")
SYSTEM, USER = "rlaif/feedback_system.j2", "rlaif/feedback_user.j2"


def failed(error: Any) -> bool:
    """A stored error value (None, NaN from Parquet, or a message)."""
    return isinstance(error, str) and bool(error)


def question_template(qid: str) -> str:
    return f"rlaif/questions/{qid}.j2"


def _usable(spec: ModelSpec) -> bool:
    if spec.backend != "llamacpp":
        return True
    try:
        resolve_gguf(spec.model, spec.sha256)
    except UserError:
        return False
    return True


def default_judge_spec(alias: str) -> ModelSpec:
    """One slot, one request at a time: on a CPU that is fastest, and keeps the cache warm."""
    return ModelSpec(
        backend="llamacpp",
        model=alias,
        n_ctx=2048,
        n_parallel=1,
        max_concurrency=1,
        sampling=Sampling(temperature=0.0, top_p=1.0, max_tokens=1),
    )


def resolve_judge(recipe: Recipe, fb: FeedbackSection) -> tuple[str, ModelSpec]:
    """The first usable judge: a recipe model, or a local GGUF alias (`auto`: strongest)."""
    if fb.judge == "auto":
        names = [a for a in AUTO_JUDGES if a in available_packs()]
    else:
        names = [fb.judge] if isinstance(fb.judge, str) else list(fb.judge)
    for name in names:
        if name in recipe.models:
            spec = recipe.models[name]
            if len(names) == 1 or _usable(spec):
                return name, spec
        elif name in PACKS:
            if name in available_packs():
                return name, default_judge_spec(name)
            if len(names) == 1:
                resolve_gguf(name)  # raises the reason (pack not assembled)
        elif len(names) == 1:
            recipe.model(name)  # raises: unknown model
    raise UserError(
        f"no usable judge among {names}; define one under `models:` or run `make models`"
    )


def judge_messages(row: Any, qid: str, show_reference: bool) -> list[dict[str, str]]:
    hub_name = HUB_NAMES[row.hub]
    question = render(question_template(qid), hub_name=hub_name)
    return [
        {"role": "system", "content": render(SYSTEM, hub_name=hub_name)},
        {
            "role": "user",
            "content": render(
                USER,
                instruction=row.instruction,
                reference=row.reference if show_reference else "",
                hub_name=hub_name,
                answer=row.candidate,
                question=question,
            ),
        },
    ]


def build_cells(df: pd.DataFrame, fb: FeedbackSection, judge: str, spec: ModelSpec) -> list[Cell]:
    versions = {q: template_version(question_template(q)) for q in fb.questions}
    shared = [template_version(SYSTEM), template_version(USER)]
    cells = []
    for idx, row in enumerate(df.itertuples(index=False)):
        if failed(row.error) or not str(row.candidate).strip():
            continue
        for qid in fb.questions:
            key = cell_key(
                {
                    "stage": "rlaif-feedback",
                    "instruction": row.instruction,
                    "hub": row.hub,
                    "answer": row.candidate,
                    "reference": row.reference if fb.show_reference else "",
                    "question": [qid, versions[qid]],
                    "templates": shared,
                    "judge": {"name": judge, "backend": spec.backend, "id": spec.model},
                    "top_logprobs": fb.top_logprobs,
                    "fallback": [fb.fallback_samples, fb.fallback_temperature, fb.seed],
                }
            )
            payload = {
                "row": idx,
                "question": qid,
                "messages": judge_messages(row, qid, fb.show_reference),
            }
            cells.append(Cell(key, 0, payload))
    return cells


def _logprob_request(cell: Cell, fb: FeedbackSection) -> ChatRequest:
    return ChatRequest(
        messages=cell.payload["messages"],
        temperature=0.0,
        max_tokens=1,
        seed=fb.seed,
        top_logprobs=fb.top_logprobs,
    )


def _sample_requests(cell: Cell, fb: FeedbackSection) -> list[ChatRequest]:
    return [
        ChatRequest(
            messages=cell.payload["messages"],
            temperature=fb.fallback_temperature,
            max_tokens=3,
            seed=fb.seed + 1 + j,
        )
        for j in range(fb.fallback_samples)
    ]


def _record(qid: str, **kw: Any) -> dict[str, Any]:
    base = {
        "question": qid,
        "score": None,
        "method": None,
        "coverage": None,
        "top": None,
        "replies": [],
        "error": None,
        "finished_at": time.time(),
    }
    base.update(kw)
    return base


def score_cells(store: CellStore, cells: list[Cell], backend: Backend, fb: FeedbackSection) -> int:
    """Run pending cells: logprobs first, share-of-Yes sampling where that gave nothing.

    Returns the number of requests sent.
    """
    sent = 0
    progress = bar(len(cells), "feedback")
    fallback: list[Cell] = []
    try:
        if backend.supports_logprobs:

            def on_logprobs(i: int, res: ChatResult) -> None:
                cell = cells[i]
                qid = cell.payload["question"]
                if not res.ok:
                    store.put(0, cell.key, _record(qid, error=res.error))
                    progress.update(1)
                    return
                choice = res.choices[0] if res.choices else None
                found = yes_from_logprobs(choice.logprobs if choice else None)
                if found is None:
                    fallback.append(cell)
                    return
                top = choice.logprobs[found.position].top if choice and choice.logprobs else {}
                store.put(
                    0,
                    cell.key,
                    _record(
                        qid,
                        score=found.p_yes,
                        method="logprobs",
                        coverage=found.coverage,
                        top=dict(top),
                        replies=[choice.text if choice else ""],
                    ),
                )
                progress.update(1)

            backend.chat_many([_logprob_request(c, fb) for c in cells], on_logprobs)
            sent += len(cells)
        else:
            fallback = list(cells)
        if fallback:
            sent += _score_by_sampling(store, fallback, backend, fb, progress)
    finally:
        progress.close()
    return sent


def _score_by_sampling(
    store: CellStore, cells: list[Cell], backend: Backend, fb: FeedbackSection, progress: Any
) -> int:
    requests, owner = [], []
    for ci, cell in enumerate(cells):
        for req in _sample_requests(cell, fb):
            requests.append(req)
            owner.append(ci)
    replies: dict[int, list[str | None]] = {ci: [] for ci in range(len(cells))}
    errors: dict[int, str] = {}

    def on_result(i: int, res: ChatResult) -> None:
        ci = owner[i]
        if res.ok and res.choices:
            replies[ci].append(res.choices[0].text)
        else:
            replies[ci].append(None)
            errors.setdefault(ci, res.error or "no choices")
        if len(replies[ci]) < fb.fallback_samples:
            return
        cell = cells[ci]
        texts = [t for t in replies[ci] if t is not None]
        share, valid = share_of_yes(texts)
        qid = cell.payload["question"]
        if not texts:
            rec = _record(qid, error=errors.get(ci))
        else:
            rec = _record(qid, score=share, method="samples", replies=texts)
            rec["coverage"] = valid / len(texts)
        store.put(0, cell.key, rec)
        progress.update(1)

    backend.chat_many(requests, on_result)
    return len(requests)


def _assemble(
    df: pd.DataFrame, cells: list[Cell], store: CellStore, fb: FeedbackSection, judge: str
) -> pd.DataFrame:
    per_row: dict[int, dict[str, dict[str, Any]]] = {}
    for c in cells:
        rec = store.get(c.key) or _record(c.payload["question"], error="missing")
        per_row.setdefault(c.payload["row"], {})[c.payload["question"]] = rec
    out = df.copy()
    for qid in fb.questions:
        out[f"q_{qid}"] = [per_row.get(i, {}).get(qid, {}).get("score") for i in range(len(df))]
    combined, methods, reasons, replies = [], [], [], []
    for i, row in enumerate(df.itertuples(index=False)):
        recs = per_row.get(i, {})
        scores = {q: recs.get(q, {}).get("score") for q in fb.questions}
        combined.append(combine(scores, fb.weights))
        methods.append([recs.get(q, {}).get("method") for q in fb.questions])
        replies.append([(recs.get(q, {}).get("replies") or [""])[0] for q in fb.questions])
        if not recs:
            reasons.append("generation_failed" if failed(row.error) else "empty_candidate")
        elif all(s is None for s in scores.values()):
            errs = [r.get("error") for r in recs.values() if r.get("error")]
            reasons.append("judge_error" if errs else "no_yes_no_answer")
        else:
            reasons.append(None)
    out["score"] = combined
    out["methods"] = methods
    out["judge_replies"] = replies
    out["unscored_reason"] = reasons
    out["judge"] = judge
    return out


def run_feedback(
    recipe: Recipe,
    cfg: RlaifConfig,
    layout: Layout,
    backend: Backend | None = None,
) -> dict[str, Any]:
    if not layout.candidates.is_file():
        raise UserError(f"no candidates at {layout.candidates}: run `codeultra rlaif sample` first")
    fb = cfg.feedback
    df = load_table(layout.candidates)
    judge, spec = (
        (backend.name, ModelSpec(backend="openai", model=backend.name))
        if backend
        else (resolve_judge(recipe, fb))
    )
    cells = build_cells(df, fb, judge, spec)
    started = time.perf_counter()
    sent = 0
    with CellStore(layout.cells, "rlaif-feedback") as store:
        pending = store.pending(cells, fb.retry_errors)
        if pending:
            own = backend is None
            backend = backend or make_backend(judge, spec)
            try:
                sent = score_cells(store, pending, backend, fb)
            finally:
                if own:
                    backend.close()
            recs = [store.get(c.key) for c in pending]
            if recs and all(r and r.get("error") for r in recs):
                raise UserError(
                    f"judge {judge}: all {len(recs)} requests failed; first: {recs[0]['error']}"
                )
        table = _assemble(df, cells, store, fb, judge)
    methods = [m for row in table["methods"] for m in row if m]
    scored = table["score"].notna()
    summary = {
        "step": "feedback",
        "judge": judge,
        "candidates": len(table),
        "scored": int(scored.sum()),
        "unscored": table["unscored_reason"].value_counts().to_dict(),
        "cells": len(cells),
        "requests_sent": sent,
        "by_method": pd.Series(methods).value_counts().to_dict() if methods else {},
        "mean_score": None
        if not scored.any()
        else round(float(table.loc[scored, "score"].mean()), 4),
        "mean_per_question": {q: _mean(table[f"q_{q}"]) for q in fb.questions},
        "wall_s": round(time.perf_counter() - started, 1),
    }
    write_parquet(table, layout.feedback, metadata={"summary": summary})
    return summary


def _mean(col: pd.Series) -> float | None:
    vals = [float(v) for v in col if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return round(sum(vals) / len(vals), 4) if vals else None
