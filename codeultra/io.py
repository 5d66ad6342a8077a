"""Reading inputs (local files or the Hub) and writing Parquet atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from codeultra.errors import UserError

HUB_PREFIX = "hub:"


def load_hub(spec: str, split: str = "train") -> pd.DataFrame:
    """`hub:ORG/NAME[@split]`; a released ratings dataset is converted to our schema."""
    from codeultra.hub import from_released_schema, is_released_ratings, load_hub_raw

    df = load_hub_raw(spec, split)
    return from_released_schema(df) if is_released_ratings(df) else df


def load_table(path: str | Path, split: str = "train") -> pd.DataFrame:
    text = str(path)
    if text.startswith(HUB_PREFIX):
        return load_hub(text, split)
    p = Path(text)
    if not p.exists():
        raise UserError(f"input not found: {p}")
    if p.is_file() and p.stat().st_size == 0:
        raise UserError(f"{p}: file is empty")
    try:
        if p.is_dir():
            files = sorted(p.glob("*.parquet"))
            if not files:
                raise UserError(f"{p}: folder holds no .parquet files")
            return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        suffix = p.suffix.lower()
        if suffix == ".parquet":
            return pd.read_parquet(p)
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(p, lines=True, dtype=False)
        if suffix == ".json":
            try:
                return pd.read_json(p, dtype=False)
            except ValueError:
                return pd.read_json(p, lines=True, dtype=False)
        if suffix == ".csv":
            return pd.read_csv(p, keep_default_na=False)
    except UserError:
        raise
    except (ValueError, OSError, pa.ArrowException) as exc:
        raise UserError(
            f"{p}: cannot read {p.suffix or 'file'}: {str(exc).splitlines()[0]}"
        ) from None
    raise UserError(f"{p}: unsupported input format {p.suffix!r} (use .jsonl, .parquet or .csv)")


def require_columns(df: pd.DataFrame, columns: Iterable[str], source: str, what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        have = ", ".join(map(str, df.columns[:8])) or "none"
        raise UserError(
            f"{source}: not {what}: missing column(s) {', '.join(missing)} (has: {have})"
        )


def rename_columns(df: pd.DataFrame, mapping: dict[str, str], source: str) -> pd.DataFrame:
    """Map source columns onto ours: `{ours: theirs}`."""
    for ours, theirs in mapping.items():
        if theirs not in df.columns:
            raise UserError(f"{source}: column mapping {ours}: {theirs!r} is not a column")
    return df.rename(columns={theirs: ours for ours, theirs in mapping.items()})


def write_parquet(
    df: pd.DataFrame | pa.Table, path: str | Path, metadata: dict[str, Any] | None = None
) -> Path:
    """Write to a temp file and rename: readers never see a half-written file."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    if metadata:
        meta = dict(table.schema.metadata or {})
        meta[b"codeultra"] = json.dumps(metadata, default=str).encode()
        table = table.replace_schema_metadata(meta)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, out)
    return out


def write_json(obj: Any, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return out
