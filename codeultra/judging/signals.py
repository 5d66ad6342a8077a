"""Code-grounded evidence without an LLM: does the code parse, what ruff says, does it run."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from codeultra.sandbox import SandboxLimits, run_many
from codeultra.sandbox.extract import extract_code

_STDLIB = set(sys.stdlib_module_names)
_INTERACTIVE = {"input", "open", "exec", "eval", "__import__"}
_SERVER_MODULES = {"socket", "http", "urllib", "requests", "asyncio", "socketserver", "tkinter"}


def _self_contained(tree: ast.AST) -> bool:
    """Only stdlib imports, no stdin, no files, no servers: safe to expect a clean exit."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            for name in names:
                root = (name or "").split(".")[0]
                if not root or root not in _STDLIB or root in _SERVER_MODULES:
                    return False
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in _INTERACTIVE:
                return False
    return True


def ruff_issue_counts(codes: list[str]) -> list[int | None]:
    """Run ruff once over all snippets (one file each) and count findings per file."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists() and not shutil.which("ruff"):
        return [None] * len(codes)
    with tempfile.TemporaryDirectory(prefix="codeultra-ruff-") as tmp:
        paths = []
        for i, code in enumerate(codes):
            p = Path(tmp) / f"snippet_{i:05d}.py"
            p.write_text(code, encoding="utf-8")
            paths.append(p)
        proc = subprocess.run(
            [ruff, "check", "--isolated", "--no-cache", "--output-format", "json", "--exit-zero"]
            + ["--select", "E,F,W,B,UP,SIM,N", "--target-version", "py311", tmp],
            capture_output=True,
            text=True,
            timeout=300,
        )
        try:
            findings = json.loads(proc.stdout or "[]")
        except json.JSONDecodeError:
            return [None] * len(codes)
    counts = {p.name: 0 for p in paths}
    for f in findings:
        name = Path(f.get("filename", "")).name
        if name in counts:
            counts[name] += 1
    return [counts[p.name] for p in paths]


def code_signals(
    responses: list[str], *, run: bool = True, timeout_s: float = 5.0, workers: int = 2
) -> list[dict[str, Any]]:
    """One dict per response: has_code, parses, ruff_issues, self_contained, runs."""
    out: list[dict[str, Any]] = []
    codes: list[str] = []
    for text in responses:
        code = extract_code(text or "")
        sig: dict[str, Any] = {
            "has_code": bool(code.strip()),
            "parses": None,
            "ruff_issues": None,
            "self_contained": None,
            "runs": "no_code",
        }
        if code.strip():
            try:
                tree = ast.parse(code)
                sig["parses"] = True
                sig["self_contained"] = _self_contained(tree)
                sig["runs"] = "pending" if sig["self_contained"] else "not_self_contained"
            except (SyntaxError, ValueError):
                sig["parses"] = False
                sig["runs"] = "syntax_error"
        out.append(sig)
        codes.append(code)
    parsed = [i for i, s in enumerate(out) if s["parses"]]
    for i, n in zip(parsed, ruff_issue_counts([codes[i] for i in parsed]), strict=True):
        out[i]["ruff_issues"] = n
    todo = [i for i, s in enumerate(out) if s["runs"] == "pending"]
    if todo and run:
        limits = SandboxLimits(timeout_s=timeout_s, cpu_s=max(1, int(timeout_s)), memory_mb=512)
        results = run_many([codes[i] for i in todo], limits, workers=workers)
        for i, res in zip(todo, results, strict=True):
            out[i]["runs"] = res.status  # ok | error | timeout | memory | killed
    elif todo:
        for i in todo:
            out[i]["runs"] = "not_run"
    return out


def evidence_for_judge(sig: dict[str, Any]) -> dict[str, Any]:
    runs = sig["runs"]
    return {
        "parses": sig["parses"],
        "ruff_issues": sig["ruff_issues"],
        "runs": {"ok": True, "error": False, "timeout": False, "memory": False}.get(runs, runs),
    }
