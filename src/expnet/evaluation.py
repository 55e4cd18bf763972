"""Running explainers over labelled examples: plausibility, accuracy and speed in one pass.

Speed is measured side by side in the same process: each explainer's whole explanation
(tokenisation and forward pass included) and the classifier's plain forward pass on the same
inputs at the same batch size, each after an untimed warm-up on a short text.

Plausibility is scored over words or, as HateXplain and ferret do, subword pieces (``unit``), with
F1@k at a rate of the words or a fixed ``top_k``. When an ExpNet is among the explainers,
``comparisons`` gives ExpNet minus the best other explainer on F1@k and AUROC with paired bootstrap
95% intervals over the examples.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from expnet.data.records import RationaleExample
from expnet.errors import ExpnetError
from expnet.explainers.base import Explainer, Explanation, length_buckets
from expnet.metrics.bootstrap import compare_with_best
from expnet.metrics.plausibility import PlausibilityScores, expand_to_pieces, plausibility, top_k_mask
from expnet.metrics.table import SEEN, compared_metrics
from expnet.models.classifier import Classifier
from expnet.words import encode_words

RANDOM = "random"
UNITS = ("word", "subword")
# Long enough for any text: subword pieces are counted on whole texts.
UNTRUNCATED = 1_000_000


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
    # ExpNet minus the best other explainer, per compared metric (see compare_explainers).
    comparisons: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "explainers": self.scores,
            "forward_examples_per_second": self.forward_examples_per_second,
            "n_examples": self.n_examples,
            "n_annotated": self.n_annotated,
            "accuracy": self.accuracy,
            "rationale_rate": self.rationale_rate,
            "comparisons": self.comparisons,
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
    """Predicted classes and examples/s of the plain forward pass (tokenisation included), in the
    length buckets the explainers use: the reference is the fastest plain inference, not one that
    pads short texts to a long neighbour's length."""
    classifier.predict_logits(classifier.encode(words[:2]))
    started = time.perf_counter()
    predictions = np.zeros(len(words), dtype=np.int64)
    for indices in length_buckets(classifier, words, batch_size):
        logits = classifier.predict_logits(classifier.encode([words[i] for i in indices]))
        predictions[indices] = logits.argmax(-1).cpu().numpy()
    seconds = time.perf_counter() - started
    return predictions, len(words) / seconds


SEEN_VIEW_KEYS = (*SEEN, "n_examples_seen")  # what seen_window_scores gives
SEEN_KEYS = (*SEEN_VIEW_KEYS, "n_truncated")  # and how many texts were cut (score_run counts them)


def seen_window_scores(golds, scores, seen_masks, rate: float, top_k: int | None = None) -> tuple[dict, dict]:
    """Plausibility over only the words the classifier saw (``*_seen``), top-k of them (``top_k``
    words, else ``rate`` of them), and the per-example F1@k and AUROC of that view, aligned with
    the inputs (NaN for a text left out), so that two explainers can be compared pair by pair.

    Long texts are cut at the classifier's length; the main scores count gold words beyond the cut
    as missed by everyone, which drowns the differences between explainers on long reviews. Texts
    whose gold words all lie beyond the cut are left out here; without truncation the values equal
    the main ones."""
    kept, kept_golds, kept_scores, kept_topk = [], [], [], []
    for index, (gold, score, seen) in enumerate(zip(golds, scores, seen_masks, strict=True)):
        seen = np.asarray(seen, dtype=bool)
        gold = np.asarray(gold)
        if not seen.any() or (gold.any() and not gold[seen].any()):
            continue
        kept.append(index)
        kept_golds.append(gold[seen])
        kept_scores.append(np.asarray(score)[seen])
        kept_topk.append(top_k_mask(kept_scores[-1], rate, top_k))
    seen_view = plausibility(kept_golds, kept_scores, kept_topk)
    # The seen view's F1 is at top-k: its rationales are the top-k masks above.
    summary = seen_view.to_dict()
    values = (summary["f1"], summary["auroc"], summary["average_precision"], summary["auprc"], summary["n_examples"])
    per_example = {}
    for key, source in (("f1_topk_seen", "f1"), ("auroc_seen", "auroc")):
        aligned = np.full(len(golds), np.nan)
        aligned[kept] = seen_view.per_example.get(source, np.array([]))
        per_example[key] = aligned.tolist()
    return dict(zip(SEEN_VIEW_KEYS, values, strict=True)), per_example


def subword_pieces(classifier: Classifier, words: Sequence[Sequence[str]], batch_size: int = 64) -> list[np.ndarray]:
    """Subword pieces per word of each text, counted on the whole text (no truncation), so that
    cut-off words keep their weight; a word the tokeniser drops still counts once."""
    counts = []
    for start in range(0, len(words), batch_size):
        batch = encode_words(classifier.tokenizer, words[start : start + batch_size], UNTRUNCATED)
        for row, text in enumerate(batch.words):
            owners = batch.token_word[row].numpy()
            counts.append(np.maximum(np.bincount(owners[owners >= 0], minlength=len(text)), 1))
    return counts


