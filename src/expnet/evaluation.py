"""Running explainers over labelled examples: plausibility, accuracy and speed in one pass.

Speed is measured side by side in the same process: each explainer's whole explanation
(tokenisation and forward pass included) and the classifier's plain forward pass on the same
inputs at the same batch size, each after an untimed warm-up on a short text.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from expnet.data.records import RationaleExample
from expnet.explainers.base import Explainer, Explanation
from expnet.metrics.plausibility import PlausibilityScores, plausibility, top_k_mask
from expnet.models.classifier import Classifier


@dataclass
class ExplainerRun:
    """One explainer's explanations of the examples, and how long they took."""

    name: str
    explanations: list[Explanation]
    seconds: float

    @property
    def examples_per_second(self) -> float:
        return len(self.explanations) / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class EvaluationResult:
    n_examples: int
    n_annotated: int
    accuracy: float
    forward_examples_per_second: float
    rationale_rate: float
    scores: dict[str, dict] = field(default_factory=dict)
    runs: dict[str, ExplainerRun] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "explainers": self.scores,
            "forward_examples_per_second": self.forward_examples_per_second,
            "n_examples": self.n_examples,
            "n_annotated": self.n_annotated,
            "accuracy": self.accuracy,
            "rationale_rate": self.rationale_rate,
            "settings": self.settings,
        }


WARM_UP_WORDS = 16


def run_explainer(classifier: Classifier, explainer: Explainer, words: Sequence[Sequence[str]], progress: bool = False) -> ExplainerRun:
    # One untimed warm-up on the first text's first words, so one-off costs (allocations, lazy
    # imports) are not timed; cut short because a whole long review costs a perturbation
    # explainer minutes.
    if words:
        explainer.explain(classifier, [list(words[0])[:WARM_UP_WORDS]])
    started = time.perf_counter()
    explanations = explainer.explain(classifier, words, progress=progress)
    return ExplainerRun(explainer.name, explanations, time.perf_counter() - started)


@torch.no_grad()
def forward_pass(classifier: Classifier, words: Sequence[Sequence[str]], batch_size: int) -> tuple[np.ndarray, float]:
    """Predicted classes and examples/s of the plain forward pass (tokenisation included)."""
    classifier.predict_logits(classifier.encode(words[:2]))
    started = time.perf_counter()
    predictions = []
    for start in range(0, len(words), batch_size):
        logits = classifier.predict_logits(classifier.encode(words[start : start + batch_size]))
        predictions.append(logits.argmax(-1).cpu().numpy())
    seconds = time.perf_counter() - started
    return np.concatenate(predictions), len(words) / seconds


SEEN_KEYS = ("f1_topk_seen", "auroc_seen", "auprc_seen", "n_examples_seen", "n_truncated")


def seen_window_scores(golds, scores, seen_masks, rate: float) -> dict:
    """Plausibility over only the words the classifier saw (``*_seen``), top-k at ``rate`` of them.

    Long texts are cut at the classifier's length; the main scores count gold words beyond the cut
    as missed by everyone, which drowns the differences between explainers on long reviews. Texts
    whose gold words all lie beyond the cut are left out here; without truncation the values equal
    the main ones."""
    kept_golds, kept_scores, kept_topk = [], [], []
    for gold, score, seen in zip(golds, scores, seen_masks, strict=True):
        seen = np.asarray(seen, dtype=bool)
        gold = np.asarray(gold)
        if not seen.any() or (gold.any() and not gold[seen].any()):
            continue
        kept_golds.append(gold[seen])
        kept_scores.append(np.asarray(score)[seen])
        kept_topk.append(top_k_mask(kept_scores[-1], rate))
    seen_view = plausibility(kept_golds, kept_scores, kept_topk)
    truncated = int(sum(not np.asarray(seen, dtype=bool).all() for seen in seen_masks))
    values = (seen_view.f1, seen_view.auroc, seen_view.auprc, seen_view.n_examples, truncated)
    return dict(zip(SEEN_KEYS, values, strict=True))


def score_run(run: ExplainerRun, examples: Sequence[RationaleExample], rate: float, gold_rule: str) -> dict:
    """Plausibility of one run: with the explainer's own rationale when it has one, and with
    top-k at ``rate`` for everyone (``*_topk``), so binarisation cannot decide a comparison."""
    golds, scores, native, topk, seen = [], [], [], [], []
    for example, explanation in zip(examples, run.explanations, strict=True):
        gold = example.gold_mask(gold_rule)
        if gold is None:
            continue
        golds.append(gold)
        seen.append(explanation.scored)
        scores.append(explanation.scores)
        selected = top_k_mask(explanation.scores, rate)
        topk.append(selected)
        native.append(explanation.rationale if explanation.rationale is not None else selected)
    own: PlausibilityScores = plausibility(golds, scores, native)
    by_topk: PlausibilityScores = plausibility(golds, scores, topk)
    result = own.to_dict()
    result.update({f"{key}_topk": by_topk.to_dict()[key] for key in ("f1", "precision", "recall", "f1_pooled")})
    result.update(seen_window_scores(golds, scores, seen, rate))
    result["examples_per_second"] = run.examples_per_second
    result["seconds"] = run.seconds
    return result


def evaluate(
    classifier: Classifier,
    examples: Sequence[RationaleExample],
    explainers: Mapping[str, Explainer],
    rationale_rate: float,
    gold_rule: str = "majority",
    batch_size: int = 16,
    progress: bool = False,
) -> EvaluationResult:
    words = [e.words for e in examples]
    predictions, forward_speed = forward_pass(classifier, words, batch_size)
    labels = np.array([e.label for e in examples])
    result = EvaluationResult(
        n_examples=len(examples),
        n_annotated=sum(e.has_rationale for e in examples),
        accuracy=float((predictions == labels).mean()) if len(examples) else float("nan"),
        forward_examples_per_second=forward_speed,
        rationale_rate=rationale_rate,
    )
    for name, explainer in explainers.items():
        explainer.batch_size = batch_size
        run = run_explainer(classifier, explainer, words, progress)
        result.runs[name] = run
        result.scores[name] = score_run(run, examples, rationale_rate, gold_rule)
        result.scores[name]["speed_vs_forward"] = run.examples_per_second / forward_speed
    return result
