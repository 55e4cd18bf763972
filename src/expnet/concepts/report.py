"""Outputs of a concept run: the score-by-layer plot (PNG) and an HTML page with per-word heat."""

from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np

from expnet.concepts.tcav import TCAVResult, word_heat
from expnet.explainers.base import Explanation
from expnet.io import atomic_write_bytes
from expnet.report import html
from expnet.report.figures import new_figure, png_bytes, png_img


def plot_scores(result: TCAVResult, path: str | Path) -> Path:
    """Mean TCAV score by layer per concept, error bars = one standard deviation over CAVs; the
    grey band is random-vs-random (mean +- std); a star marks a significant layer."""
    layers = np.array(result.layers)
    figure = new_figure(1.6 + 0.9 * len(layers) + 0.3 * len(result.scores), 4.2, dpi=120)
    axes = figure.subplots()
    random_mean = np.array([np.mean(result.random_scores[layer]) for layer in layers])
    random_std = np.array([np.std(result.random_scores[layer], ddof=1) if len(result.random_scores[layer]) > 1 else 0 for layer in layers])
    axes.fill_between(layers, random_mean - random_std, random_mean + random_std, color="0.85", label="random vs random")
    axes.plot(layers, random_mean, color="0.5", lw=1)
    width = 0.6 / max(len(result.scores), 1)
    for k, (name, scores) in enumerate(result.scores.items()):
        x = layers + (k - (len(result.scores) - 1) / 2) * width
        means = np.array([s.mean for s in scores])
        stds = np.array([s.std for s in scores])
        line = axes.errorbar(x, means, yerr=stds, fmt="o-", capsize=3, lw=1.2, label=name)
        for xi, s in zip(x, scores, strict=True):
            if s.significant:
                axes.annotate("*", (xi, min(s.mean + s.std, 1.0) + 0.02), ha="center", color=line[0].get_color(), fontsize=13)
    axes.axhline(0.5, color="k", lw=0.8, ls="--")
    axes.set_xticks(layers)
    axes.set_xlabel("layer (0-based transformer block)")
    axes.set_ylabel("TCAV score (attention-weighted)")
    axes.set_ylim(-0.05, 1.12)
    axes.set_title(f"concept sensitivity of class {result.target_name!r}")
    axes.legend(fontsize=8, loc="best")
    return atomic_write_bytes(Path(path), png_bytes(figure))


def _explanation(result: TCAVResult, index: int, concept: str, layer: int) -> Explanation:
    gradients = result.gradients
    cav = result.cavs[concept].vectors[layer].mean(0)
    cav = cav / (np.linalg.norm(cav) or 1.0)
    logits = gradients.logits[index]
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    return Explanation(
        words=gradients.words[index],
        scores=word_heat(gradients, index, layer, cav),
        scored=gradients.word_scored[index],
        target=result.target,
        prediction=int(np.argmax(logits)),
        probabilities=probabilities,
        explainer=f"concept {concept}, layer {layer}",
        label_names=result.label_names,
    )


def heat_page(result: TCAVResult, examples: int = 5, plot_png: Path | None = None) -> str:
    """The scores table, the plot, and per-word heat for the first ``examples`` inputs, per
    concept at its most significant layer (CAV = the normalised mean of that layer's CAVs)."""
    body = (
        f'<p class="meta">target class <b>{escape(result.target_name)}</b> &middot; '
        f"{len(result.gradients.words)} inputs &middot; {escape(str(result.settings.get('n_cavs')))} CAVs per concept and layer "
        f"&middot; significant (*) = both t-tests below {result.significance_level:g} / number of tests</p>"
    )
    if plot_png is not None and Path(plot_png).is_file():
        body += png_img(Path(plot_png).read_bytes(), "TCAV score by layer")
    rows = []
    for name, scores in result.scores.items():
        for s in scores:
            rows.append([name, s.layer, s.mean, s.std, f"{s.p_vs_half:.2e}", f"{s.p_vs_random:.2e}", s.cav_auroc, "*" if s.significant else ""])
    body += html.table(["concept", "layer", "score", "std", "p vs 0.5", "p vs random", "CAV AUROC", "sig."], rows)
    body += (
        '<p class="meta">heat: attention-weighted directional derivative along the concept, summed over a word\'s '
        "pieces (red: moving along the concept raises the target logit here; blue: lowers it)</p>"
    )
    for name in result.scores:
        best = result.best_layer(name)
        body += f"<h2>{escape(name)} &middot; layer {best.layer} (score {best.mean:.2f})</h2>"
        for index in range(min(examples, len(result.gradients.words))):
            body += html.explanation_block(_explanation(result, index, name, best.layer))
    return html.page(f"expnet concepts: {result.target_name}", body)
