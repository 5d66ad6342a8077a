"""Turn judge ratings into chosen/rejected pairs and a stratified train/test split.

Strategies (all seeded; each row draws from its own RNG seeded by sha256(seed, instruction),
so a row's pick does not depend on where it sits in the file):

- ``best-worst`` (CodeUltraFeedback): chosen = a highest-rated response, rejected = a
  lowest-rated one whose text differs from chosen. Ties at the top or bottom are broken by
  a seeded draw (the paper's ``random.choice``).
- ``best-vs-random-lower`` (UltraFeedback binarisation used for Zephyr): chosen = a
  highest-rated response (seeded tie-break), rejected = drawn uniformly among responses
  rated at least ``margin`` lower.
- ``all-pairs``: every pair whose ratings differ by at least ``margin`` (higher = chosen).

Responses with a null rating or empty text never enter a pair; two responses with the
same (whitespace-stripped) text are never paired. Rows that give no pair are counted by
reason in the report: no_ratings, fewer_than_2_rated, all_tied, below_margin,
identical_texts.

Output folder: ``train.parquet`` and ``test.parquet`` in TRL's conversational preference
format (``prompt``/``chosen``/``rejected`` as message lists) plus the columns of the
released ``coseal/CodeUltraFeedback_binarized``; there ``chosen``/``rejected`` are plain
strings, here they are messages, so the strings are ``chosen_text``/``rejected_text``.
The report goes next to them as ``pairs_report.json``: ``datasets.load_dataset(DIR)`` (what
``trl dpo --dataset_name DIR`` runs) picks the Parquet module (the most common extension,
and the favourite on a draw) and still sees exactly the train and test splits. Parquet and
JSON are written to a hidden temp file and renamed, so a kill never leaves half a file.
With ``test_fraction=0`` only ``train.parquet`` is written (datasets rejects an empty split).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from codeultra.errors import UserError

STRATEGIES = ("best-worst", "best-vs-random-lower", "all-pairs")
REQUIRED_COLUMNS = ("instruction", "preference", "responses", "annotations")
DROP_REASONS = ("no_ratings", "fewer_than_2_rated", "all_tied", "below_margin", "identical_texts")
SPLITS = ("train", "test")
REPORT_NAME = "pairs_report.json"

_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def make_pairs(
    df: pd.DataFrame, strategy: str, *, margin: float = 1.0, seed: int = 42
) -> tuple[pd.DataFrame, dict]:
    """Pairs (one row per pair, with the instruction and preference) and a report dict."""
    if strategy not in STRATEGIES:
        raise UserError(f"unknown pair strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    if margin is None or not math.isfinite(margin) or margin < 0:
        raise UserError(f"--margin must be a number >= 0, got {margin!r}")
    check_ratings_frame(df)
    dropped: Counter[str] = Counter()
    stats: Counter[str] = Counter()
    records: list[dict[str, Any]] = []
    for row in df[list(REQUIRED_COLUMNS)].itertuples(index=False):
        instruction = str(row.instruction)
        cands, n_rated = _candidates(row.responses, row.annotations, stats)
        reason = _precheck(cands, n_rated)
        if not reason:
            rng = random.Random(_row_seed(seed, instruction))
            pairs, reason = _PICKERS[strategy](cands, margin, rng)
        if reason:
            dropped[reason] += 1
            continue
        stats["rows_with_pairs"] += 1
        for chosen, rejected in pairs:
            records.append(_pair_record(instruction, row.preference, chosen, rejected))
    pairs_df = pd.DataFrame.from_records(records, columns=_PAIR_COLUMNS)
    report = {
        "strategy": strategy,
        "margin": margin,
        "seed": seed,
        "rows_in": len(df),
        "rows_with_pairs": stats["rows_with_pairs"],
        "pairs_out": len(pairs_df),
        "dropped": {reason: dropped[reason] for reason in DROP_REASONS},
        "responses_excluded": {
            "null_rating": stats["null_rating"],
            "empty_text": stats["empty_text"],
        },
    }
    return pairs_df, report


def split_pairs(
    pairs: pd.DataFrame, *, test_fraction: float = 0.05, seed: int = 42
) -> dict[str, pd.DataFrame]:
    """Train/test split by instruction, stratified by preference (paper: 95/5 per preference).

    Each preference's instructions are ordered by sha256(seed, instruction), so membership
    does not depend on row order; the first round(n * test_fraction) go to test, at least
    one when the preference has two or more instructions, never all of them; if that leaves
    test empty, the overall first instruction goes there (two or more instructions needed).
    """
    if not 0 <= test_fraction < 1:
        raise UserError(f"--test-fraction must be in [0, 1), got {test_fraction!r}")
    first_pref: dict[str, str] = {}
    for instruction, pref in zip(pairs["instruction"], pairs["preference"], strict=True):
        first_pref.setdefault(instruction, _stratum(pref))
    by_pref: dict[str, list[str]] = {}
    for instruction, pref in first_pref.items():
        by_pref.setdefault(pref, []).append(instruction)
    test: set[str] = set()
    for instructions in by_pref.values():
        n = len(instructions)
        n_test = round(n * test_fraction)
        if test_fraction > 0 and n >= 2:
            n_test = min(max(n_test, 1), n - 1)
        test.update(_hash_order(instructions, seed)[:n_test])
    if test_fraction > 0 and not test:
        if len(first_pref) < 2:
            raise UserError(
                f"only {len(first_pref)} instruction(s) gave pairs: a train/test split needs "
                "at least 2 (or use --test-fraction 0)"
            )
        test.add(_hash_order(first_pref, seed)[0])
    in_test = pairs["instruction"].isin(test)
    return {
        "train": pairs[~in_test].reset_index(drop=True),
        "test": pairs[in_test].reset_index(drop=True),
    }


def run_pairs(
    input_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    strategy: str = "best-worst",
    margin: float = 1.0,
    seed: int = 42,
    test_fraction: float = 0.05,
    limit: int | None = None,
) -> dict:
    """Read ratings (a file or ``hub:ORG/NAME[@split]``), write the two splits and the report."""
    if strategy not in STRATEGIES:
        raise UserError(f"unknown pair strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    if limit is not None and limit < 0:
        raise UserError(f"--limit must be >= 0, got {limit}")
    df = read_ratings(input_path)
    if limit is not None:
        df = df.head(limit)
    pairs, report = make_pairs(df, strategy, margin=margin, seed=seed)
    if pairs.empty:
        drops = ", ".join(f"{k}: {v}" for k, v in report["dropped"].items() if v)
        raise UserError(f"no pairs from {len(df)} rows of {input_path} ({drops or 'no rows'})")
    splits = split_pairs(pairs, test_fraction=test_fraction, seed=seed)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in splits.items():
        path = out / f"{name}.parquet"
        if part.empty:  # only test, with test_fraction=0: drop a stale file from a rerun
            path.unlink(missing_ok=True)
        else:
            write_pairs_parquet(part, path)
    report["input"] = str(input_path)
    report["test_fraction"] = test_fraction
    report["limit"] = limit
    report["splits"] = {name: _split_summary(part) for name, part in splits.items()}
    report_path = out / REPORT_NAME
    _atomic_write_bytes(report_path, json.dumps(report, indent=2, sort_keys=True).encode())
    report["report_path"] = str(report_path)
    return report


def read_ratings(input_path: str | os.PathLike) -> pd.DataFrame:
    """A ratings table from Parquet/JSONL, or from the Hub; released string ratings converted."""
    spec = str(input_path)
    if spec.startswith("hub:"):
        from codeultra.hub import load_hub_dataset

        return load_hub_dataset(spec)
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"ratings file not found: {path}")
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        elif path.suffix in (".jsonl", ".json"):
            df = pd.read_json(path, lines=path.suffix == ".jsonl")
        else:
            raise UserError(f"{path}: expected a .parquet or .jsonl ratings file")
    except UserError:
        raise
    except Exception as exc:  # pyarrow/pandas raise many types for a corrupt file
        raise UserError(f"{path}: not a readable ratings file ({type(exc).__name__})") from None
    check_ratings_frame(df, allow_string_ratings=True, source=str(path))
    if _has_string_ratings(df):
        from codeultra.hub import from_released_schema

        df = from_released_schema(df)
    return df


def check_ratings_frame(
    df: pd.DataFrame, *, allow_string_ratings: bool = False, source: str = "ratings"
) -> None:
    """UserError naming the first missing column, or string ratings where ints are needed."""
    for col in REQUIRED_COLUMNS:
        if col not in df.columns:
            raise UserError(f"{source}: not a ratings file, missing column {col!r}")
    if not allow_string_ratings and _has_string_ratings(df):
        raise UserError(
            f"{source}: ratings are strings (released CodeUltraFeedback schema); "
            "convert with codeultra.hub.from_released_schema"
        )


def write_pairs_parquet(pairs: pd.DataFrame, path: Path) -> None:
    """Write with an explicit schema (so an empty split has the same features) atomically."""
    ints = all(
        pd.api.types.is_integer_dtype(pairs[c]) or len(pairs) == 0
        for c in ("rating_chosen", "rating_rejected")
    )
    rating_type = pa.int64() if ints else pa.float64()
    schema = pa.schema(
        [
            ("prompt", _MESSAGES),
            ("chosen", _MESSAGES),
            ("rejected", _MESSAGES),
            ("instruction", pa.string()),
            ("preference", pa.string()),
            ("chosen_text", pa.string()),
            ("rejected_text", pa.string()),
            ("rating_chosen", rating_type),
            ("rating_rejected", rating_type),
            ("model_chosen", pa.string()),
            ("model_rejected", pa.string()),
        ]
    )
    columns = {name: pairs[name].tolist() for name in schema.names}
    table = pa.Table.from_pydict(columns, schema=schema)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# -- internals ---------------------------------------------------------------------------

_PAIR_COLUMNS = [
    "prompt",
    "chosen",
    "rejected",
    "instruction",
    "preference",
    "chosen_text",
    "rejected_text",
    "rating_chosen",
    "rating_rejected",
    "model_chosen",
    "model_rejected",
]

Candidate = tuple[int, str, str, float]  # (position, model, text, rating)


def _row_seed(seed: int, text: str) -> int:
    digest = hashlib.sha256(f"{seed}\0{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _hash_order(texts: Iterable[str], seed: int) -> list[str]:
    return sorted(texts, key=lambda text: _row_seed(seed, "split\0" + text))


def _as_list(value: Any) -> list:
    """Parquet/datasets give numpy arrays, JSON gives lists, a missing cell gives None/NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return list(value)


