"""Recipes are validated with one-line errors; the CLI never shows a traceback for them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from codeultra.config import load_recipe
from codeultra.errors import UserError

REPO = Path(__file__).resolve().parent.parent


def write(tmp: Path, text: str) -> Path:
    p = tmp / "r.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "models:\n  a: {backend: openai, model: x, temprature: 1}\n",
            "models.a.temprature: unknown key",
        ),
        (
            "models:\n  a: {backend: openai, model: x, max_concurrency: lots}\n",
            "models.a.max_concurrency",
        ),
        ("models:\n  a: {backend: telepathy, model: x}\n", "models.a.backend"),
        ("generate: {pool: [ghost]}\n", "unknown model 'ghost'"),
        ("generate: {pool: []}\n", "generate.pool"),
        ("judge: {mode: sometimes}\n", "judge.mode"),
        ("pairs: {strategy: best-worst, margin: -1}\n", "pairs.margin"),
        ("models: [unclosed\n", "invalid YAML line"),
        ("- just\n- a list\n", "must be a mapping"),
        ("bogus_section: 1\n", "bogus_section: unknown key"),
    ],
)
def test_bad_recipes_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UserError) as err:
        load_recipe(write(tmp_path, text))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_shipped_recipes_validate() -> None:
    for path in sorted((REPO / "recipes").glob("*.yaml")):
        if path.name.startswith("rlaif"):
            continue  # the rlaif section is validated by its own stage
        load_recipe(path)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "codeultra.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_cli_user_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    bad = write(tmp_path, "models:\n  a: {backend: openai, model: x, temprature: 1}\n")
    for args in (
        ["generate", "--recipe", str(bad)],
        ["generate", "--recipe", str(tmp_path / "missing.yaml")],
        [
            "judge",
            "--recipe",
            str(REPO / "recipes/demo.yaml"),
            "--input",
            str(tmp_path / "no.parquet"),
        ],
        ["pairs", "--input", str(bad)],
    ):
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("codeultra: error:"), proc.stderr
        assert "Traceback" not in proc.stderr


def test_cli_help_lists_every_stage() -> None:
    out = run_cli("--help").stdout
    for cmd in ("generate", "judge", "judge-report", "pairs", "push", "models"):
        assert cmd in out
