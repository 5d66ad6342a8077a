"""Judge prompts, the structured-output schema, and the seeded display order.

Responses are shown to the judge in a per-row shuffled order so position bias averages out;
`order[j]` is the original index of the response shown at position j (1-based "Response j+1"
in the prompt). Ratings are mapped back with `unshuffle`, never by matching response text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from codeultra.errors import UserError
from codeultra.judging.rubrics import check_preference, jinja_env, rubric_text

T = TypeVar("T")
Mode = Literal["all", "one"]

RATIONALE_MAX_CHARS = 300
_NONCE_RE = re.compile(r"\A[0-9A-Za-z]{8,64}\Z")


def make_nonce(*parts: str) -> str:
    """A deterministic boundary id (16 hex chars) from the cell's inputs.

    Hashing the responses themselves makes it unguessable to their authors: a response
    cannot contain a hash of itself.
    """
    blob = "\x1f".join(parts).encode("utf-8")
    return hashlib.sha256(b"codeultra-judge-nonce\x1f" + blob).hexdigest()[:16]


def format_evidence(ev: dict[str, Any]) -> str:
    """One line of code-grounded signals: "parses: yes, ruff issues: 2, runs: no"."""

    def word(v: Any) -> str:
        if v is None:
            return "unknown"
        if isinstance(v, bool):
            return "yes" if v else "no"
        return str(v)

    known = {"parses": "parses", "ruff_issues": "ruff issues", "runs": "runs"}
    items = [f"{label}: {word(ev.get(key))}" for key, label in known.items()]
    items += [f"{k.replace('_', ' ')}: {word(v)}" for k, v in ev.items() if k not in known]
    return ", ".join(items)


def render_judge_messages(
    instruction: str,
    preference: str,
    responses: Sequence[str],
    *,
    mode: Mode = "all",
    evidence: Sequence[dict[str, Any]] | None = None,
    nonce: str,
) -> list[dict[str, str]]:
    """System + user messages for one judge call; `responses` are in display order."""
    check_preference(preference)
    if mode not in ("all", "one"):
        raise UserError(f"judge mode must be 'all' or 'one', got {mode!r}")
    if not responses:
        raise UserError("judge prompt needs at least one response")
    if mode == "one" and len(responses) != 1:
        raise UserError(f"judge mode 'one' rates one response per call, got {len(responses)}")
    if evidence is not None and len(evidence) != len(responses):
        raise UserError(
            f"judge evidence has {len(evidence)} entries for {len(responses)} responses"
        )
    if not isinstance(nonce, str) or not _NONCE_RE.match(nonce):
        raise UserError("judge nonce must be 8-64 letters/digits (use make_nonce)")
    for text in (instruction, *responses):
        if nonce in text:
            # A response that knows the boundary id could close its block early.
            raise UserError(f"judge nonce {nonce} occurs in the judged text; pick another nonce")

    shown = [
        {"text": text, "evidence": None if evidence is None else format_evidence(evidence[i])}
        for i, text in enumerate(responses)
    ]
    env = jinja_env()
    ctx = {
        "nonce": nonce,
        "preference": preference,
        "rubric": rubric_text(preference),
        "instruction": instruction,
        "responses": shown,
        "k": len(responses),
        "evidence": evidence is not None,
    }
    main = "judge/rate_all.j2" if mode == "all" else "judge/rate_one.j2"
    return [
        {"role": "system", "content": env.get_template("judge/system.j2").render(ctx).strip()},
        {"role": "user", "content": env.get_template(main).render(ctx).strip()},
    ]


def judge_json_schema(k: int) -> dict[str, Any]:
    """JSON schema of the judge reply; rationale precedes rating so the model reasons first.

    One required key per response ("response_1" ... "response_k") rather than a list of
    numbered entries: a grammar-constrained small judge cannot then rate one response k times
    and leave the others unrated (seen with Qwen2.5-Coder-1.5B on 4 responses).
    """
    if k < 1:
        raise UserError(f"judge schema needs k >= 1, got {k}")
    entry = {
        "type": "object",
        "properties": {
            # Bounded so a rambling small judge cannot run out of tokens before its rating.
            "rationale": {"type": "string", "minLength": 1, "maxLength": RATIONALE_MAX_CHARS},
            "rating": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
        },
        "required": ["rationale", "rating"],
        "additionalProperties": False,
    }
    keys = [f"response_{j}" for j in range(1, k + 1)]
    return {
        "type": "object",
        "properties": {key: entry for key in keys},
        "required": keys,
        "additionalProperties": False,
    }


def judge_response_format(k: int) -> dict[str, Any]:
    """OpenAI / llama.cpp `response_format` wrapper around `judge_json_schema`."""
    return {
        "type": "json_schema",
        "json_schema": {"name": "judge_ratings", "schema": judge_json_schema(k), "strict": True},
    }


def shuffle_order(k: int, seed: int, key: str) -> list[int]:
    """Seeded Fisher-Yates from SHA-256, so the order is stable across Python versions."""
    if k < 0:
        raise UserError(f"cannot shuffle {k} responses")
    order = list(range(k))
    for i in range(k - 1, 0, -1):
        h = hashlib.sha256(f"{seed}\x1f{key}\x1f{i}".encode()).digest()
        j = int.from_bytes(h[:8], "big") % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def _check_order(order: Sequence[int], n: int) -> None:
    if sorted(order) != list(range(n)):
        raise UserError(f"display order {list(order)} is not a permutation of 0..{n - 1}")


def apply_order(items: Sequence[T], order: Sequence[int]) -> list[T]:
    """Original-index items -> display order (position j shows items[order[j]])."""
    _check_order(order, len(items))
    return [items[i] for i in order]


def unshuffle(parsed_by_position: Sequence[T], order: Sequence[int]) -> list[T]:
    """Display-position values -> original-index values (inverse of `apply_order`)."""
    _check_order(order, len(parsed_by_position))
    out: list[Any] = [None] * len(order)
    for position, original in enumerate(order):
        out[original] = parsed_by_position[position]
    return out
