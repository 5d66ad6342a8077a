"""CodeBLEU (Ren et al. 2020) through the ``codebleu`` package, with its quirks handled.

- The package scores a missing data-flow match as ``dataflow or 1``: a prediction
  that matches none of the reference's data flows gets full credit for it, and an
  empty prediction scores 0.25. We recombine the components ourselves: the data-flow
  term counts as computed when the reference has data flows, and is left out (the
  other weights renormalized) when it has none, which is what the package's own
  warning recommends.
- Its default n-gram tokenizer splits on whitespace, so a one-line API call is two or
  three "words" and BLEU-4 of identical calls is far below 1; we pass the code-aware
  tokenizer from `codeultra.metrics.rouge`.
- Empty references can't be scored (None, left out of means and the corpus score);
  the package's warnings are silenced.
- The tree-sitter binding is ``tree_sitter_python`` (tree-sitter 0.22), which the
  package picks up itself; no grammar build step.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

from codeultra.errors import UserError
from codeultra.metrics.rouge import CodeTokenizer

WEIGHTS = (0.25, 0.25, 0.25, 0.25)  # n-gram, weighted n-gram, syntax, data flow
_TOKENIZE = CodeTokenizer().tokenize


@contextmanager
def _quiet():
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _has_dataflow(refs: Sequence[str]) -> bool:
    from codebleu.dataflow_match import corpus_dataflow_match

    return corpus_dataflow_match([[r] for r in refs], list(refs), "python") > 0


def _combine(parts: dict[str, float], has_dataflow: bool) -> float:
    a, b, c, d = WEIGHTS
    total = a * parts["ngram_match_score"] + b * parts["weighted_ngram_match_score"]
    total += c * parts["syntax_match_score"]
    if has_dataflow:
        return total + d * parts["dataflow_match_score"]
    return total / (a + b + c)


def _score(refs: Sequence[str], preds: Sequence[str]) -> dict[str, float]:
    from codebleu import calc_codebleu

    with _quiet():
        parts = calc_codebleu(list(refs), list(preds), lang="python", tokenizer=_TOKENIZE)
        has_dataflow = _has_dataflow(refs)
    out = {k: float(v) for k, v in parts.items() if k != "codebleu"}
    out["codebleu"] = _combine(out, has_dataflow)
    out["has_dataflow"] = float(has_dataflow)
    return out


def codebleu_one(pred: str, ref: str) -> float | None:
    """CodeBLEU of one prediction against one reference (None for an empty reference)."""
    if not (ref or "").strip():
        return None
    return _score([ref], [pred or ""])["codebleu"]


def _chunk_scores(pairs: list[tuple[str, str]]) -> list[float | None]:
    return [codebleu_one(pred, ref) for pred, ref in pairs]


def codebleu_scores(preds: Sequence[str], refs: Sequence[str], workers: int = 1) -> dict[str, Any]:
    """Per-item scores, their mean, and the corpus-level score with its components."""
    if len(preds) != len(refs):
        raise UserError(f"codebleu: {len(preds)} predictions but {len(refs)} references")
    pairs = [(p or "", r or "") for p, r in zip(preds, refs, strict=True)]
    if workers > 1 and len(pairs) > 1:
        size = -(-len(pairs) // workers)
        chunks = [pairs[i : i + size] for i in range(0, len(pairs), size)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            items = [s for chunk in pool.map(_chunk_scores, chunks) for s in chunk]
    else:
        items = _chunk_scores(pairs)
    scored = [(p, r) for p, r in pairs if r.strip()]
    corpus = _score([r for _, r in scored], [p for p, _ in scored]) if scored else None
    values = [s for s in items if s is not None]
    return {
        "items": items,
        "mean": sum(values) / len(values) if values else None,
        "corpus": corpus["codebleu"] if corpus else None,
        "corpus_components": corpus,
    }
