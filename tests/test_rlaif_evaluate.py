"""The evaluation table: real metrics on gold and broken answers, and the CLI's step errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from codeultra.errors import UserError
from codeultra.rlaif.cli import rlaif_app
from codeultra.rlaif.config import DataSection, RlaifConfig
from codeultra.rlaif.data import build_slices
from codeultra.rlaif.evaluate import (
    plot_results,
    results_markdown,
    results_table,
    score_policies,
)

APIBENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "apibench"


@pytest.fixture(scope="module")
def scored():
    data = DataSection(hubs=["torchhub", "tensorflowhub"], sft_per_hub=1, eval_per_hub=3)
    items = build_slices(data, APIBENCH).eval.reset_index(drop=True)
    n = len(items)
    prose = "I am not sure which model to use."
    # Sleeps rather than spins: only the wall-clock limit can stop it, whatever the load.
    hang = "<<<api_call>>>: torch.hub.load('x', 'y')\n<<<code>>>:\nimport time\ntime.sleep(60)"
    responses = {
        "gold": list(items["target"]),  # the held-out reference answers themselves
        "prose": [prose] * n,
        "hangs": [hang] + [prose] * (n - 1),  # one is enough: each costs the sandbox timeout
    }
    cfg = RlaifConfig.model_validate({"evaluate": {"workers": 2}})
    return items, score_policies(items, responses, APIBENCH, cfg)


def test_gold_answers_score_high_and_prose_counts_as_no_call(scored):
    items, frame = scored
    table = results_table(frame, ["gold", "prose", "hangs"])
    overall = table[table.hub == "all"].set_index("policy")
    assert overall.loc["gold", "n"] == len(items)
    assert overall.loc["gold", "ast_accuracy"] >= 5 / 6
    assert overall.loc["gold", "rouge_l"] > 0.9
    assert overall.loc["gold", "executability"] >= 4 / 6
    assert overall.loc["prose", "ast_accuracy"] == 0.0
    assert overall.loc["prose", "no_api_call"] == 1.0
    assert overall.loc["prose", "executability"] == 0.0
    # One row per policy and hub, plus the overall row.
    assert len(table) == 3 * 3


def test_hanging_code_is_a_timeout_not_a_crash(scored):
    _, frame = scored
    hangs = frame[frame.policy == "hangs"].reset_index(drop=True)
    assert hangs.loc[0, "exec_reason"] == "timeout"
    assert hangs.loc[0, "ast_verdict"] == "hallucination"  # torch.hub 'x'/'y' is not real
    assert set(hangs.loc[1:, "exec_reason"]) == {"no_code"}


def test_markdown_and_plot(scored, tmp_path):
    _, frame = scored
    table = results_table(frame, ["gold", "prose"])
    md = results_markdown(table)
    assert "| PyTorch Hub | gold | 3 |" in md
    assert "| TensorFlow Hub | prose | 3 | 0.0 |" in md
    assert "| all | gold | 6 |" in md
    png = plot_results(table, tmp_path / "results.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_lists_every_step_and_refuses_steps_out_of_order(tmp_path):
    runner = CliRunner()
    help_text = runner.invoke(rlaif_app, ["--help"]).output
    for name in ("sft", "sample", "feedback", "reward", "rl", "evaluate", "all"):
        assert name in help_text
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "run": {"work_dir": str(tmp_path / "run")},
                "rlaif": {"data": {"apibench": str(APIBENCH), "hubs": ["torchhub"]}},
            }
        )
    )
    result = runner.invoke(rlaif_app, ["sample", "--recipe", str(recipe), "--limit", "2"])
    assert isinstance(result.exception, UserError)
    assert "run `codeultra rlaif sft` first" in str(result.exception)
    # The data slices were still written, capped by --limit.
    assert (tmp_path / "run" / "data" / "eval.parquet").is_file()
