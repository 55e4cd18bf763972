"""Whole HTML pages built from evaluation results."""

from __future__ import annotations

from html import escape

from expnet.evaluation import EvaluationResult
from expnet.metrics.table import EVALUATION_PAGE
from expnet.report import html


def evaluation_page(result: EvaluationResult, examples, gold_rule: str, title: str, count: int) -> str:
    """The results table, then the first annotated examples highlighted by every explainer."""
    rows = [[name, *(s[m.key] for m in EVALUATION_PAGE)] for name, s in result.scores.items()]
    body = html.table(["explainer", *(m.header for m in EVALUATION_PAGE)], rows)
    shown = [i for i, e in enumerate(examples) if e.has_rationale][:count]
    for i in shown:
        body += f"<h2>{escape(examples[i].id)} &middot; gold label {escape(examples[i].label_name)}</h2>"
        for name, run in result.runs.items():
            body += html.explanation_block(run.explanations[i], examples[i].gold_mask(gold_rule), label=name)
    return html.page(title, body)
