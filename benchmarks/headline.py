"""The headline of a benchmark run, one line per held-out task, as a markdown table.

    python benchmarks/headline.py runs/benchmark/results.json

From each task's main table (every row on the same examples): ExpNet's own-rule F1, F1@k and
AUROC; the best baseline by each metric; ExpNet minus it with the paired bootstrap 95% interval
the run computed; ExpNet's own-rule F1 minus that of selecting every word (token F1 rewards
selecting too much: that is its floor); the same for the expnet+unlabelled row; the in-domain
reference. Tasks whose
texts were cut at the classifier's length get a second table over the words it read. The last
column divides ExpNet's examples/s by the forward pass's as results.json holds them: both are
cached, possibly from different runs, so it is not a side-by-side ratio (benchmarks/expnet_speed.py
measures that).
"""

from __future__ import annotations

import argparse
import json
import sys

from expnet.benchmark.report import EVERY_WORD
from expnet.cli.main import run_script
from expnet.report.format import interval

METRICS = (("f1", "F1 (own rule)"), ("f1_topk", "F1@k"), ("auroc", "AUROC"))
SEEN_METRICS = (("f1_topk_seen", "F1@k read"), ("auroc_seen", "AUROC read"))
ROWS = ("expnet", "expnet+unlabelled", "expnet_in_domain")


def _comparison(comparisons: list[dict], explainer: str, metric: str, floor: bool = False) -> str:
    found = next(
        (c for c in comparisons if c["explainer"] == explainer and c["metric"] == metric and (c["baseline"] == EVERY_WORD) == floor),
        None,
    )
    if found is None:
        return "-"
    # Below the bootstrap's minimum of pairs the interval is NaN, stored as null.
    difference = "n/a" if found["difference"] is None else f"{found['difference']:+.3f}"
    return f"{difference} {interval(found['low'], found['high'])} {found['verdict']} ({found['baseline']})"


def _best(rows: list[dict], metric: str) -> str:
    baselines = [r for r in rows if r["kind"] == "baseline" and r["explainer"] != "random" and r.get(metric) is not None]
    best = max(baselines, key=lambda r: r[metric])
    return f"{best['explainer']} {best[metric]:.3f}"


def _table(results: dict, metrics: tuple, best_keys: tuple[str, str], speed: bool) -> list[str]:
    names = [label for _, label in metrics]
    header = ["held out", "row", *names, f"best baseline {names[-2]} / {names[-1]}", *[f"- best, {n}" for n in names]]
    header += ["- every word, F1 (own rule)", "ex/s / forward"] if speed else []
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * len(names) + "---|" * (len(names) + 1) + ("---|---:|" if speed else "")]
    for task, result in results["tasks"].items():
        table = result["tables"]["main"]
        rows = {r["explainer"]: r for r in table["rows"]}
        forward = result["forward_examples_per_second"]
        for name in (n for n in ROWS if n in rows):
            row = rows[name]
            cells = [f"{row[key]:.3f}" for key, _ in metrics]
            best = f"{_best(table['rows'], best_keys[0])} / {_best(table['rows'], best_keys[1])}"
            compared = [_comparison(table["comparisons"], name, key) for key, _ in metrics]
            label = f"{name} ({result['expnet']['selected']})" if name == "expnet" else name
            cells += [best, *compared]
            if speed:
                cells.append(_comparison(table["comparisons"], name, "f1", floor=True))
                cells.append(f"{row['examples_per_second'] / forward:.2f}x" if forward else "-")
            lines.append(f"| {task} | {label} | {' | '.join(cells)} |")
    return lines


def headline(results: dict) -> str:
    lines = _table(results, METRICS, ("f1_topk", "auroc"), speed=True)
    truncated = {
        task: result for task, result in results["tasks"].items()
        if any(row.get("n_truncated") for row in result["tables"]["main"]["rows"])
    }
    if truncated:
        lines += ["", "Over the words the classifier read (these tasks' texts were cut at its length):", ""]
        lines += _table({**results, "tasks": truncated}, SEEN_METRICS, ("f1_topk_seen", "auroc_seen"), speed=False)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="a benchmark run's results.json")
    args = parser.parse_args()
    with open(args.results) as handle:
        print(headline(json.load(handle)))


if __name__ == "__main__":
    sys.exit(run_script(main))
