"""A tiny end-to-end RLAIF run: random tiny policy, real TRL training, HTTP judge with logprobs.

SFT a few steps -> sample -> yes/no feedback from a local OpenAI-compatible server whose
logprobs follow a script -> reward model -> GRPO -> evaluation with all metrics; then a
second run that must skip every finished step and send the judge nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from codeultra.config import load_recipe
from codeultra.rlaif.apibench import load_split, normalize_instruction
from codeultra.rlaif.pipeline import STEPS, make_context, run_all
from codeultra.testing.fake_openai import FakeOpenAIServer
from codeultra.training.tiny import build_tiny_chat_model

pytestmark = pytest.mark.slow
APIBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "apibench"
HUBS = ["torchhub", "huggingface"]


def scripted_p_yes(user_prompt: str) -> float:
    """The judge's P(Yes) for one question: a fixed function of the prompt, in (0.05, 0.95)."""
    answer = user_prompt.split("<answer>", 1)[-1].split("</answer>", 1)[0]
    question = user_prompt.rsplit("Question:", 1)[-1]
    digest = hashlib.sha256(f"{answer}|{question}".encode()).digest()
    return 0.05 + 0.9 * digest[0] / 255


class ScriptedJudge(FakeOpenAIServer):
    """FakeOpenAIServer whose first-token Yes/No logprobs follow `scripted_p_yes`.

    The yes/no mass is 0.9 (the rest goes to a "<<<" token), so the pipeline must
    renormalise to recover p exactly.
    """

    def __init__(self) -> None:
        super().__init__(responder=lambda payload: "Yes")

    def _handler(self):
        base = super()._handler()

        class Handler(base):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._payload = json.loads(raw or b"{}")
                self.rfile = io.BytesIO(raw)
                super().do_POST()

            def _send(self, code, body, headers=None):
                if code == 200 and self._payload.get("logprobs"):
                    data = json.loads(body)
                    p = scripted_p_yes(self._payload["messages"][-1]["content"])
                    top = [
                        {"token": " Yes", "logprob": math.log(0.9 * p)},
                        {"token": "no.", "logprob": math.log(0.9 * (1 - p))},
                        {"token": "<<<", "logprob": math.log(0.1)},
                    ]
                    for choice in data["choices"]:
                        choice["logprobs"]["content"] = [
                            {"token": " Yes", "logprob": top[0]["logprob"], "top_logprobs": top}
                        ]
                    body = json.dumps(data).encode()
                super()._send(code, body, headers)

        return Handler


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    texts = []
    for hub in HUBS:
        train, _, _ = load_split(APIBENCH, hub, 0.2, 0)
        texts += [p.instruction for p in train[:40]] + [p.answer for p in train[:40]]
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny"), texts, vocab_size=600)


