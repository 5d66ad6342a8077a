"""Dataset card (README.md with YAML front matter) for a pushed pairs dataset."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import pandas as pd
import yaml

NA = "N/A"
# Where DatasetDict.push_to_hub puts the shards; the card's configs must point there.
HUB_DATA_FILES = {"train": "data/train-*", "test": "data/test-*"}


def render_dataset_card(
    *,
    repo_id: str,
    recipe: dict | None,
    pool: list[str],
    judge: str | None,
    counts: dict,
    rating_histograms: dict,
    license: str = "other",
    data_files: Mapping[str, str] = HUB_DATA_FILES,
) -> str:
    """README.md text: front matter, then recipe, pool, judge, counts and rating histograms.

    ``rating_histograms`` maps a name (a model, a split, "chosen") to {rating: count}; a
    None rating is shown as "N/A". ``license`` defaults to "other": the texts come from the
    pool's models, whose output terms differ.
    """
    front = {
        "license": license,
        "task_categories": ["text-generation"],
        "language": ["en"],
        "tags": ["code", "preference", "dpo", "ai-feedback", "llm-as-a-judge", "codeultra"],
        "pretty_name": repo_id.split("/")[-1],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": p} for s, p in data_files.items()],
            }
        ],
    }
    parts = [
        "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---",
        f"# {repo_id}",
        "Code-preference pairs built with codeultra: a pool of LLMs "
        "answers coding instructions, an LLM judge rates the answers, and the ratings are "
        "turned into chosen/rejected pairs in TRL's conversational preference format "
        "(`prompt`, `chosen`, `rejected` are message lists; `chosen_text`/`rejected_text` "
        "hold the plain answers, as `chosen`/`rejected` do in "
        "`coseal/CodeUltraFeedback_binarized`).",
        "## Recipe",
        (
            "```yaml\n" + yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True) + "```"
            if recipe
            else "Not recorded."
        ),
        "## Model pool",
        "\n".join(f"- `{m}`" for m in pool) if pool else "Not recorded.",
        "## Judge",
        f"`{judge}`" if judge else "Not recorded.",
        "## Counts",
        _table(["", "count"], [[k, v] for k, v in counts.items()]) if counts else "None.",
        "## Rating histograms",
        _histogram_table(rating_histograms) if rating_histograms else "None.",
    ]
    return "\n\n".join(parts) + "\n"


def rating_histograms(ratings: pd.DataFrame, by: str = "model") -> dict[str, dict]:
    """{model: {rating: count}} from a ratings table (``by="model"``) or one "all" row."""
    hist: dict[str, Counter] = {}
    for anns in ratings["annotations"]:
        for ann in [] if anns is None else list(anns):
            key = str(ann.get("model")) if by == "model" else "all"
            rating = ann.get("rating")
            if rating is not None and rating == rating:  # NaN != NaN
                rating = int(rating) if float(rating).is_integer() else rating
            else:
                rating = None
            hist.setdefault(key, Counter())[rating] += 1
    return {k: dict(v) for k, v in sorted(hist.items())}


def _cell(value: Any) -> str:
    text = NA if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _histogram_table(histograms: Mapping[str, Mapping[Any, int]]) -> str:
    """Rows = names, columns = ratings (numeric order, N/A last); 4 and "4" are one column."""
    labelled: dict[str, Counter] = {}
    for name, hist in histograms.items():
        counts: Counter = Counter()
        for rating, n in hist.items():
            counts[NA if rating is None else _label(rating)] += int(n)
        labelled[str(name)] = counts

    def order(label: str) -> tuple[int, float, str]:
        try:
            return (0, float(label), label)
        except ValueError:
            return (2 if label == NA else 1, 0.0, label)

    columns = sorted({r for h in labelled.values() for r in h}, key=order)
    rows = [
        [name, *(hist.get(r, 0) for r in columns), sum(hist.values())]
        for name, hist in labelled.items()
    ]
    return _table(["", *columns, "total"], rows)


def _label(rating: Any) -> str:
    if isinstance(rating, float) and rating.is_integer():
        return str(int(rating))
    return str(rating)
