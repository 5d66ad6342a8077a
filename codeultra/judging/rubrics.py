"""Judge rubrics and template versions (templates load through `codeultra.prompts`)."""

from __future__ import annotations

from codeultra import prompts
from codeultra.errors import UserError
from codeultra.prompts import environment as jinja_env
from codeultra.prompts import prompts_dir

# The `preference` column values of coseal/CodeUltraFeedback; one rubric template each.
PREFERENCES: tuple[str, ...] = (
    "instruction-following",
    "explanation",
    "complexity",
    "readability",
    "style",
)


def _template_name(name: str) -> str:
    """Accept "rate_all", "rate_all.j2" or "judge/rate_all.j2"."""
    if not name.endswith(".j2"):
        name += ".j2"
    return name if name.startswith("judge/") else f"judge/{name}"


def template_source(name: str) -> str:
    return prompts.source(_template_name(name))


def template_version(name: str) -> str:
    """Declared version + 8 hex chars of the template text, e.g. "1-3fa9c2d1"."""
    return prompts.template_version(_template_name(name))


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


__all__ = ["PREFERENCES", "jinja_env", "prompts_dir", "template_source", "template_version"]
