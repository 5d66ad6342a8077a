"""Gorilla's APIBench: API databases, instruction/answer pairs and a leak-free split.

The data lives outside the repository (default ``../shared/data/apibench``). The
``.json`` files are really JSONL. Field types vary from row to row (``api_arguments``
is a string, list, dict or null), so every loader parses defensively and returns
the rows it skipped, counted by reason, instead of failing on the first odd row.

``question_id`` follows Gorilla's convention: line N (1-based, blank lines skipped)
of an ``*_eval.json`` file is question N of ``questions_<hub>_*.jsonl``.
"""

from __future__ import annotations

import json
import logging
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from codeultra.errors import UserError

log = logging.getLogger(__name__)

HUBS = ("huggingface", "torchhub", "tensorflowhub")
SPLITS = ("train", "eval")
# Hub name -> file stem under apibench/ (TensorFlow Hub's files say "tensorflow").
_PAIR_STEM = {"huggingface": "huggingface", "torchhub": "torchhub", "tensorflowhub": "tensorflow"}


@dataclass(frozen=True)
class ApiEntry:
    """One row of ``api/<hub>_api.jsonl``; ``raw`` keeps the row as read."""

    domain: str
    framework: str
    functionality: str
    api_name: str
    api_call: str
    api_arguments: Any
    description: str
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)


@dataclass(frozen=True)
class ApiPair:
    """One instruction/answer pair. ``answer`` is the text after ``###Output:``."""

    hub: str
    split: str
    question_id: int
    instruction: str
    answer: str
    api_call: str
    domain: str
    api_name: str
    api_data: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_hub(hub: str) -> str:
    if hub not in HUBS:
        raise UserError(f"unknown APIBench hub {hub!r}; choose one of {', '.join(HUBS)}")
    return hub


def default_apibench_dir(repo_root: str | Path) -> Path:
    """``<repo_root>/../shared/data/apibench``, which must exist."""
    path = (Path(repo_root) / ".." / "shared" / "data" / "apibench").resolve()
    if not path.is_dir():
        raise UserError(f"APIBench data not found at {path}; pass the directory explicitly")
    return path


def api_database_path(apibench_dir: str | Path, hub: str) -> Path:
    return Path(apibench_dir) / "api" / f"{check_hub(hub)}_api.jsonl"


def pairs_path(apibench_dir: str | Path, hub: str, split: str) -> Path:
    if split not in SPLITS:
        raise UserError(f"unknown APIBench split {split!r}; choose one of {', '.join(SPLITS)}")
    return Path(apibench_dir) / "apibench" / f"{_PAIR_STEM[check_hub(hub)]}_{split}.json"


def has_split(apibench_dir: str | Path, hub: str, split: str) -> bool:
    return pairs_path(apibench_dir, hub, split).is_file()


def questions_path(apibench_dir: str | Path, hub: str, variant: str = "0_shot") -> Path:
    hub = check_hub(hub)
    return Path(apibench_dir) / "eval-data" / "questions" / hub / f"questions_{hub}_{variant}.jsonl"


def _require(path: Path) -> Path:
    if not path.is_file():
        raise UserError(f"APIBench file missing: {path}")
    return path


def _json_lines(path: Path) -> Iterator[tuple[int, Any | Exception]]:
    """(1-based row number over non-blank lines, parsed value or the parse error)."""
    with open(_require(path), encoding="utf-8") as handle:
        row = 0
        for line in handle:
            if not line.strip():
                continue
            row += 1
            try:
                yield row, json.loads(line)
            except json.JSONDecodeError as exc:
                yield row, exc


def _text(value: Any) -> str:
    """A display string for fields that are usually strings but sometimes lists."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return json.dumps(value, ensure_ascii=False)


def _api_entry(row: Any) -> ApiEntry | str:
    """An ApiEntry, or the reason the row can't be one."""
    if not isinstance(row, dict):
        return "not_an_object"
    call = row.get("api_call")
    if not isinstance(call, str) or not call.strip():
        return "missing_api_call"
    return ApiEntry(
        domain=_text(row.get("domain")),
        framework=_text(row.get("framework")),
        functionality=_text(row.get("functionality")),
        api_name=_text(row.get("api_name")),
        api_call=call.strip(),
        api_arguments=row.get("api_arguments"),
        description=_text(row.get("description")),
        raw=row,
    )


def load_api_database_with_skips(
    apibench_dir: str | Path, hub: str
) -> tuple[list[ApiEntry], dict[str, int]]:
    entries: list[ApiEntry] = []
    skipped: Counter[str] = Counter()
    for _, row in _json_lines(api_database_path(apibench_dir, hub)):
        entry = "invalid_json" if isinstance(row, Exception) else _api_entry(row)
        if isinstance(entry, str):
            skipped[entry] += 1
        else:
            entries.append(entry)
    return entries, dict(skipped)


def load_api_database(apibench_dir: str | Path, hub: str) -> list[ApiEntry]:
    """The hub's API database in file order (Gorilla's AST match takes the first hit)."""
    entries, skipped = load_api_database_with_skips(apibench_dir, hub)
    if skipped:
        log.warning("%s API database: skipped rows %s", hub, skipped)
    return entries


_INSTRUCTION = re.compile(r"#+\s*Instruction\s*:\s*(.*?)\s*(?:#+\s*Output\s*:\s*(.*))?\Z", re.S)
# torchhub_train rows: "{'Instruction': ..., 'Output': {...}}" (not valid Python: nested quotes).
_DICT_INSTRUCTION = re.compile(
    r"\A\s*\{\s*['\"]Instruction['\"]\s*:\s*(.*?)\s*,\s*['\"]Output['\"]\s*:\s*(.*)\Z", re.S
)