def _rating(value: Any) -> float | int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        raise UserError("ratings are strings; convert with codeultra.hub.from_released_schema")
    number = float(value)
    if math.isnan(number):
        return None
    return int(number) if number.is_integer() else number


def _has_string_ratings(df: pd.DataFrame) -> bool:
    for anns in df["annotations"]:
        for ann in _as_list(anns):
            if isinstance(ann, dict) and isinstance(ann.get("rating"), str):
                return True
    return False


def _aligned_annotations(responses: list, annotations: list) -> list[dict | None]:
    """One annotation per response: by position when models agree, else by model name."""
    annotations = [a if isinstance(a, dict) else {} for a in annotations]
    models = [r.get("model") for r in responses]
    if len(annotations) == len(responses) and all(
        a.get("model") in (None, m) for a, m in zip(annotations, models, strict=True)
    ):
        return list(annotations)
    queues: dict[Any, list[dict]] = {}
    for ann in annotations:
        queues.setdefault(ann.get("model"), []).append(ann)
    return [queues[m].pop(0) if queues.get(m) else None for m in models]


def _candidates(
    responses: Any, annotations: Any, stats: Counter[str]
) -> tuple[list[Candidate], int]:
    """Responses that may enter a pair, and how many responses had a rating at all."""
    responses = [r if isinstance(r, dict) else {} for r in _as_list(responses)]
    aligned = _aligned_annotations(responses, _as_list(annotations))
    cands: list[Candidate] = []
    n_rated = 0
    for pos, (resp, ann) in enumerate(zip(responses, aligned, strict=True)):
        rating = _rating(ann.get("rating")) if ann else None
        text = resp.get("response")
        if rating is None:
            stats["null_rating"] += 1
            continue
        n_rated += 1
        if not isinstance(text, str) or not text.strip():
            stats["empty_text"] += 1
        else:
            cands.append((pos, str(resp.get("model") or ""), text, rating))
    return cands, n_rated


