"""Terminal tables of evaluation results (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

RESULT_COLUMNS = (
    ("f1", "F1"),
    ("f1_topk", "F1@k"),
    ("precision", "P"),
    ("recall", "R"),
    ("auroc", "AUROC"),
    ("auprc", "AUPRC"),
    ("examples_per_second", "ex/s"),
)


def results_table(results: dict, title: str) -> Table:
    table = Table(title=title)
    table.add_column("explainer")
    for _, header in RESULT_COLUMNS:
        table.add_column(header, justify="right")
    for name, scores in results["explainers"].items():
        table.add_row(name, *(_cell(scores.get(key)) for key, _ in RESULT_COLUMNS))
    return table


def _cell(value) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"


def print_results(results: dict, title: str, console: Console | None = None) -> None:
    console = console or Console(stderr=True)
    console.print(results_table(results, title))
    console.print(
        f"forward pass: {results['forward_examples_per_second']:.1f} ex/s, accuracy {results['accuracy']:.3f}, "
        f"{results['n_examples']} examples ({results['n_annotated']} with rationales), "
        f"top-k rate {results['rationale_rate']:.3f}"
    )
