"""Released-schema conversion, offline Hub errors, and the dataset card."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from codeultra.dataset_card import rating_histograms, render_dataset_card
from codeultra.errors import UserError
from codeultra.hub import (
    RELEASED_COLUMNS,
    from_released_schema,
    load_hub_dataset,
    parse_hub_spec,
    parse_released_rating,
    push_dataset,
    to_released_schema,
)
from codeultra.stages.pairs import run_pairs

HUB_DATA = Path(__file__).parent / "data" / "hub"
REPO_ROOT = Path(__file__).resolve().parents[1]


def released_via_datasets(tmp_path: Path) -> pd.DataFrame:
    """The fixture read through datasets, as load_hub_dataset reads the real release."""
    import datasets

    files = {"train": str(HUB_DATA / "released_sample.parquet")}
    ds = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "hf"))
    return ds["train"].to_pandas()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("5", 5), (" 3 ", 3), ("N/A", None), ("", None), ("five", None), ("4.5", None),
     (None, None), (4, 4), (2.0, 2)],
)  # fmt: skip
def test_parse_released_rating(raw, expected):
    assert parse_released_rating(raw) == expected


def test_from_released_schema_aligns_annotations_with_responses(tmp_path):
    raw = released_via_datasets(tmp_path)
    out = from_released_schema(raw)
    assert list(out.columns[: len(RELEASED_COLUMNS)]) == list(RELEASED_COLUMNS)
    assert len(out) == len(raw)
    for src, conv in zip(raw.itertuples(), out.itertuples(), strict=True):
        released = {a["model"]: a for a in src.annotations}
        assert [a["model"] for a in conv.annotations] == [r["model"] for r in conv.responses]
        for ann in conv.annotations:
            rel = released.get(ann["model"])
            if rel is None:  # the judge's answer did not parse: no annotations released
                assert ann["rating"] is None and ann["rationale"] is None
                continue
            assert ann["rationale"] == rel["rationale"]
            text = rel["rating"].strip()
            assert ann["rating"] == (int(text) if text.isdigit() else None)
    ratings = [a["rating"] for anns in out.annotations for a in anns]
    assert all(r is None or isinstance(r, int) for r in ratings)
    assert any(r is None for r in ratings) and any(isinstance(r, int) for r in ratings)


def test_jsonl_and_parquet_fixtures_convert_the_same(tmp_path):
    from_parquet = from_released_schema(released_via_datasets(tmp_path))
    from_jsonl = from_released_schema(pd.read_json(HUB_DATA / "released_sample.jsonl", lines=True))
    assert from_parquet.to_dict("records") == from_jsonl.to_dict("records")


def test_to_released_schema_round_trip(tmp_path):
    raw = released_via_datasets(tmp_path)
    back = to_released_schema(from_released_schema(raw))
    assert list(back.columns) == list(RELEASED_COLUMNS)
    for src, out in zip(raw.itertuples(), back.itertuples(), strict=True):
        assert all(isinstance(a["rating"], str) for a in out.annotations)
        released = {a["model"]: a["rating"] for a in src.annotations}
        for a in out.annotations:
            want = released.get(a["model"], "N/A")
            assert a["rating"] == (want if want.strip().isdigit() else "N/A")
    path = tmp_path / "export.parquet"
    back.to_parquet(path)
    rating_type = pq.read_schema(path).field("annotations").type.value_type.field("rating").type
    assert str(rating_type) == "string"
    again = from_released_schema(pd.read_parquet(path))
    assert again.annotations.map(list).tolist() == from_released_schema(raw).annotations.tolist()


def test_conversion_rejects_a_table_that_is_not_the_release():
    with pytest.raises(UserError, match="'annotations'"):
        from_released_schema(pd.DataFrame({"instruction": ["q"], "preference": ["style"],
                                           "responses": [[]]}))  # fmt: skip


def test_parse_hub_spec():
    assert parse_hub_spec("hub:coseal/CodeUltraFeedback") == ("coseal/CodeUltraFeedback", "train")
    assert parse_hub_spec("hub:coseal/CodeUltraFeedback@test")[1] == "test"
    for bad in ("coseal/CodeUltraFeedback", "hub:nosplit", "hub:a/b/c"):
        with pytest.raises(UserError, match="hub:ORG/NAME"):
            parse_hub_spec(bad)


def test_load_hub_dataset_offline_fails_at_once_in_process(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=r"coseal/CodeUltraFeedback.*offline"):
        load_hub_dataset("hub:coseal/CodeUltraFeedback")


def test_load_hub_dataset_offline_real_datasets_path(tmp_path):
    """A fresh process with HF_HUB_OFFLINE=1 set before import: datasets looks in the cache."""
    code = (
        "from codeultra.hub import load_hub_dataset\n"
        "from codeultra.errors import UserError\n"
        "try:\n"
        "    load_hub_dataset('hub:coseal/CodeUltraFeedback@test')\n"
        "except UserError as e:\n"
        "    print('USERERROR', e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_TOKEN", None)
    # timeout only guards against a hang; the assertion is on what happened
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("USERERROR") and "coseal/CodeUltraFeedback" in line
    assert "offline" in line and "local cache" in line


def test_push_dataset_errors_before_any_network(tmp_path, monkeypatch):
    secret = "hf_do_not_print_me_123"
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "pairs"
    folder.mkdir()
    with pytest.raises(UserError, match="offline") as err:
        push_dataset(folder, "me/my-pairs", card_text="# card")
    assert "me/my-pairs" in str(err.value) and secret not in str(err.value)
    with pytest.raises(UserError, match="ORG/NAME"):
        push_dataset(folder, "no-org", card_text="# card")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    with pytest.raises(UserError, match="missing train.parquet") as err:
        push_dataset(folder, "me/my-pairs", card_text="# card")
    assert secret not in str(err.value)
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(UserError, match="HF_TOKEN"):
        push_dataset(folder, "me/my-pairs", card_text="# card")


def test_push_dataset_real_path_to_an_unreachable_endpoint(tmp_path):
    """Online mode against a closed local port: the folder loads, the push fails as one line."""
    run_pairs(HUB_DATA / "released_sample.jsonl", tmp_path / "o", test_fraction=0.5)
    code = (
        "from codeultra.hub import push_dataset\n"
        "from codeultra.errors import UserError\n"
        "try:\n"
        f"    push_dataset({str(tmp_path / 'o')!r}, 'me/x', card_text='# x')\n"
        "except UserError as e:\n"
        "    print('USERERROR', e)\n"
    )
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_secret_zzz",
           "HF_HOME": str(tmp_path / "hf")}  # fmt: skip
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("HF_DATASETS_OFFLINE", None)
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("USERERROR push to me/x failed")
    assert "hf_secret_zzz" not in proc.stdout + proc.stderr


# -- dataset card --------------------------------------------------------------------------


def card_inputs(tmp_path):
    report = run_pairs(HUB_DATA / "released_sample.jsonl", tmp_path / "o", test_fraction=0.5)
    ratings = from_released_schema(pd.read_json(HUB_DATA / "released_sample.jsonl", lines=True))
    return {
        "repo_id": "me/code-pairs",
        "recipe": {"pool": ["gpt-4", "wizardlm-7b"], "judge": {"model": "gpt-3.5-turbo"}},
        "pool": sorted({m for ms in ratings.models for m in ms}) + ["odd|name"],
        "judge": "gpt-3.5-turbo",
        "counts": {"instructions": report["rows_in"], "train pairs":
                   report["splits"]["train"]["pairs"], "test pairs":
                   report["splits"]["test"]["pairs"]},
        "rating_histograms": rating_histograms(ratings),
    }  # fmt: skip


def test_dataset_card_front_matter_and_sections(tmp_path):
    from huggingface_hub import DatasetCard

    inputs = card_inputs(tmp_path)
    text = render_dataset_card(**inputs)
    assert text.startswith("---\n")
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["license"] == "other" and front["task_categories"] == ["text-generation"]
    files = {f["split"]: f["path"] for f in front["configs"][0]["data_files"]}
    assert files == {"train": "data/train-*", "test": "data/test-*"}
    card = DatasetCard(text)  # the Hub's own parser accepts it
    assert card.data.to_dict()["configs"][0]["config_name"] == "default"
    assert "# me/code-pairs" in text and "`gpt-3.5-turbo`" in text
    assert yaml.safe_load(text.split("```yaml\n")[1].split("```")[0]) == inputs["recipe"]
    for model in inputs["pool"]:
        assert f"- `{model}`" in text
    for name, value in inputs["counts"].items():
        assert f"| {name} | {value} |" in text


def test_dataset_card_histogram_table(tmp_path):
    inputs = card_inputs(tmp_path)
    inputs["rating_histograms"]["odd|model"] = {5: 2, "5": 1, None: 4}
    text = render_dataset_card(**inputs)
    table = text.split("## Rating histograms")[1].strip().splitlines()
    header = [c.strip() for c in table[0].strip("|").split("|")]
    ratings = header[1:-1]
    assert header[-1] == "total" and ratings[-1] == "N/A"
    assert [float(r) for r in ratings[:-1]] == sorted(float(r) for r in ratings[:-1])
    rows = {}
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").replace("\\|", "\0").split("|")]
        rows[cells[0].replace("\0", "|")] = [int(c) for c in cells[1:]]
    assert rows["odd|model"][-1] == 7 and rows["odd|model"][ratings.index("5")] == 3
    for model, hist in inputs["rating_histograms"].items():
        assert sum(rows[model][:-1]) == rows[model][-1] == sum(hist.values())


def test_dataset_card_without_recipe_or_judge():
    text = render_dataset_card(
        repo_id="o/n", recipe=None, pool=[], judge=None, counts={}, rating_histograms={}
    )
    assert text.count("Not recorded.") == 3 and yaml.safe_load(text.split("---\n")[1])
