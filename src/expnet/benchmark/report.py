"""Benchmark outputs: results.json, results.csv, leaderboard.md, plots/*.png and report.html.

Plots use matplotlib's object API with the Agg canvas (no pyplot, no display, no global backend
switch). Every file is written atomically; report.html embeds the plots, so it stands alone.
"""

from __future__ import annotations

import csv
import io
from html import escape
from pathlib import Path

import numpy as np

from expnet.benchmark.results import Outcome
from expnet.evaluation import RANDOM
from expnet.io import atomic_write_bytes, atomic_write_json, atomic_write_text, strict_json
from expnet.metrics.bootstrap import compare_with_best
from expnet.metrics.faithfulness import REMOVALS
from expnet.metrics.table import (
    ABLATION,
    FAITHFULNESS,
    LEADERBOARD,
    PLAUSIBILITY,
    SEEN_COLUMNS,
    SPEED,
    Metric,
    compared_metrics,
    family,
    header,
    removal_keys,
)
from expnet.report import html
from expnet.report.figures import new_figure, png_bytes, png_img
from expnet.report.format import difference, interval, number

CSV_COLUMNS = (
    "task", "table", "table_examples", "explainer", "kind", "family", "binarisation", "n_examples",
    *(m.key for m in family(PLAUSIBILITY)),
    "n_examples_seen", "n_truncated",
    *(m.key for m in family(FAITHFULNESS)),
    *removal_keys(REMOVALS),
    *(m.key for m in family(SPEED)),
    "variant", "validation", "selected",
)
COMPARISON_NOTE = (
    "paired bootstrap 95% interval over the examples both scored (2000 resamples); a win or a loss only "
    "when the interval excludes 0"
)
# The rationale that selects every word, compared with ExpNet's own rule: the floor of token F1.
EVERY_WORD = "every word"
COMPARISON_HEADERS = ["Metric", "Best baseline", "ExpNet - baseline", "95% interval", "Pairs", "Verdict"]


def _label(row: dict) -> str:
    if row["explainer"] == "expnet":
        return "expnet (own rule)"
    if row["explainer"] == "expnet@k":
        return "expnet@k (top-k)"
    if row["kind"] == "reference":
        return f"{row['explainer']} (reference)"
    if row["kind"] == "adapted":
        return f"{row['explainer']} (own row)"
    return row["explainer"]


def _table_title(name: str, table: dict) -> str:
    return ("All explainers" if name == "main" else "Common subset") + f" ({table['n_examples']} examples)"


# --- tables --------------------------------------------------------------------------------
def leaderboard_columns(table: dict) -> tuple[Metric, ...]:
    """The leaderboard's columns; with truncated texts also the scores over the words seen, after
    the other plausibility scores."""
    if not any(row.get("n_truncated") for row in table["rows"]):
        return LEADERBOARD
    plausible = tuple(m for m in LEADERBOARD if m.family == PLAUSIBILITY)
    return plausible + SEEN_COLUMNS + tuple(m for m in LEADERBOARD if m.family != PLAUSIBILITY)


def leaderboard_rows(table: dict) -> tuple[list[str], list[list[str]]]:
    columns = leaderboard_columns(table)
    headers = ["Explainer", "F1 by", *[m.header for m in columns]]
    rows = []
    for row in table["rows"]:
        by = "own" if row["binarisation"].startswith("own") else "top-k"
        rows.append([_label(row), by, *[number(row.get(m.key)) for m in columns]])
    return headers, rows