def score_run(
    run: ExplainerRun,
    examples: Sequence[RationaleExample],
    rate: float,
    gold_rule: str,
    top_k: int | None = None,
    pieces: Sequence[np.ndarray] | None = None,
) -> dict:
    """Plausibility of one run: with the explainer's own rationale when it has one, and with
    top-k for everyone (``*_topk``: ``top_k`` words when given, else ``rate`` of the words), so
    binarisation cannot decide a comparison.

    ``pieces`` (subword pieces per word, aligned with ``examples``) scores subword tokens instead
    of words, as HateXplain and ferret do: every piece carries its word's gold label and score.
    ``per_example`` keeps F1@k and AUROC per annotated example with the examples' ids, so two runs
    can be compared pair by pair."""
    golds, scores, native, topk, seen, ids = [], [], [], [], [], []
    truncated = 0  # texts cut at the classifier's length (not texts with a word the tokenizer drops)
    for index, (example, explanation) in enumerate(zip(examples, run.explanations, strict=True)):
        gold = example.scored_gold(gold_rule)
        if gold is None:
            continue
        own = explanation.rationale
        word_values = (gold, explanation.scores, explanation.scored, own)
        if pieces is not None:
            word_values = [None if v is None else expand_to_pieces(v, pieces[index]) for v in word_values]
        gold, score, scored, own = word_values
        ids.append(example.id)
        truncated += explanation.truncated
        golds.append(gold)
        seen.append(scored)
        scores.append(score)
        selected = top_k_mask(score, rate, top_k)
        topk.append(selected)
        native.append(own if own is not None else selected)
    by_own: PlausibilityScores = plausibility(golds, scores, native)
    by_topk: PlausibilityScores = plausibility(golds, scores, topk)
    result = by_own.to_dict()
    topk_values = by_topk.to_dict()
    result.update({f"{key}_topk": topk_values[key] for key in ("f1", "precision", "recall", "f1_pooled", "iou_f1")})
    seen_summary, seen_per_example = seen_window_scores(golds, scores, seen, rate, top_k)
    result.update(seen_summary, n_truncated=truncated)
    result["per_example"] = {
        "ids": ids,
        # F1 of the explainer's own binary rationale (ExpNet's rule; top-k for the others).
        "f1": by_own.per_example.get("f1", np.array([])).tolist(),
        "f1_topk": by_topk.per_example.get("f1", np.array([])).tolist(),
        "auroc": by_own.per_example.get("auroc", np.array([])).tolist(),
        **seen_per_example,
    }
    result["examples_per_second"] = run.examples_per_second
    result["seconds"] = run.seconds
    return result


def compare_explainers(scores: Mapping[str, dict], expnets: Sequence[str]) -> list[dict]:
    """Each ExpNet minus the best other explainer (not another ExpNet, not ``random``, which is a
    floor rather than a competitor) on F1 (each one's own binary rationale), F1@k and AUROC (and
    over the words read, when texts were cut), with paired bootstrap 95% intervals."""
    others = {name: s for name, s in scores.items() if name not in expnets and name != RANDOM}
    truncated = any(s.get("n_truncated") for s in scores.values())
    found = []
    for name in expnets:
        for metric in compared_metrics(truncated):
            comparison = compare_with_best(
                metric,
                name,
                scores[name]["per_example"],
                {other: (s[metric], s["per_example"]) for other, s in others.items()},
            )
            if comparison is not None:
                found.append(comparison.to_dict())
    return found


FORWARD_BATCH_SIZE = 16


def at_batch_size(explainer: Explainer, batch_size: int) -> Explainer:
    """A shallow copy of ``explainer`` (models shared, not copied) that runs at ``batch_size``."""
    copied = copy.copy(explainer)
    copied.batch_size = batch_size
    return copied


def evaluate(
    classifier: Classifier,
    examples: Sequence[RationaleExample],
    explainers: Mapping[str, Explainer],
    rationale_rate: float,
    gold_rule: str = "majority",
    batch_size: int | None = None,
    progress: bool = False,
    top_k: int | None = None,
    unit: str = "word",
) -> EvaluationResult:
    """Every explainer over ``examples``; F1@k takes ``top_k`` words when given, else
    ``rationale_rate`` of them; ``unit="subword"`` scores subword tokens (see score_run).

    ``batch_size``, when given, is what every explainer runs at (on a copy: the caller's explainers
    are left as they are); else each explainer keeps its own. The plain forward pass runs at
    ``batch_size``, else at ``FORWARD_BATCH_SIZE``."""
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}: use one of {', '.join(UNITS)}")
    if not any(e.has_rationale for e in examples):
        # Every plausibility score would be undefined: refuse rather than write a table of nulls.
        raise ExpnetError(
            f"none of the {len(examples)} examples has a human rationale, so agreement with people cannot be "
            "measured; give annotated data (e.g. the task's evaluation split, or a JSONL file with rationales)"
        )
    words = [e.words for e in examples]
    pieces = subword_pieces(classifier, words) if unit == "subword" else None
    predictions, forward_speed = forward_pass(classifier, words, batch_size or FORWARD_BATCH_SIZE)
    labels = np.array([e.label for e in examples])
    result = EvaluationResult(
        n_examples=len(examples),
        n_annotated=sum(e.has_rationale for e in examples),
        accuracy=float((predictions == labels).mean()) if len(examples) else float("nan"),
        forward_examples_per_second=forward_speed,
        rationale_rate=rationale_rate,
    )
    for name, explainer in explainers.items():
        run = run_explainer(classifier, explainer if batch_size is None else at_batch_size(explainer, batch_size), words, progress)
        result.runs[name] = run
        result.scores[name] = score_run(run, examples, rationale_rate, gold_rule, top_k, pieces)
        result.scores[name]["speed_vs_forward"] = run.examples_per_second / forward_speed
    expnets = [name for name, explainer in explainers.items() if explainer.family == "learned"]
    result.comparisons = compare_explainers(result.scores, expnets)
    return result
