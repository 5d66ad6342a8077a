"""Train/eval contamination: exact matches and word n-gram overlap per evaluation item.

Texts are lower-cased and split into word tokens. An evaluation item's overlap is the share of
its n-grams found in any training instruction (items shorter than n use their whole token
sequence as one n-gram). An item is flagged when it equals a training instruction after
normalisation, or when its overlap reaches the threshold; the best-matching training
instruction is listed with it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from codeultra.errors import UserError
from codeultra.io import load_table, write_json

_WORD_RE = re.compile(r"\w+", re.UNICODE)


def tokens(text: str) -> list[str]:
    return _WORD_RE.findall(str(text).lower())


def ngrams(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    if not words:
        return set()
    if len(words) < n:
        return {tuple(words)}
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _text_of(value: Any) -> str:
    """A prompt column may hold a string or a chat message list: use the last user turn."""
    if isinstance(value, str):
        return value
    try:
        turns = [m for m in list(value) if isinstance(m, dict)]
    except TypeError:
        return str(value)
    users = [m.get("content", "") for m in turns if m.get("role") == "user"]
    return str(users[-1] if users else (turns[-1].get("content", "") if turns else ""))


def read_texts(source: str | Path, what: str) -> list[tuple[str, str]]:
    """(id, text) rows from a file or folder with an instruction (or prompt) column.

    A pairs folder counts only its train split: the test split was never trained on.
    """
    path = Path(str(source))
    if path.is_dir() and (path / "train.parquet").is_file():
        df = pd.read_parquet(path / "train.parquet")
    else:
        df = load_table(str(source))
    column = next(
        (c for c in ("instruction", "prompt", "question", "text") if c in df.columns), None
    )
    if column is None:
        have = ", ".join(map(str, df.columns[:8]))
        raise UserError(
            f"{source}: no instruction/prompt column for the {what} texts (has: {have})"
        )
    ids = df["id"].astype(str) if "id" in df.columns else pd.Series(range(len(df))).astype(str)
    return [(i, _text_of(t)) for i, t in zip(ids, df[column], strict=True)]


class NgramIndex:
    """Training texts by n-gram, for overlap lookups and the best-matching training text."""

    def __init__(self, texts: Iterable[str], n: int):
        self.n = n
        self.texts = [str(t) for t in texts]
        self.exact = {" ".join(tokens(t)): i for i, t in enumerate(self.texts)}
        self.by_gram: dict[tuple[str, ...], set[int]] = defaultdict(set)
        for i, t in enumerate(self.texts):
            for g in ngrams(tokens(t), n):
                self.by_gram[g].add(i)

    def check(self, text: str) -> dict[str, Any]:
        words = tokens(text)
        grams = ngrams(words, self.n)
        exact = self.exact.get(" ".join(words)) if words else None
        hits: dict[int, int] = defaultdict(int)
        seen = 0
        for g in grams:
            owners = self.by_gram.get(g)
            if owners:
                seen += 1
                for i in owners:
                    hits[i] += 1
        best = exact if exact is not None else max(hits, key=hits.get, default=None)
        return {
            "exact": exact is not None,
            "overlap": seen / len(grams) if grams else 0.0,
            "ngrams": len(grams),
            "best_train": None if best is None else self.texts[best],
        }


def contamination(
    train: Sequence[str],
    evals: dict[str, Sequence[tuple[str, str]]],
    n: int = 13,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Per evaluation set: items, exact matches, flagged items, mean overlap; flagged listed."""
    if not train:
        raise UserError("contamination check: no training instructions")
    if n < 1 or not 0 < threshold <= 1:
        raise UserError(
            f"contamination check needs n >= 1 and 0 < threshold <= 1, got n={n}, "
            f"threshold={threshold}"
        )
    index = NgramIndex(train, n)
    sets = {}
    for name, items in evals.items():
        rows = []
        for item_id, text in items:
            r = index.check(text)
            r.update(id=item_id, text=text, flagged=r["exact"] or r["overlap"] >= threshold)
            rows.append(r)
        flagged = [r for r in rows if r["flagged"]]
        sets[name] = {
            "items": len(rows),
            "exact": sum(r["exact"] for r in rows),
            "flagged": len(flagged),
            "flagged_share": len(flagged) / len(rows) if rows else 0.0,
            "mean_overlap": sum(r["overlap"] for r in rows) / len(rows) if rows else 0.0,
            "flagged_items": sorted(flagged, key=lambda r: -r["overlap"]),
        }
    return {"n": n, "threshold": threshold, "train_items": len(train), "sets": sets}


def eval_set(spec: str, recipe: Any = None) -> tuple[str, list[tuple[str, str]]]:
    """`humaneval`, `codal` (the recipe's CODAL input, else the bundled held-out set) or a file."""
    if spec == "humaneval":
        from codeultra.evaluation.humaneval import load_problems

        return "humaneval", [(p["task_id"], p["prompt"]) for p in load_problems()]
    if spec == "codal":
        if recipe is None:
            raise UserError("the `codal` evaluation set needs --recipe")
        from codeultra.evaluation.codal import load_benchmark
        from codeultra.evaluation.config import load_eval_config

        df, _ = load_benchmark(recipe, load_eval_config(recipe), None, None)
        ids = df["id"].astype(str) if "id" in df.columns else pd.Series(range(len(df))).astype(str)
        return "codal", list(zip(ids, df["instruction"].astype(str), strict=True))
    return Path(spec).stem or spec, read_texts(spec, "evaluation")


def run_contamination(
    train: str | Path,
    evals: Sequence[str],
    output: str | Path,
    *,
    recipe: Any = None,
    n: int = 13,
    threshold: float = 0.5,
) -> dict[str, Any]:
    """Check each evaluation set against the training instructions; write json, md and csv."""
    if not evals:
        raise UserError("contamination check needs at least one --eval set")
    train_texts = [t for _, t in read_texts(train, "training")]
    sets = dict(eval_set(e, recipe) for e in evals)
    report = contamination(train_texts, sets, n=n, threshold=threshold)
    report["train"] = str(train)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    files = {k: str(out / f"contamination.{k}") for k in ("json", "md", "csv")}
    flagged = [
        {"set": name, **{k: r[k] for k in ("id", "exact", "overlap", "text", "best_train")}}
        for name, s in report["sets"].items()
        for r in s["flagged_items"]
    ]
    pd.DataFrame(flagged, columns=["set", "id", "exact", "overlap", "text", "best_train"]).to_csv(
        files["csv"], index=False
    )
    report["files"] = files
    Path(files["md"]).write_text(contamination_markdown(report), encoding="utf-8")
    write_json(report, files["json"])
    return report


def contamination_markdown(report: dict[str, Any], show: int = 10) -> str:
    lines = [
        f"Training instructions: {report['train_items']}; {report['n']}-gram overlap, flagged at "
        f">= {report['threshold']:.0%} or an exact match.",
        "",
        "| evaluation set | items | exact matches | flagged | flagged share | mean overlap |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in report["sets"].items():
        lines.append(
            f"| {name} | {s['items']} | {s['exact']} | {s['flagged']} | {s['flagged_share']:.1%} "
            f"| {s['mean_overlap']:.1%} |"
        )
    for name, s in report["sets"].items():
        for r in s["flagged_items"][:show]:
            text = " ".join(str(r["text"]).split())[:90]
            how = "exact" if r["exact"] else f"{r['overlap']:.0%}"
            lines.append(f"- {name} `{r['id']}` ({how}): {text}")
    return "\n".join(lines) + "\n"
