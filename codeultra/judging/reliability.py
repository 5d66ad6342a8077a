"""Agreement statistics for judge reliability checks (pure Python, no sklearn/scipy).

Every function takes two aligned rating sequences and drops pairs where either side is
None (a parse failure is not a disagreement; its rate is reported separately).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal

from codeultra.errors import UserError

Rating = int | None


def _pairs(a: Sequence[Rating], b: Sequence[Rating]) -> list[tuple[int, int]]:
    if len(a) != len(b):
        raise UserError(f"rating lists differ in length ({len(a)} vs {len(b)})")
    return [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]


def weighted_kappa(
    a: Sequence[Rating],
    b: Sequence[Rating],
    labels: Iterable[int] = range(1, 6),
    weights: Literal["quadratic", "linear"] | None = "quadratic",
) -> float:
    """Cohen's kappa with disagreement weights by label index (as sklearn); NaN if undefined."""
    labels = list(labels)
    index = {label: i for i, label in enumerate(labels)}
    n = len(labels)
    if weights not in ("quadratic", "linear", None):
        raise UserError(f"kappa weights must be 'quadratic', 'linear' or None, got {weights!r}")
    pairs = _pairs(a, b)
    for x, y in pairs:
        if x not in index or y not in index:
            raise UserError(f"rating {x if x not in index else y} is not one of labels {labels}")
    if not pairs:
        return math.nan
    observed = [[0.0] * n for _ in range(n)]
    for x, y in pairs:
        observed[index[x]][index[y]] += 1
    rows = [sum(r) for r in observed]
    cols = [sum(observed[i][j] for i in range(n)) for j in range(n)]
    total = float(len(pairs))

    def w(i: int, j: int) -> float:
        if weights == "quadratic":
            return float((i - j) ** 2)
        if weights == "linear":
            return float(abs(i - j))
        return 0.0 if i == j else 1.0

    num = sum(w(i, j) * observed[i][j] for i in range(n) for j in range(n))
    den = sum(w(i, j) * rows[i] * cols[j] / total for i in range(n) for j in range(n))
    return math.nan if den == 0 else 1.0 - num / den


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties get the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for t in range(i, j + 1):
            ranks[order[t]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    n = len(x)
    if n < 2:
        return math.nan
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((p - mx) * (q - my) for p, q in zip(x, y, strict=True))
    sxx = sum((p - mx) ** 2 for p in x)
    syy = sum((q - my) ** 2 for q in y)
    return math.nan if sxx == 0 or syy == 0 else sxy / math.sqrt(sxx * syy)


def spearman(a: Sequence[Rating], b: Sequence[Rating]) -> float:
    """Spearman's rho with average ranks for ties; NaN when a side is constant."""
    pairs = _pairs(a, b)
    return pearson(_ranks([p[0] for p in pairs]), _ranks([p[1] for p in pairs]))


def agreement_stats(a: Sequence[Rating], b: Sequence[Rating]) -> dict[str, float]:
    """n compared pairs, share of exact matches, mean |a - b| (NaN when n == 0)."""
    pairs = _pairs(a, b)
    n = len(pairs)
    if n == 0:
        return {"n": 0, "exact_agreement": math.nan, "mean_abs_diff": math.nan}
    return {
        "n": n,
        "exact_agreement": sum(x == y for x, y in pairs) / n,
        "mean_abs_diff": sum(abs(x - y) for x, y in pairs) / n,
    }


def tie_rate(rows: Iterable[Sequence[Rating]]) -> float:
    """Share of instructions whose k ratings are all equal.

    Only rows with at least two ratings and none missing count; NaN if there are none.
    """
    eligible = [list(r) for r in rows if len(r) >= 2 and all(x is not None for x in r)]
    if not eligible:
        return math.nan
    return sum(len(set(r)) == 1 for r in eligible) / len(eligible)
