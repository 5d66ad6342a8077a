"""Jinja2 prompt templates in `prompts/`; a template's version enters every cell key.

A version is the template's declared `{# version: N #}` plus a short hash of its text, so
editing a prompt changes every cell key that uses it, even if nobody bumps N.
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import yaml

from codeultra.errors import UserError

_VERSION_RE = re.compile(r"\A\{#\s*version:\s*([^\s#]+)\s*#\}")


def prompts_dir() -> Path:
    """The repo-root prompts/ folder (next to the codeultra package); env var overrides it."""
    override = os.environ.get("CODEULTRA_PROMPTS_DIR")
    candidates = [Path(override)] if override else []
    candidates.append(Path(__file__).resolve().parents[1] / "prompts")
    candidates.append(Path.cwd() / "prompts")
    for path in candidates:
        if (path / "judge").is_dir() and (path / "generate").is_dir():
            return path
    raise UserError(
        f"prompt templates not found (looked in {', '.join(map(str, candidates))}); "
        "set CODEULTRA_PROMPTS_DIR to the folder holding judge/ and generate/"
    )


@lru_cache(maxsize=4)
def _env(root: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,  # plain-text prompts, not HTML
    )


def environment() -> jinja2.Environment:
    return _env(str(prompts_dir()))


def source(name: str) -> str:
    path = prompts_dir() / name
    if not path.is_file():
        raise UserError(f"prompt template {path} does not exist")
    return path.read_text(encoding="utf-8")


def template_version(name: str) -> str:
    """Declared version + 8 hex chars of the template text, e.g. "1-3fa9c2d1"."""
    text = source(name)
    match = _VERSION_RE.match(text)
    if not match:
        raise UserError(f"template {name} must start with a '{{# version: N #}}' comment")
    return f"{match.group(1)}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def render(name: str, **context: Any) -> str:
    source(name)
    try:
        return environment().get_template(name).render(**context).strip()
    except jinja2.UndefinedError as exc:
        raise UserError(f"prompts/{name}: {exc}") from None


def load_yaml(name: str) -> dict[str, Any]:
    data = yaml.safe_load(source(name))
    if not isinstance(data, dict):
        raise UserError(f"prompts/{name}: expected a mapping")
    return data