def _same_text(a: Candidate, b: Candidate) -> bool:
    return a[2].strip() == b[2].strip()


def _precheck(cands: Sequence[Candidate], n_rated: int) -> str | None:
    if n_rated == 0:
        return "no_ratings"
    if len(cands) < 2:
        return "fewer_than_2_rated"
    if len({c[3] for c in cands}) == 1:
        return "all_tied"
    return None


def _best_worst(
    cands: list[Candidate], margin: float, rng: random.Random
) -> tuple[list[tuple[Candidate, Candidate]], str | None]:
    top = max(c[3] for c in cands)
    chosen = rng.choice([c for c in cands if c[3] == top])
    lower = [c for c in cands if c[3] < top and not _same_text(c, chosen)]
    if not lower:
        return [], "identical_texts"
    bottom = min(c[3] for c in lower)
    if top - bottom < margin:
        return [], "below_margin"
    rejected = rng.choice([c for c in lower if c[3] == bottom])
    return [(chosen, rejected)], None


def _best_vs_random_lower(
    cands: list[Candidate], margin: float, rng: random.Random
) -> tuple[list[tuple[Candidate, Candidate]], str | None]:
    top = max(c[3] for c in cands)
    chosen = rng.choice([c for c in cands if c[3] == top])
    lower = [c for c in cands if c[3] < top and not _same_text(c, chosen)]
    if not lower:
        return [], "identical_texts"
    far_enough = [c for c in lower if top - c[3] >= margin]
    if not far_enough:
        return [], "below_margin"
    return [(chosen, rng.choice(far_enough))], None


