"""Split an APIBench-style answer into its sections (domain, api_call, code, ...).

Three shapes occur: Gorilla's ``<<<domain>>>: ..., <<<api_call>>>: ..., <<<code>>>: ...``
(HuggingFace, TensorFlow Hub), a dict-like ``{'domain': ..., 'api_call': ..., 'code': ...}``
(TorchHub; not valid Python because values nest the same quotes), and plain code or
markdown. Gorilla's published responses also carry escaped newlines (``\\n`` as two
characters) and a stray trailing ``\\"``; `unescape_response` undoes that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from codeultra.sandbox.extract import extract_code

SECTIONS = ("domain", "api_call", "api_provider", "explanation", "code")
_ANGLE_KEY = re.compile(r"<<<\s*(domain|api_call|api_provider|explanation|code)\s*>>>\s*:?\s*")
_DICT_KEY = re.compile(r"['\"](domain|api_call|api_provider|explanation|code)['\"]\s*:\s*")
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
_CLOSING = re.compile(r"(['\"])[\s}]*\}\s*\Z")  # a quoted value, then the dict's braces
_ASSIGN_PREFIX = re.compile(r"^\s*[A-Za-z_][\w.]*\s*=\s*(?!=)")


@dataclass(frozen=True)
class ParsedAnswer:
    text: str  # the unescaped answer
    sections: dict[str, str]  # only the sections present
    code: str  # best guess at the runnable code ("" when there is none)

    @property
    def api_call(self) -> str | None:
        return self.sections.get("api_call")

    @property
    def domain(self) -> str | None:
        return self.sections.get("domain")


def unescape_response(text: str) -> str:
    """Undo the double escaping in Gorilla's response files (only if no real newline)."""
    if "\n" not in text and "\\n" in text:
        text = text.replace("\\n", "\n").replace('\\"', '"').replace("\\'", "'")
    text = text.rstrip()
    if text.endswith('\\"'):
        text = text[:-2]
    elif text.endswith('"') and text.count('"') % 2 == 1:  # a lone closing quote
        text = text[:-1]
    return text.rstrip()


def _strip_value(value: str, quoted: bool) -> str:
    value = value.strip()
    if quoted:
        value = _CLOSING.sub(r"\1", value.rstrip(",").rstrip())
        if len(value) >= 2 and value[0] in "'\"" and value[-1] == value[0]:
            value = value[1:-1]
        elif value[:1] in "'\"":
            value = value[1:]
        # Values are Python-repr fragments: escaped newlines and quotes are real ones.
        value = value.replace("\\n\n", "\n").replace("\\n", "\n")
        value = value.replace("\\'", "'").replace('\\"', '"')
    else:
        value = value.rstrip(",").strip()
    return value.strip()


def _sections(text: str, pattern: re.Pattern[str], quoted: bool) -> dict[str, str]:
    found = list(pattern.finditer(text))
    out: dict[str, str] = {}
    for i, match in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(text)
        key = match.group(1)
        if key not in out:  # the first occurrence wins; models sometimes repeat the block
            out[key] = _strip_value(text[match.end() : end], quoted)
    return out


def fenced_code(text: str) -> str:
    """The first python (or untagged) markdown block; "" when there is no fence."""
    blocks = _FENCE.findall(text)
    for lang, body in blocks:
        if lang.lower() in ("", "python", "py", "python3"):
            return body.strip("\n")
    return blocks[0][1].strip("\n") if blocks else ""


def parse_answer(text: str) -> ParsedAnswer:
    text = unescape_response(text or "")
    sections = _sections(text, _ANGLE_KEY, quoted=False)
    if not sections:
        sections = _sections(text, _DICT_KEY, quoted=True)
    code = sections.get("code", "")
    if code:
        code = fenced_code(code) or code
    elif not sections:  # plain code or markdown
        code = extract_code(text)
    return ParsedAnswer(text=text, sections=sections, code=code.strip("\n"))


def strip_assignment(call: str) -> str:
    """``model = torch.hub.load(...)`` -> ``torch.hub.load(...)``."""
    return _ASSIGN_PREFIX.sub("", call, count=1)