def table_comparisons(table: dict) -> list[dict]:
    """ExpNet (its own-rule row; F1@k and AUROC do not depend on the binarisation) minus the best
    baseline of the table on each compared metric, with a paired bootstrap 95% interval over the
    examples (and over the words read, when texts were cut), and its own-rule F1 minus that of
    selecting every word. Other ExpNet rows, the in-domain reference and ``random`` are not
    candidates."""
    rows = table["rows"]
    truncated = any(row.get("n_truncated") for row in rows)
    expnet = next((r for r in rows if r["kind"] == "expnet" and r["binarisation"].startswith("own")), None)
    adapted = [r for r in rows if r["kind"] == "adapted"]  # ExpNet + unlabelled texts, compared on its own
    baselines = {r["explainer"]: r for r in rows if r["kind"] == "baseline" and r["explainer"] != RANDOM}
    found = []
    compared = ([expnet] if expnet else []) + adapted
    for row in compared:
        for metric in compared_metrics(truncated):
            candidates = {name: (r.get(metric), r["per_example"]) for name, r in baselines.items()}
            comparison = compare_with_best(metric, row["explainer"], row["per_example"], candidates)
            if comparison is not None:
                found.append(comparison.to_dict())
    every_word = table.get("every_word")  # absent from results saved before it existed
    for row in compared if every_word else []:
        comparison = compare_with_best("f1", row["explainer"], row["per_example"], {EVERY_WORD: (every_word["f1"], every_word["per_example"])})
        if comparison is not None:
            found.append(comparison.to_dict())
    return found


def with_comparisons(results: dict) -> dict:
    """A copy of ``results`` whose every task table carries its ``comparisons``."""
    tasks = {
        name: {**task, "tables": {key: {**table, "comparisons": table_comparisons(table)} for key, table in task["tables"].items()}}
        for name, task in results["tasks"].items()
    }
    return {**results, "tasks": tasks}


def _compared(metric: str, baseline: str) -> str:
    # F1 compares binary rationales as each explainer gives them: ExpNet's rule, the others' top-k.
    if metric == "f1":
        return "F1 (own rule vs every word)" if baseline == EVERY_WORD else "F1 (own rule vs top-k)"
    return header(metric)


def comparison_rows(table: dict) -> tuple[list[str], list[list[str]]]:
    rows = [
        [
            _compared(c["metric"], c["baseline"]) + ("" if c["explainer"] == "expnet" else f" ({c['explainer']})"),
            c["baseline"],
            difference(c["difference"]),
            interval(c["low"], c["high"]),
            str(c["n_pairs"]),
            c["verdict"],
        ]
        for c in table["comparisons"]
    ]
    return COMPARISON_HEADERS, rows


def ablation_rows(task: dict) -> tuple[list[str], list[list[str]]]:
    metric = task["expnet"]["selection_metric"]
    headers = ["Variant", "layers", "directions", "values", f"validation {metric}", *[m.header for m in ABLATION], "selected"]
    rows = []
    for row in task["ablation"]:
        settings = row.get("settings") or {}
        rows.append(
            [
                row["variant"],
                str(settings.get("layers", "")),
                "+".join(settings.get("directions", [])) if settings else "",
                "+".join(settings.get("values", [])) + (" +in-text" if settings.get("in_text") else "") if settings else "",
                number(row.get("validation")),
                *[number(row.get(m.key)) for m in ABLATION],
                "**selected**" if row.get("selected") else ("candidate" if row.get("candidate") else ""),
            ]
        )
    return headers, rows


def _markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def leaderboard_markdown(results: dict) -> str:
    parts = ["# expnet benchmark: leaderboards", ""]
    parts += [f"- {note}" for note in results["protocol"]]
    parts.append("")
    for name, task in results["tasks"].items():
        parts.append(f"## {name} (held out; ExpNet trained on {', '.join(task['trained_on'])})")
        parts.append("")
        parts.append(
            f"Classifier accuracy on these examples {number(task['accuracy'])}; top-k rate {number(task['rationale_rate'])} "
            f"(from {task['rationale_rate_source']}; the held-out task's own rate is {number(task['held_out_rationale_rate'])}). "
            f"Comprehensiveness (higher is better) and sufficiency (lower is better) by "
            f"{task['removal_shown'] or 'n/a'} removal; Kendall tau against leave-one-out by "
            f"{task.get('kendall_removal') or 'n/a'} removal. ex/s: examples per second; ExpNet speed-up: how many times "
            "faster ExpNet is."
        )
        parts.append("")
        for table_name, table in task["tables"].items():
            parts.append(f"### {_table_title(table_name, table)}")
            parts.append("")
            parts.append(f"_{table['note']}._")
            parts.append("")
            parts.append(_markdown(*leaderboard_rows(table)))
            parts.append("")
            if table["comparisons"]:
                parts.append(f"ExpNet minus the best baseline, {COMPARISON_NOTE}:")
                parts.append("")
                parts.append(_markdown(*comparison_rows(table)))
                parts.append("")
        parts.append(f"### ExpNet variants (ablation; selected on validation: {task['expnet']['selected']})")
        parts.append("")
        parts.append(_markdown(*ablation_rows(task)))
        parts.append("")
    skipped = results.get("skipped") or {}
    if skipped:
        parts.append("## Skipped explainers")
        parts.append("")
        for task, reasons in skipped.items():
            for name, reason in reasons.items():
                parts.append(f"- {task}: {name}: {reason}")
        parts.append("")
    return "\n".join(parts) + "\n"


