"""APIBench loaders on the real shared files and on hand-made malformed ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codeultra.errors import UserError
from codeultra.rlaif.apibench import (
    HUBS,
    ApiPair,
    default_apibench_dir,
    has_split,
    load_api_database,
    load_api_database_with_skips,
    load_pairs,
    load_references,
    load_split,
    normalize_instruction,
    questions_path,
    split_pairs,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def apibench() -> Path:
    try:
        return default_apibench_dir(REPO)
    except UserError:
        pytest.skip("shared APIBench data not present")


def _manifest(apibench: Path) -> dict[str, int]:
    rows = {}
    for line in (apibench / "MANIFEST.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            path, _size, count, *_ = line.split("\t")
            rows[path] = int(count)
    return rows


def test_row_counts_match_manifest(apibench: Path) -> None:
    manifest = _manifest(apibench)
    stems = {"huggingface": "huggingface", "torchhub": "torchhub", "tensorflowhub": "tensorflow"}
    checked = 0
    for hub in HUBS:
        db, skipped = load_api_database_with_skips(apibench, hub)
        assert len(db) + sum(skipped.values()) == manifest[f"api/{hub}_api.jsonl"]
        for split in ("train", "eval"):
            key = f"apibench/{stems[hub]}_{split}.json"
            if key not in manifest:
                assert not has_split(apibench, hub, split)
                continue
            rows, skipped = load_pairs(apibench, hub, split)
            assert len(rows) + sum(skipped.values()) == manifest[key]
            assert set(skipped) <= {"no_output"}  # the real files only lack some outputs
            assert all(r.instruction and r.answer and r.domain for r in rows)
            checked += 1
    assert checked == 4  # HF/TF train files are missing from the snapshot


def test_question_ids_follow_eval_rows(apibench: Path) -> None:
    refs = load_references(apibench, "torchhub")
    lines = questions_path(apibench, "torchhub").read_text().splitlines()
    for line in lines[:40]:
        question = json.loads(line)
        instruction = refs[question["question_id"]]["instruction"]
        assert normalize_instruction(question["text"]) == normalize_instruction(instruction)


def test_references_keep_rows_without_output(apibench: Path) -> None:
    pairs, skipped = load_pairs(apibench, "huggingface", "eval")
    refs = load_references(apibench, "huggingface")
    assert len(refs) == len(pairs) + skipped["no_output"]
    assert {p.question_id for p in pairs} < set(refs)


def _write_jsonl(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def _row(code: str, api_data: object = "default", api_call: str = "f('x')") -> str:
    if api_data == "default":
        api_data = {"domain": "D", "api_name": "x", "api_call": api_call, "api_arguments": None}
    return json.dumps({"code": code, "api_call": api_call, "provider": "P", "api_data": api_data})


def test_malformed_rows_are_skipped_with_reasons(tmp_path: Path) -> None:
    entry = {"domain": "D", "api_call": "f('x')", "api_name": "x"}
    _write_jsonl(
        tmp_path / "api" / "huggingface_api.jsonl",
        [
            json.dumps({**entry, "api_arguments": "a string"}),
            json.dumps({**entry, "api_arguments": ["a", "list"], "functionality": ["x", "y"]}),
            json.dumps({**entry, "api_arguments": {"a": "dict"}}),
            json.dumps({**entry, "api_arguments": None}),
            "{not json",
            "[1, 2]",
            json.dumps({"domain": "D", "api_call": ""}),
        ],
    )
    db, skipped = load_api_database_with_skips(tmp_path, "huggingface")
    assert [type(e.api_arguments).__name__ for e in db] == ["str", "list", "dict", "NoneType"]
    assert db[1].functionality == "x, y"
    assert skipped == {"invalid_json": 1, "not_an_object": 1, "missing_api_call": 1}

    good = "###Instruction: Do a thing.\n###Output: <<<domain>>>: D, <<<api_call>>>: f('x')"
    _write_jsonl(
        tmp_path / "apibench" / "huggingface_eval.json",
        [
            _row(good),
            "",  # blank lines don't count as rows
            _row("### Instruction: Spaced marker.\n###Output: f('x')"),
            _row("###Instruction: No answer here."),
            _row("no marker at all"),
            _row(good, api_data=None),
            _row(good, api_data={"api_call": "f()"}),  # no domain
            json.dumps({"api_call": "f()"}),
            "{broken",
        ],
    )
    rows, skipped = load_pairs(tmp_path, "huggingface", "eval")
    assert [r.question_id for r in rows] == [1, 2]
    assert rows[1].instruction == "Spaced marker." and rows[1].answer == "f('x')"
    assert skipped == {
        "no_output": 1,
        "no_instruction_marker": 1,
        "missing_api_data": 1,
        "missing_domain": 1,
        "missing_code": 1,
        "invalid_json": 1,
    }


def test_dict_style_train_rows(tmp_path: Path) -> None:
    code = "{'Instruction': Find a depth model., 'Output': {'domain': 'Depth', 'api_call': 'g()'}}"
    _write_jsonl(tmp_path / "apibench" / "torchhub_train.json", [_row(code)])
    (rows, skipped) = load_pairs(tmp_path, "torchhub", "train")
    assert not skipped
    assert rows[0].instruction == "Find a depth model."
    assert rows[0].answer == "{'domain': 'Depth', 'api_call': 'g()'}"


def test_missing_data_raises_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="APIBench data not found"):
        default_apibench_dir(tmp_path)
    with pytest.raises(UserError, match="APIBench file missing"):
        load_pairs(tmp_path, "huggingface", "eval")
    with pytest.raises(UserError, match="unknown APIBench hub"):
        load_api_database(tmp_path, "pypi")


def _pair(i: int, instruction: str) -> ApiPair:
    return ApiPair("huggingface", "eval", i, instruction, "a", "f()", "D", "x")


def test_split_keeps_duplicate_instructions_together() -> None:
    rows = [_pair(i, f"Question number {i}?") for i in range(50)]
    rows += [_pair(100 + i, f"question  NUMBER {i}") for i in range(10)]  # same, normalized
    for seed in range(5):
        train, held = split_pairs(rows, 0.3, seed)
        assert len(train) + len(held) == len(rows)
        train_keys = {normalize_instruction(r.instruction) for r in train}
        assert not train_keys & {normalize_instruction(r.instruction) for r in held}
        assert abs(len(held) - 18) <= 1
    with pytest.raises(UserError):
        split_pairs(rows, 1.5, 0)


def test_real_splits_leak_nothing(apibench: Path) -> None:
    for hub in HUBS:
        train, held, _ = load_split(apibench, hub, eval_fraction=0.2, seed=7)
        train_keys = {normalize_instruction(r.instruction) for r in train}
        assert train and held
        assert not train_keys & {normalize_instruction(r.instruction) for r in held}
        if hub == "torchhub":  # has a train file: eval is the whole eval file
            assert {r.split for r in held} == {"eval"} and {r.split for r in train} == {"train"}
            assert len(held) == len(load_pairs(apibench, hub, "eval")[0])
    a = split_pairs(load_pairs(apibench, "huggingface", "eval")[0], 0.2, seed=1)
    b = split_pairs(load_pairs(apibench, "huggingface", "eval")[0], 0.2, seed=1)
    c = split_pairs(load_pairs(apibench, "huggingface", "eval")[0], 0.2, seed=2)
    ids = [[r.question_id for r in part] for part in (a[1], b[1], c[1])]
    assert ids[0] == ids[1] and ids[0] != ids[2]
