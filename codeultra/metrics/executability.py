"""Executability: does an answer's code run to the end, with hub loaders validated?

Each answer's code runs in the sandbox under the stand-in runtime of
`codeultra.metrics.exec_runtime` (see its docstring for the design and its limits):
model loaders check their ids against the hub's API database and everything else
returns permissive dummies, so nothing is downloaded and only real mistakes fail.

Reasons for a failure: ``no_code`` (nothing code-like in the answer), ``syntax``,
``unknown_model`` (id / repo+model / handle not in the API database), ``bad_arguments``
(the loader's real signature rejects the call, or an unknown keyword), ``network`` (the
code reached past the stand-ins for the network), ``runtime_error`` (any other
exception, including imports of packages that do not exist), ``timeout``.
``rate`` is strict; ``rate_with_placeholders`` also accepts answers whose only failures
were undefined input placeholders such as ``image_path`` (see exec_runtime).
Only the database of ``hub`` is loaded: an answer for one hub that calls another hub's
loader gets its arguments bound but its ids unchecked.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codeultra.metrics import exec_runtime
from codeultra.metrics.answer import parse_answer
from codeultra.metrics.ast_match import iter_calls, parse_python
from codeultra.rlaif.apibench import ApiEntry, check_hub
from codeultra.sandbox import SandboxLimits, SandboxResult, run_many

REASONS = (
    "no_code",
    "syntax",
    "unknown_model",
    "bad_arguments",
    "network",
    "runtime_error",
    "timeout",
)
DEFAULT_LIMITS = SandboxLimits(timeout_s=10.0, cpu_s=10, memory_mb=1024)
# Loaders whose string arguments name HuggingFace Hub ids.
_HF_LOADERS = frozenset(
    """from_pretrained pipeline SentenceTransformer hf_hub_download hf_hub_url
    snapshot_download from_hparams load_model_ensemble_and_task_from_hf_hub""".split()
)
# Tasks transformers' pipeline() accepts (v4/v5), on top of those the database uses.
_HF_TASKS = frozenset(
    """audio-classification automatic-speech-recognition conversational depth-estimation
    document-question-answering feature-extraction fill-mask image-classification
    image-feature-extraction image-segmentation image-text-to-text image-to-image
    image-to-text mask-generation ner object-detection question-answering sentiment-analysis
    summarization table-question-answering text-classification text-generation
    text-to-audio text-to-speech text2text-generation token-classification translation
    video-classification visual-question-answering vqa zero-shot-audio-classification
    zero-shot-classification zero-shot-image-classification zero-shot-object-detection""".split()
)


def _code_texts(entry: ApiEntry) -> list[str]:
    example = entry.raw.get("example_code")
    if isinstance(example, list):
        example = "\n".join(str(x) for x in example)
    elif isinstance(example, dict):
        example = "\n".join(str(v) for v in example.values())
    return [entry.api_call] + ([example] if isinstance(example, str) else [])


def _calls(entry: ApiEntry):
    for text in _code_texts(entry):
        yield from iter_calls(parse_python(text))


def _is_literal(value: str) -> bool:
    return bool(value) and len(value) < 300 and not any(c.isspace() for c in value)


def validation_db(api_db: Sequence[ApiEntry], hub: str) -> dict[str, Any]:
    """What the stand-ins check against, derived from the API database's calls and examples."""
    hub = check_hub(hub)
    db: dict[str, Any] = {"hub": hub}
    if hub == "huggingface":
        ids, tasks = set(), set(_HF_TASKS)
        for entry in api_db:
            if _is_literal(entry.api_name):
                ids.add(entry.api_name)
            for call in _calls(entry):
                name = call.func.rsplit(".", 1)[-1]
                if name not in _HF_LOADERS:
                    continue
                strings = [v for _, v in call.args if _is_literal(v)]
                ids.update(strings)
                if name == "pipeline" and call.args and call.args[0][0] in (None, "task"):
                    tasks.add(call.args[0][1])
        db.update(hf_ids=sorted(ids), hf_tasks=sorted(tasks))
    elif hub == "torchhub":
        repos: dict[str, dict[str, Any]] = {}
        for entry in api_db:
            for call in _calls(entry):
                if not call.func.endswith("hub.load"):
                    continue
                keyed = dict((k, v) for k, v in call.args if k)
                positional = [v for k, v in call.args if k is None]
                repo = keyed.get("repo_or_dir") or (positional.pop(0) if positional else None)
                models = [keyed["model"]] if "model" in keyed else positional[:1]
                if "model" not in keyed:
                    positional = positional[1:]
                if not repo or not _is_literal(repo):
                    continue
                repo = exec_runtime.torchhub_repo(repo)
                info = repos.setdefault(repo, {"models": set(), "kwargs": set(), "extra": 0})
                info["models"].update(m for m in models + positional if _is_literal(m))
                info["kwargs"].update(k for k in keyed if k not in ("repo_or_dir", "model"))
                info["extra"] = max(info["extra"], len(positional))
        db["torchhub"] = {
            repo: {
                "models": sorted(info["models"]),
                "kwargs": sorted(info["kwargs"] | {"pretrained"}),
                "max_extra_args": info["extra"],
            }
            for repo, info in repos.items()
        }
    else:
        handles = set()
        for entry in api_db:
            for call in _calls(entry):
                for _, value in call.args:
                    if value.startswith(("http://", "https://")) and _is_literal(value):
                        handles.add(exec_runtime.normalize_handle(value))
        db["tf_handles"] = sorted(handles)
    return db


