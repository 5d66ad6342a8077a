"""Check a dataset against what the TRL trainer expects, before any model is loaded.

TRL's own errors for a malformed row surface minutes in, deep inside tokenization; these name
the split, row and column instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from codeultra.errors import UserError

ROLES = ("system", "user", "assistant")


def validate_dataset(rows: Any, trainer: str, split: str = "train") -> None:
    """Validate a datasets.Dataset (or anything with column_names and column access)."""
    columns = list(rows.column_names)
    if len(rows) == 0:
        raise UserError(f"{split} split is empty")
    if trainer == "dpo":
        _require(columns, ("prompt", "chosen", "rejected"), split, "DPO")
        _check_column(rows["prompt"], split, "prompt", _check_prompt)
        _check_column(rows["chosen"], split, "chosen", _check_reply)
        _check_column(rows["rejected"], split, "rejected", _check_reply)
    elif "messages" in columns:
        _check_column(rows["messages"], split, "messages", _check_conversation)
    elif "prompt" in columns and "completion" in columns:
        _check_column(rows["prompt"], split, "prompt", _check_prompt)
        _check_column(rows["completion"], split, "completion", _check_reply)
    else:
        raise UserError(
            f"{split} split has columns {columns}; SFT needs 'messages' or 'prompt' + 'completion' "
            "(set data.completion_column: chosen to fine-tune on the chosen answers of pairs)"
        )


def check_chat_template(tokenizer: Any, model_name: str) -> None:
    """The trainers render every row through the chat template, so it must exist and work."""
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(
            f"the tokenizer of {model_name} has no chat template; "
            "set model.chat_template in the recipe"
        )
    sample = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    try:
        tokenizer.apply_chat_template(sample, tokenize=False)
    except Exception as e:  # a Jinja error can be of many types
        raise UserError(f"chat template of {model_name} fails on a sample: {e}") from None


def _require(columns: Sequence[str], needed: Iterable[str], split: str, what: str) -> None:
    missing = [c for c in needed if c not in columns]
    if missing:
        raise UserError(
            f"{split} split lacks column(s) {missing} needed for {what} (it has {list(columns)}); "
            "map yours with data.prompt_column / chosen_column / rejected_column"
        )


def _check_column(values: Iterable[Any], split: str, column: str, check) -> None:
    for i, value in enumerate(values):
        problem = check(value)
        if problem:
            raise UserError(f"{split} split, row {i}, column '{column}': {problem}")


def _messages_problem(value: Any) -> str | None:
    if not isinstance(value, list) or not value:
        return f"expected a non-empty list of {{role, content}} messages, got {_short(value)}"
    for j, msg in enumerate(value):
        if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
            return f"message {j} is not a {{role, content}} mapping: {_short(msg)}"
        if msg["role"] not in ROLES:
            return f"message {j} has role {msg['role']!r}; roles are {', '.join(ROLES)}"
        if not isinstance(msg["content"], str) or not msg["content"].strip():
            return f"message {j} ({msg['role']}) has empty or non-text content"
        if msg["role"] == "system" and j > 0:
            return f"message {j} is a system message; only the first message may be one"
    return None


def _check_prompt(value: Any) -> str | None:
    problem = _messages_problem(value)
    if problem is None and value[-1]["role"] != "user":
        problem = f"the prompt must end with a user turn, it ends with {value[-1]['role']!r}"
    return problem


def _check_reply(value: Any) -> str | None:
    problem = _messages_problem(value)
    if problem is None:
        roles = {m["role"] for m in value}
        if roles != {"assistant"}:
            problem = f"expected assistant turns only, got roles {sorted(roles)}"
    return problem


def _check_conversation(value: Any) -> str | None:
    problem = _messages_problem(value)
    if problem is None and not any(m["role"] == "assistant" for m in value):
        problem = "the conversation has no assistant turn to learn from"
    return problem


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
