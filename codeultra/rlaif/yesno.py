"""A yes/no question's score: P(Yes) from token logprobs, or the share of Yes over samples.

Normalisation (exact): a token's text is lower-cased and every character outside a-z is
dropped, so " Yes", "YES", "yes.", "**Yes" and "ĠYes" all read "yes"; a token reading
exactly "yes" or "no" counts, anything else ("Y", "Yesterday", "<<<") is ignored. At the
first answer position whose alternatives hold any yes/no token,

    P(Yes) = sum(exp(lp) over "yes" tokens) / (sum over "yes" tokens + sum over "no" tokens)

i.e. the probability of Yes renormalised over the yes/no mass, so probability that went
to other tokens does not pull the score down. The chosen token counts once even if the
server also lists it among the alternatives. The yes/no mass itself is kept as
`coverage` (how much of the distribution the judge put on a valid answer). When a reply
carries no logprobs, or none of its positions holds yes/no, the caller asks again with
sampling and takes the share of replies whose first word reads yes among those reading
yes or no.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from codeultra.backends.base import TokenLogprob

_NOT_LETTER = re.compile(r"[^a-z]")
_FIRST_WORD = re.compile(r"[A-Za-z]+")


def normalize_token(token: str) -> str:
    return _NOT_LETTER.sub("", token.lower())


@dataclass(frozen=True)
class YesNo:
    p_yes: float  # renormalised over the yes/no mass
    coverage: float  # P(yes) + P(no) before renormalising
    position: int = 0  # which answer token it was read from


def yes_probability(top: Mapping[str, float]) -> YesNo | None:
    """P(Yes) from one position's {token: logprob}; None when no token reads yes or no."""
    yes = no = 0.0
    for token, logprob in top.items():
        word = normalize_token(token)
        if word == "yes":
            yes += math.exp(logprob)
        elif word == "no":
            no += math.exp(logprob)
    mass = yes + no
    if mass <= 0.0:
        return None
    return YesNo(p_yes=yes / mass, coverage=min(1.0, mass))


def position_distribution(step: TokenLogprob) -> dict[str, float]:
    """The alternatives at one position, with the sampled token added if it was not listed."""
    top = dict(step.top)
    top.setdefault(step.token, step.logprob)
    return top


def yes_from_logprobs(logprobs: Sequence[TokenLogprob] | None) -> YesNo | None:
    """Scan answer positions in order; the first that holds yes/no gives the score."""
    for i, step in enumerate(logprobs or []):
        found = yes_probability(position_distribution(step))
        if found is not None:
            return YesNo(found.p_yes, found.coverage, i)
    return None


def read_answer(text: str) -> bool | None:
    """True for a reply whose first word is yes, False for no, None otherwise."""
    match = _FIRST_WORD.search(text or "")
    if match is None:
        return None
    word = match.group(0).lower()
    return True if word == "yes" else False if word == "no" else None


def share_of_yes(texts: Iterable[str]) -> tuple[float | None, int]:
    """(share of yes among replies reading yes or no, how many did); None when none did."""
    answers = [a for a in (read_answer(t) for t in texts) if a is not None]
    if not answers:
        return None, 0
    return sum(answers) / len(answers), len(answers)


def combine(scores: Mapping[str, float | None], weights: Mapping[str, float]) -> float | None:
    """Weighted mean of the questions that got a score (weight 1 unless given)."""
    total = norm = 0.0
    for question, score in scores.items():
        if score is None:
            continue
        w = weights.get(question, 1.0)
        total += w * score
        norm += w
    return total / norm if norm > 0 else None
