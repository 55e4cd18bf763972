"""Plots (matplotlib, Agg) and a self-contained HTML summary of ``expnet diagnose`` results.

The page states what the numbers mean for the diagnosed classifier with fixed, stated
thresholds; every shown string is escaped (task names, paths and labels come from the user).
"""

from __future__ import annotations

import math
from html import escape
from itertools import pairwise

import numpy as np

from expnet.report import html as html_helpers
from expnet.report.figures import new_figure, png_bytes, png_img

LN2 = math.log(2.0)

# Wording thresholds (stated on the page).
TVD_NEGLIGIBLE, TVD_SMALL, TVD_LARGE = 0.01, 0.05, 0.25
TAU_WEAK, TAU_MODERATE = 0.2, 0.4


# --- plots ----------------------------------------------------------------------------------
def permutation_plot(per_example: list[dict], layer: int, bins) -> bytes:
    attention = np.array([e["max_attention"] for e in per_example])
    tvd = np.array([e["median_tvd"] for e in per_example])
    groups, labels = [], []
    for low, high in pairwise(bins):
        inside = (attention >= low) & (attention < high)
        groups.append(tvd[inside])
        labels.append(f"[{low:.2f}, {min(high, 1.0):.2f})\nn={int(inside.sum())}")
    fig = new_figure(6.4, 4, dpi=110)
    ax = fig.subplots()
    positions = [i + 1 for i, g in enumerate(groups) if g.size]
    ax.boxplot([g for g in groups if g.size], positions=positions, widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)
    for i, g in enumerate(groups):
        if g.size:
            ax.scatter(i + 1 + rng.uniform(-0.15, 0.15, g.size), g, s=8, alpha=0.4, color="tab:blue")
    ax.set_xticks(range(1, len(labels) + 1), labels)
    ax.set_xlim(0.5, len(labels) + 0.5)
    ax.set_xlabel(f"maximum attention weight (layer {layer}, [CLS] row, mean over heads)")
    ax.set_ylabel("median TVD of the output over permutations")
    ax.set_title("Permuting attention")
    return png_bytes(fig)


def adversarial_plot(per_example: list[dict], epsilon: float) -> bytes:
    values = np.array([e["max_jsd"] for e in per_example])
    fig = new_figure(6.4, 4, dpi=110)
    ax = fig.subplots()
    ax.hist(values, bins=np.linspace(0, LN2, 21), color="tab:orange", edgecolor="white")
    ax.set_xlim(0, LN2)
    ax.set_xlabel(f"max JSD (nats) from the original attention with output TVD <= {epsilon}")
    ax.set_ylabel("examples")
    ax.set_title("Adversarial attention")
    return png_bytes(fig)


def correlation_plot(taus: dict[str, np.ndarray]) -> bytes:
    names = [name for name, values in taus.items() if np.isfinite(values).any()]
    fig = new_figure(max(6.4, 1.6 * len(names)), 4, dpi=110)
    ax = fig.subplots()
    if names:
        data = [taus[name][np.isfinite(taus[name])] for name in names]
        ax.violinplot(data, showmedians=True)
        ax.set_xticks(range(1, len(names) + 1), [n.replace(" vs ", "\nvs ") for n in names], fontsize=8)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_ylim(-1, 1)
    ax.set_ylabel("Kendall tau per example")
    ax.set_title("Correlation of attention with other importance measures")
    return png_bytes(fig)


def uniform_plot(per_layer: dict[str, dict]) -> bytes:
    keys = list(per_layer)
    fig = new_figure(6.4, 3.6, dpi=110)
    ax = fig.subplots()
    ax.bar(range(len(keys)), [per_layer[k]["mean_tvd"] for k in keys], color="tab:green")
    ax.set_xticks(range(len(keys)), keys)
    ax.set_xlabel("layer made uniform")
    ax.set_ylabel("mean TVD of the output")
    ax.set_title("Uniform attention")
    return png_bytes(fig)


def make_plots(results: dict) -> dict[str, bytes]:
    """PNG bytes by file name for every diagnostic present in ``results``."""
    plots = {}
    if "permutation" in results:
        p = results["permutation"]
        bins = [b["max_attention"][0] for b in p["summary"]["by_max_attention"]] + [1.0000001]
        plots["permutation.png"] = permutation_plot(p["per_example"], p["summary"]["layer"], bins)
    if "adversarial" in results:
        a = results["adversarial"]
        plots["adversarial.png"] = adversarial_plot(a["per_example"], a["summary"]["report_epsilon"])
    if "correlation" in results:
        taus = {k: np.array([np.nan if t is None else t for t in v]) for k, v in results["correlation"]["tau"].items()}
        plots["correlation.png"] = correlation_plot(taus)
    if "uniform" in results:
        plots["uniform.png"] = uniform_plot(results["uniform"]["summary"]["per_layer"])
    return plots


# --- plain words ----------------------------------------------------------------------------
def _size(tvd: float) -> str:
    if tvd < TVD_NEGLIGIBLE:
        return "negligible"
    if tvd < TVD_SMALL:
        return "small"
    if tvd < TVD_LARGE:
        return "moderate"
    return "large"


