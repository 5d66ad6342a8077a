"""`codeultra demo` orchestration end to end at toy size: scripted generators and judge over real
HTTP, real pairs, real TRL DPO on a tiny random model, real transformers evaluation, the final
table; then a rerun that resumes every stage instead of redoing it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from codeultra.demo import final_table, run_demo
from codeultra.testing.fake_openai import FakeOpenAIServer

pytestmark = pytest.mark.slow

PREFS = ["instruction-following", "explanation", "complexity", "readability", "style"]
BLOCK = re.compile(r"<<<RESPONSE (\d+) id=\w+>>>\n(.*?)\n<<<END RESPONSE", re.S)


def writer(quality: int):
    return lambda payload: f"```python\ndef f():\n    return {quality}\n```\nquality={quality}"


def judge(payload: dict) -> str:
    user = payload["messages"][-1]["content"]
    if "## Assistant's answer" in user:  # CODAL grading
        return "Rationale: ok.\nRating: 6/10"
    if "<<<RESPONSE" not in user:  # CODAL reference answers
        return "def f():\n    return 1"
    blocks = BLOCK.findall(user)  # the judge stage: rate each response by its quality tag
    ratings = [
        {"response": int(n), "rationale": "tagged", "rating": int(re.search(r"quality=(\d)", t)[1])}
        for n, t in blocks
    ]
    return json.dumps({"ratings": ratings})


def setup_run(tmp: Path, urls: dict[str, str]) -> Path:
    from codeultra.training.tiny import build_tiny_chat_model

    rows = [
        {"id": f"r{i}", "instruction": f"Write function number {i} in Python, please."}
        | {"preference": PREFS[i % 5], "split": "heldout" if i >= 10 else "train"}
        for i in range(15)
    ]
    pd.DataFrame(rows).to_json(tmp / "instr.jsonl", orient="records", lines=True)
    tiny = build_tiny_chat_model(tmp / "tiny", [r["instruction"] for r in rows])
    train = {
        "trainer": "dpo",
        "model": {"name_or_path": str(tiny)},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "data": {"train": str(tmp / "unused")},
        "args": {
            "use_cpu": True,
            "bf16": False,
            "activation_checkpointing": False,
            "per_device_train_batch_size": 2,
            "max_length": 96,
            "max_steps": 2,
            "save_steps": 2,
            "logging_steps": 1,
            "report_to": "none",
        },
    }
    (tmp / "dpo.yaml").write_text(yaml.safe_dump(train))

    def http(name: str) -> dict:
        return {"backend": "openai", "model": f"openai/{name}", "api_base": urls[name]}

    recipe = {
        "run": {"work_dir": str(tmp / "work")},
        "data": {"path": str(tmp / "instr.jsonl")},
        "models": {name: http(name) | {"max_retries": 0} for name in urls},
        "generate": {"pool": ["good", "bad"], "models_per_instruction": 2},
        "judge": {"model": "judge", "signals": False},
        "pairs": {"test_fraction": 0.0},
        "eval": {
            "base": str(tiny),
            "judge": "judge",
            "train_recipe": str(tmp / "dpo.yaml"),
            "codal": {"reference_model": "judge", "max_tokens": 8, "limit": 5},
            "humaneval": {"limit": 2, "max_tokens": 8},
            "contamination": {"n": 4, "evals": ["codal"]},
        },
    }
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_demo_runs_every_stage_then_resumes(tmp_path: Path) -> None:
    with (
        FakeOpenAIServer(responder=writer(5)) as good,
        FakeOpenAIServer(responder=writer(2)) as bad,
        FakeOpenAIServer(responder=judge) as j,
    ):
        recipe = setup_run(tmp_path, {"good": good.url, "bad": bad.url, "judge": j.url})
        result = run_demo(recipe)
        first_calls = len(good.requests) + len(bad.requests) + len(j.requests)
        again = run_demo(recipe)
        assert len(good.requests) + len(bad.requests) + len(j.requests) == first_calls

    work = tmp_path / "work"
    pairs = pd.read_parquet(work / "pairs" / "train.parquet")
    assert len(pairs) == 10 and set(pairs["model_chosen"]) == {"good"}
    assert (work / "dpo" / "merged" / "config.json").is_file()
    assert again["timings"].keys() == result["timings"].keys()
    # The resumed run's report keeps what the first run spent.
    timings = json.loads((work / "demo-timings.json").read_text())
    assert timings["this run"] == again["timings"]
    for k, v in timings["all runs"].items():
        assert v == pytest.approx(result["timings"][k] + again["timings"][k], abs=0.11)
    assert "| dpo | " in Path(again["artifacts"]["report"]).read_text()
    assert "over all runs" in final_table(again) and "over all runs" not in final_table(result)
    assert again["compare"]["codal"]["scores"] == result["compare"]["codal"]["scores"]
    assert json.loads((work / "dpo" / "metrics.json").read_text())["global_step"] == 2

    scores = result["compare"]["codal"]["scores"]
    assert scores["base"]["overall"]["mean"] == 6 and scores["base"]["overall"]["graded"] == 5
    assert result["compare"]["humaneval"]["tuned"]["problems"] == 2
    cont = result["contamination"]["sets"]["codal"]
    assert cont["items"] == 5 and cont["exact"] == 0  # held-out rows are not trained on
    text = final_table(result)
    assert "| **CODAL overall** | 6.00" in text and "HumanEval pass@1 (2 problems)" in text
    assert "Contamination (codal): " in text
    for path in result["artifacts"].values():
        assert Path(path).exists(), path
    report = Path(result["artifacts"]["report"]).read_text()
    assert "Not run yet" not in report and "rating_distribution.png" in report