def csv_rows(results: dict) -> list[dict]:
    rows = []
    for name, task in results["tasks"].items():
        for table_name, table in task["tables"].items():
            for row in table["rows"]:
                rows.append({"task": name, "table": table_name, "table_examples": table["n_examples"], **row})
        for row in task["ablation"]:
            rows.append({"task": name, "table": "ablation", "table_examples": task["n_examples"], **row})
    return rows


def results_csv(results: dict) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(results):
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_COLUMNS})
    return buffer.getvalue()


# --- plots ---------------------------------------------------------------------------------
def _largest(task: dict) -> dict:
    return task["tables"].get("common", task["tables"]["main"])


def _colour(row: dict) -> str:
    return {"expnet": "#c0392b", "reference": "#e6a19a"}.get(row["kind"], "#4a78b0")


def plot_f1(results: dict):
    tasks = results["tasks"]
    height = max(3.0, 0.28 * max(len(_largest(t)["rows"]) for t in tasks.values()) + 1.0)
    figure = new_figure(4.2 * len(tasks), height)
    axes = figure.subplots(1, len(tasks), squeeze=False)[0]
    for ax, (name, task) in zip(axes, tasks.items(), strict=True):
        rows = [r for r in _largest(task)["rows"]][::-1]
        ax.barh([_label(r) for r in rows], [np.nan_to_num(r["f1"] if r["f1"] is not None else np.nan) for r in rows], color=[_colour(r) for r in rows])
        ax.set_title(f"{name} ({_largest(task)['n_examples']} examples)")
        ax.set_xlabel("F1")
        ax.set_xlim(0, 1)
        ax.tick_params(axis="y", labelsize=7)
    return figure


