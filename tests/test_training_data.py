"""Dataset checks before training: pairs Parquet in TRL's conversational preference format."""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from codeultra.errors import UserError
from codeultra.training.config import DataSection
from codeultra.training.data import load_training_data
from codeultra.training.tiny import build_tiny_chat_model
from codeultra.training.validate import check_chat_template


def _pair(i: int, system: bool = False) -> dict:
    prompt = [{"role": "user", "content": f"Write a function returning {i} squared."}]
    if system:
        prompt.insert(0, {"role": "system", "content": "You write Python."})
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": f"def f():\n    return {i} ** 2\n"}],
        "rejected": [{"role": "assistant", "content": f"def f():\n    return {i} * 2\n"}],
        "preference": 1.0,
        "rating_chosen": 5.0,
        "rating_rejected": 2.0,
        "model_chosen": "model-a",
        "model_rejected": "model-b",
    }


def _write(folder, rows, test_rows=None):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(folder / "train.parquet")
    if test_rows is not None:
        pd.DataFrame(test_rows).to_parquet(folder / "test.parquet")
    return folder


def _rows(n=4):
    return [_pair(i, system=i % 2 == 0) for i in range(n)]


def _error(folder, trainer="dpo", **data) -> str:
    with pytest.raises(UserError) as e:
        load_training_data(DataSection(train=str(folder), **data), trainer)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_pairs_folder_loads_with_only_trainer_columns(tmp_path):
    folder = _write(tmp_path / "pairs", _rows(5), _rows(2))
    train, test = load_training_data(DataSection(train=str(folder)), "dpo", with_test=True)
    assert train.column_names == ["chosen", "prompt", "rejected"]
    assert len(train) == 5 and len(test) == 2
    assert train[0]["prompt"][0]["role"] == "system"
    limited, none = load_training_data(DataSection(train=str(folder)), "dpo", limit=3)
    assert len(limited) == 3 and none is None


def test_sft_on_pairs_uses_chosen_as_completion(tmp_path):
    folder = _write(tmp_path / "pairs", _rows(3))
    data = DataSection(train=str(folder / "train.parquet"), completion_column="chosen")
    train, _ = load_training_data(data, "sft")
    assert sorted(train.column_names) == ["completion", "prompt"]
    assert "** 2" in train[1]["completion"][0]["content"]
    assert "'messages' or 'prompt' + 'completion'" in _error(folder, trainer="sft")


def test_custom_column_names_are_mapped(tmp_path):
    frame = pd.DataFrame(_rows(2)).rename(columns={"prompt": "q", "chosen": "good"})
    folder = tmp_path / "custom"
    folder.mkdir()
    frame.to_parquet(folder / "train.parquet")
    data = DataSection(train=str(folder), prompt_column="q", chosen_column="good")
    train, _ = load_training_data(data, "dpo")
    assert sorted(train.column_names) == ["chosen", "prompt", "rejected"]
    assert "lacks column(s) ['chosen']" in _error(folder, prompt_column="q")


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("chosen", [{"role": "user", "content": "x"}], "assistant turns only"),
        ("rejected", [{"role": "assistant", "content": "   "}], "empty or non-text"),
        (
            "prompt",
            [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
            "end",
        ),
        ("prompt", [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "first"),
        ("prompt", [{"role": "robot", "content": "a"}], "role 'robot'"),
        ("chosen", [], "non-empty list"),
    ],
)
def test_bad_rows_are_named(tmp_path, column, value, expected):
    rows = _rows(3)
    rows[2] = copy.deepcopy(rows[2]) | {column: value}
    folder = tmp_path / "bad"
    folder.mkdir()
    pd.DataFrame(rows).to_parquet(folder / "train.parquet")
    msg = _error(folder)
    assert f"row 2, column '{column}'" in msg and expected in msg


def test_missing_files_and_splits(tmp_path):
    assert "not found" in _error(tmp_path / "nowhere")
    (tmp_path / "file.csv").write_text("a,b\n", encoding="utf-8")
    assert "pairs folder" in _error(tmp_path / "file.csv")
    folder = _write(tmp_path / "pairs", _rows(2))
    with pytest.raises(UserError, match="no test split"):
        load_training_data(DataSection(train=str(folder)), "dpo", with_test=True)
    (folder / "train.parquet").write_bytes(b"not parquet")
    assert "cannot read" in _error(folder)
    _write(tmp_path / "empty", [_pair(0)])
    empty = pd.read_parquet(tmp_path / "empty" / "train.parquet").iloc[:0]
    empty.to_parquet(tmp_path / "empty" / "train.parquet")
    assert "empty" in _error(tmp_path / "empty")


def test_sft_messages_need_an_assistant_turn(tmp_path):
    folder = tmp_path / "sft"
    folder.mkdir()
    convo = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    frame = pd.DataFrame({"messages": [convo, [{"role": "user", "content": "only me"}]]})
    frame.to_parquet(folder / "train.parquet")
    msg = _error(folder, trainer="sft")
    assert "row 1, column 'messages'" in msg and "no assistant turn" in msg


def test_tokenizer_needs_a_working_chat_template(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(build_tiny_chat_model(tmp_path / "tiny"))
    check_chat_template(tokenizer, "tiny")  # ChatML template: fine
    tokenizer.chat_template = "{{ raise_exception('no') }}"
    with pytest.raises(UserError, match="fails on a sample"):
        check_chat_template(tokenizer, "tiny")
    tokenizer.chat_template = None
    with pytest.raises(UserError, match="no chat template"):
        check_chat_template(tokenizer, "tiny")