def _strength(tau: float) -> str:
    magnitude = abs(tau)
    if magnitude < TAU_WEAK:
        return "weak"
    return "moderate" if magnitude < TAU_MODERATE else "strong"


# A share of flipped predictions above which "the weights do not matter" would contradict the flips.
FLIPS_NOTABLE = 0.05


def _permutation_meaning(median_tvd: float, flip_rate: float) -> str:
    if median_tvd < TVD_SMALL and flip_rate >= FLIPS_NOTABLE:
        return (
            "The typical text barely moves, but the flipped predictions show that for some texts which token "
            "receives which weight in this layer decides the output."
        )
    if median_tvd < TVD_NEGLIGIBLE:
        return (
            "Which token receives which weight in this layer practically does not matter to this classifier, so "
            "the layer's attention weights say little about why it decided."
        )
    if median_tvd < TVD_SMALL:
        return (
            "Which token receives which weight in this layer matters only a little to this classifier, so the "
            "layer's attention weights say little about why it decided."
        )
    return (
        "This classifier's output depends on which tokens this layer attends to, so its attention carries "
        "information about the decision (that alone does not make it a faithful explanation)."
    )


def _uniform_meaning(s: dict) -> str:
    if s["accuracy_change"] <= -0.01:
        return " This classifier's accuracy relies on this layer's learned attention."
    if s["prediction_changed"] < 0.01 and s["mean_tvd"] < TVD_SMALL:
        return " This classifier does not need this layer's learned attention: uniform weights do as well."
    return (
        " Its accuracy does not need this layer's learned attention, although individual predictions and "
        "probabilities do move."
    )


def _correlation_meaning(pairs: dict) -> str:
    taus = [s["mean_tau"] for s in pairs.values() if s["mean_tau"] is not None and s["scores"] != "input_x_gradient"]
    yardstick = pairs.get("input_x_gradient vs occlusion", {}).get("mean_tau")
    if not taus:
        return ""
    best = max(taus)
    if best < TAU_WEAK:
        return (
            " Attention ranks words largely differently from these measures, so it should not be read as the words "
            "that drove this classifier's decisions."
        )
    if yardstick is not None and best >= yardstick:
        return (
            " The best attention-based scores agree with the references at least as well as the references agree "
            "with each other, so on this classifier attention is no worse a guide to word importance than they are; "
            "none of them is strongly agreed on."
            if yardstick < TAU_MODERATE
            else " The best attention-based scores agree with the references about as well as they agree with each "
            "other."
        )
    return (
        " Attention agrees with these measures only partly (and less than they agree with each other), so read it "
        "as a rough hint about word importance, not as the reason for a decision."
    )


def _where_found(s: dict) -> str:
    found = s.get("median_max_jsd_where_found")
    return "none found" if found is None else f"{found:.3f} over the examples where one was found"


def interpret(results: dict) -> dict[str, str]:
    """One plain paragraph per diagnostic about what its numbers say for this classifier."""
    text = {}
    if "correlation" in results:
        pairs = results["correlation"]["summary"]["pairs"]
        parts = []
        for s in pairs.values():
            if s["mean_tau"] is None or s["scores"] == "input_x_gradient":
                continue
            parts.append(
                f"{s['scores']} vs {s['reference']}: mean tau {s['mean_tau']:.2f} ({_strength(s['mean_tau'])}), "
                f"significant (p < 0.05) for {100 * s['share_p_below_0.05']:.0f}% of examples"
            )
        yard = pairs.get("input_x_gradient vs occlusion", {})
        yardstick = (
            f" For comparison, the two reference measures agree with each other at mean tau {yard['mean_tau']:.2f}."
            if yard.get("mean_tau") is not None
            else ""
        )
        text["correlation"] = (
            "How well attention-based scores rank words like gradient x input and leave-one-out do. "
            + "; ".join(parts)
            + "."
            + yardstick
            + _correlation_meaning(pairs)
        )
    if "permutation" in results:
        s = results["permutation"]["summary"]
        text["permutation"] = (
            f"Shuffling layer {s['layer']}'s attention ({s['permutations']} times per example) moves the output "
            f"distribution by a median TVD of {s['median_tvd']:.3f} ({_size(s['median_tvd'])}); "
            f"{100 * s['share_tvd_below_0.01']:.0f}% of examples change by less than 0.01 and permutations flip "
            f"{100 * s['mean_flip_rate']:.1f}% of predictions. " + _permutation_meaning(s["median_tvd"], s["mean_flip_rate"])
        )
    if "adversarial" in results:
        s = results["adversarial"]["summary"]
        text["adversarial"] = (
            f"For {100 * s['share_found_within_epsilon']:.0f}% of examples the search found a layer-{s['layer']} "
            f"[CLS] attention whose output stays within TVD {s['report_epsilon']}; the median of the largest such "
            f"JSD from the original is {s['median_max_jsd']:.3f} nats (of at most 0.693; "
            f"{_where_found(s)}), and "
            f"{100 * s['share_max_jsd_above_half_ln2']:.0f}% of examples exceed half the maximum. "
            + (
                "For most examples, very different attention gives practically the same prediction, so the "
                "observed attention is not the only explanation consistent with the output."
                if s["median_max_jsd"] > LN2 / 2
                else "Attention far from the original does change the prediction here, so the layer's attention is "
                "comparatively constrained by the output."
            )
            + f" (Search: {s['candidates']} candidates x {s['steps']} Adam steps; more steps can only find more.)"
        )
    if "uniform" in results:
        s = results["uniform"]["summary"]
        all_layers = s["per_layer"].get("all", {})
        text["uniform"] = (
            f"Making layer {s['layer']}'s attention uniform over the real tokens changes accuracy from "
            f"{s['accuracy']:.3f} to {s['accuracy_uniform']:.3f} ({s['accuracy_change']:+.3f}), moves the output by "
            f"a mean TVD of {s['mean_tvd']:.3f} ({_size(s['mean_tvd'])}) and changes "
            f"{100 * s['prediction_changed']:.1f}% of predictions."
            + (
                f" Uniform attention in every layer at once gives accuracy {all_layers['accuracy_uniform']:.3f} "
                f"(mean TVD {all_layers['mean_tvd']:.3f})."
                if all_layers
                else ""
            )
            + _uniform_meaning(s)
        )
    return text


