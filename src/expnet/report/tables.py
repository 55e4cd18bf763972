"""Terminal tables of evaluation results (rich), narrow enough for an 80-column terminal.

Headers take one line per word, numbers never wrap, and long explainer names (ExpNet folders)
fold onto more lines instead of being cut with an ellipsis. Precision, recall, AP and the pooled
scores are in the results JSON only.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from expnet.metrics.table import EVALUATION as RESULT_COLUMNS
from expnet.metrics.table import SEEN_COLUMNS, Metric, header
from expnet.report.format import difference, interval, number


def _truncated(results: dict) -> int:
    return max((scores.get("n_truncated") or 0 for scores in results["explainers"].values()), default=0)


def _narrow_table(title: str, first: str) -> Table:
    # No padding: the box's blank column rules already put one space between columns, and the
    # widest table (with the 'seen' columns) then keeps a 29-character name on one line.
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=0)
    table.add_column(first, overflow="fold", min_width=8)
    return table


def _number_column(table: Table, header: str) -> None:
    table.add_column(header, justify="right", no_wrap=True, min_width=5)


def rows_table(title: str, headers: list[str], rows: list[list[str]]) -> Table:
    """Already formatted rows (first column: a name) in the same 80-column style."""
    table = _narrow_table(title, headers[0])
    for name in headers[1:]:
        _number_column(table, name)
    for row in rows:
        table.add_row(*row)
    return table


def result_columns(results: dict) -> tuple[Metric, ...]:
    """The evaluation columns; with texts cut at the classifier's length, the scores over the
    words it saw (``SEEN_COLUMNS``) come before the speed column."""
    if not _truncated(results):
        return RESULT_COLUMNS
    return RESULT_COLUMNS[:-1] + SEEN_COLUMNS + RESULT_COLUMNS[-1:]


def results_table(results: dict, title: str) -> Table:
    columns = result_columns(results)
    table = _narrow_table(title, "explainer")
    for metric in columns:
        _number_column(table, metric.short_header)
    for name, scores in results["explainers"].items():
        table.add_row(name, *(number(scores.get(metric.key)) for metric in columns))
    return table


def comparisons_table(results: dict) -> Table:
    """Each ExpNet minus the best other explainer, with the paired bootstrap 95% interval."""
    table = _narrow_table("ExpNet minus the best other explainer (paired bootstrap 95% interval)", "ExpNet")
    table.add_column("metric", no_wrap=True)
    table.add_column("best other", overflow="fold", min_width=8)
    for name in ("diff", "95% interval", "pairs"):
        _number_column(table, name)
    table.add_column("verdict", no_wrap=True)
    for c in results["comparisons"]:
        table.add_row(
            c["explainer"], header(c["metric"]), c["baseline"], difference(c["difference"]), interval(c["low"], c["high"]), str(c["n_pairs"]), c["verdict"]
        )
    return table


def print_results(results: dict, title: str, console: Console | None = None) -> None:
    console = console or Console(stderr=True)
    console.print(results_table(results, title))
    if results.get("comparisons"):
        console.print(comparisons_table(results))
        console.print("win / loss: the interval excludes 0; tie: it holds 0")
    top_k, unit = (results.get("settings", {}).get(key) for key in ("top_k", "unit"))
    console.print(
        f"forward pass: {results['forward_examples_per_second']:.1f} ex/s, accuracy {results['accuracy']:.3f}, "
        f"{results['n_examples']} examples ({results['n_annotated']} with rationales), "
        + (f"top-{top_k} for F1@k" if top_k else f"top-k rate {results['rationale_rate']:.3f}")
        + (", subword tokens" if unit == "subword" else "")
    )
    if _truncated(results):
        console.print(
            f"{_truncated(results)} annotated texts were cut at the classifier's length; their cut-off words count "
            "as missed, and the 'seen' columns score only the words the classifier saw"
        )
