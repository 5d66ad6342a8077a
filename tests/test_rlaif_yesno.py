"""Yes-probability arithmetic, by hand and through a real OpenAI-compatible HTTP server."""

from __future__ import annotations

import io
import json
import math

import pandas as pd
import pytest

from codeultra.backends.base import TokenLogprob
from codeultra.backends.openai_http import OpenAIBackend
from codeultra.config import Recipe
from codeultra.rlaif.config import RlaifConfig
from codeultra.rlaif.feedback import run_feedback
from codeultra.rlaif.steps import Layout
from codeultra.rlaif.yesno import (
    combine,
    normalize_token,
    read_answer,
    share_of_yes,
    yes_from_logprobs,
    yes_probability,
)
from codeultra.testing.fake_openai import FakeOpenAIServer

L = math.log


def test_normalisation_of_answer_tokens():
    for token in ("Yes", " Yes", "YES", "yes.", "**Yes", "\nyes", "Yes!"):
        assert normalize_token(token) == "yes"
    for token in ("No", " no", "NO.", "no,"):
        assert normalize_token(token) == "no"
    for token in ("Yesterday", "Y", "<<<", "Not", ""):
        assert normalize_token(token) not in ("yes", "no")


def test_p_yes_renormalises_over_the_yes_no_mass():
    got = yes_probability({"Yes": L(0.6), "No": L(0.2), "Maybe": L(0.2)})
    assert got.p_yes == pytest.approx(0.75)
    assert got.coverage == pytest.approx(0.8)


def test_variants_of_one_answer_add_up():
    top = {" Yes": L(0.3), "YES": L(0.1), "yes.": L(0.1), "No": L(0.25), " no": L(0.05)}
    got = yes_probability(top)
    assert got.p_yes == pytest.approx(0.5 / 0.8)
    assert got.coverage == pytest.approx(0.8)


def test_no_yes_no_token_gives_no_score():
    assert yes_probability({"Yesterday": L(0.5), "<<<": L(0.3), "Y": L(0.2)}) is None
    assert yes_from_logprobs(None) is None
    assert yes_from_logprobs([]) is None


def test_sampled_token_counts_once_and_later_positions_are_scanned():
    # The sampled token is missing from the alternatives: it is added.
    step = TokenLogprob(token="Yes", logprob=L(0.5), top={"No": L(0.3)})
    assert yes_from_logprobs([step]).p_yes == pytest.approx(0.5 / 0.8)
    # Listed twice (as the token and among alternatives): counted once.
    step = TokenLogprob(token="Yes", logprob=L(0.5), top={"Yes": L(0.5), "No": L(0.5)})
    assert yes_from_logprobs([step]).p_yes == pytest.approx(0.5)
    # A leading newline position without yes/no: the next position decides.
    first = TokenLogprob(token="\n", logprob=L(0.9), top={"\n": L(0.9), " ": L(0.1)})
    second = TokenLogprob(token="No", logprob=L(0.7), top={"No": L(0.7), "Yes": L(0.1)})
    found = yes_from_logprobs([first, second])
    assert found.position == 1
    assert found.p_yes == pytest.approx(0.1 / 0.8)


def test_share_of_yes_over_samples():
    assert read_answer("Yes, it does.") is True
    assert read_answer("  no") is False
    assert read_answer("Maybe") is None
    share, valid = share_of_yes(["Yes", "no.", "Yes, it does", "Maybe", ""])
    assert (share, valid) == (pytest.approx(2 / 3), 3)
    assert share_of_yes(["unsure", ""]) == (None, 0)


def test_combined_score_is_a_weighted_mean_of_scored_questions():
    scores = {"a": 1.0, "b": 0.0, "c": None}
    assert combine(scores, {}) == pytest.approx(0.5)
    assert combine(scores, {"a": 3.0}) == pytest.approx(0.75)
    assert combine({"a": None}, {}) is None


def _layout_with_candidates(tmp_path, candidates: list[str]) -> Layout:
    layout = Layout(tmp_path / "run")
    rows = [
        {
            "hub": "torchhub",
            "item_id": "torchhub/train/1",
            "instruction": "Load a model that classifies images.",
            "reference": "api_call: torch.hub.load(repo_or_dir='pytorch/vision', model='resnet18')",
            "target": "",
            "sample": i,
            "candidate": c,
            "api_call": None,
            "finish_reason": "stop",
            "error": None,
        }
        for i, c in enumerate(candidates)
    ]
    layout.root.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(layout.candidates)
    return layout


def _cfg(**feedback) -> RlaifConfig:
    return RlaifConfig.model_validate(
        {"feedback": {"questions": ["api_exists", "runs"], **feedback}}
    )


