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


# Added when texts were cut at the classifier's length: the scores over the words it saw.
SEEN_COLUMNS = (("f1_topk_seen", "F1@k seen"), ("auroc_seen", "AUROC seen"))


def _truncated(results: dict) -> int:
    return max((scores.get("n_truncated") or 0 for scores in results["explainers"].values()), default=0)


def results_table(results: dict, title: str) -> Table:
    columns = RESULT_COLUMNS[:6] + SEEN_COLUMNS + RESULT_COLUMNS[6:] if _truncated(results) else RESULT_COLUMNS
    table = Table(title=title)
    table.add_column("explainer")
    for _, header in columns:
        table.add_column(header, justify="right")
    for name, scores in results["explainers"].items():
        table.add_row(name, *(_cell(scores.get(key)) for key, _ in columns))
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
    if _truncated(results):
        console.print(
            f"{_truncated(results)} annotated texts were cut at the classifier's length; their cut-off words count "
            "as missed, and the 'seen' columns score only the words the classifier saw"
        )
