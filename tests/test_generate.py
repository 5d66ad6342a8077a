"""The generate stage against a real local HTTP server that speaks the OpenAI protocol."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from codeultra.config import load_recipe
from codeultra.errors import UserError
from codeultra.stages.generate import draw_models, run_generate
from codeultra.testing.fake_openai import FakeOpenAIServer, fake_reply

REPO = Path(__file__).resolve().parent.parent


def write_instructions(path: Path, n: int) -> Path:
    prefs = ["instruction-following", "explanation", "complexity", "readability", "style"]
    with open(path, "w") as fh:
        for i in range(n):
            row = {"instruction": f"Write function number {i}.", "preference": prefs[i % 5]}
            fh.write(json.dumps(row) + "\n")
    return path


def write_recipe(tmp: Path, url: str, pool: list[str], k: int | str = 2, **gen) -> Path:
    recipe = {
        "run": {"name": "t", "work_dir": str(tmp / "work")},
        "data": {"path": str(tmp / "instr.jsonl")},
        "models": {
            m: {
                "backend": "openai",
                "model": f"openai/{m}",
                "api_base": url,
                "max_concurrency": 2,
                "max_retries": 2,
                "timeout_s": 5,
                "sampling": {"temperature": 0.8, "top_p": 0.8, "max_tokens": 64},
            }
            for m in pool
        },
        "generate": {"pool": pool, "models_per_instruction": k, "seed": 7, "shard_size": 3, **gen},
    }
    path = tmp / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_output_schema_and_routing(tmp_path: Path) -> None:
    write_instructions(tmp_path / "instr.jsonl", 6)
    with FakeOpenAIServer() as srv:
        recipe = load_recipe(write_recipe(tmp_path, srv.url, ["a", "b", "c"], k=2))
        summary = run_generate(recipe)
        assert len(srv.requests) == 12
    table = pq.read_table(summary["output"])
    schema = table.schema
    assert str(schema.field("models").type) == "list<element: string>"
    assert str(schema.field("responses").type) == (
        "list<element: struct<model: string, response: string>>"
    )
    df = table.to_pandas()
    assert len(df) == 6 and set(df.preference) == {
        "instruction-following",
        "explanation",
        "complexity",
        "readability",
        "style",
    }
    for row in df.itertuples():
        assert len(row.models) == 2 and len(set(row.models)) == 2
        assert [r["model"] for r in row.responses] == list(row.models)
        assert [g["status"] for g in row.generation] == ["ok", "ok"]
        for r, g in zip(row.responses, row.generation, strict=True):
            assert g["temperature"] == 0.8 and g["max_tokens"] == 64
            assert g["completion_tokens"] > 0
            assert r["response"] == fake_reply([{"content": row.instruction}])
        assert row.principle  # the preference principle was the system prompt
    sent = srv.requests[0]["body"]
    assert sent["messages"][0]["role"] == "system" and sent["temperature"] == 0.8


def test_seeded_draw_is_reproducible_and_spread() -> None:
    pool = [f"m{i}" for i in range(14)]
    a = [draw_models(f"task {i}", pool, 4, seed=42) for i in range(200)]
    b = [draw_models(f"task {i}", pool, 4, seed=42) for i in range(200)]
    c = [draw_models(f"task {i}", pool, 4, seed=43) for i in range(200)]
    assert a == b and a != c
    counts = pd.Series([m for row in a for m in row]).value_counts()
    assert set(counts.index) == set(pool) and counts.min() > 25  # ~57 each expected
    # Adding a model only ever swaps that model in: the others keep their relative choice.
    bigger = [draw_models(f"task {i}", [*pool, "new"], 4, seed=42) for i in range(200)]
    for old, new in zip(a, bigger, strict=True):
        assert set(new) - set(old) <= {"new"}


def test_adding_a_model_computes_only_its_cells(tmp_path: Path) -> None:
    write_instructions(tmp_path / "instr.jsonl", 5)
    with FakeOpenAIServer() as srv:
        run_generate(load_recipe(write_recipe(tmp_path, srv.url, ["a", "b"], k="all")))
        first = len(srv.requests)
        summary = run_generate(load_recipe(write_recipe(tmp_path, srv.url, ["a", "b", "c"], "all")))
        assert first == 10
        assert len(srv.requests) - first == 5
        assert {r["body"]["model"] for r in srv.requests[first:]} == {"c"}
        assert summary["reused"] == 10
        run_generate(load_recipe(write_recipe(tmp_path, srv.url, ["a", "b", "c"], "all")))
        assert len(srv.requests) - first == 5  # a plain rerun is a no-op


def test_kill_and_rerun_computes_only_missing(tmp_path: Path) -> None:
    write_instructions(tmp_path / "instr.jsonl", 8)
    with FakeOpenAIServer(delay_s=0.3) as srv:
        recipe_path = write_recipe(tmp_path, srv.url, ["a", "b"], k=2)
        env = {**os.environ, "CODEULTRA_NO_PROGRESS": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "codeultra.cli", "generate", "--recipe", str(recipe_path)],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        journal = tmp_path / "work" / "cells" / "generate"
        deadline = time.time() + 60
        while time.time() < deadline:
            done = sum(len(p.read_text().splitlines()) for p in journal.glob("*.jsonl"))
            if done >= 4:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = sum(len(p.read_text().splitlines()) for p in journal.glob("*.jsonl"))
        assert 4 <= done < 16, done
        assert not (tmp_path / "work" / "responses.parquet").exists()  # nothing half-written
        before = len(srv.requests)
        summary = run_generate(load_recipe(recipe_path))
        assert len(srv.requests) - before == 16 - done
        assert summary["reused"] == done
    df = pd.read_parquet(summary["output"])
    assert all(len(r) == 2 and all(x["response"] for x in r) for r in df.responses)


def test_failed_cells_are_error_records_and_retried_on_rerun(tmp_path: Path) -> None:
    write_instructions(tmp_path / "instr.jsonl", 3)
    # 3 cells, 3 attempts each (max_retries=2): the first cell exhausts its retries.
    with FakeOpenAIServer(["500", "500", "500"]) as srv:
        recipe = load_recipe(write_recipe(tmp_path, srv.url, ["a"], k=1))
        recipe.models["a"].max_concurrency = 1
        summary = run_generate(recipe)
        df = pd.read_parquet(summary["output"])
        statuses = [g["status"] for gens in df.generation for g in gens]
        assert statuses.count("error") == 1 and len(df) == 3
        err = [g for gens in df.generation for g in gens if g["status"] == "error"][0]
        assert "InternalServerError" in err["error"] and err["attempts"] == 3
        summary = run_generate(recipe)
        assert summary["computed"] == 1 and summary["failed_cells"] == 0


def test_sharded_runs_assemble_when_all_shards_done(tmp_path: Path) -> None:
    from codeultra.cells import ShardSpec

    write_instructions(tmp_path / "instr.jsonl", 9)  # shard_size 3 -> shards 0, 1, 2
    with FakeOpenAIServer() as srv:
        recipe = load_recipe(write_recipe(tmp_path, srv.url, ["a"], k=1))
        s0 = run_generate(recipe, shard=ShardSpec(0, 2))
        assert s0["output"] is None and s0["missing_cells"] == 3
        s1 = run_generate(recipe, shard=ShardSpec(1, 2))
        assert s1["output"] and len(srv.requests) == 9


def test_unknown_model_and_bad_columns(tmp_path: Path) -> None:
    write_instructions(tmp_path / "instr.jsonl", 2)
    path = write_recipe(tmp_path, "http://127.0.0.1:9/v1", ["a"])
    data = yaml.safe_load(path.read_text())
    data["generate"]["pool"] = ["a", "ghost"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match="unknown model 'ghost'"):
        load_recipe(path)
    (tmp_path / "bad.jsonl").write_text('{"prompt": "x", "preference": "style"}\n')
    data["generate"]["pool"] = ["a"]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match="missing column.*instruction"):
        run_generate(load_recipe(path), input_path=str(tmp_path / "bad.jsonl"))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(UserError, match="file is empty"):
        run_generate(load_recipe(path), input_path=str(tmp_path / "empty.jsonl"))


def test_unreachable_server_is_one_error(tmp_path: Path) -> None:
    write_instructions(tmp_path / "instr.jsonl", 2)
    recipe = load_recipe(write_recipe(tmp_path, "http://127.0.0.1:9/v1", ["a"], k=1))
    recipe.models["a"].max_retries = 0
    with pytest.raises(UserError, match="all 2 requests failed"):
        run_generate(recipe)
    assert not (tmp_path / "work" / "responses.parquet").exists()


def test_api_key_comes_from_env_and_never_leaks(tmp_path: Path, monkeypatch) -> None:
    secret = "sk-test-secret-123456"
    monkeypatch.setenv("FAKE_PROVIDER_KEY", secret)
    write_instructions(tmp_path / "instr.jsonl", 2)
    with FakeOpenAIServer(api_key=secret) as srv:
        path = write_recipe(tmp_path, srv.url, ["a"], k=1)
        data = yaml.safe_load(path.read_text())
        data["models"]["a"]["api_key_env"] = "FAKE_PROVIDER_KEY"
        path.write_text(yaml.safe_dump(data))
        recipe = load_recipe(path)
        summary = run_generate(recipe)
        assert srv.requests[0]["auth"] == f"Bearer {secret}"
    from codeultra.backends import make_backend

    assert secret not in repr(make_backend("a", recipe.models["a"]))
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f
    assert secret not in json.dumps(summary)
    monkeypatch.delenv("FAKE_PROVIDER_KEY")
    with pytest.raises(UserError, match="FAKE_PROVIDER_KEY is not set"):
        make_backend("a", recipe.models["a"])
