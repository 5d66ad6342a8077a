"""Parse a judge reply into one rating (1-5) and rationale per shown response.

JSON (the structured-output schema) is tried first, then a tolerant reader for
"Rating: X / Rationale: ..." text. Ratings are mapped by the response number the judge
wrote, by position only when no numbers are written and the count matches. A value that
is missing, out of range, a range ("3-4") or not a whole number becomes None with a
reason: the parser never guesses. Only the judge's reply is read, never response text, so
a response that says "Rating: 5" cannot rate itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "partial", "failed"]

_MAX_JSON_STARTS = 400  # bound the raw_decode scan on brace-heavy replies
_JSON_START_RE = re.compile(r"[{\[]")


@dataclass
class ParseResult:
    ratings: list[int | None]  # by shown position (0-based list, "Response j+1")
    rationales: list[str | None]
    status: Status
    reasons: list[str | None]  # why ratings[j] is None; None where it is set
    method: Literal["json", "text", "none"] = "none"
    notes: list[str] = field(default_factory=list)  # reply-level issues (ignored entries, ...)


@dataclass
class _Entry:
    number: int | None  # as written by the judge (normally 1-based)
    rating: int | None
    reason: str | None
    rationale: str | None


# ---------------------------------------------------------------- rating values

_NA_RE = re.compile(r"^(?:n/?a|none|null|nil|-+|unrated|not\s+(?:rated|applicable))\b", re.I)
_VALUE_RE = re.compile(
    r"^[\[\(\s]*(-?\d+(?:\.\d+)?)\s*(?:(?:/|out\s+of)\s*(\d+(?:\.\d+)?))?\s*[\]\)]*(.*)$",
    re.I | re.S,
)
_RANGE_TAIL_RE = re.compile(r"^\s*(?:-|–|—|to|or|and)\s*\d", re.I)


def rating_value(raw: Any) -> tuple[int | None, str | None]:
    """(rating, None) for a whole number 1-5, else (None, why)."""
    if raw is None:
        return None, "rating is missing"
    if isinstance(raw, bool):
        return None, f"rating {raw!r} is not a number"
    if isinstance(raw, int):
        number: float = raw
    elif isinstance(raw, float):
        number = raw
    elif isinstance(raw, str):
        text = raw.strip().strip("*_`\"'").strip()
        if not text:
            return None, "rating is empty"
        if _NA_RE.match(text):
            return None, f"judge gave no rating ({text[:20]!r})"
        m = _VALUE_RE.match(text)
        if not m or (m.group(3) and m.group(3)[:1].isdigit()):
            return None, f"rating {text[:30]!r} is not a number"
        if _RANGE_TAIL_RE.match(m.group(3) or ""):
            return None, f"rating {text[:30]!r} is a range, not one number"
        if m.group(2) is not None and float(m.group(2)) != 5:
            return None, f"rating {text[:30]!r} is not on the 1-5 scale"
        number = float(m.group(1))
    else:
        return None, f"rating {str(raw)[:30]!r} is not a number"
    if number != int(number):
        return None, f"rating {number:g} is not a whole number"
    if not 1 <= number <= 5:
        return None, f"rating {number:g} is outside 1-5"
    return int(number), None


def _number(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw == int(raw):
        return int(raw)
    if isinstance(raw, str):
        m = re.search(r"-?\d+", raw)
        return int(m.group()) if m else None
    return None


# ---------------------------------------------------------------- assignment to slots


def _assign(entries: list[_Entry], k: int, method: str, notes: list[str]) -> ParseResult:
    ratings: list[int | None] = [None] * k
    rationales: list[str | None] = [None] * k
    reasons: list[str | None] = [None] * k
    by_slot: dict[int, list[_Entry]] = {}

    numbered = [e for e in entries if e.number is not None]
    if numbered:
        if len(numbered) < len(entries):
            notes.append(f"{len(entries) - len(numbered)} unnumbered rating(s) ignored")
        nums = {e.number for e in numbered}
        offset = 1
        if 0 in nums and nums == set(range(k)):  # the judge counted from 0, consistently
            offset = 0
            notes.append("response numbers were 0-based")
        for e in numbered:
            slot = e.number - offset  # type: ignore[operator]
            if 0 <= slot < k:
                by_slot.setdefault(slot, []).append(e)
            else:
                notes.append(f"rating for response {e.number} ignored (only {k} responses)")
    elif len(entries) == k:
        by_slot = {j: [e] for j, e in enumerate(entries)}
    elif entries:
        notes.append(f"{len(entries)} unnumbered rating(s) for {k} responses; cannot map them")

    for j in range(k):
        found = by_slot.get(j, [])
        if not found:
            reasons[j] = f"no rating for response {j + 1}"
            continue
        rationales[j] = next((e.rationale for e in found if e.rationale), None)
        values = {(e.rating, e.reason) for e in found}
        if len(values) > 1:
            reasons[j] = f"conflicting ratings for response {j + 1}"
            continue
        ratings[j], reasons[j] = found[0].rating, found[0].reason

    got = sum(r is not None for r in ratings)
    status: Status = "ok" if got == k else ("partial" if got else "failed")
    return ParseResult(ratings, rationales, status, reasons, method, notes)  # type: ignore[arg-type]


# ---------------------------------------------------------------- JSON

_NUM_KEYS = ("response", "response_id", "response_number", "responseid", "id", "index", "number")
_RATING_KEYS = ("rating", "score", "grade")
_WHY_KEYS = ("rationale", "reason", "reasoning", "explanation", "justification", "comment")


def _entry_from_dict(d: dict[str, Any], number: int | None = None) -> _Entry | None:
    low = {str(key).strip().lower(): v for key, v in d.items()}
    rating_key = next((key for key in _RATING_KEYS if key in low), None)
    if rating_key is None:
        return None
    if number is None:
        number = next((_number(low[key]) for key in _NUM_KEYS if key in low), None)
    rating, reason = rating_value(low[rating_key])
    why = next((low[key] for key in _WHY_KEYS if isinstance(low.get(key), str)), None)
    return _Entry(number, rating, reason, why.strip() or None if why else None)


def _entries_from_json(obj: Any, k: int) -> list[_Entry] | None:
    """The rating entries of one JSON value, or None if it is not a judge answer."""
    if isinstance(obj, dict):
        low = {str(key).strip().lower(): v for key, v in obj.items()}
        for key in ("ratings", "scores", "results", "evaluations"):
            if key in low:
                return _entries_from_json(low[key], k) or []
        keyed = [(key, v) for key, v in obj.items() if re.search(r"\d", str(key))]
        if keyed and len(keyed) == len(obj):  # {"1": 4, "response_2": {...}}
            out = []
            for key, v in keyed:
                num = _number(str(key))
                if isinstance(v, dict):
                    e = _entry_from_dict(v, num)
                    out.append(e or _Entry(num, None, "no rating in entry", None))
                else:
                    out.append(_Entry(num, *rating_value(v), None))
            return out
        if k == 1:
            e = _entry_from_dict(obj)
            return [e] if e else None
        return None
    if isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        entries = [_entry_from_dict(x) for x in obj]
        if all(e is None for e in entries):
            return None
        return [e or _Entry(None, None, "no rating in entry", None) for e in entries]
    return None


def _json_values(reply: str) -> list[tuple[int, int, Any]]:
    """Top-level JSON objects/arrays in the reply, as (start, end, value)."""
    decoder = json.JSONDecoder()
    found: list[tuple[int, int, Any]] = []
    pos, tries = 0, 0
    while tries < _MAX_JSON_STARTS:
        m = _JSON_START_RE.search(reply, pos)
        if not m:
            break
        tries += 1
        try:
            value, end = decoder.raw_decode(reply, m.start())
        except ValueError:
            pos = m.start() + 1
            continue
        found.append((m.start(), end, value))
        pos = end
    return found


def _parse_json(reply: str, k: int) -> ParseResult | None:
    cleaned = re.sub(r",\s*([}\]])", r"\1", reply)  # trailing commas from small models
    for text in dict.fromkeys([reply, cleaned]):
        for start, _, value in _json_values(text):
            if _has_text_answer(text[:start]):
                return None  # JSON quoted inside a text-format answer: not the answer itself
            entries = _entries_from_json(value, k)
            if entries is not None:
                return _assign(entries, k, "json", [])
    values = _json_values(reply)
    # A reply cut off mid-JSON still holds complete, numbered entry objects.
    head = re.search(r'"ratings"\s*:\s*\[', reply)
    if head is None or _has_text_answer(reply[: head.start()]):
        return None
    salvaged, tail_start = [], head.end()
    for start, end, v in values:
        e = _entry_from_dict(v) if isinstance(v, dict) and start >= head.end() else None
        if e is not None and e.number is not None:
            salvaged.append(e)
            tail_start = end
    tail = _tail_entry(reply[tail_start:])
    if tail is not None:
        salvaged.append(tail)
    if not salvaged:
        return None
    return _assign(salvaged, k, "json", ["reply JSON was cut off; read the complete fields"])


# A key is only a key when it follows "{" or ",": inside a JSON string a quote is escaped.
_TAIL_NUM_RE = re.compile(r'[{,]\s*"response"\s*:\s*(\d+)\s*[,}]')
_TAIL_RATING_RE = re.compile(r'[{,]\s*"rating"\s*:\s*("[^"]*"|-?[\d.]+)\s*[,}]')


def _tail_entry(tail: str) -> _Entry | None:
    """The last, unterminated entry of a cut-off reply, if its number and rating are whole."""
    num, rating = _TAIL_NUM_RE.search(tail), _TAIL_RATING_RE.search(tail)
    if not (num and rating):
        return None
    raw = rating.group(1)
    value = json.loads(raw) if raw.startswith('"') else raw
    return _Entry(int(num.group(1)), *rating_value(value), None)


# ---------------------------------------------------------------- text

_B = r"(?:\*\*|__)?"
_HEADER_RE = re.compile(
    r"^[#\s]*(?:[-*+]\s+)?(?:\*\*|__|\[|<<<)?\s*(?:output\s+for\s+)?"
    r"(?:response|text|answer|output|candidate|completion)\s*(?:no\.?|number|#)?\s*(\d+)\b(.*)$",
    re.I,
)
_ID_RE = re.compile(r"\(?\s*id\s*=\s*\w+\s*\)?", re.I)
_LABEL_RE = re.compile(
    rf"^(?:[-*+]\s+)?{_B}\s*(?:overall\s+|final\s+)?(?P<label>rating|score|grade|rationale|"
    rf"reason(?:ing)?|explanation|justification){_B}\s*(?:\([^)]*\))?\s*{_B}\s*[:=\-–—]"
    rf"\s*{_B}\s*(?P<val>.*)$",
    re.I,
)
_SEP = " \t*_:)]>.#|,-–—"


@dataclass
class _Line:
    kind: Literal["header", "rating", "why", "text"]
    value: str
    number: int | None = None


def _classify_rest(rest: str) -> _Line | None:
    """What follows "Response N" on a header line, if the header carries content."""
    m = _LABEL_RE.match(rest)
    if m:
        kind = "rating" if m.group("label").lower() in _RATING_KEYS else "why"
        return _Line(kind, m.group("val").strip())
    m = re.match(r"^[\[(]*(\d+(?:\.\d+)?(?:\s*/\s*\d+)?)[\])]*\s*(?:$|[-–—:|,.]\s+(.*)$)", rest)
    if m:  # "Response 2: 4/5 - solid" (a bare rating after the header)
        return _Line("rating", m.group(1))
    return None


def _classify(reply: str) -> list[_Line]:
    lines: list[_Line] = []
    in_code = False
    for raw in reply.splitlines():
        s = raw.strip()
        if s.startswith("```"):
            in_code = not in_code
            lines.append(_Line("text", raw))
            continue
        if in_code or s.startswith(">"):  # code and quotes are content, never labels
            lines.append(_Line("text", raw))
            continue
        h = _HEADER_RE.match(s)
        if h:
            rest = _ID_RE.sub("", h.group(2)).replace("<<<", "").replace(">>>", "")
            rest = rest.strip(_SEP)
            inline = _classify_rest(rest) if rest else None
            if not rest or inline is not None:
                lines.append(_Line("header", s, int(h.group(1))))
                if inline is not None:
                    lines.append(inline)
                continue
        m = _LABEL_RE.match(s)
        if m:
            kind = "rating" if m.group("label").lower() in _RATING_KEYS else "why"
            lines.append(_Line(kind, m.group("val").strip()))
            continue
        lines.append(_Line("text", raw))
    return lines


def _has_text_answer(text: str) -> bool:
    return any(line.kind in ("header", "rating") for line in _classify(text))


def _entry_from_block(block: list[_Line], number: int | None) -> _Entry:
    values = [rating_value(line.value) for line in block if line.kind == "rating"]
    if not values:
        rating, reason = None, "no rating in the judge's block"
    elif len(set(values)) > 1:
        rating, reason = None, "conflicting ratings in one block"
    else:
        rating, reason = values[0]
    start = next((i for i, line in enumerate(block) if line.kind == "why"), None)
    body = block if start is None else block[start:]
    why = "\n".join(line.value for line in body if line.kind in ("why", "text")).strip()
    return _Entry(number, rating, reason, why or None)


def _parse_text(reply: str, k: int) -> ParseResult:
    lines = _classify(reply)
    notes: list[str] = []
    if any(line.kind == "header" for line in lines):
        entries, block, number = [], None, None
        for line in lines:
            if line.kind == "header":
                if block is not None:
                    entries.append(_entry_from_block(block, number))
                block, number = [], line.number
            elif block is not None:
                block.append(line)
        if block is not None:
            entries.append(_entry_from_block(block, number))
        return _assign(entries, k, "text", notes)
    # No headers: a record is a rating plus a rationale, in either order.
    records: list[list[_Line]] = []
    current: list[_Line] = []
    for line in lines:
        if line.kind in ("rating", "why") and any(x.kind == line.kind for x in current):
            records.append(current)
            current = []
        if line.kind != "text" or current:
            current.append(line)
    if current:
        records.append(current)
    records = [r for r in records if any(x.kind == "rating" for x in r)]
    if not records:
        result = _assign([], k, "text", notes)
        result.method = "none"
        result.notes.append("no rating found in the reply")
        return result
    return _assign([_entry_from_block(r, None) for r in records], k, "text", notes)


def parse_judge_reply(reply: str, k: int) -> ParseResult:
    """Ratings and rationales by shown position (see `render.unshuffle` to map them back)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    reply = reply or ""
    return _parse_json(reply, k) or _parse_text(reply, k)