def plot_speed(results: dict):
    """One panel per held-out task: F1 against examples/s (log scale), every explainer named."""
    tasks = results["tasks"]
    figure = new_figure(5.2 * len(tasks), 4.8)
    axes = figure.subplots(1, len(tasks), squeeze=False, sharey=True)[0]
    for ax, (name, task) in zip(axes, tasks.items(), strict=True):
        rows = [r for r in _largest(task)["rows"] if r["explainer"] != "expnet@k" and r["examples_per_second"]]
        xs = [r["examples_per_second"] for r in rows]
        ys = [r["f1"] if r["f1"] is not None else np.nan for r in rows]
        ax.scatter(xs, ys, c=[_colour(r) for r in rows], alpha=0.85)
        for row, x, y in zip(rows, xs, ys, strict=True):
            if np.isfinite(y):
                ax.annotate(row["explainer"], (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("examples per second (log scale)")
        ax.set_title(f"{name} ({_largest(task)['n_examples']} examples)")
    axes[0].set_ylabel("F1 (ExpNet at 0.5, baselines at top-k)")
    return figure


def plot_deletion(results: dict):
    tasks = results["tasks"]
    figure = new_figure(4.6 * len(tasks), 4.4)
    axes = figure.subplots(1, len(tasks), squeeze=False)[0]
    for ax, (name, task) in zip(axes, tasks.items(), strict=True):
        block = task["deletion_curves"]
        xs = [100 * b for b in block["bins"]]
        for label, curve in block["curves"].items():
            if curve is None:
                continue
            style = {"linewidth": 2.2, "color": "#c0392b"} if label == "expnet" else {"linewidth": 0.9}
            ax.plot(xs, curve, marker=".", label=label, **style)
        ax.set_title(f"{name}: removal by {block['removal']}")
        ax.set_xlabel("% of words removed (highest scores first)")
        ax.set_ylabel("mean p(predicted class)")
        ax.legend(fontsize=6, ncol=2)
    return figure


# --- HTML ----------------------------------------------------------------------------------
def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    return html.table(headers, [[cell.replace("**", "") for cell in row] for row in rows])


def report_html(results: dict, examples: dict, images: dict[str, bytes]) -> str:
    body = "<h2>Protocol</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in results["protocol"]) + "</ul>"
    cache = results["cache"]
    body += (
        f'<p class="meta">run time {results["seconds"]:.0f} s; cache: {cache["total_hits"]} results reused, '
        f'{cache["total_computed"]} computed</p>'
    )
    for title, name in (("F1 per task and explainer", "f1_per_task"), ("F1 against speed", "f1_vs_speed"), ("Deletion curves", "deletion_curves")):
        if name in images:
            body += f"<h2>{escape(title)}</h2>{png_img(images[name], title)}"
    for name, task in results["tasks"].items():
        body += f"<h2>{escape(name)} (held out; ExpNet trained on {escape(', '.join(task['trained_on']))})</h2>"
        body += (
            f'<p class="meta">accuracy {number(task["accuracy"])} on these examples; top-k rate {number(task["rationale_rate"])} '
            f"({escape(task['rationale_rate_source'])}); faithfulness by {escape(str(task['removal_shown']))} removal</p>"
        )
        for table_name, table in task["tables"].items():
            body += f"<h3>{escape(_table_title(table_name, table))}</h3><p class=\"meta\">{escape(table['note'])}</p>"
            body += _html_table(*leaderboard_rows(table))
            if table["comparisons"]:
                body += f'<p class="meta">ExpNet minus the best baseline, {escape(COMPARISON_NOTE)}</p>'
                body += _html_table(*comparison_rows(table))
        body += f"<h3>ExpNet variants (selected on validation: {escape(task['expnet']['selected'])})</h3>"
        body += _html_table(*ablation_rows(task))
        shown = examples.get(name) or []
        if shown:
            body += "<h3>Examples, side by side per explainer</h3>"
        for example, blocks in shown:
            gold = example.gold_mask(results["config"]["gold_rule"])
            body += f"<h4>{escape(example.id)} &middot; gold label {escape(example.label_name)}</h4><table>"
            for label, explanation in blocks:
                probability = explanation.probabilities[explanation.prediction]
                body += (
                    f'<tr><th style="white-space:nowrap">{escape(label)}<br><span class="meta">'
                    f"pred {escape(explanation.prediction_name)} ({probability:.2f})</span></th>"
                    f'<td style="text-align:left">{html.highlight(explanation, gold)}</td></tr>'
                )
            body += "</table>"
    return html.page("expnet benchmark", body)


PLOTS = {"f1_per_task": plot_f1, "f1_vs_speed": plot_speed, "deletion_curves": plot_deletion}


def write_outputs(outcome: Outcome, out: str | Path, plots: bool = True) -> dict[str, Path]:
    """Write every output file into ``out``; returns their paths by name."""
    out = Path(out)
    results = strict_json(with_comparisons(outcome.results.to_dict()))
    paths = {
        "results.json": atomic_write_json(out / "results.json", results),
        "results.csv": atomic_write_text(out / "results.csv", results_csv(results)),
        "leaderboard.md": atomic_write_text(out / "leaderboard.md", leaderboard_markdown(results)),
    }
    images: dict[str, bytes] = {}
    if plots:
        for name, make in PLOTS.items():
            images[name] = png_bytes(make(results))
            paths[f"plots/{name}.png"] = atomic_write_bytes(out / "plots" / f"{name}.png", images[name])
    else:  # an earlier run's plots would sit beside results they do not show
        for name in PLOTS:
            (out / "plots" / f"{name}.png").unlink(missing_ok=True)
    paths["report.html"] = atomic_write_text(out / "report.html", report_html(results, outcome.examples, images))
    return paths