# --- the page -------------------------------------------------------------------------------
# The one headline row (what, value, note) of each single-number diagnostic, from its summary.
_HEADLINES = {
    "permutation": lambda s: [
        "permutation: median TVD", f"{s['median_tvd']:.4f}", f"flips {100 * s['mean_flip_rate']:.1f}%"
    ],
    "adversarial": lambda s: [
        "adversarial: median max JSD (nats)",
        f"{s['median_max_jsd']:.3f}",
        f"found within eps for {100 * s['share_found_within_epsilon']:.0f}%",
    ],
    "uniform": lambda s: [
        "uniform: accuracy change",
        f"{s['accuracy_change']:+.3f}",
        f"mean TVD {s['mean_tvd']:.4f}, {100 * s['prediction_changed']:.1f}% predictions changed",
    ],
}


def _headline_rows(results: dict) -> list[list[object]]:
    rows = []
    if "correlation" in results:
        for key, s in results["correlation"]["summary"]["pairs"].items():
            if s["mean_tau"] is not None:
                rows.append(
                    [
                        f"correlation: {key}",
                        f"tau {s['mean_tau']:.3f} +/- {s['std_tau']:.3f}",
                        f"p<0.05 for {100 * s['share_p_below_0.05']:.0f}% (n={s['examples']})",
                    ]
                )
    for name, headline in _HEADLINES.items():
        if name in results:
            rows.append(headline(results[name]["summary"]))
    return rows


def _image(png: bytes, alt: str) -> str:
    return f"<p>{png_img(png, alt)}</p>"


def html_page(results: dict, plots: dict[str, bytes]) -> str:
    settings = results["settings"]
    title = f"expnet diagnose: {settings['data']}"
    meanings = interpret(results)
    body = (
        f'<p class="meta">classifier {escape(str(settings["classifier"]))} &middot; data {escape(str(settings["data"]))} '
        f"({escape(str(settings['split']))}) &middot; {int(settings['examples'])} examples &middot; "
        f"layer {int(settings['layer'])} &middot; seed {int(settings['seed'])}</p>"
    )
    body += "<h2>Headline numbers</h2>" + html_helpers.table(["diagnostic", "value", "detail"], _headline_rows(results))
    sections = [
        ("correlation", "Correlation with gradient x input and leave-one-out", "correlation.png"),
        ("permutation", "Permuted attention", "permutation.png"),
        ("adversarial", "Adversarial attention", "adversarial.png"),
        ("uniform", "Uniform attention", "uniform.png"),
    ]
    for key, heading, image in sections:
        if key not in results:
            continue
        body += f"<h2>{escape(heading)}</h2><p>{escape(meanings.get(key, ''))}</p>"
        seconds = results[key].get("seconds")
        if seconds is not None:
            body += f'<p class="meta">took {seconds:.1f} s</p>'
        if image in plots:
            body += _image(plots[image], heading)
    body += (
        '<h2>How to read this</h2><p class="meta">TVD = 0.5 * sum |y - y\'| between output distributions '
        f"(0 = identical, 1 = disjoint); called negligible below {TVD_NEGLIGIBLE}, small below {TVD_SMALL}, "
        f"moderate below {TVD_LARGE}, large above. JSD in nats (0 = same attention, 0.693 = disjoint). "
        f"Kendall tau (on score magnitudes): weak below {TAU_WEAK}, moderate below {TAU_MODERATE}, strong above. "
        "raw_attention = final-layer [CLS] attention averaged over heads; rollout = attention rollout; "
        "input_x_gradient = gradient x input of the predicted logit with attention detached; occlusion = "
        "leave-one-out (drop in the predicted class's probability when a word is replaced by [MASK]). "
        "Protocols: Jain &amp; Wallace (2019) and Wiegreffe &amp; Pinter (2019).</p>"
    )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{html_helpers.STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>\n"
    )
