"""ROUGE-L with the code tokenizer, and CodeBLEU with the package's quirks corrected."""

from __future__ import annotations

import pytest

from codeultra.errors import UserError
from codeultra.metrics.codebleu_metric import codebleu_one, codebleu_scores
from codeultra.metrics.rouge import CodeTokenizer, rouge_l, rouge_l_many

CODE = """from transformers import pipeline
classifier = pipeline('text-classification', model='distilbert-base-uncased')
result = classifier("I love this movie")
print(result[0]['label'], result[0]['score'])
"""
RENAMED = CODE.replace("classifier", "clf").replace("result", "out")
UNRELATED = """import os
total = 0
for name in sorted(os.listdir('.')):
    if name.endswith('.txt'):
        total += len(name)
"""


def test_tokenizer_keeps_code_punctuation() -> None:
    tokens = CodeTokenizer().tokenize("x.eval() ** 2 != y_z")
    assert tokens == ["x", ".", "eval", "(", ")", "**", "2", "!=", "y_z"]


def test_rouge_l() -> None:
    assert rouge_l(CODE, CODE) == pytest.approx(1.0)
    assert rouge_l(UNRELATED, CODE) < 0.3  # only shared punctuation
    assert rouge_l(UNRELATED, CODE) < rouge_l(RENAMED, CODE) < 1.0
    # The default tokenizer would see identical words here; ours sees the punctuation.
    assert rouge_l("model.eval()", "model_eval") == 0.0
    assert rouge_l("", CODE) == 0.0
    assert rouge_l_many([CODE, ""], [CODE, CODE]) == [pytest.approx(1.0), 0.0]
    with pytest.raises(UserError):
        rouge_l_many([CODE], [])


def test_codebleu_identical_unrelated_and_empty() -> None:
    assert codebleu_one(CODE, CODE) == pytest.approx(1.0, abs=0.02)
    one_line = "pipeline('text-classification', model='distilbert-base-uncased')"
    assert codebleu_one(one_line, one_line) == pytest.approx(1.0, abs=0.02)
    unrelated = codebleu_one(UNRELATED, CODE)
    assert unrelated < 0.35
    assert unrelated < codebleu_one(RENAMED, CODE) < 1.0
    assert codebleu_one("", CODE) == 0.0  # the package alone says 0.25
    assert codebleu_one(CODE, "") is None


def test_codebleu_batch_serial_and_parallel_agree() -> None:
    preds, refs = [CODE, UNRELATED, "", RENAMED], [CODE, CODE, CODE, ""]
    serial = codebleu_scores(preds, refs, workers=1)
    parallel = codebleu_scores(preds, refs, workers=2)
    assert serial["items"] == parallel["items"]
    assert serial["items"][3] is None
    scored = [s for s in serial["items"] if s is not None]
    assert serial["mean"] == pytest.approx(sum(scored) / 3)
    assert 0.0 < serial["corpus"] < 1.0
    with pytest.raises(UserError):
        codebleu_scores([CODE], [])