def split_instruction(code: str) -> tuple[str, str] | None:
    """(instruction, answer) from an APIBench ``code`` field; answer may be empty."""
    match = _INSTRUCTION.search(code)
    if match:
        return match.group(1).strip(), (match.group(2) or "").strip()
    match = _DICT_INSTRUCTION.search(code)
    if match:
        answer = match.group(2).strip()
        if answer.endswith("}"):  # the outer dict's closing brace
            answer = answer[:-1].rstrip()
        return match.group(1).strip(), answer
    return None


def _pair(row: Any, hub: str, split: str, question_id: int) -> ApiPair | str:
    if not isinstance(row, dict):
        return "not_an_object"
    code = row.get("code")
    if not isinstance(code, str) or not code.strip():
        return "missing_code"
    parts = split_instruction(code)
    if parts is None:
        return "no_instruction_marker"
    instruction, answer = parts
    if not instruction:
        return "empty_instruction"
    if not answer:
        return "no_output"
    api_data = row.get("api_data")
    if not isinstance(api_data, dict):
        return "missing_api_data"
    api_call = row.get("api_call") or api_data.get("api_call")
    if not isinstance(api_call, str) or not api_call.strip():
        return "missing_api_call"
    domain = _text(api_data.get("domain"))
    if not domain:
        return "missing_domain"
    return ApiPair(
        hub=hub,
        split=split,
        question_id=question_id,
        instruction=instruction,
        answer=answer,
        api_call=api_call.strip(),
        domain=domain,
        api_name=_text(api_data.get("api_name")),
        api_data=api_data,
    )


def load_pairs(
    apibench_dir: str | Path, hub: str, split: str
) -> tuple[list[ApiPair], dict[str, int]]:
    """Pairs of one split file, plus skipped-row counts by reason."""
    rows: list[ApiPair] = []
    skipped: Counter[str] = Counter()
    for question_id, row in _json_lines(pairs_path(apibench_dir, hub, split)):
        pair = "invalid_json" if isinstance(row, Exception) else _pair(row, hub, split, question_id)
        if isinstance(pair, str):
            skipped[pair] += 1
        else:
            rows.append(pair)
    return rows, dict(skipped)


def load_references(apibench_dir: str | Path, hub: str) -> dict[int, dict[str, Any]]:
    """question_id -> eval row's ``api_data`` plus ``answer`` (possibly empty).

    Unlike `load_pairs`, rows without an output are kept: AST scoring only needs
    the reference domain and API call.
    """
    refs: dict[int, dict[str, Any]] = {}
    for question_id, row in _json_lines(pairs_path(apibench_dir, hub, "eval")):
        if not isinstance(row, dict) or not isinstance(row.get("api_data"), dict):
            continue
        ref = dict(row["api_data"])
        ref["domain"] = _text(ref.get("domain"))
        ref["api_call"] = row.get("api_call") or ref.get("api_call") or ""
        code = row.get("code") if isinstance(row.get("code"), str) else ""
        parts = split_instruction(code)
        ref["instruction"], ref["answer"] = parts if parts else ("", "")
        refs[question_id] = ref
    return refs


def normalize_instruction(text: str) -> str:
    """Case-, punctuation- and escape-insensitive key used to keep splits disjoint."""
    text = unicodedata.normalize("NFKC", text).replace("\\n", " ").lower()
    return " ".join(re.sub(r"[\W_]+", " ", text).split())


def split_pairs(
    rows: Sequence[ApiPair], eval_fraction: float, seed: int
) -> tuple[list[ApiPair], list[ApiPair]]:
    """Seeded (train, eval) split; rows sharing a normalized instruction stay together."""
    if not 0.0 < eval_fraction < 1.0:
        raise UserError(f"eval_fraction must be between 0 and 1 (exclusive), got {eval_fraction}")
    groups: dict[str, list[ApiPair]] = {}
    for row in rows:
        groups.setdefault(normalize_instruction(row.instruction), []).append(row)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    target = round(eval_fraction * len(rows))
    eval_rows: list[ApiPair] = []
    train_rows: list[ApiPair] = []
    for key in keys:
        (eval_rows if len(eval_rows) < target else train_rows).extend(groups[key])
    return train_rows, eval_rows


def load_split(
    apibench_dir: str | Path, hub: str, eval_fraction: float = 0.2, seed: int = 0
) -> tuple[list[ApiPair], list[ApiPair], dict[str, int]]:
    """(train, eval, skipped) for a hub.

    With a train file (TorchHub), eval is the whole eval file and train drops any row
    whose instruction also appears in eval. Without one (HuggingFace, TensorFlow Hub
    in this snapshot), both are carved from the eval file by `split_pairs`.
    """
    eval_rows, skipped = load_pairs(apibench_dir, hub, "eval")
    if not has_split(apibench_dir, hub, "train"):
        train, held_out = split_pairs(eval_rows, eval_fraction, seed)
        return train, held_out, skipped
    train_rows, train_skipped = load_pairs(apibench_dir, hub, "train")
    seen = {normalize_instruction(r.instruction) for r in eval_rows}
    kept = [r for r in train_rows if normalize_instruction(r.instruction) not in seen]
    counts = Counter(skipped) + Counter({f"train_{k}": v for k, v in train_skipped.items()})
    if len(kept) < len(train_rows):
        counts["train_overlaps_eval"] += len(train_rows) - len(kept)
    return kept, eval_rows, dict(counts)