def runtime_files(api_db: Sequence[ApiEntry], hub: str) -> dict[str, str]:
    """The files the sandbox gets: the stand-in runtime and its validation data."""
    source = Path(exec_runtime.__file__).read_text(encoding="utf-8")
    return {"_cu_exec.py": source, "_cu_apidb.json": json.dumps(validation_db(api_db, hub))}


def program_for(code: str) -> str:
    return f"import _cu_exec\n_cu_exec.run({code!r})\n"


def answer_code(answer: str) -> str:
    return parse_answer(answer).code


def _precheck(code: str) -> dict[str, Any] | None:
    """A verdict decided without running anything, or None."""
    if not code.strip():
        return {"reason": "no_code", "detail": ""}
    try:
        compile(exec_runtime.strip_magics(code), exec_runtime.ANSWER_FILE, "exec")
    except (SyntaxError, ValueError) as exc:
        return {"reason": "syntax", "detail": f"{type(exc).__name__}: {exc}"[:400]}
    return None


def _verdict(result: SandboxResult) -> dict[str, Any]:
    marker = result.stdout.rfind(exec_runtime.MARKER)
    if marker >= 0:
        line = result.stdout[marker + len(exec_runtime.MARKER) :].split("\n", 1)[0]
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            pass
    if result.status == "timeout":
        return {"reason": "timeout", "detail": f"over {result.duration_s:.1f}s"}
    tail = result.stderr.strip().splitlines()[-1:] or [f"exit status {result.returncode}"]
    detail = f"{result.status}: {tail[0]}"[:400]
    return {"reason": "runtime_error", "detail": detail}


def executability(
    answers: Sequence[str],
    hub: str,
    api_db: Sequence[ApiEntry],
    workers: int = 1,
    *,
    limits: SandboxLimits = DEFAULT_LIMITS,
    codes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Run every answer's code; per-item status/reason and the executable rate.

    ``codes`` overrides the code extracted from ``answers`` (same length).
    """
    codes = [answer_code(a) for a in answers] if codes is None else list(codes)
    items: list[dict[str, Any]] = [{} for _ in codes]
    to_run: list[int] = []
    for i, code in enumerate(codes):
        early = _precheck(code)
        if early is None:
            to_run.append(i)
        else:
            items[i] = {**early, "duration_s": 0.0}
    if to_run:
        results = run_many(
            [program_for(codes[i]) for i in to_run],
            limits,
            workers=workers,
            files=runtime_files(api_db, hub),
        )
        for i, result in zip(to_run, results, strict=True):
            items[i] = {**_verdict(result), "duration_s": round(result.duration_s, 4)}
    for item in items:
        item["status"] = "ok" if item.get("reason") is None else "fail"
        item.setdefault("detail", "")
        item.setdefault("lenient_reason", item.get("reason"))
        item["placeholders"] = list(item.get("placeholders") or [])
    counts = Counter(item["reason"] for item in items if item["status"] == "fail")
    n = len(items)
    ok = sum(item["status"] == "ok" for item in items)
    lenient_ok = sum(item["lenient_reason"] is None for item in items)
    return {
        "hub": hub,
        "n": n,
        "executable": ok,
        "rate": ok / n if n else 0.0,
        "rate_with_placeholders": lenient_ok / n if n else 0.0,
        "counts": {r: counts.get(r, 0) for r in REASONS},
        "items": items,
    }
