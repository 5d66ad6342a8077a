"""APIBench slices for RLAIF: leak-free, seeded, compact targets, malformed rows counted."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest

from codeultra.errors import UserError
from codeultra.metrics.answer import parse_answer
from codeultra.rlaif.apibench import normalize_instruction
from codeultra.rlaif.config import DataSection
from codeultra.rlaif.data import build_slices, policy_messages, resolve_apibench, trim_code

APIBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "apibench"


def _data(**kw) -> DataSection:
    base = {"apibench": str(APIBENCH), "sft_per_hub": 8, "rl_per_hub": 3, "eval_per_hub": 5}
    return DataSection(**{**base, **kw})


def test_slices_are_sized_per_hub_and_never_leak():
    s = build_slices(_data(), APIBENCH)
    for df, size in ((s.sft, 8), (s.rl, 3), (s.eval, 5)):
        assert df.groupby("hub").size().to_dict() == {
            "huggingface": size,
            "tensorflowhub": size,
            "torchhub": size,
        }
    held = {normalize_instruction(t) for t in s.eval["instruction"]}
    for df in (s.sft, s.rl):
        assert not held & {normalize_instruction(t) for t in df["instruction"]}
    assert not set(s.sft["item_id"]) & set(s.rl["item_id"])
    # Eval items carry their Gorilla question_id and no reference for the judge.
    assert (s.eval["question_id"] >= 1).all()
    assert (s.eval["reference"] == "").all()
    assert s.rl["reference"].str.contains("api_call: ").all()
    # The snapshot's HuggingFace eval file has rows without an output: counted, not fatal.
    assert s.summary()["skipped_rows"]["huggingface"]["no_output"] > 0


def test_slices_are_seeded():
    a, b = build_slices(_data(), APIBENCH), build_slices(_data(), APIBENCH)
    c = build_slices(_data(seed=1), APIBENCH)
    assert list(a.sft["item_id"]) == list(b.sft["item_id"])
    assert list(a.sft["item_id"]) != list(c.sft["item_id"])


def test_compact_targets_keep_the_call_and_parseable_code():
    s = build_slices(_data(max_code_lines=4), APIBENCH)
    for row in s.sft.itertuples(index=False):
        parsed = parse_answer(row.target)
        assert parsed.api_call
        assert "explanation" not in parsed.sections
        ast.parse(parsed.code)
        assert len(parsed.code.splitlines()) <= 4


def test_trim_code_keeps_the_longest_parseable_prefix():
    code = "import torch\nm = torch.hub.load(\n    'a', 'b')\nprint(m)\n"
    assert trim_code(code, 10) == "import torch\nm = torch.hub.load(\n    'a', 'b')\nprint(m)"
    assert trim_code(code, 2) == "import torch"  # line 2 alone does not parse
    assert trim_code("def broken(:\n", 5) == ""


def test_policy_prompt_names_the_hub():
    messages = policy_messages("Classify birds in photos.", "tensorflowhub")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "<<<api_call>>>" in messages[0]["content"]
    assert messages[1]["content"].startswith("Classify birds in photos.")
    assert "TensorFlow Hub" in messages[1]["content"]


def test_malformed_rows_are_counted_and_skipped(tmp_path):
    root = tmp_path / "data"
    (root / "api").mkdir(parents=True)
    (root / "apibench").mkdir()
    shutil.copy(APIBENCH / "api" / "torchhub_api.jsonl", root / "api")
    for split, n in (("train", 30), ("eval", 12)):
        lines = (APIBENCH / "apibench" / f"torchhub_{split}.json").read_text().splitlines()[:n]
        lines += ["{not json", json.dumps({"code": 3}), json.dumps(["a list"])]
        (root / "apibench" / f"torchhub_{split}.json").write_text("\n".join(lines) + "\n")
    s = build_slices(_data(apibench=str(root), hubs=["torchhub"]), resolve_apibench(_data(), root))
    skipped = s.summary()["skipped_rows"]["torchhub"]
    assert skipped["invalid_json"] == 1
    assert skipped["missing_code"] == 1
    assert skipped["not_an_object"] == 1
    assert skipped["train_invalid_json"] == 1
    assert len(s.eval) == 5


def test_a_folder_that_is_not_apibench_is_refused(tmp_path):
    with pytest.raises(UserError, match="not a Gorilla data/ folder"):
        resolve_apibench(DataSection(apibench=str(tmp_path)))
