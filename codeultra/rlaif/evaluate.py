"""Step 6: base vs SFT vs RLAIF on the held-out APIBench items, all four metrics, per hub.

Answers are greedy and cached as cells per (policy identity, prompt), so a rerun only
generates what is missing. Scoring is `codeultra.metrics.score_all` (AST match with
hallucinations, ROUGE-L and CodeBLEU on the code, sandboxed executability). Outputs under
eval/: responses + per-item scores (items.parquet), the table (results.parquet,
results.md) and a bar chart (results.png). Answers with no API call, code that fails,
hangs or reaches for the network are counted with their reason, never fatal.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from codeultra.errors import UserError
from codeultra.io import write_json, write_parquet
from codeultra.metrics.report import score_all
from codeultra.rlaif.apibench import load_api_database, load_references
from codeultra.rlaif.config import RlaifConfig
from codeultra.rlaif.data import HUB_NAMES, Slices, policy_messages
from codeultra.rlaif.policy import Sampling, generate, resolve_policy_model
from codeultra.rlaif.rl import rl_policy_dir
from codeultra.rlaif.sft import sft_policy_dir
from codeultra.rlaif.steps import Layout, Step, model_fingerprint, step_key

METRICS = {
    "ast_accuracy": "AST accuracy",
    "hallucination": "hallucination",
    "rouge_l": "ROUGE-L",
    "codebleu": "CodeBLEU",
    "executability": "executable",
}
STEP_OF = {"sft": "sft", "rlaif": "rl"}


def policy_dirs(cfg: RlaifConfig, layout: Layout) -> dict[str, str]:
    dirs = {}
    for name in cfg.evaluate.policies:
        if name == "base":
            dirs[name] = resolve_policy_model(cfg.policy)
            continue
        path = sft_policy_dir(layout) if name == "sft" else rl_policy_dir(layout)
        if not (path / "config.json").is_file():
            raise UserError(f"no {name} policy at {path}: run `codeultra rlaif {STEP_OF[name]}`")
        dirs[name] = str(path)
    return dirs


def run_evaluate(
    cfg: RlaifConfig, layout: Layout, slices: Slices, apibench_dir: Path
) -> dict[str, Any]:
    ec = cfg.evaluate
    items = slices.eval.reset_index(drop=True)
    dirs = policy_dirs(cfg, layout)
    started = time.perf_counter()
    prompts = [{"messages": policy_messages(r.instruction, r.hub)} for r in items.itertuples()]
    responses: dict[str, list[str]] = {}
    timings: dict[str, float] = {}
    for name, model in dirs.items():
        t0 = time.perf_counter()
        outs, _ = generate(
            layout.cells,
            "rlaif-eval",
            model,
            prompts,
            Sampling(1, 0.0, 1.0, ec.max_new_tokens, 0),
            batch_size=ec.batch_size,
            chat_template=cfg.policy.chat_template,
            desc=f"eval {name}",
        )
        responses[name] = [o[0]["text"] for o in outs]
        timings[f"generate_{name}_s"] = round(time.perf_counter() - t0, 1)
    key = step_key(
        {
            "step": "evaluate",
            "models": {n: model_fingerprint(m) for n, m in dirs.items()},
            "items": items[["item_id", "question_id"]].to_dict("records"),
            "responses": responses,
            "scoring": [ec.match, ec.run_code],
        }
    )
    step = Step(layout.eval, key)
    done = step.done()
    if done is not None:
        return {**done, "skipped": "already done"}
    step.begin()
    t0 = time.perf_counter()
    scored = score_policies(items, responses, apibench_dir, cfg)
    timings["score_s"] = round(time.perf_counter() - t0, 1)
    table = results_table(scored, list(dirs))
    write_parquet(scored, layout.eval / "items.parquet")
    write_parquet(table, layout.eval / "results.parquet")
    markdown = results_markdown(table)
    (layout.eval / "results.md").write_text(markdown, encoding="utf-8")
    plot_results(table, layout.eval / "results.png")
    summary = {
        "step": "evaluate",
        "policies": dirs,
        "items_per_hub": items["hub"].value_counts().sort_index().to_dict(),
        "failure_reasons": failure_counts(scored),
        "files": {
            "items": str(layout.eval / "items.parquet"),
            "table": str(layout.eval / "results.parquet"),
            "markdown": str(layout.eval / "results.md"),
            "plot": str(layout.eval / "results.png"),
        },
        "table_markdown": markdown,
        **timings,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    write_json(summary, layout.eval / "summary.json")
    step.finish(summary)
    return summary


def score_policies(
    items: pd.DataFrame, responses: dict[str, list[str]], apibench_dir: Path, cfg: RlaifConfig
) -> pd.DataFrame:
    """One row per (policy, item) with every metric's per-item value and failure reason."""
    ec = cfg.evaluate
    frames = []
    for hub in items["hub"].unique():
        mask = (items["hub"] == hub).to_numpy()
        sub = items[mask].reset_index(drop=True)
        refs = load_references(apibench_dir, hub)
        db = load_api_database(apibench_dir, hub)
        for name, texts in responses.items():
            hub_texts = [t for t, m in zip(texts, mask, strict=True) if m]
            batch = [
                {"question_id": int(q), "text": t}
                for q, t in zip(sub["question_id"], hub_texts, strict=True)
            ]
            frame, _ = score_all(
                batch, refs, hub, db, ec.workers, match=ec.match, run_code=ec.run_code
            )
            frame.insert(0, "policy", name)
            frame.insert(1, "hub", hub)
            frame.insert(2, "item_id", sub["item_id"].to_numpy())
            frame.insert(3, "response", hub_texts)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _summarise(group: pd.DataFrame) -> dict[str, Any]:
    verdict = group["ast_verdict"]
    row = {
        "n": len(group),
        "ast_accuracy": float((verdict == "correct").mean()),
        "hallucination": float((verdict == "hallucination").mean()),
        "no_api_call": float(verdict.isin(["no_call", "parse_error"]).mean()),
        "rouge_l": float(group["rouge_l"].mean()),
        "codebleu": float(group["codebleu"].dropna().mean())
        if group["codebleu"].notna().any()
        else None,
        "executability": None,
    }
    if "exec_status" in group:
        row["executability"] = float((group["exec_status"] == "ok").mean())
    return row


