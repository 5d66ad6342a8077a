"""Gorilla's AST sub-tree match for APIBench answers (eval/eval-scripts/ast_eval_*.py).

What Gorilla does, and we mirror: take the text between ``api_call`` and
``api_provider`` (the whole answer when there is no ``api_call`` marker), parse it
with tree-sitter, and walk the API database in file order; the first entry whose
function (e.g. ``AutoModel.from_pretrained``) is called in the answer with the
entry's key arguments is the match. The answer is *correct* when the matched
entry's ``domain`` equals the reference's, *hallucination* when no entry matches.
Accuracy and hallucination rate are over all responses.

Key arguments per hub, as in Gorilla's ``get_args``: HuggingFace, every argument of
the database call (usually the model id, plus the task for ``pipeline``); TorchHub,
``repo_or_dir`` and ``model``; TensorFlow Hub, the handle URL.

Deliberate deviations (all make the check stricter or remove accidents):
- ``match="exact"`` (default) compares argument *values* (string contents; other
  expressions without whitespace), keyword against same keyword, else against any
  argument. Gorilla tests whether the value is a *substring* of the call's text, so
  ``'bert-base'`` matches ``'bert-base-uncased'``; ``match="gorilla"`` restores that.
- Both quote styles are stripped in exact mode (Gorilla strips only ``'``). Function
  names match when one is a dotted suffix of the other (``transformers.pipeline`` /
  ``pipeline``, ``load`` / ``skops.io.load``); ``tensorflow_hub.`` counts as ``hub.``.
- The database lists some calls under several domains (TF Hub's universal sentence
  encoder: "Text embedding" and "Text preprocessing"), so Gorilla marks even some
  reference answers wrong. In exact mode a match under the reference's domain wins.
- Every call to the entry's function in the answer is tried, not only the first.
  When the function isn't called at all there is no match (Gorilla's loop then falls
  through to the last sub-tree visited, an accident we don't copy).
- An ``api_call`` that is an assignment (``model = torch.hub.load(...)``, TorchHub's
  dict-like answers) is reduced to its right-hand side; Gorilla parses it from the
  opening quote, which only works by luck of tree-sitter's error recovery.
- TorchHub answers without an ``api_call`` marker are scored from their code (Gorilla
  counts them neither correct nor hallucinated). HF/TF already do that in Gorilla.
- Two extra verdicts separate answers with no call at all (``no_call``) and
  unparseable ones (``parse_error``); Gorilla counts both as hallucinations.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from codeultra.errors import UserError
from codeultra.metrics.answer import parse_answer, strip_assignment
from codeultra.rlaif.apibench import ApiEntry, check_hub

log = logging.getLogger(__name__)
VERDICTS = ("correct", "wrong", "hallucination", "no_call", "parse_error")
MatchMode = Literal["exact", "gorilla"]
_STRING_PREFIX = re.compile(r"^[rRbBuUfF]{0,2}")
_TF_HANDLE_FUNCS = ("hub.load", "hub.KerasLayer", "hub.Module", "hub.resolve")


@lru_cache(maxsize=1)
def _parser() -> Any:
    import tree_sitter_python
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_python.language()))


def parse_python(source: str) -> Any:
    """tree-sitter root node (error-tolerant: always returns a tree)."""
    return _parser().parse(source.encode("utf-8")).root_node


@dataclass(frozen=True)
class Call:
    func: str  # normalized function text, e.g. "AutoModel.from_pretrained"
    args: tuple[tuple[str | None, str], ...]  # (keyword or None, normalized value)
    text: str  # the call's source
    raw_args: tuple[str, ...] = ()  # each argument's value as written (gorilla mode)


def _value(node: Any) -> str:
    text = node.text.decode("utf-8", "replace")
    if node.type == "string":
        body = _STRING_PREFIX.sub("", text)
        for quote in ('"""', "'''", '"', "'"):
            if body.startswith(quote):
                body = body[len(quote) :]
                return body[: -len(quote)] if body.endswith(quote) else body
        return body
    if node.type == "concatenated_string":
        return "".join(_value(c) for c in node.named_children)
    return "".join(text.split())


def _raw_value(node: Any) -> str:
    """Gorilla's view of an argument: its source with single quotes stripped."""
    return node.text.decode("utf-8", "replace").strip("'")


def normalize_func(text: str) -> str:
    func = "".join(text.split())
    for alias, canonical in (("tensorflow_hub.", "hub."), ("transformers.", "")):
        if func.startswith(alias):
            func = canonical + func[len(alias) :]
    return func


