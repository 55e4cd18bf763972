"""Correlation (Jain & Wallace 2019): do attention scores rank words like other importance measures?

Per text, Kendall's tau-b between an attention-based word score (``raw_attention``, ``rollout``,
a trained ExpNet) and two references from the explainer registry:

- ``input_x_gradient``: gradient x input of the predicted class's logit, computed with every
  layer's attention weights detached (the authors' protocol: gradients that do not flow through
  attention; done by the intervention mechanism, so the registered explainer runs unchanged);
- ``occlusion``: leave-one-out, the drop in the predicted class's probability when a word's
  pieces are all replaced by [MASK].

Both references are compared by magnitude (absolute value), as the authors did: attention says
how much a word matters, not in which direction. Only scored (untruncated) words count; a text
with fewer than two of them, or with constant scores, has no tau. The two references are also
correlated with each other, as a yardstick for what agreement between real importance
measures looks like on this classifier.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from expnet.diagnostics.intervention import attention_intervention, detached_weights
from expnet.explainers import get_explainer
from expnet.explainers.base import Explainer, Explanation
from expnet.models.classifier import Classifier

ATTENTION_EXPLAINERS = ("raw_attention", "rollout")
REFERENCES = {"input_x_gradient": "gradient x input (attention detached)", "occlusion": "leave-one-out ([MASK])"}


@dataclass
class CorrelationResult:
    pairs: dict[str, tuple[str, str]] = field(default_factory=dict)  # "a vs r" -> (a, r)
    tau: dict[str, np.ndarray] = field(default_factory=dict)  # [N], NaN where undefined
    p_value: dict[str, np.ndarray] = field(default_factory=dict)
    gradient_attention: str = "detached"

    def summary(self) -> dict:
        out = {}
        for key, (attention, reference) in self.pairs.items():
            tau, p = self.tau[key], self.p_value[key]
            defined = ~np.isnan(tau)
            out[key] = {
                "scores": attention,
                "reference": reference,
                "examples": int(defined.sum()),
                "undefined": int((~defined).sum()),
                "mean_tau": float(np.mean(tau[defined])) if defined.any() else None,
                "std_tau": float(np.std(tau[defined])) if defined.any() else None,
                "share_p_below_0.05": float(np.mean(p[defined] < 0.05)) if defined.any() else None,
            }
        return {"gradient_attention": self.gradient_attention, "pairs": out}


def kendall(scores: np.ndarray, reference: np.ndarray, scored: np.ndarray) -> tuple[float, float]:
    """(tau-b, p) over the scored words with finite scores, or (nan, nan) when undefined."""
    from scipy.stats import kendalltau

    keep = scored & np.isfinite(scores) & np.isfinite(reference)
    a, b = scores[keep], reference[keep]
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = kendalltau(a, b)
    return float(result.statistic), float(result.pvalue)


def reference_explanations(
    classifier: Classifier,
    texts: Sequence[Sequence[str]],
    batch_size: int = 16,
    seed: int = 0,
    detach_attention: bool = True,
    progress: bool = False,
) -> dict[str, list[Explanation]]:
    """Gradient x input (attention detached unless told otherwise) and leave-one-out, per text."""
    words = [list(w) for w in texts]
    gradient = get_explainer("input_x_gradient", batch_size=batch_size, seed=seed)
    if detach_attention:
        with attention_intervention(classifier, detached_weights, layers=None):
            gradients = gradient.explain(classifier, words, progress=progress)
    else:
        gradients = gradient.explain(classifier, words, progress=progress)
    occlusion = get_explainer("occlusion", batch_size=batch_size, seed=seed)
    return {"input_x_gradient": gradients, "occlusion": occlusion.explain(classifier, words, progress=progress)}


def correlations(
    classifier: Classifier,
    texts: Sequence[Sequence[str]],
    attention_explainers: dict[str, Explainer],
    batch_size: int = 16,
    seed: int = 0,
    detach_attention: bool = True,
    progress: bool = False,
) -> CorrelationResult:
    """Per-text Kendall tau of each attention explainer against each reference (see module doc)."""
    words = [list(w) for w in texts]
    references = reference_explanations(classifier, words, batch_size, seed, detach_attention, progress)
    scores = {
        name: explainer.explain(classifier, words, progress=progress)
        for name, explainer in attention_explainers.items()
    }
    result = CorrelationResult(gradient_attention="detached" if detach_attention else "live")
    pairs = [(a, r) for a in scores for r in references] + [("input_x_gradient", "occlusion")]
    everything = {**scores, **references}
    for attention, reference in pairs:
        key = f"{attention} vs {reference}"
        taus, ps = [], []
        for mine, theirs in zip(everything[attention], everything[reference], strict=True):
            left = np.abs(mine.scores) if attention in references else mine.scores
            tau, p = kendall(left, np.abs(theirs.scores), mine.scored & theirs.scored)
            taus.append(tau)
            ps.append(p)
        result.pairs[key] = (attention, reference)
        result.tau[key] = np.array(taus)
        result.p_value[key] = np.array(ps)
    return result


def attention_explainers(expnet_dir: str | None = None, batch_size: int = 16, seed: int = 0) -> dict[str, Explainer]:
    """raw_attention and rollout from the registry, plus a trained ExpNet when a folder is given."""
    chosen = {name: get_explainer(name, batch_size=batch_size, seed=seed) for name in ATTENTION_EXPLAINERS}
    if expnet_dir:
        chosen["expnet"] = get_explainer(expnet_dir)
    return chosen