def _all_pairs(
    cands: list[Candidate], margin: float, rng: random.Random
) -> tuple[list[tuple[Candidate, Candidate]], str | None]:
    pairs, gaps_ok = [], False
    for a, b in itertools.combinations(cands, 2):
        if a[3] == b[3] or abs(a[3] - b[3]) < margin:
            continue
        gaps_ok = True
        if not _same_text(a, b):
            pairs.append((a, b) if a[3] > b[3] else (b, a))
    if not pairs:
        return [], "identical_texts" if gaps_ok else "below_margin"
    return pairs, None


_PICKERS = {
    "best-worst": _best_worst,
    "best-vs-random-lower": _best_vs_random_lower,
    "all-pairs": _all_pairs,
}


def _pair_record(
    instruction: str, preference: Any, chosen: Candidate, rejected: Candidate
) -> dict[str, Any]:
    return {
        "prompt": [{"role": "user", "content": instruction}],
        "chosen": [{"role": "assistant", "content": chosen[2]}],
        "rejected": [{"role": "assistant", "content": rejected[2]}],
        "instruction": instruction,
        "preference": _stratum(preference) or None,
        "chosen_text": chosen[2],
        "rejected_text": rejected[2],
        "rating_chosen": chosen[3],
        "rating_rejected": rejected[3],
        "model_chosen": chosen[1],
        "model_rejected": rejected[1],
    }


def _stratum(pref: Any) -> str:
    return "" if pref is None or (isinstance(pref, float) and math.isnan(pref)) else str(pref)


def _split_summary(part: pd.DataFrame) -> dict[str, Any]:
    prefs: Iterable[str] = (_stratum(p) for p in part["preference"])
    return {
        "pairs": len(part),
        "instructions": int(part["instruction"].nunique()),
        "pairs_by_preference": dict(sorted(Counter(prefs).items())),
    }


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
