"""The bundled instructions and principles: shape checks the generate stage relies on."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
INSTRUCTIONS = ROOT / "data" / "instructions.jsonl"
PRINCIPLES = ROOT / "prompts" / "generate" / "principles.yaml"
PREFERENCES = {"instruction-following", "explanation", "complexity", "readability", "style"}
KEYS = {"id", "instruction", "preference", "split"}


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    lines = INSTRUCTIONS.read_text(encoding="utf-8").splitlines()
    assert all(line.strip() for line in lines), "blank line in instructions.jsonl"
    return [json.loads(line) for line in lines]


def test_row_count_and_keys(rows: list[dict]) -> None:
    assert len(rows) == 60
    for row in rows:
        assert set(row) == KEYS, row.get("id")
        assert all(isinstance(row[k], str) and row[k].strip() for k in KEYS), row["id"]


def test_ids_and_texts_unique(rows: list[dict]) -> None:
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids)
    texts = [" ".join(r["instruction"].lower().split()) for r in rows]
    assert len(set(texts)) == len(texts)


def test_preferences_and_splits(rows: list[dict]) -> None:
    assert Counter(r["preference"] for r in rows) == {p: 12 for p in PREFERENCES}
    by_pair = Counter((r["preference"], r["split"]) for r in rows)
    for pref in PREFERENCES:
        assert by_pair[(pref, "train")] == 9, pref
        assert by_pair[(pref, "heldout")] == 3, pref
    assert {r["split"] for r in rows} == {"train", "heldout"}


def test_principles_cover_every_preference() -> None:
    data = yaml.safe_load(PRINCIPLES.read_text(encoding="utf-8"))
    assert data.get("version") == 1
    assert set(data) - {"version"} == PREFERENCES
    for pref in PREFERENCES:
        options = data[pref]
        assert isinstance(options, list) and len(options) >= 4, pref
        assert all(isinstance(s, str) and s.strip() for s in options), pref
        assert len(set(options)) == len(options), pref