def _splat_pairs(node: Any) -> list[tuple[Any, Any]]:
    inner = node.named_children[0] if node.named_children else None
    if inner is None or inner.type != "dictionary":
        return []
    pairs = []
    for pair in inner.named_children:
        key, value = pair.child_by_field_name("key"), pair.child_by_field_name("value")
        if pair.type == "pair" and key is not None and key.type == "string" and value is not None:
            pairs.append((key, value))
    return pairs


def _as_call(node: Any) -> Call | None:
    func = node.child_by_field_name("function")
    arguments = node.child_by_field_name("arguments")
    if func is None or arguments is None:
        return None
    args: list[tuple[str | None, str]] = []
    raw: list[str] = []
    for child in arguments.named_children:
        if child.type == "dictionary_splat":  # **{'topN': 6}: literal keys are keywords
            for pair in _splat_pairs(child):
                args.append((_value(pair[0]), _value(pair[1])))
                raw.append(_raw_value(pair[1]))
            continue
        if child.type in ("comment", "list_splat", "ERROR"):
            continue
        if child.type == "keyword_argument":
            name, value = child.child_by_field_name("name"), child.child_by_field_name("value")
            if name is not None and value is not None:
                args.append((name.text.decode("utf-8", "replace"), _value(value)))
                raw.append(_raw_value(value))
        else:
            args.append((None, _value(child)))
            raw.append(_raw_value(child))
    text = node.text.decode("utf-8", "replace")
    func_text = normalize_func(func.text.decode("utf-8", "replace"))
    return Call(func_text, tuple(args), text, tuple(raw))


def iter_calls(root: Any) -> Iterator[Call]:
    """Every call in the tree, outermost first (pre-order)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type == "call":
            call = _as_call(node)
            if call is not None:
                yield call
        stack.extend(reversed(node.children))


def _key_args(call: Call, hub: str) -> tuple[tuple[str | None, str], ...]:
    if hub == "huggingface":
        return call.args
    if hub == "torchhub":
        wanted = ["repo_or_dir", "model"]
        keyed = {k: v for k, v in call.args if k in wanted}
        positional = [v for k, v in call.args if k is None]
        out = []
        for name in wanted:
            if name in keyed:
                out.append((name, keyed[name]))
            elif positional:
                out.append((name, positional.pop(0)))
        return tuple(out)
    # tensorflowhub: the handle
    for k, v in call.args:
        if k in (None, "handle"):
            return (("handle", v),)
    return ()


def _api_node(api_call: str, hub: str) -> Call | None:
    calls = list(iter_calls(parse_python(strip_assignment(api_call.strip()))))
    if not calls:
        return None
    if hub == "tensorflowhub":
        for call in calls:
            if call.func in _TF_HANDLE_FUNCS:
                return call
    return calls[0]


@dataclass(frozen=True)
class DbSignature:
    index: int
    func: str
    key_args: tuple[tuple[str | None, str], ...]
    raw_key_args: tuple[str, ...]
    entry: ApiEntry


class ApiIndex:
    """The hub's API database as call signatures, looked up by function name."""

    def __init__(self, api_db: Sequence[ApiEntry], hub: str) -> None:
        self.hub = check_hub(hub)
        self.by_func: dict[str, list[DbSignature]] = {}
        self.unusable = 0  # entries whose api_call has no call or no key argument
        for i, entry in enumerate(api_db):
            call = _api_node(entry.api_call, self.hub)
            keys = _key_args(call, self.hub) if call else ()
            if not call or not keys:
                self.unusable += 1
                continue
            written = {v: r for (_, v), r in zip(call.args, call.raw_args, strict=True)}
            raw = tuple(written.get(v, v) for _, v in keys)
            sig = DbSignature(i, call.func, keys, raw, entry)
            self.by_func.setdefault(call.func.rsplit(".", 1)[-1], []).append(sig)

    def candidates(self, func: str) -> list[DbSignature]:
        """Entries whose function equals ``func``, or one is a dotted suffix of the other
        (``transformers.pipeline`` / ``pipeline``, ``load`` / ``skops.io.load``)."""
        return [
            sig
            for sig in self.by_func.get(func.rsplit(".", 1)[-1], [])
            if sig.func == func or func.endswith("." + sig.func) or sig.func.endswith("." + func)
        ]

    def matches(self, calls: Sequence[Call], mode: MatchMode = "exact") -> list[DbSignature]:
        """Every database entry that any of ``calls`` matches, in file order."""
        found = {
            sig.index: sig
            for call in calls
            for sig in self.candidates(call.func)
            if _args_match(sig, call, mode)
        }
        return [found[i] for i in sorted(found)]


