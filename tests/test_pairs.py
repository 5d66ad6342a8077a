"""Pair strategies, the stratified split, and the files run_pairs writes (read back for real)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from codeultra.errors import UserError
from codeultra.stages.pairs import (
    DROP_REASONS,
    STRATEGIES,
    make_pairs,
    run_pairs,
    split_pairs,
)

HUB_DATA = Path(__file__).parent / "data" / "hub"
PREFERENCES = ["instruction-following", "explanation", "complexity", "readability", "style"]

# The judge's ratings file: ratings are nullable int32, annotations aligned with responses.
RATINGS_SCHEMA = pa.schema(
    [
        ("instruction", pa.string()),
        ("preference", pa.string()),
        ("models", pa.list_(pa.string())),
        ("responses", pa.list_(pa.struct([("model", pa.string()), ("response", pa.string())]))),
        (
            "annotations",
            pa.list_(
                pa.struct(
                    [("model", pa.string()), ("rating", pa.int32()), ("rationale", pa.string())]
                )
            ),
        ),
        ("judge_model", pa.string()),
    ]
)


def row(instruction, ratings, texts=None, preference="style"):
    models = [f"m{i}" for i in range(len(ratings))]
    texts = texts if texts is not None else [f"answer {i} to {instruction}" for i in models]
    return {
        "instruction": instruction,
        "preference": preference,
        "models": models,
        "responses": [{"model": m, "response": t} for m, t in zip(models, texts, strict=True)],
        "annotations": [
            {"model": m, "rating": r, "rationale": None if r is None else "ok"}
            for m, r in zip(models, ratings, strict=True)
        ],
        "judge_model": "judge-x",
    }


def frame(*rows):
    return pd.DataFrame(list(rows))


def write_ratings(path: Path, rows: list[dict]) -> Path:
    pq.write_table(pa.Table.from_pylist(rows, schema=RATINGS_SCHEMA), path)
    return path


# -- strategies ---------------------------------------------------------------------------


def test_best_worst_picks_highest_and_lowest_in_trl_message_format():
    pairs, report = make_pairs(frame(row("q", [3, 5, 1, 4])), "best-worst")
    assert len(pairs) == 1 and report["pairs_out"] == 1
    p = pairs.iloc[0]
    assert (p.model_chosen, p.rating_chosen) == ("m1", 5)
    assert (p.model_rejected, p.rating_rejected) == ("m2", 1)
    assert list(p.prompt) == [{"role": "user", "content": "q"}]
    assert list(p.chosen) == [{"role": "assistant", "content": p.chosen_text}]
    assert list(p.rejected) == [{"role": "assistant", "content": p.rejected_text}]
    assert p.chosen_text == "answer m1 to q" and p.rejected_text == "answer m2 to q"


@pytest.mark.parametrize("strategy", ["best-worst", "best-vs-random-lower"])
def test_tie_at_top_is_a_seeded_draw(strategy):
    df = frame(row("tie", [5, 1, 5, 2]))
    picks = {s: make_pairs(df, strategy, seed=s)[0].iloc[0].model_chosen for s in range(40)}
    assert set(picks.values()) == {"m0", "m2"}  # both tied best responses get drawn
    again = {s: make_pairs(df, strategy, seed=s)[0].iloc[0].model_chosen for s in range(40)}
    assert again == picks  # same seed, same pick


def test_best_vs_random_lower_draws_among_strictly_lower_and_respects_margin():
    df = frame(row("q", [5, 4, 3, 1]))
    rejected = {make_pairs(df, "best-vs-random-lower", seed=s)[0].iloc[0].rating_rejected
                for s in range(60)}  # fmt: skip
    assert rejected == {4, 3, 1}
    far = {make_pairs(df, "best-vs-random-lower", margin=2, seed=s)[0].iloc[0].rating_rejected
           for s in range(60)}  # fmt: skip
    assert far == {3, 1}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_drop_reasons(strategy):
    df = frame(
        row("tied", [3, 3, 3, 3]),
        row("null", [None, None, None, None]),
        row("one", [None, 4, None, None]),
        row("empty text", [5, 2], texts=["def f(): pass", "   "]),
        row("fine", [4, 2, None, 1]),
    )
    pairs, report = make_pairs(df, strategy)
    assert report["dropped"]["all_tied"] == 1
    assert report["dropped"]["no_ratings"] == 1
    assert report["dropped"]["fewer_than_2_rated"] == 2
    assert report["responses_excluded"] == {"null_rating": 8, "empty_text": 1}
    assert set(pairs["instruction"]) == {"fine"}
    assert report["rows_in"] == report["rows_with_pairs"] + sum(report["dropped"].values())


def test_same_text_is_never_chosen_and_rejected():
    same = "def f():\n    return 1\n"
    pairs, report = make_pairs(frame(row("dup", [5, 1], texts=[same, same + "  "])), "best-worst")
    assert pairs.empty and report["dropped"]["identical_texts"] == 1
    # the lowest shares chosen's text: best-worst falls back to the lowest *different* one
    pairs, _ = make_pairs(frame(row("q", [5, 1, 3], texts=["a", "a", "b"])), "best-worst")
    assert (pairs.iloc[0].chosen_text, pairs.iloc[0].rejected_text) == ("a", "b")


def test_all_pairs_margin_filtering_and_ties():
    df = frame(row("q", [5, 4, 2, None]))
    counts = {m: make_pairs(df, "all-pairs", margin=m)[0] for m in (0, 1, 2, 4)}
    gaps = lambda p: sorted(zip(p.rating_chosen, p.rating_rejected, strict=True))  # noqa: E731
    assert gaps(counts[0]) == gaps(counts[1]) == [(4, 2), (5, 2), (5, 4)]
    assert gaps(counts[2]) == [(4, 2), (5, 2)]
    assert counts[4].empty
    assert make_pairs(df, "all-pairs", margin=4)[1]["dropped"]["below_margin"] == 1
    tied, _ = make_pairs(frame(row("t", [5, 5, 3])), "all-pairs")
    assert gaps(tied) == [(5, 3), (5, 3)] and set(tied.model_chosen) == {"m0", "m1"}


def test_best_worst_margin():
    _, report = make_pairs(frame(row("q", [3, 2])), "best-worst", margin=2)
    assert report["dropped"]["below_margin"] == 1 and report["pairs_out"] == 0


def test_picks_do_not_depend_on_row_order_and_change_with_seed():
    rng = random.Random(0)
    rows = [row(f"q{i}", [rng.choice([1, 5]) for _ in range(4)]) for i in range(60)]
    key = ["instruction", "model_chosen", "model_rejected"]
    a, _ = make_pairs(frame(*rows), "best-vs-random-lower", seed=7)
    b, _ = make_pairs(frame(*rng.sample(rows, len(rows))), "best-vs-random-lower", seed=7)
    ordered = lambda p: p[key].sort_values(key).reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(ordered(a), ordered(b))
    c, _ = make_pairs(frame(*rows), "best-vs-random-lower", seed=8)
    assert not ordered(a).equals(ordered(c))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_property_pairs_are_valid_over_random_rows(strategy):
    rng = random.Random(strategy)
    texts_pool = ["x = 1", "x = 1 ", "print(1)", "", "return y", "  ", "def g(): ..."]
    rows = []
    for i in range(400):
        n = rng.randint(0, 5)
        ratings = [rng.choice([None, 1, 2, 3, 4, 5]) for _ in range(n)]
        texts = [rng.choice(texts_pool) for _ in range(n)]
        rows.append(row(f"r{i}", ratings, texts, preference=rng.choice(PREFERENCES)))
    for margin in (0, 1, 2):
        pairs, report = make_pairs(frame(*rows), strategy, margin=margin, seed=rng.randint(0, 99))
        by_instruction = {r["instruction"]: r for r in rows}
        for p in pairs.itertuples():
            assert p.chosen_text.strip() != p.rejected_text.strip()
            assert p.chosen_text.strip() and p.rejected_text.strip()
            assert p.rating_chosen > p.rating_rejected
            assert p.rating_chosen - p.rating_rejected >= margin
            src = by_instruction[p.instruction]
            rated = {
                (r["model"], r["response"], a["rating"])
                for r, a in zip(src["responses"], src["annotations"], strict=True)
            }
            assert (p.model_chosen, p.chosen_text, p.rating_chosen) in rated
            assert (p.model_rejected, p.rejected_text, p.rating_rejected) in rated
            if strategy != "all-pairs":
                usable = [
                    a["rating"]
                    for r, a in zip(src["responses"], src["annotations"], strict=True)
                    if a["rating"] is not None and r["response"].strip()
                ]
                assert p.rating_chosen == max(usable)
        assert report["rows_in"] == report["rows_with_pairs"] + sum(report["dropped"].values())
        if strategy != "all-pairs":
            assert report["pairs_out"] == report["rows_with_pairs"]


def test_bad_input_is_a_one_line_user_error():
    with pytest.raises(UserError, match="best-worst, best-vs-random-lower, all-pairs"):
        make_pairs(frame(row("q", [1, 2])), "top-k")
    with pytest.raises(UserError, match="'annotations'"):
        make_pairs(frame(row("q", [1, 2])).drop(columns=["annotations"]), "best-worst")
    released = frame(row("q", [1, 2]))
    released["annotations"] = [[{"model": "m0", "rating": "1"}, {"model": "m1", "rating": "2"}]]
    with pytest.raises(UserError, match="from_released_schema"):
        make_pairs(released, "best-worst")
    with pytest.raises(UserError, match="margin"):
        make_pairs(frame(row("q", [1, 2])), "best-worst", margin=-1)


# -- split --------------------------------------------------------------------------------


def synthetic_pairs(per_preference: int, seed: int = 0) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = [
        row(f"{pref}-{i}", [rng.randint(1, 2), rng.randint(3, 5), rng.randint(3, 5)], None, pref)
        for pref in PREFERENCES
        for i in range(per_preference)
    ]
    return make_pairs(frame(*rows), "all-pairs")[0]


def test_split_is_stratified_by_preference_without_leakage():
    pairs = synthetic_pairs(200)
    assert pairs.groupby("instruction").size().max() > 1  # several pairs per instruction
    splits = split_pairs(pairs, test_fraction=0.05, seed=42)
    train, test = splits["train"], splits["test"]
    assert not set(train.instruction) & set(test.instruction)
    assert len(train) + len(test) == len(pairs)
    for pref in PREFERENCES:
        n_test = test[test.preference == pref].instruction.nunique()
        n_all = pairs[pairs.preference == pref].instruction.nunique()
        assert n_test == round(0.05 * n_all)


def test_split_is_deterministic_order_independent_and_seeded():
    pairs = synthetic_pairs(40)
    test_a = set(split_pairs(pairs, seed=42)["test"].instruction)
    shuffled = pairs.sample(frac=1, random_state=3).reset_index(drop=True)
    assert set(split_pairs(shuffled, seed=42)["test"].instruction) == test_a
    assert set(split_pairs(pairs, seed=43)["test"].instruction) != test_a


def test_split_small_inputs():
    pairs = make_pairs(frame(*(row(f"q{i}", [1, 5]) for i in range(3))), "best-worst")[0]
    splits = split_pairs(pairs, test_fraction=0.05)
    assert (len(splits["train"]), len(splits["test"])) == (2, 1)
    two_prefs = make_pairs(
        frame(
            *(row(f"{p}{i}", [1, 5], None, p) for p in ("style", "complexity") for i in range(3))
        ),
        "best-worst",
    )[0]
    test = split_pairs(two_prefs, test_fraction=0.05)["test"]
    assert sorted(test.preference) == ["complexity", "style"]  # at least one per preference
    one = pairs.head(1)
    with pytest.raises(UserError, match="at least 2"):
        split_pairs(one, test_fraction=0.05)
    assert split_pairs(one, test_fraction=0)["test"].empty


# -- run_pairs: files and readers ---------------------------------------------------------


def ratings_rows(n_per_pref: int) -> list[dict]:
    rng = random.Random(1)
    return [
        row(f"{p} task {i}", [rng.choice([None, 1, 2, 3, 4, 5]) for _ in range(4)], None, p)
        for p in PREFERENCES
        for i in range(n_per_pref)
    ]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_run_pairs_writes_splits_that_datasets_pandas_and_duckdb_read(tmp_path, strategy):
    import datasets

    src = write_ratings(tmp_path / "ratings.parquet", ratings_rows(24))
    out = tmp_path / "pairs"
    report = run_pairs(src, out, strategy=strategy, test_fraction=0.1)
    assert sorted(p.name for p in out.iterdir()) == ["pairs_report.json", "test.parquet",
                                                      "train.parquet"]  # fmt: skip
    assert json.loads((out / "pairs_report.json").read_text())["pairs_out"] == report["pairs_out"]
    assert set(report["dropped"]) == set(DROP_REASONS)

    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf"))
    assert set(ds) == {"train", "test"}
    for split in ("train", "test"):
        n = report["splits"][split]["pairs"]
        assert n > 0 and ds[split].num_rows == n
        assert len(pd.read_parquet(out / f"{split}.parquet")) == n
        assert duckdb.sql(f"select count(*) from '{out / split}.parquet'").fetchall()[0][0] == n
    feats = ds["train"].features
    assert feats["prompt"].feature["role"].dtype == "string"
    assert feats["rating_chosen"].dtype == "int64"
    first = ds["train"][0]
    assert first["prompt"][0]["role"] == "user" and first["chosen"][0]["role"] == "assistant"
    assert first["chosen"][0]["content"] == first["chosen_text"]
    roles = duckdb.sql(f"select chosen[1].role from '{out}/test.parquet'").fetchall()
    assert {r[0] for r in roles} == {"assistant"}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_run_pairs_output_is_trl_conversational():
    from trl.data_utils import is_conversational

    pairs, _ = make_pairs(frame(row("q", [1, 5])), "best-worst")
    example = {k: list(pairs.iloc[0][k]) for k in ("prompt", "chosen", "rejected")}
    assert is_conversational(example)


def test_run_pairs_reads_released_schema_jsonl(tmp_path):
    report = run_pairs(HUB_DATA / "released_sample.jsonl", tmp_path / "o", test_fraction=0.5)
    released = pd.read_json(HUB_DATA / "released_sample.jsonl", lines=True)
    assert report["rows_in"] == len(released)
    assert report["dropped"]["no_ratings"] == 1  # the row with no annotations
    assert report["dropped"]["all_tied"] == 1
    train = pd.read_parquet(tmp_path / "o" / "train.parquet")
    test = pd.read_parquet(tmp_path / "o" / "test.parquet")
    both = pd.concat([train, test])
    for p in both.itertuples():
        src = released[released.instruction == p.instruction].iloc[0]
        by_model = {a["model"]: a["rating"] for a in src.annotations}
        assert str(p.rating_chosen) == by_model[p.model_chosen]
        assert str(p.rating_rejected) == by_model[p.model_rejected]
        assert "N/A" not in (by_model[p.model_chosen], by_model[p.model_rejected])


def test_run_pairs_rerun_with_zero_test_fraction_drops_stale_test(tmp_path):
    src = write_ratings(tmp_path / "r.parquet", ratings_rows(6))
    run_pairs(src, tmp_path / "o", test_fraction=0.2)
    assert (tmp_path / "o" / "test.parquet").exists()
    report = run_pairs(src, tmp_path / "o", test_fraction=0, limit=10)
    assert report["rows_in"] == 10
    assert not (tmp_path / "o" / "test.parquet").exists()
    assert len(pd.read_parquet(tmp_path / "o" / "train.parquet")) == report["pairs_out"]


def test_run_pairs_bad_inputs(tmp_path):
    with pytest.raises(UserError, match="not found"):
        run_pairs(tmp_path / "missing.parquet", tmp_path / "o")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(UserError, match="not a readable ratings file"):
        run_pairs(bad, tmp_path / "o")
    no_pref = tmp_path / "nopref.parquet"
    pd.DataFrame({"instruction": ["q"], "responses": [[]], "annotations": [[]]}).to_parquet(no_pref)
    with pytest.raises(UserError, match="missing column 'preference'"):
        run_pairs(no_pref, tmp_path / "o")
    src = write_ratings(tmp_path / "r.parquet", [row("q", [3, 3])])
    with pytest.raises(UserError, match="all_tied: 1"):
        run_pairs(src, tmp_path / "o")
    with pytest.raises(UserError, match="valid: best-worst"):
        run_pairs(src, tmp_path / "o", strategy="nope")
    assert not (tmp_path / "o").exists()