def test_feedback_reads_logprobs_from_an_http_server(tmp_path):
    layout = _layout_with_candidates(
        tmp_path, ["model = torch.hub.load('pytorch/vision', 'resnet18')", ""]
    )
    with FakeOpenAIServer() as server:
        backend = OpenAIBackend("openai/judge", name="judge", api_base=server.url, max_retries=0)
        summary = run_feedback(Recipe(), _cfg(top_logprobs=5), layout, backend=backend)
        bodies = [r["body"] for r in server.requests]
    # The fake server answers Yes at -0.105 and No at -2.303.
    expected = math.exp(-0.105) / (math.exp(-0.105) + math.exp(-2.303))
    table = pd.read_parquet(layout.feedback)
    assert table.loc[0, "q_api_exists"] == pytest.approx(expected)
    assert table.loc[0, "q_runs"] == pytest.approx(expected)
    assert table.loc[0, "score"] == pytest.approx(expected)
    assert list(table.loc[0, "methods"]) == ["logprobs", "logprobs"]
    # The empty candidate is counted with its reason, not sent.
    assert pd.isna(table.loc[1, "score"])
    assert table.loc[1, "unscored_reason"] == "empty_candidate"
    assert len(bodies) == 2
    assert all(b["max_tokens"] == 1 and b["logprobs"] and b["top_logprobs"] == 5 for b in bodies)
    questions = sorted(b["messages"][-1]["content"].rsplit("Question: ", 1)[1] for b in bodies)
    assert questions[0].startswith("Is the API called in the answer a real PyTorch Hub API")
    assert questions[1].startswith("Would the code run as written")
    assert summary["by_method"] == {"logprobs": 2}


class _NoLogprobs(OpenAIBackend):
    @property
    def supports_logprobs(self) -> bool:
        return False


def test_feedback_falls_back_to_the_share_of_yes(tmp_path):
    layout = _layout_with_candidates(tmp_path, ["import torch\nm = torch.hub.load('a', 'b')"])

    def responder(payload):  # seeds 1..5: "No" only for seed 3
        return "No." if payload.get("seed") == 3 else "Yes"

    with FakeOpenAIServer(responder=responder) as server:
        backend = _NoLogprobs("openai/judge", name="judge", api_base=server.url, max_retries=0)
        run_feedback(Recipe(), _cfg(fallback_samples=5), layout, backend=backend)
        bodies = [r["body"] for r in server.requests]
        # A rerun finds every cell done and sends nothing.
        run_feedback(Recipe(), _cfg(fallback_samples=5), layout, backend=backend)
        assert len(server.requests) == len(bodies)
    table = pd.read_parquet(layout.feedback)
    assert table.loc[0, "q_api_exists"] == pytest.approx(0.8)
    assert table.loc[0, "q_runs"] == pytest.approx(0.8)
    assert list(table.loc[0, "methods"]) == ["samples", "samples"]
    assert len(bodies) == 2 * 5
    assert all("logprobs" not in b and b["temperature"] == 1.0 for b in bodies)
    assert sorted(b["seed"] for b in bodies) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


class _NoYesNoLogprobs(FakeOpenAIServer):
    """Answers with logprobs whose alternatives hold no yes/no token (a chatty judge)."""

    def _handler(self):
        base = super()._handler()

        class Handler(base):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._wants_logprobs = bool(json.loads(raw or b"{}").get("logprobs"))
                self.rfile = io.BytesIO(raw)
                super().do_POST()

            def _send(self, code, body, headers=None):
                if code == 200 and self._wants_logprobs:
                    data = json.loads(body)
                    top = [{"token": "The", "logprob": -0.1}, {"token": "I", "logprob": -2.4}]
                    for choice in data["choices"]:
                        choice["logprobs"]["content"] = [
                            {"token": "The", "logprob": -0.1, "top_logprobs": top}
                        ]
                    body = json.dumps(data).encode()
                super()._send(code, body, headers)

        return Handler


def test_logprobs_without_yes_or_no_fall_back_to_sampling(tmp_path):
    layout = _layout_with_candidates(tmp_path, ["import torch\nm = torch.hub.load('a', 'b')"])
    with _NoYesNoLogprobs(responder=lambda payload: "Yes.") as server:
        backend = OpenAIBackend("openai/judge", name="judge", api_base=server.url, max_retries=0)
        summary = run_feedback(Recipe(), _cfg(fallback_samples=3), layout, backend=backend)
        bodies = [r["body"] for r in server.requests]
    table = pd.read_parquet(layout.feedback)
    assert table.loc[0, "q_runs"] == 1.0
    assert list(table.loc[0, "methods"]) == ["samples", "samples"]
    assert summary["by_method"] == {"samples": 2}
    # One logprobs request per question, then three samples each.
    assert sum(1 for b in bodies if b.get("logprobs")) == 2
    assert sum(1 for b in bodies if not b.get("logprobs")) == 6
