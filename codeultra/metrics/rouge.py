"""ROUGE-L for code, with a tokenizer that keeps punctuation and operators.

rouge-score's default tokenizer lowercases and drops everything but letters and
digits, which is most of code (``model.eval()`` and ``model_eval`` would tie), so
`CodeTokenizer` keeps identifiers, numbers, operators and single punctuation marks
as tokens, case-sensitively. String literals are tokenized like code, so a model id
``'bert-base-uncased'`` contributes ``' bert - base - uncased '``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from rouge_score import rouge_scorer, tokenizers

from codeultra.errors import UserError

_TOKEN = re.compile(
    r"[A-Za-z_]\w*"  # identifiers and keywords
    r"|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"  # numbers
    r"|\*\*=?|//=?|->|:=|==|!=|<=|>=|<<=?|>>=?|[-+*/%&|^@]="  # multi-char operators
    r"|\S"  # any other single non-space character
)


class CodeTokenizer(tokenizers.Tokenizer):
    def tokenize(self, text: str) -> list[str]:
        return _TOKEN.findall(text or "")


@lru_cache(maxsize=1)
def _scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=CodeTokenizer())


def rouge_l(pred: str, ref: str) -> float:
    """ROUGE-L F-measure between two code strings (0.0 when either is empty)."""
    return float(_scorer().score(ref or "", pred or "")["rougeL"].fmeasure)


def rouge_l_many(preds: Sequence[str], refs: Sequence[str]) -> list[float]:
    if len(preds) != len(refs):
        raise UserError(f"rouge_l_many: {len(preds)} predictions but {len(refs)} references")
    return [rouge_l(p, r) for p, r in zip(preds, refs, strict=True)]
