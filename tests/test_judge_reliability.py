"""Agreement statistics (checked by hand, and against sklearn/scipy when present) and the
reliability report written from a constructed ratings table."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from matplotlib.image import imread

from codeultra.errors import UserError
from codeultra.judging.reliability import agreement_stats, spearman, tie_rate, weighted_kappa
from codeultra.judging.report import RatingPair, write_reliability_report

# Hand-worked example (labels 1..3): observed pairs (1,1) (1,2) (2,2) (3,3);
# rater a marginals [2,1,1], rater b marginals [1,2,1], n = 4.
A = [1, 1, 2, 3]
B = [1, 2, 2, 3]


def test_kappa_hand_computed() -> None:
    # quadratic: sum w*O = 1, sum w*E = 3 + 0.5 + 1.5 = 5 -> 1 - 1/5
    assert weighted_kappa(A, B, labels=[1, 2, 3]) == pytest.approx(0.8)
    # linear: sum w*E = 2 + 0.5 + 1 = 3.5 -> 1 - 1/3.5
    assert weighted_kappa(A, B, labels=[1, 2, 3], weights="linear") == pytest.approx(1 - 1 / 3.5)
    # unweighted: po = 3/4, pe = 5/16
    assert weighted_kappa(A, B, labels=[1, 2, 3], weights=None) == pytest.approx(
        (0.75 - 5 / 16) / (1 - 5 / 16)
    )
    # Unused labels 4 and 5 change nothing (weights go by label index, as in sklearn).
    assert weighted_kappa(A, B) == pytest.approx(0.8)
    assert weighted_kappa(B, A) == pytest.approx(0.8)


def test_kappa_edges() -> None:
    assert weighted_kappa([1, 3, 5], [1, 3, 5]) == pytest.approx(1.0)
    assert weighted_kappa([1, 5], [5, 1]) < 0
    # None pairs are dropped, so they cannot lower agreement.
    assert weighted_kappa([*A, None, 5], [*B, 1, None]) == pytest.approx(0.8)
    assert math.isnan(weighted_kappa([3, 3], [3, 3]))  # no expected disagreement: undefined
    assert math.isnan(weighted_kappa([None], [2]))
    with pytest.raises(UserError, match="labels"):
        weighted_kappa([0, 1], [1, 1])
    with pytest.raises(UserError, match="length"):
        weighted_kappa([1, 2], [1])
    with pytest.raises(UserError, match="weights"):
        weighted_kappa([1], [1], weights="cubic")


def test_kappa_matches_sklearn_when_present() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    a = [1, 2, 3, 4, 5, 3, 2, 4, 4, 1, 5, 2]
    b = [1, 3, 3, 5, 4, 3, 1, 4, 2, 2, 5, 2]
    for w in ("quadratic", "linear", None):
        ref = metrics.cohen_kappa_score(a, b, labels=[1, 2, 3, 4, 5], weights=w)
        assert weighted_kappa(a, b, weights=w) == pytest.approx(ref)


def test_spearman_hand_computed() -> None:
    # No ties: d = [0, 1, 1, 0] -> 1 - 6*2/(4*15)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # Ties: ranks [1, 2.5, 2.5, 4] vs [1, 2, 3.5, 3.5] -> 3.75 / 4.5
    assert spearman([1, 2, 2, 3], [1, 2, 3, 3]) == pytest.approx(3.75 / 4.5)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, None, 3], [1, 2, 5, 3]) == pytest.approx(1.0)
    assert math.isnan(spearman([2, 2, 2], [1, 2, 3]))


def test_spearman_matches_scipy_when_present() -> None:
    stats = pytest.importorskip("scipy.stats")
    a = [1, 2, 2, 4, 5, 3, 3, 1, 4]
    b = [2, 2, 3, 4, 4, 3, 1, 1, 5]
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)


def test_agreement_and_ties() -> None:
    s = agreement_stats([1, 2, None, 4, 5], [1, 3, 2, None, 2])
    assert s["n"] == 3
    assert s["exact_agreement"] == pytest.approx(1 / 3)
    assert s["mean_abs_diff"] == pytest.approx(4 / 3)
    assert math.isnan(agreement_stats([None], [None])["exact_agreement"])
    # [4, 4, None] has a gap and [5] has one rating: neither counts.
    assert tie_rate([[3, 3, 3], [1, 2, 3], [4, 4, None], [2, 2], [5]]) == pytest.approx(2 / 3)
    assert math.isnan(tie_rate([]))


def _ratings_table() -> pd.DataFrame:
    def row(instr: str, pref: str, ratings: list, status: str) -> dict:
        models = ["m-a", "m-b", "m-c"]
        anns = [
            {"model": m, "rating": r, "rationale": "x"}
            for m, r in zip(models, ratings, strict=True)
        ]
        return {
            "instruction": instr,
            "preference": pref,
            "models": models,
            "annotations": anns,
            "parse_status": status,
        }

    return pd.DataFrame(
        [
            row("i1", "readability", [3, 3, 3], "ok"),
            row("i2", "readability", [5, 4, None], "partial"),
            row("i1", "style", [None, None, None], "failed"),
            row("i2", "style", [2, 2, 2], "ok"),
            row("i3", "style", [1, 4, 5], "ok"),
        ]
    )


def test_report_files_and_numbers(tmp_path) -> None:
    df = _ratings_table()
    position = ([5, 4, 3, 2, 1, None], [5, 4, 2, 2, 1, 3])  # 4 of 5 agree, one |diff| = 1
    consistency = RatingPair([1, 2, 3], [1, 2, 3], "T=0.7 #1", "T=0.7 #2")
    path = write_reliability_report(
        df, tmp_path / "rel", position=position, consistency=consistency
    )
    assert path == tmp_path / "rel" / "report.md"
    md = path.read_text()
    pngs = ["parse_status", "ratings_by_model", "ratings_by_preference", "ties", "position"]
    for name in [*pngs, "consistency"]:
        image = imread(tmp_path / "rel" / f"{name}.png")
        assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
        assert f"({name}.png)" in md
    assert not (tmp_path / "rel" / "inter_judge.png").exists()
    assert "Inter-judge" not in md

    # Overview: 15 ratings, 4 missing.
    assert "- ratings: 15 (4 missing, rate 0.267)" in md
    # Parse status: style has 3 calls, 1 failed; all 5 calls, 1 failed.
    assert "| style | 3 | 2 | 0 | 1 | 0.333 |" in md
    assert "| readability | 2 | 1 | 1 | 0 | 0.000 |" in md
    assert "| all | 5 | 3 | 1 | 1 | 0.200 |" in md
    # m-c: ratings 3, None, None, 2, 5 -> rated 3, missing 2, mean 10/3, one each of 2, 3, 5.
    assert "| m-c | 3 | 2 | 3.333 | 0.000 | 0.333 | 0.333 | 0.000 | 0.333 |" in md
    # readability: 3,3,3,5,4 -> mean 3.6; shares 3: 0.6, 4: 0.2, 5: 0.2.
    assert "| readability | 5 | 1 | 3.600 | 0.000 | 0.000 | 0.600 | 0.200 | 0.200 |" in md
    # Ties: readability 1 of 1 complete row; style 1 of 2; all 2 of 3.
    assert "| readability | 1.000 |" in md
    assert "| style | 0.500 |" in md
    assert "| all | 0.667 |" in md
    # Position bias: 5 pairs compared, 1 with a gap, exact 0.8, mean |diff| 0.2.
    assert "| pairs compared | 5 |" in md
    assert "| pairs with a missing rating | 1 |" in md
    assert "| exact agreement | 0.800 |" in md
    assert "| mean abs diff | 0.200 |" in md
    kappa = weighted_kappa(position[0], position[1])
    assert f"| quadratic weighted kappa | {kappa:.3f} |" in md and 0.8 < kappa < 1
    # Self-consistency with identical samples: perfect agreement, labels carried through.
    assert "| Spearman rho | 1.000 |" in md
    assert "| mean rating (T=0.7 #1) | 2.000 |" in md


def test_report_bad_input(tmp_path) -> None:
    df = _ratings_table().drop(columns=["parse_status"])
    with pytest.raises(UserError, match="parse_status"):
        write_reliability_report(df, tmp_path)
    with pytest.raises(UserError, match="inter_judge"):
        write_reliability_report(_ratings_table(), tmp_path, inter_judge=([1, 2], [1]))