def _args_match(sig: DbSignature, call: Call, mode: MatchMode) -> bool:
    if mode == "gorilla":
        return all(value in call.text for value in sig.raw_key_args)
    values = [v for _, v in call.args]
    keyed = {k: v for k, v in call.args if k is not None}
    for name, value in sig.key_args:
        if name is not None and name in keyed:
            if keyed[name] != value:
                return False
        elif value not in values:
            return False
    return True


def candidate_source(text: str) -> str:
    """The part of an answer that AST matching looks at (see module docstring)."""
    parsed = parse_answer(text)
    if parsed.api_call is not None:
        return strip_assignment(parsed.api_call)
    return parsed.code if parsed.code.strip() else parsed.text


def _reference_domain(ref: Any) -> str:
    domain = ref.get("domain") if isinstance(ref, Mapping) else getattr(ref, "domain", None)
    if not isinstance(domain, str):
        raise UserError(f"reference without a domain: {str(ref)[:80]}")
    return domain.strip()


def response_text(response: Mapping[str, Any]) -> str:
    for key in ("text", "response"):
        value = response.get(key)
        if isinstance(value, str):
            return value
    return ""


def score_one(
    text: str, index: ApiIndex, reference_domain: str, mode: MatchMode = "exact"
) -> tuple[str, dict[str, Any]]:
    """(verdict, details) for one answer."""
    source = candidate_source(text)
    root = parse_python(source)
    calls = list(iter_calls(root))
    details: dict[str, Any] = {"api_call": source.strip()[:500], "matched_api_name": None}
    details["matched_domain"] = None
    if not calls:
        attempted = "(" in source and root.has_error  # prose has no call syntax at all
        verdict = "parse_error" if attempted else "no_call"
        return verdict, details
    found = index.matches(calls, mode)
    if not found:
        return "hallucination", details
    sig = found[0]
    if mode == "exact":  # the same call may be listed under several domains
        sig = next((s for s in found if s.entry.domain == reference_domain), sig)
    details.update(matched_api_name=sig.entry.api_name, matched_domain=sig.entry.domain)
    return ("correct" if sig.entry.domain == reference_domain else "wrong"), details


def score_ast(
    responses: Sequence[Mapping[str, Any]],
    hub: str,
    api_db: Sequence[ApiEntry],
    references: Mapping[int, Any] | Sequence[Any],
    *,
    match: MatchMode = "exact",
) -> dict[str, Any]:
    """Score responses ({"question_id", "text"}) against references.

    ``references`` is either keyed by question_id (`load_references`) or a sequence
    aligned with ``responses``; each reference needs a ``domain``.
    """
    if match not in ("exact", "gorilla"):
        raise UserError(f"unknown AST match mode {match!r}; use 'exact' or 'gorilla'")
    index = ApiIndex(api_db, hub)
    aligned = not isinstance(references, Mapping)
    if aligned and len(references) != len(responses):
        raise UserError(f"{len(responses)} responses but {len(references)} references")
    items = []
    for i, response in enumerate(responses):
        qid = response.get("question_id")
        if aligned:
            ref = references[i]
        elif qid in references:
            ref = references[qid]
        else:
            raise UserError(f"response {i}: question_id {qid!r} has no {hub} reference")
        ref_domain = _reference_domain(ref)
        verdict, details = score_one(response_text(response), index, ref_domain, match)
        items.append(
            {"question_id": qid, "verdict": verdict, "reference_domain": ref_domain, **details}
        )
    counts = Counter(item["verdict"] for item in items)
    n = len(items)
    return {
        "hub": hub,
        "match": match,
        "n": n,
        "counts": {v: counts.get(v, 0) for v in VERDICTS},
        "accuracy": counts["correct"] / n if n else 0.0,
        "hallucination_rate": counts["hallucination"] / n if n else 0.0,
        "items": items,
    }


def load_gorilla_responses(path: str | Path) -> list[dict[str, Any]]:
    """Gorilla's response JSONL ({"question_id", "text", "answer_id", "model_id", ...})."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"responses file not found: {path}")
    rows: list[dict[str, Any]] = []
    skipped = 0
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: not JSON ({exc.msg})") from None
            if row is None:  # Gorilla's get_llm_responses.py writes null for failed calls
                skipped += 1
                continue
            if not isinstance(row, dict) or not isinstance(row.get("question_id"), int):
                raise UserError(f"{path}:{lineno}: expected an object with an int question_id")
            row.setdefault(
                "text", row.get("response") if isinstance(row.get("response"), str) else ""
            )
            rows.append(row)
    if skipped:
        log.warning("%s: skipped %d null lines (failed generations)", path, skipped)
    return rows