def _recipe(tmp: Path, tiny: Path, judge_url: str) -> Path:
    cpu = {"use_cpu": True, "bf16": False, "report_to": "none"}
    recipe = {
        "run": {"name": "rlaif-tiny", "work_dir": str(tmp / "run")},
        "models": {"judge": {"backend": "openai", "model": "openai/judge", "api_base": judge_url}},
        "rlaif": {
            "data": {
                "apibench": str(APIBENCH),
                "hubs": HUBS,
                "sft_per_hub": 6,
                "rl_per_hub": 3,
                "eval_per_hub": 3,
            },
            "policy": {"model": str(tiny)},
            "sft": {"args": {**cpu, "max_steps": 2, "per_device_train_batch_size": 4}},
            "sample": {"n": 3, "max_new_tokens": 24, "temperature": 1.5},
            "feedback": {"judge": "judge", "questions": ["api_exists", "runs", "does_task"]},
            "reward": {
                "min_margin": 0.0,
                "eval_fraction": 0.34,
                "args": {**cpu, "max_steps": 3, "per_device_train_batch_size": 4},
            },
            "rl": {
                "exec_reward_weight": 0.5,
                "kl_prompts": 3,
                "kl_max_new_tokens": 16,
                "args": {
                    **cpu,
                    "max_steps": 2,
                    "num_generations": 2,
                    "per_device_train_batch_size": 4,
                    "max_completion_length": 16,
                    "beta": 0.1,
                    "learning_rate": 1e-3,  # big enough to move a random tiny model
                },
            },
            "evaluate": {"max_new_tokens": 24, "workers": 1},
        },
    }
    path = tmp / "rlaif.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def test_tiny_rlaif_end_to_end_and_resume(tmp_path, tiny):
    with ScriptedJudge() as judge:
        recipe = load_recipe(_recipe(tmp_path, tiny, judge.url))
        ctx = make_context(recipe)
        first = run_all(ctx)
        judge_requests = len(judge.requests)
        second = run_all(make_context(recipe))
        assert len(judge.requests) == judge_requests  # nothing re-asked

    run = tmp_path / "run"
    steps = first["steps"]
    assert list(steps) == list(STEPS)

    # Data: leak-free slices written as Parquet.
    data = {n: pd.read_parquet(run / "data" / f"{n}.parquet") for n in ("sft", "rl", "eval")}
    held = {normalize_instruction(t) for t in data["eval"]["instruction"]}
    assert not held & {normalize_instruction(t) for t in data["sft"]["instruction"]}
    assert not held & {normalize_instruction(t) for t in data["rl"]["instruction"]}
    assert sorted(data["eval"]["hub"].unique()) == sorted(HUBS)

    # Sampling: n candidates per RL instruction.
    cands = pd.read_parquet(run / "candidates.parquet")
    assert len(cands) == 3 * len(data["rl"])

    # Feedback: every judged question's score is the renormalised scripted P(Yes).
    fb = pd.read_parquet(run / "feedback.parquet")
    assert judge_requests == sum(fb["unscored_reason"].isna()) * 3
    judged = fb[fb["unscored_reason"].isna()]
    assert len(judged) >= 4
    for row in judged.itertuples(index=False):
        qs = {q: getattr(row, f"q_{q}") for q in ("api_exists", "runs", "does_task")}
        assert all(m == "logprobs" for m in row.methods)
        for q, got in qs.items():
            prompt = _judge_prompt(row, q)
            assert got == pytest.approx(scripted_p_yes(prompt), abs=1e-9)
        assert row.score == pytest.approx(sum(qs.values()) / 3)

    # Reward model: pairs from score gaps, held-out accuracy measured on held-out prompts.
    pairs = pd.read_parquet(run / "reward" / "pairs.parquet")
    assert (pairs["chosen_score"] > pairs["rejected_score"]).all()
    assert set(pairs["split"]) == {"train", "heldout"}
    train_items = set(pairs[pairs.split == "train"]["item_id"])
    assert not train_items & set(pairs[pairs.split == "heldout"]["item_id"])
    assert 0.0 <= steps["reward"]["heldout_accuracy"] <= 1.0
    assert (run / "reward" / "model" / "config.json").is_file()

    # RL: GRPO ran its steps with a KL term and the policy was saved.
    log = pd.read_parquet(run / "rl" / "log.parquet")
    assert log["kl"].dropna().iloc[-1] > 0  # the second step moved away from the SFT policy
    assert steps["rl"]["steps"] == 2
    assert _weights(run / "rl" / "merged") != _weights(run / "sft" / "merged")
    assert steps["rl"]["kl_to_sft_estimate"]["prompts"] == 3
    assert (run / "rl" / "merged" / "config.json").is_file()

    # Evaluation: every policy on every hub plus the overall row, all metrics present.
    table = pd.read_parquet(run / "eval" / "results.parquet")
    assert len(table) == 3 * (len(HUBS) + 1)
    for col in ("ast_accuracy", "hallucination", "rouge_l", "codebleu", "executability"):
        assert col in table
        assert table[col].dropna().between(0, 1).all()
    items = pd.read_parquet(run / "eval" / "items.parquet")
    assert len(items) == 3 * len(data["eval"])
    assert items["exec_status"].isin(["ok", "fail"]).all()
    md = (run / "eval" / "results.md").read_text()
    assert "| PyTorch Hub | rlaif |" in md
    assert (run / "eval" / "results.png").read_bytes()[:4] == b"\x89PNG"

    # Checkpoints only serve to resume a killed run: gone once the steps finished.
    assert not list(run.glob("*/checkpoint*"))

    # The rerun skipped every training step and the scoring, and reports the same table.
    for name in ("sft", "reward", "rl", "evaluate"):
        assert second["steps"][name].get("skipped") == "already done"
    assert second["steps"]["sample"]["generated"] == 0
    assert second["steps"]["feedback"]["requests_sent"] == 0
    assert pd.read_parquet(run / "eval" / "results.parquet").equals(table)


def _weights(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def _judge_prompt(row, question: str) -> str:
    from codeultra.rlaif.feedback import judge_messages

    return judge_messages(row, question, show_reference=True)[-1]["content"]