def results_table(scored: pd.DataFrame, policies: list[str]) -> pd.DataFrame:
    """Rows: policy x (each hub, then `all` over hubs); columns: the metrics (0..1)."""
    rows = []
    for name in policies:
        mine = scored[scored["policy"] == name]
        for hub in list(mine["hub"].unique()) + ["all"]:
            group = mine if hub == "all" else mine[mine["hub"] == hub]
            rows.append({"policy": name, "hub": hub, **_summarise(group)})
    return pd.DataFrame(rows)


def failure_counts(scored: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per policy: AST verdicts and execution failure reasons, counted."""
    out: dict[str, dict[str, int]] = {}
    for name, group in scored.groupby("policy", sort=False):
        counts = {f"ast_{k}": int(v) for k, v in group["ast_verdict"].value_counts().items()}
        if "exec_reason" in group:
            reasons = group["exec_reason"].dropna().value_counts()
            counts.update({f"exec_{k}": int(v) for k, v in reasons.items()})
        out[str(name)] = counts
    return out


def _pct(v: Any) -> str:
    return "n/a" if v is None or pd.isna(v) else f"{100 * v:.1f}"


def results_markdown(table: pd.DataFrame) -> str:
    head = "| hub | policy | n | " + " | ".join(METRICS.values()) + " |"
    lines = [
        "# APIBench: base vs SFT vs RLAIF (held-out items, %)",
        "",
        head,
        "|" + "---|" * (3 + len(METRICS)),
    ]
    for hub in list(dict.fromkeys(table["hub"])):
        for row in table[table["hub"] == hub].itertuples(index=False):
            label = HUB_NAMES.get(hub, hub)
            values = " | ".join(_pct(getattr(row, m)) for m in METRICS)
            lines.append(f"| {label} | {row.policy} | {row.n} | {values} |")
    lines += [
        "",
        "AST accuracy and hallucination: Gorilla's AST sub-tree match (exact arguments); "
        "ROUGE-L and CodeBLEU: the answer's code against the reference code; executable: the "
        "code runs to the end in the sandbox with hub loaders checked against the API database.",
    ]
    return "\n".join(lines) + "\n"


def plot_results(table: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hubs = list(dict.fromkeys(table["hub"]))
    policies = list(dict.fromkeys(table["policy"]))
    fig, axes = plt.subplots(1, len(hubs), figsize=(4.2 * len(hubs), 3.6), sharey=True)
    axes = axes if len(hubs) > 1 else [axes]
    width = 0.8 / max(1, len(policies))
    for ax, hub in zip(axes, hubs, strict=True):
        sub = table[table["hub"] == hub]
        for k, name in enumerate(policies):
            row = sub[sub["policy"] == name]
            vals = [
                0.0 if row.empty or pd.isna(row.iloc[0][m]) else 100 * float(row.iloc[0][m])
                for m in METRICS
            ]
            xs = [i + (k - (len(policies) - 1) / 2) * width for i in range(len(METRICS))]
            ax.bar(xs, vals, width, label=name)
        ax.set_title(HUB_NAMES.get(hub, hub))
        ax.set_xticks(range(len(METRICS)))
        ax.set_xticklabels(list(METRICS.values()), rotation=35, ha="right", fontsize=8)
        ax.set_ylim(0, 100)
    axes[0].set_ylabel("%")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path
