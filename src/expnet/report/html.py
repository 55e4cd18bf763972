"""Self-contained HTML: words highlighted by score. Every shown string is escaped, because
explained texts are untrusted input."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

from expnet.explainers.base import Explanation
from expnet.report.format import number

STYLE = """
body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
.text{line-height:2;margin:.3em 0 1em}.w{padding:.1em .15em;border-radius:3px}
.r{outline:2px solid #0a0;outline-offset:-1px}.cut{color:#999;text-decoration:line-through}
.meta{color:#555;font-size:.9em}.legend span{margin-right:1em}
"""


def _colour(value: float, signed: bool) -> str:
    """Red for positive importance, blue for negative; alpha is the normalised magnitude."""
    if np.isnan(value):
        return "transparent"
    alpha = min(1.0, abs(value))
    return f"rgba(220,40,40,{alpha:.2f})" if value >= 0 or not signed else f"rgba(40,90,220,{alpha:.2f})"


def display_strength(scores: np.ndarray) -> np.ndarray:
    """Scores mapped to [-1, 1] for colouring, per text, so that its top words stand out.

    Signed scores keep their zero: each is divided by the text's largest magnitude. Unsigned
    scores (probabilities, attention mass) have no meaningful zero: a text whose words all score
    0.4-0.6 would be painted evenly by magnitude, so they are scaled from the text's median
    (transparent) to its maximum (full colour), and words at or below the median stay clear."""
    finite = scores[~np.isnan(scores)]
    if not finite.size:
        return scores
    if (finite < 0).any():
        peak = np.abs(finite).max()
        return scores / peak if peak > 0 else scores * 0
    floor, peak = np.median(finite), finite.max()
    if peak <= floor:
        return np.where(np.isnan(scores), np.nan, 0.0)
    return np.clip((scores - floor) / (peak - floor), 0.0, 1.0)


def highlight(explanation: Explanation, gold: np.ndarray | None = None) -> str:
    """One explained text as HTML spans: background = score (``display_strength``), green
    outline = the explainer's own rationale, underline = human rationale when given."""
    scores = explanation.scores
    strength = display_strength(scores)
    signed = bool((scores[~np.isnan(scores)] < 0).any())
    spans = []
    for i, word in enumerate(explanation.words):
        score = scores[i]
        classes = ["w"]
        if not explanation.scored[i]:
            classes.append("cut")
        if explanation.rationale is not None and explanation.rationale[i]:
            classes.append("r")
        style = f"background:{_colour(strength[i], signed)}"
        if gold is not None and gold[i]:
            style += ";text-decoration:underline 2px"
        if not explanation.scored[i]:  # the same reasons as the text and JSON forms give
            title = "not scored (truncated)" if explanation.cut_words[i] else "not scored (no subword tokens)"
        else:
            title = "no score" if np.isnan(score) else f"{score:.3g}"  # gradient-sized scores keep their digits
        spans.append(f'<span class="{" ".join(classes)}" style="{style}" title="{title}">{html.escape(word)}</span>')
    return '<div class="text">' + " ".join(spans) + "</div>"


def explanation_block(explanation: Explanation, gold: np.ndarray | None = None, heading: str | None = None, label: str | None = None) -> str:
    """One explained text; ``label`` names the explainer as the page's table does (two ExpNet
    folders are both "expnet" in their explanations)."""
    probability = explanation.probabilities[explanation.prediction]
    meta = (
        f"{html.escape(label or explanation.explainer)} &middot; predicted <b>{html.escape(explanation.prediction_name)}</b> "
        f"({probability:.2f}) &middot; explaining <b>{html.escape(explanation.target_name)}</b>"
        + (" &middot; truncated: struck-out words were not seen" if explanation.truncated else "")
    )
    title = f"<h3>{html.escape(heading)}</h3>" if heading else ""
    return f'{title}<div class="meta">{meta}</div>{highlight(explanation, gold)}'


def page(title: str, body: str) -> str:
    legend = (
        '<p class="legend meta"><span>background: importance within the text (red +, blue -; clear at or below the text\'s median)</span>'
        '<span><span class="w r">outlined</span>: explainer\'s rationale</span>'
        "<span><u>underlined</u>: human rationale</span></p>"
    )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="generator" content="expnet"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{legend}{body}</body></html>\n"
    )


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(number(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
