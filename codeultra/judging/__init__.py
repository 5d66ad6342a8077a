"""LLM-as-a-judge building blocks: rubrics, prompts, reply parsing, reliability reports."""

from codeultra.judging.parse import ParseResult, parse_judge_reply
from codeultra.judging.render import (
    apply_order,
    judge_json_schema,
    judge_response_format,
    make_nonce,
    render_judge_messages,
    shuffle_order,
    unshuffle,
)
from codeultra.judging.rubrics import PREFERENCES, judge_prompt_version, template_version

__all__ = [
    "PREFERENCES",
    "ParseResult",
    "apply_order",
    "judge_json_schema",
    "judge_prompt_version",
    "judge_response_format",
    "make_nonce",
    "parse_judge_reply",
    "render_judge_messages",
    "shuffle_order",
    "template_version",
    "unshuffle",
]
