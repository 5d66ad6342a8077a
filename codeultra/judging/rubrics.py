"""Judge prompt templates: where they live, how they load, and their versions.

A template's version is its declared `{# version: N #}` plus a short hash of its text, so
editing a prompt changes every judge cell key that uses it, even if nobody bumps N.
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import lru_cache
from pathlib import Path

import jinja2

from codeultra.errors import UserError

# The `preference` column values of coseal/CodeUltraFeedback; one rubric template each.
PREFERENCES: tuple[str, ...] = (
    "instruction-following",
    "explanation",
    "complexity",
    "readability",
    "style",
)

_VERSION_RE = re.compile(r"\A\{#\s*version:\s*([^\s#]+)\s*#\}")


def prompts_dir() -> Path:
    """The repo-root prompts/ folder (next to the codeultra package); env var overrides it."""
    override = os.environ.get("CODEULTRA_PROMPTS_DIR")
    candidates = [Path(override)] if override else []
    candidates.append(Path(__file__).resolve().parents[2] / "prompts")
    candidates.append(Path.cwd() / "prompts")
    for path in candidates:
        if (path / "judge").is_dir():
            return path
    raise UserError(
        f"judge prompt templates not found (looked in {', '.join(map(str, candidates))}); "
        "set CODEULTRA_PROMPTS_DIR to the folder holding judge/"
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


def jinja_env() -> jinja2.Environment:
    return _env(str(prompts_dir()))


def _template_name(name: str) -> str:
    """Accept "rate_all", "rate_all.j2" or "judge/rate_all.j2"."""
    if not name.endswith(".j2"):
        name += ".j2"
    return name if name.startswith("judge/") else f"judge/{name}"


def template_source(name: str) -> str:
    path = prompts_dir() / _template_name(name)
    if not path.is_file():
        raise UserError(f"judge template {path} does not exist")
    return path.read_text(encoding="utf-8")


def template_version(name: str) -> str:
    """Declared version + 8 hex chars of the template text, e.g. "1-3fa9c2d1"."""
    text = template_source(name)
    match = _VERSION_RE.match(text)
    if not match:
        raise UserError(f"judge template {name} must start with a '{{# version: N #}}' comment")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
    return f"{match.group(1)}-{digest}"


def check_preference(preference: str) -> str:
    if preference not in PREFERENCES:
        raise UserError(
            f"unknown preference {preference!r}; expected one of {', '.join(PREFERENCES)}"
        )
    return preference


def rubric_text(preference: str) -> str:
    """The rendered rubric (scale and anchored levels) for one preference."""
    check_preference(preference)
    return jinja_env().get_template(_template_name(preference)).render().strip()


def judge_prompt_version(preference: str, mode: str = "all") -> str:
    """One string for a cell key: every template a judge call of this kind renders."""
    check_preference(preference)
    main = "rate_all" if mode == "all" else "rate_one"
    parts = ["system", main, preference]
    return "+".join(f"{p}@{template_version(p)}" for p in parts)
