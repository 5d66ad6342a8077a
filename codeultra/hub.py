"""Hugging Face Hub in and out: the released CodeUltraFeedback schema <-> codeultra's.

The release (``coseal/CodeUltraFeedback``) has columns instruction, preference, models,
responses (list of {model, response}) and annotations (list of {model, rating, rationale})
with ratings as strings ("1".."5" or "N/A") in the judge's shuffled order, not the order of
``responses``. codeultra keeps ratings as nullable ints aligned with ``responses``.
The token is read from HF_TOKEN only and never printed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from codeultra.errors import UserError

RELEASED_COLUMNS = ("instruction", "preference", "models", "responses", "annotations")
NA_RATING = "N/A"
_SPEC = re.compile(r"^hub:([\w.-]+/[\w.-]+)(?:@([\w.-]+))?$")
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_INT = re.compile(r"^[+-]?\d+$")


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set (read now, not at import)."""
    truthy = {"1", "true", "yes", "on"}
    return any(
        os.environ.get(var, "").strip().lower() in truthy
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def parse_hub_spec(spec: str, split: str = "train") -> tuple[str, str]:
    """``hub:ORG/NAME[@split]`` -> (repo id, split)."""
    match = _SPEC.match(spec.strip())
    if not match:
        raise UserError(f"bad Hub dataset spec {spec!r}; expected hub:ORG/NAME[@split]")
    return match.group(1), match.group(2) or split


def load_hub_raw(spec: str, split: str = "train") -> pd.DataFrame:
    """Load ``hub:ORG/NAME[@split]`` with datasets.load_dataset, columns as published.

    Offline, only the local HF cache is tried (datasets makes no network call then); a miss
    is a UserError at once.
    """
    repo_id, split = parse_hub_spec(spec, split)
    import datasets

    offline = hub_offline()
    if offline and not datasets.config.HF_HUB_OFFLINE:
        # The env var was set after `datasets` was imported: it would still go online.
        raise UserError(f"cannot load Hub dataset {repo_id}: offline (HF_HUB_OFFLINE=1)")
    try:
        ds = datasets.load_dataset(repo_id, split=split)
    except Exception as exc:  # datasets raises many types: missing repo, split, network
        where = "offline (HF_HUB_OFFLINE=1) and not in the local cache" if offline else "failed"
        raise UserError(
            f"cannot load Hub dataset {repo_id} split {split!r}: {where} ({type(exc).__name__})"
        ) from None
    return ds.to_pandas()


def load_hub_dataset(spec: str, split: str = "train") -> pd.DataFrame:
    """A released CodeUltraFeedback-style ratings dataset, in codeultra's schema."""
    return from_released_schema(load_hub_raw(spec, split))


def is_released_ratings(df: pd.DataFrame) -> bool:
    return all(c in df.columns for c in ("instruction", "preference", "responses", "annotations"))


def parse_released_rating(value: Any) -> int | None:
    """ "4" -> 4; "N/A", "", None and anything unparseable -> None; ints pass through."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    text = str(value).strip()
    return int(text) if _INT.match(text) else None


def from_released_schema(df: pd.DataFrame) -> pd.DataFrame:
    """Released CodeUltraFeedback rows -> codeultra ratings rows (other columns kept)."""
    for col in ("instruction", "preference", "responses", "annotations"):
        if col not in df.columns:
            raise UserError(f"not a CodeUltraFeedback table, missing column {col!r}")
    out = df.copy()
    responses = [_dicts(r) for r in df["responses"]]
    out["responses"] = [
        [{"model": _str(r.get("model")), "response": _str(r.get("response"))} for r in rs]
        for rs in responses
    ]
    if "models" not in out.columns:
        out["models"] = [[r["model"] for r in rs] for rs in out["responses"]]
    else:
        out["models"] = [[_str(m) for m in _items(ms)] for ms in df["models"]]
    out["annotations"] = [
        _aligned(rs, _dicts(anns)) for rs, anns in zip(responses, df["annotations"], strict=True)
    ]
    front = [c for c in RELEASED_COLUMNS if c in out.columns]
    return out[front + [c for c in out.columns if c not in front]].reset_index(drop=True)


def to_released_schema(df: pd.DataFrame) -> pd.DataFrame:
    """codeultra ratings rows -> the release's columns, ratings as strings ("N/A" for None)."""
    for col in ("instruction", "preference", "responses", "annotations"):
        if col not in df.columns:
            raise UserError(f"not a ratings table, missing column {col!r}")
    out = pd.DataFrame({"instruction": df["instruction"], "preference": df["preference"]})
    responses = [_dicts(r) for r in df["responses"]]
    out["models"] = (
        [[_str(m) for m in _items(ms)] for ms in df["models"]]
        if "models" in df.columns
        else [[_str(r.get("model")) for r in rs] for rs in responses]
    )
    out["responses"] = [
        [{"model": _str(r.get("model")), "response": _str(r.get("response"))} for r in rs]
        for rs in responses
    ]
    out["annotations"] = [
        [
            {
                "model": _str(a.get("model")),
                "rating": _rating_str(a.get("rating")),
                "rationale": _str(a.get("rationale")),
            }
            for a in _dicts(anns)
        ]
        for anns in df["annotations"]
    ]
    return out.reset_index(drop=True)


def push_dataset(
    input_dir: str | os.PathLike, repo_id: str, *, private: bool = False, card_text: str
) -> str:
    """Push a pairs folder (``train.parquet``, ``test.parquet`` if any) and its card; -> URL.

    The card goes up first, so DatasetDict.push_to_hub merges its dataset_info into it.
    """
    if not _REPO_ID.match(repo_id or ""):
        raise UserError(f"bad Hub repo id {repo_id!r}; expected ORG/NAME")
    if hub_offline():
        raise UserError(f"cannot push to {repo_id}: offline (HF_HUB_OFFLINE=1)")
    token = os.environ.get("HF_TOKEN")
    if not token:
        raise UserError(f"cannot push to {repo_id}: set HF_TOKEN in the environment")
    folder = Path(input_dir)
    if not (folder / "train.parquet").is_file():
        raise UserError(f"cannot push {folder}: missing train.parquet")
    # test.parquet is absent after --test-fraction 0; the card must then list train only
    files = {
        s: folder / f"{s}.parquet" for s in ("train", "test") if (folder / f"{s}.parquet").is_file()
    }
    import datasets
    from huggingface_hub import DatasetCard, HfApi

    try:
        dd = datasets.load_dataset(
            "parquet", data_files={k: str(v) for k, v in files.items()}, keep_in_memory=True
        )
        HfApi(token=token).create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        DatasetCard(card_text).push_to_hub(repo_id, repo_type="dataset", token=token)
        dd.push_to_hub(repo_id, private=private, token=token)
    except Exception as exc:  # network/auth/permission: one line, the token scrubbed out
        first = (str(exc).strip().splitlines() or [""])[0].replace(token, "***")[:300]
        raise UserError(f"push to {repo_id} failed: {type(exc).__name__}: {first}") from None
    return f"https://huggingface.co/datasets/{repo_id}"


# -- internals ---------------------------------------------------------------------------


def _items(value: Any) -> list:
    """Lists come back as numpy arrays from Parquet/datasets and as lists from JSON."""
    if value is None or (isinstance(value, float) and value != value):
        return []
    return list(value)


def _dicts(value: Any) -> list[dict]:
    return [v if isinstance(v, dict) else {} for v in _items(value)]


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _rating_str(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return NA_RATING
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _aligned(responses: list[dict], annotations: list[dict]) -> list[dict]:
    """Annotations reordered to follow ``responses`` by model; missing ones rate None."""
    queues: dict[Any, list[dict]] = {}
    for ann in annotations:
        queues.setdefault(ann.get("model"), []).append(ann)
    aligned = []
    for resp in responses:
        model = resp.get("model")
        ann = queues[model].pop(0) if queues.get(model) else {}
        rationale = ann.get("rationale")
        aligned.append(
            {
                "model": _str(model),
                "rating": parse_released_rating(ann.get("rating")),
                "rationale": None if rationale is None else str(rationale),
            }
        )
    return aligned
