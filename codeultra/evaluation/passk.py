"""Unbiased pass@k (Chen et al., 2021): chance that k of n samples, c correct, include a pass."""

from __future__ import annotations

from collections.abc import Iterable

from codeultra.errors import UserError


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k) / C(n, k), as a product so large n neither overflows nor loses precision."""
    if n < 1 or k < 1 or not 0 <= c <= n:
        raise UserError(f"pass@k needs n >= 1, k >= 1 and 0 <= c <= n; got n={n}, c={c}, k={k}")
    if k > n:
        raise UserError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i)
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def aggregate_pass_at_k(
    results_per_problem: dict[str, list[bool]], ks: Iterable[int] = (1, 10)
) -> dict[str, float]:
    """Mean pass@k over problems, keyed "pass@k".

    As in the reference implementation, a k larger than some problem's sample count is left out
    rather than estimated from too few samples.
    """
    if not results_per_problem:
        raise UserError("no results to compute pass@k from")
    counts = [(len(r), sum(bool(x) for x in r)) for r in results_per_problem.values()]
    if min(n for n, _ in counts) < 1:
        empty = next(t for t, r in results_per_problem.items() if not r)
        raise UserError(f"problem {empty} has no samples")
    fewest = min(n for n, _ in counts)
    out: dict[str, float] = {}
    for k in ks:
        if k < 1:
            raise UserError(f"pass@k needs k >= 1, got {k}")
        if k <= fewest:
            out[f"pass@{k}"] = sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)
    return out
