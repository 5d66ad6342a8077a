"""Gorilla-style AST matching on hand-made answers and on Gorilla's response format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codeultra.errors import UserError
from codeultra.metrics.answer import parse_answer, unescape_response
from codeultra.metrics.ast_match import load_gorilla_responses, score_ast
from codeultra.rlaif.apibench import (
    ApiEntry,
    default_apibench_dir,
    load_api_database,
    load_references,
)

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "data" / "gorilla" / "response_huggingface_handmade.jsonl"


def entry(api_call: str, domain: str, name: str = "x") -> ApiEntry:
    return ApiEntry(domain, "F", "", name, api_call, None, "")


HF_DB = [
    entry("AutoModel.from_pretrained('org/sim-model')", "Sentence Similarity", "sim"),
    entry("pipeline('text-classification', model='org/clf')", "Text Classification", "clf"),
    entry("AutoModel.from_pretrained('org/sim-model-large')", "Feature Extraction", "large"),
]
TH_DB = [
    entry("torch.hub.load(repo_or_dir='pytorch/vision', model='resnet50', pretrained=True)", "Cls"),
    entry("torch.hub.load(repo_or_dir='pytorch/vision', model='fcn_resnet50')", "Seg"),
]
TF_DB = [
    entry("hub.KerasLayer('https://tfhub.dev/google/imagenet/x/4')", "Image feature vector"),
    entry("hub.load('https://tfhub.dev/google/universal-sentence-encoder/4')", "Text embedding"),
    entry(
        "hub.load('https://tfhub.dev/google/universal-sentence-encoder/4')", "Text preprocessing"
    ),
]


def gorilla_answer(call: str) -> str:
    return f"<<<domain>>>: D\n<<<api_call>>>: {call}\n<<<api_provider>>>: P\n<<<code>>>: x = 1"


def verdicts(texts: list[str], domains: list[str], hub: str, db, **kw) -> list[str]:
    responses = [{"question_id": i + 1, "text": t} for i, t in enumerate(texts)]
    refs = {i + 1: {"domain": d} for i, d in enumerate(domains)}
    result = score_ast(responses, hub, db, refs, **kw)
    return [item["verdict"] for item in result["items"]]


def test_huggingface_cases() -> None:
    cases = [
        (gorilla_answer("AutoModel.from_pretrained('org/sim-model')"), "correct"),
        (gorilla_answer("AutoModel.from_pretrained('org/sim-model')"), "wrong"),  # domain
        (gorilla_answer("pipeline('text-classification', model='org/other')"), "hallucination"),
        (gorilla_answer("pipeline(task='text-classification', model='org/clf')"), "correct"),
        (
            gorilla_answer("transformers.pipeline('text-classification', model=\"org/clf\")"),
            "correct",
        ),
        (gorilla_answer("MagicLoader.load('org/sim-model')"), "hallucination"),
        ("Use a sentence similarity model for this.", "no_call"),
        (gorilla_answer("AutoModel.from_pretrained(((('org"), "parse_error"),
        ("```python\nm = AutoModel.from_pretrained('org/sim-model')\n```", "correct"),
    ]
    domains = ["Sentence Similarity", "Text Classification", "Text Classification"]
    domains += ["Text Classification"] * 2 + ["Sentence Similarity"] * 4
    got = verdicts([c[0] for c in cases], domains, "huggingface", HF_DB)
    assert got == [c[1] for c in cases]


def test_exact_and_gorilla_substring_modes_differ() -> None:
    text = [gorilla_answer("AutoModel.from_pretrained('org/sim-model-large')")]
    # Gorilla's substring test finds 'org/sim-model' first, under another domain.
    assert verdicts(text, ["Feature Extraction"], "huggingface", HF_DB) == ["correct"]
    got = verdicts(text, ["Feature Extraction"], "huggingface", HF_DB, match="gorilla")
    assert got == ["wrong"]
    with pytest.raises(UserError):
        verdicts(text, ["Feature Extraction"], "huggingface", HF_DB, match="fuzzy")


def test_torchhub_dict_answers_and_positional_arguments() -> None:
    answer = (
        "{'domain': 'Cls', 'api_call': 'model = torch.hub.load('pytorch/vision', 'resnet50', "
        "pretrained=True)', 'api_provider': 'PyTorch', 'explanation': 'e', "
        "'code': 'import torch\\nmodel = torch.hub.load('pytorch/vision', 'resnet50')'}"
    )
    wrong_model = answer.replace("'resnet50'", "'resnet5000'")
    code_only = (
        "import torch\nm = torch.hub.load(repo_or_dir='pytorch/vision', model='fcn_resnet50')"
    )
    got = verdicts([answer, wrong_model, code_only], ["Cls", "Cls", "Cls"], "torchhub", TH_DB)
    assert got == ["correct", "hallucination", "wrong"]
    assert parse_answer(answer).code == (
        "import torch\nmodel = torch.hub.load('pytorch/vision', 'resnet50')"
    )


def test_tensorflow_handles_and_duplicate_domains() -> None:
    layer = "hub.KerasLayer('https://tfhub.dev/google/imagenet/x/4', input_shape=(224, 224, 3))"
    use = "tensorflow_hub.load('https://tfhub.dev/google/universal-sentence-encoder/4')"
    other = "hub.load('https://tfhub.dev/google/universal-sentence-encoder/5')"
    texts = [gorilla_answer(layer), gorilla_answer(use), gorilla_answer(other)]
    domains = ["Image feature vector", "Text preprocessing", "Text embedding"]
    assert verdicts(texts, domains, "tensorflowhub", TF_DB) == [
        "correct",
        "correct",  # the same call is listed under both domains
        "hallucination",
    ]
    gorilla = verdicts(texts, domains, "tensorflowhub", TF_DB, match="gorilla")
    assert gorilla[1] == "wrong"  # Gorilla takes the first database hit


def test_score_fields_and_reference_errors() -> None:
    responses = [{"question_id": 7, "text": gorilla_answer("pipeline('x')")}]
    result = score_ast(responses, "huggingface", HF_DB, [{"domain": "D"}])  # aligned list
    assert result["n"] == 1 and result["hallucination_rate"] == 1.0 and result["accuracy"] == 0
    assert sum(result["counts"].values()) == 1
    with pytest.raises(UserError, match="no huggingface reference"):
        score_ast(responses, "huggingface", HF_DB, {1: {"domain": "D"}})
    with pytest.raises(UserError, match="1 responses but 2 references"):
        score_ast(responses, "huggingface", HF_DB, [{"domain": "D"}] * 2)


def test_unescape_gorilla_text() -> None:
    raw = '<<<code>>>: x = \\"a\\"\\nprint(x)\\n\\"'
    assert unescape_response(raw) == '<<<code>>>: x = "a"\nprint(x)'
    assert parse_answer(raw).code == 'x = "a"\nprint(x)'


def test_load_gorilla_responses_errors(tmp_path: Path) -> None:
    bad = tmp_path / "r.jsonl"
    bad.write_text(json.dumps({"question_id": 1, "text": "a"}) + "\n{oops\n")
    with pytest.raises(UserError, match="r.jsonl:2: not JSON"):
        load_gorilla_responses(bad)
    bad.write_text(json.dumps({"question_id": 1, "text": "a"}) + "\nnull\n")
    assert [r["question_id"] for r in load_gorilla_responses(bad)] == [1]
    bad.write_text(json.dumps({"question_id": "1", "text": "a"}) + "\n")
    with pytest.raises(UserError, match="int question_id"):
        load_gorilla_responses(bad)
    with pytest.raises(UserError, match="not found"):
        load_gorilla_responses(tmp_path / "missing.jsonl")


def test_gorilla_response_fixture_on_real_database() -> None:
    try:
        apibench = default_apibench_dir(REPO)
    except UserError:
        pytest.skip("shared APIBench data not present")
    responses = load_gorilla_responses(FIXTURE)
    assert {"answer_id", "model_id", "metadata"} <= set(responses[0])
    result = score_ast(
        responses,
        "huggingface",
        load_api_database(apibench, "huggingface"),
        load_references(apibench, "huggingface"),
    )
    got = [(i["question_id"], i["verdict"]) for i in result["items"]]
    assert got == [
        (1, "correct"),
        (2, "wrong"),
        (3, "hallucination"),
        (4, "correct"),
        (5, "no_call"),
    ]
    assert result["accuracy"] == pytest.approx(0.4)
    assert result["hallucination_rate"] == pytest.approx(0.2)
    assert result["items"][1]["matched_domain"] == "Computer Vision Image Classification"
