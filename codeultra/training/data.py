"""Load a recipe's train/test rows and rename their columns to the names TRL expects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codeultra.errors import UserError
from codeultra.training.config import DataSection
from codeultra.training.validate import validate_dataset

HUB_PREFIX = "hub:"


def load_training_data(
    data: DataSection, trainer: str, *, limit: int | None = None, with_test: bool = False
) -> tuple[Any, Any | None]:
    """(train, test or None) as datasets.Dataset, validated, holding only the trainer's columns.

    Extra columns (ratings, model names, ...) are dropped: TRL changes behaviour on some
    column names (`images`, `tools`), and they cost memory.
    """
    train, test = _read(data, with_test)
    train = _standardize(train, data, trainer)
    if limit is not None:
        train = train.select(range(min(limit, len(train))))
    validate_dataset(train, trainer, "train")
    if test is not None:
        test = _standardize(test, data, trainer)
        validate_dataset(test, trainer, "test")
    return train, test


def _read(data: DataSection, with_test: bool) -> tuple[Any, Any | None]:
    if data.train.startswith(HUB_PREFIX):
        return _read_hub(data, with_test)
    path = Path(data.train)
    if not path.exists():
        raise UserError(
            f"training data not found: {path} (make the pairs first, or set data.train)"
        )
    if path.is_dir():
        train_file = path / "train.parquet"
        default_test = path / "test.parquet"
    elif path.suffix == ".parquet":
        train_file, default_test = path, None
    else:
        raise UserError(
            f"data.train {path}: expected a pairs folder (train.parquet), a .parquet file "
            "or hub:ORG/NAME"
        )
    if not train_file.is_file():
        raise UserError(f"training data not found: {train_file} (run the pipeline that makes it)")
    test = None
    if with_test:
        test_file = Path(data.test) if data.test else default_test
        if test_file is None or not test_file.is_file():
            raise UserError(f"evaluation is on but there is no test split ({test_file})")
        test = _read_parquet(test_file)
    return _read_parquet(train_file), test


def _read_parquet(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset
    from datasets.table import InMemoryTable

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise UserError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
    return Dataset(InMemoryTable(table))


def _read_hub(data: DataSection, with_test: bool) -> tuple[Any, Any | None]:
    from datasets import load_dataset

    name = data.train.removeprefix(HUB_PREFIX)
    try:
        train = load_dataset(name, split=data.train_split)
        test = load_dataset(name, split=data.test_split) if with_test else None
    except Exception as e:  # hub, network and format errors come in many types
        raise UserError(f"cannot load dataset {name}: {str(e).splitlines()[0]}") from None
    return train, test


def _standardize(rows: Any, data: DataSection, trainer: str) -> Any:
    renames = {
        data.prompt_column: "prompt",
        data.chosen_column: "chosen",
        data.rejected_column: "rejected",
        data.completion_column: "completion",
        data.messages_column: "messages",
    }
    if trainer == "dpo":
        wanted = ["prompt", "chosen", "rejected"]
    else:
        wanted = ["messages"] if data.messages_column in rows.column_names else []
        wanted = wanted or ["prompt", "completion"]
    sources = {new: old for old, new in renames.items() if new in wanted}
    present = {new: old for new, old in sources.items() if old in rows.column_names}
    rows = rows.select_columns(sorted(set(present.values())))
    rows = rows.rename_columns({old: new for new, old in present.items() if old != new})
    return rows
