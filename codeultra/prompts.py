"""Jinja2 prompt templates in `prompts/`; a template's version enters every cell key."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

from codeultra.errors import UserError

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
_VERSION = re.compile(r"\{#\s*version:\s*([\w.-]+)\s*#\}")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PROMPTS_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


def _source(name: str) -> str:
    path = PROMPTS_DIR / name
    if not path.is_file():
        raise UserError(f"prompt template not found: prompts/{name}")
    return path.read_text(encoding="utf-8")


def template_version(name: str) -> str:
    """Declared version plus a hash of the text: editing a template invalidates its cells."""
    text = _source(name)
    m = _VERSION.search(text)
    declared = m.group(1) if m else "0"
    return f"{declared}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def render(name: str, **context: Any) -> str:
    _source(name)
    try:
        return environment().get_template(name).render(**context).strip()
    except jinja2.UndefinedError as exc:
        raise UserError(f"prompts/{name}: {exc}") from None


def load_yaml(name: str) -> dict[str, Any]:
    data = yaml.safe_load(_source(name))
    if not isinstance(data, dict):
        raise UserError(f"prompts/{name}: expected a mapping")
    return data
