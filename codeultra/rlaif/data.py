"""The APIBench slices the RLAIF steps work on, and the policy's chat prompts.

Per hub, from `apibench.load_split` (leak-free: no evaluation instruction is ever in
training): a seeded shuffle of the training split gives the SFT pairs, then the
instructions for sampling/feedback/RL (disjoint from the SFT pairs while there are
enough rows); a seeded shuffle of the held-out split gives the evaluation items.
Skipped malformed rows are counted by hub and reason, never fatal.
"""

from __future__ import annotations

import ast
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from codeultra.errors import UserError
from codeultra.metrics.answer import parse_answer
from codeultra.models import REPO_ROOT
from codeultra.prompts import render, template_version
from codeultra.rlaif.apibench import (
    ApiPair,
    default_apibench_dir,
    load_split,
    normalize_instruction,
)
from codeultra.rlaif.config import DataSection

HUB_NAMES = {
    "torchhub": "PyTorch Hub",
    "huggingface": "Hugging Face",
    "tensorflowhub": "TensorFlow Hub",
}
PROVIDERS = {
    "torchhub": "PyTorch",
    "huggingface": "Hugging Face Transformers",
    "tensorflowhub": "TensorFlow Hub",
}
POLICY_TEMPLATES = ("rlaif/policy_system.j2", "rlaif/policy_user.j2")


def resolve_apibench(data: DataSection, override: str | Path | None = None) -> Path:
    """--apibench, else the recipe's data.apibench, else ../shared/data/apibench."""
    chosen = override or data.apibench
    if chosen is None:
        return default_apibench_dir(REPO_ROOT)
    path = Path(chosen)
    if not (path / "apibench").is_dir() or not (path / "api").is_dir():
        raise UserError(f"{path}: not a Gorilla data/ folder (needs api/ and apibench/)")
    return path


def policy_messages(instruction: str, hub: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": render(POLICY_TEMPLATES[0])},
        {
            "role": "user",
            "content": render(
                POLICY_TEMPLATES[1], instruction=instruction, hub_name=HUB_NAMES[hub]
            ),
        },
    ]


def policy_prompt_version() -> list[str]:
    return [template_version(t) for t in POLICY_TEMPLATES]


def trim_code(code: str, max_lines: int) -> str:
    """The longest prefix of at most `max_lines` non-blank lines that still parses."""
    lines = [ln for ln in code.splitlines() if ln.strip()][:max_lines]
    while lines:
        text = "\n".join(lines)
        try:
            ast.parse(text)
            return text
        except SyntaxError:
            lines.pop()
    return ""


def compact_answer(pair: ApiPair, max_code_lines: int) -> str:
    """domain, api_call, provider and a short parseable code prefix (no explanation)."""
    parsed = parse_answer(pair.answer)
    sections = parsed.sections
    call = sections.get("api_call") or pair.api_call
    provider = sections.get("api_provider") or PROVIDERS[pair.hub]
    code = trim_code(parsed.code, max_code_lines) or call
    return (
        f"<<<domain>>>: {sections.get('domain') or pair.domain}\n"
        f"<<<api_call>>>: {call}\n"
        f"<<<api_provider>>>: {provider}\n"
        f"<<<code>>>:\n{code}"
    )


def reference_text(pair: ApiPair) -> str:
    """What the judge may see about a training item's correct API (never for eval items)."""
    data = pair.api_data
    parts = [f"api_call: {pair.api_call}"]
    for key in ("api_name", "domain", "functionality"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            parts.append(f"{key}: {value.strip()}")
    args = data.get("api_arguments")
    if args not in (None, "", [], {}):
        parts.append(f"api_arguments: {json.dumps(args, ensure_ascii=False)[:300]}")
    return "\n".join(parts)


@dataclass
class Slices:
    sft: pd.DataFrame
    rl: pd.DataFrame
    eval: pd.DataFrame
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "sft": _per_hub(self.sft),
            "rl": _per_hub(self.rl),
            "eval": _per_hub(self.eval),
            "skipped_rows": self.skipped,
        }


def _per_hub(df: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in df["hub"].value_counts().sort_index().items()}


def _row(pair: ApiPair, data: DataSection, split: str) -> dict[str, Any]:
    target = compact_answer(pair, data.max_code_lines) if data.target == "compact" else pair.answer
    return {
        "hub": pair.hub,
        "split": split,
        "question_id": pair.question_id,
        "item_id": f"{pair.hub}/{pair.split}/{pair.question_id}",
        "instruction": pair.instruction,
        "target": target,
        "api_call": pair.api_call,
        "domain": pair.domain,
        "reference": reference_text(pair) if split != "eval" else "",
    }


def _shuffled(rows: list[ApiPair], seed: int, hub: str, what: str) -> list[ApiPair]:
    out = list(rows)
    random.Random(f"{seed}|{hub}|{what}").shuffle(out)
    return out


def build_slices(data: DataSection, apibench_dir: str | Path) -> Slices:
    sft, rl, ev = [], [], []
    skipped: dict[str, dict[str, int]] = {}
    for hub in data.hubs:
        train, held_out, skips = load_split(apibench_dir, hub, data.eval_fraction, data.seed)
        skipped[hub] = skips
        if not train or not held_out:
            raise UserError(f"APIBench {hub}: no usable train or eval rows in {apibench_dir}")
        order = _shuffled(train, data.seed, hub, "train")
        n_sft = len(order) if data.sft_per_hub is None else min(data.sft_per_hub, len(order))
        rest = order[n_sft:] or order  # too few rows: RL prompts reuse SFT instructions
        sft += [_row(p, data, "sft") for p in order[:n_sft]]
        rl += [_row(p, data, "rl") for p in rest[: data.rl_per_hub]]
        held = _shuffled(held_out, data.seed, hub, "eval")
        n_eval = len(held) if data.eval_per_hub is None else min(data.eval_per_hub, len(held))
        ev += [_row(p, data, "eval") for p in held[:n_eval]]
    slices = Slices(pd.DataFrame(sft), pd.DataFrame(rl), pd.DataFrame(ev), skipped)
    check_no_leak(slices)
    return slices


def check_no_leak(slices: Slices) -> None:
    """Refuse to go on if an evaluation instruction also appears in a training slice."""
    seen = {normalize_instruction(t) for t in slices.eval["instruction"]}
    for name, df in (("sft", slices.sft), ("rl", slices.rl)):
        leaked = [t for t in df["instruction"] if normalize_instruction(t) in seen]
        if leaked:
            raise UserError(f"evaluation instruction found in the {name} slice: {leaked[0][:80]!r}")
