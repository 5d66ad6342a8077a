"""Pull runnable code out of chat-style answers.

`extract_code` rules (language="python"):
- `<think>...</think>` reasoning is dropped first; CRLF becomes LF.
- Fenced blocks (``` or ~~~, any length, possibly indented, possibly never closed) are
  collected. Blocks tagged python/py/python3/py3/ipython win; untagged blocks are used only when
  no block is tagged python; blocks tagged with another language (bash, text, output) never are.
- Several candidate blocks: if any defines something (def/class), the defining and import-only
  blocks are joined in order (a later revision of a function simply overrides the earlier one)
  and usage-only blocks (prints, asserts, example calls) are dropped. If none defines anything,
  the longest block is taken. `>>>` doctest transcripts are turned back into code.
- No usable fence: the whole answer if it parses as Python, else the runs of code-looking lines
  (starting at def/class/import/@... lines, extended over indented lines, shrunk until they parse),
  which also covers Markdown's four-space indented code.
`extract_function_body` turns an answer into a completion to append to a HumanEval-style prompt.
"""

from __future__ import annotations

import ast
import re
import textwrap

_PY_TAGS = frozenset({"python", "py", "python3", "py3", "ipython", "python2", "sage"})
_OPEN_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
_TAG_RE = re.compile(r"[\w+#-]*")
_THINK_RE = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_CODE_START_RE = re.compile(
    r"^\s*(def |async def |class |import |from [\w.]+ import |@\w|if __name__)"
)
_CODE_LINE_RE = re.compile(
    r"^(\s|#|[)\]}]|(return|if|elif|else|for|while|try|except|finally|with|raise|yield|pass|"
    r"break|continue|assert|del|global|nonlocal|lambda|print)\b|[A-Za-z_][\w.\[\]'\"]*\s*"
    r"([-+*/%&|^]|//|<<|>>|\*\*)?=[^=]|[A-Za-z_][\w.]*\()"
)


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _strip_reasoning(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _THINK_RE.sub("", text)
    if "</think>" in text.lower():  # opening tag cut off by the chat template
        text = text[text.lower().rindex("</think>") + len("</think>") :]
    return text


def _fenced_blocks(text: str) -> tuple[list[tuple[str, str]], str]:
    """(language tag, code) for each fenced block, and the text outside the fences."""
    lines = text.split("\n")
    blocks: list[tuple[str, str]] = []
    outside: list[str] = []
    i = 0
    while i < len(lines):
        m = _OPEN_RE.match(lines[i])
        if not m:
            outside.append(lines[i])
            i += 1
            continue
        fence, indent = m.group("fence"), len(m.group("indent"))
        tag = _TAG_RE.match(m.group("info").strip().strip("{}.").lower()).group(0)
        body: list[str] = []
        i += 1
        while i < len(lines):
            line = lines[i]
            stripped = line.strip()
            if stripped and stripped[0] == fence[0] and set(stripped) == {fence[0]}:
                if len(stripped) >= len(fence):
                    break
            if line.rstrip().endswith(fence) and stripped != fence:  # "    return x```"
                body.append(line.rstrip()[: -len(fence)])
                break
            # Remove the fence's own indentation (fences inside Markdown list items).
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            i += 1
        i += 1  # skip the closing fence (or run past the end of an unterminated one)
        blocks.append((tag, _clean("\n".join(body))))
    return blocks, "\n".join(outside)


def _clean(code: str) -> str:
    lines = [line.rstrip() for line in code.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def _from_doctest(code: str) -> str:
    """Turn a `>>>` transcript into the code it ran; other code is returned unchanged."""
    lines = [line for line in code.split("\n") if line.strip()]
    if not lines or not lines[0].lstrip().startswith(">>>"):
        return code
    kept = [
        line.lstrip()[4:] for line in lines if line.lstrip().startswith((">>> ", "... ", ">>>"))
    ]
    return "\n".join(k.rstrip() for k in kept)


def _defines(code: str) -> tuple[bool, bool]:
    """(defines a function or class, only imports): decides how a block is used."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False, False
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    defines = any(isinstance(node, kinds) for node in tree.body)
    imports_only = bool(tree.body) and all(
        isinstance(node, ast.Import | ast.ImportFrom) for node in tree.body
    )
    return defines, imports_only


def _choose(blocks: list[str]) -> str:
    blocks = [_from_doctest(b) for b in blocks if b.strip()]
    if not blocks:
        return ""
    if len(blocks) == 1:
        return blocks[0]
    flags = [_defines(b) for b in blocks]
    if any(defines for defines, _ in flags):
        kept = [
            b for b, (defines, imports) in zip(blocks, flags, strict=True) if defines or imports
        ]
        return "\n\n".join(kept)
    return max(blocks, key=lambda b: len(b.split("\n")))


def _code_runs(text: str) -> list[str]:
    """Maximal runs of code-looking lines in unfenced text, each shrunk until it parses."""
    lines = text.split("\n")
    runs: list[str] = []
    i = 0
    while i < len(lines):
        if not _CODE_START_RE.match(lines[i]):
            i += 1
            continue
        end = i + 1
        while end < len(lines) and (not lines[end].strip() or _CODE_LINE_RE.match(lines[end])):
            end += 1
        chunk = lines[i:end]
        while chunk:
            code = _clean(textwrap.dedent("\n".join(chunk)))
            if _parses(code):
                runs.append(code)
                break
            chunk = chunk[:-1]
        i = max(end, i + 1)
    return runs


def extract_code(text: str, language: str = "python") -> str:
    """The code in a chat answer, following the rules in the module docstring ("" if none)."""
    text = _strip_reasoning(text or "")
    blocks, outside = _fenced_blocks(text)
    language = language.lower()
    if language not in _PY_TAGS:
        same = [code for tag, code in blocks if tag == language]
        untagged = [code for tag, code in blocks if not tag]
        picked = (same or untagged or [_clean(text)])[0]
        return picked + "\n" if picked else ""
    tagged = [code for tag, code in blocks if tag in _PY_TAGS]
    untagged = [code for tag, code in blocks if not tag]
    if not tagged and untagged:
        parsing = [code for code in untagged if _parses(_from_doctest(code))]
        tagged = parsing or untagged
    code = _choose(tagged)
    if not code:
        plain = _clean(textwrap.dedent(outside))
        if _looks_like_code(plain):
            code = plain
        else:
            code = "\n\n".join(_code_runs(outside))
    return code + "\n" if code else ""


def _looks_like_code(text: str) -> bool:
    """Parses as Python and is not a sentence that happens to parse (e.g. `None`, `Done`)."""
    if not text or not (_parses(text) or _parses(_indent_first_line(text))):
        return False
    lines = [line for line in text.split("\n") if line.strip()]
    return any(_CODE_START_RE.match(line) for line in lines) or all(
        _CODE_LINE_RE.match(line) for line in lines
    )


def _indent_first_line(text: str) -> str:
    """Raw continuations often lose only the first line's indent: give it the others' indent."""
    first, _, rest = text.partition("\n")
    indents = [len(line) - len(line.lstrip()) for line in rest.split("\n") if line.strip()]
    if not indents or min(indents) == 0:
        return text
    return textwrap.dedent(" " * min(indents) + first + "\n" + rest)


def _is_main_guard(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)


def _keep_definitions(code: str) -> str:
    """Drop top-level demo code (calls, prints, asserts, loops, __main__ blocks) from a module."""
    tree = ast.parse(code)
    lines = code.split("\n")
    dropped = (ast.Expr, ast.Assert, ast.For, ast.While, ast.AsyncFor)
    kept: list[str] = []
    for node in tree.body:
        if isinstance(node, dropped) or _is_main_guard(node):
            continue
        decorators = getattr(node, "decorator_list", [])
        first = min([node.lineno] + [d.lineno for d in decorators])
        kept.append("\n".join(lines[first - 1 : node.end_lineno]))
    return "\n".join(kept)


def _defines_name(code: str, name: str) -> bool:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef)
    return any(isinstance(node, kinds) and node.name == name for node in tree.body)


def extract_function_body(text: str, prompt: str, entry_point: str) -> str:
    """A completion such that `prompt + completion` defines `entry_point` from the answer.

    A full function (with its def line, maybe imports and helpers) is appended after the prompt
    at top level, where it overrides the prompt's docstring-only stub; demo code around it is
    dropped. A bare body is re-indented under the prompt's signature. The first candidate that
    compiles after the prompt wins; if none does, the re-indented body is returned anyway.
    """
    code = extract_code(text).rstrip("\n")
    if not code.strip():
        return ""
    candidates: list[str] = []
    if _defines_name(code, entry_point):
        full = _keep_definitions(code)
        candidates += ["\n" + full + "\n", "    pass\n\n" + full + "\n"]
    body = textwrap.indent(textwrap.dedent(code), "    ") + "\n"
    candidates += [body, code + "\n", "    " + code.lstrip() + "\n"]
    if not prompt.endswith("\n"):
        candidates = ["\n" + c if not c.startswith("\n") else c for c in candidates]
        body = "\n" + body
    for candidate in candidates:
        try:
            compile(prompt + candidate, "<completion>", "exec")
        except (SyntaxError, ValueError):
            continue
        return candidate
    return body
