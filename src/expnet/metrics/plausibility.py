"""Word-level agreement between an explanation and a human rationale.

Conventions (documented because peers differ):
- F1, precision and recall of a binary rationale are computed per example and averaged
  (ERASER's ``instance_macro``), and also pooled over all words (``*_pooled``, ERASER's
  ``instance_micro``).
- AUROC and ``average_precision`` (scikit-learn's average precision) of the continuous scores are
  computed per example and averaged over the examples whose gold mask has both classes, as ERASER's
  ``roc_auc_score`` and ``average_precision`` keys do (scores are only compared within a text, so
  explainers whose scale changes with text length are not penalised).
- ``auprc`` is ERASER's ``auprc`` key, which ferret and HateXplain report under that name: the
  trapezoidal area under scikit-learn's ``precision_recall_curve`` (``auc(recall, precision)``),
  averaged over every annotated text, single-class ones included (an all-negative text scores 0.5
  with scikit-learn's convention that recall is 1 without positives). It is not average
  precision: it interpolates linearly between the curve's points, which rewards a ranking
  differently (up to 0.25 on one text).
- ``iou_f1`` is ERASER's ``partial_match_score`` at threshold 0.5: the selected words and the gold
  words are cut into spans (runs of consecutive words); a predicted span is a true positive when
  its IOU with some gold span is >= 0.5. Macro IOU-F1 is the F1 of the mean precision (over texts
  with a predicted span) and the mean recall (over texts with a gold span); ``iou_f1_pooled``
  counts the spans over all texts (ERASER's ``micro``).
- Pooled AUROC, average precision and AUPRC compare words across texts, so each text's scored words
  are min-max scaled to [0, 1] first (its unscored words below them all).
- Words the classifier never saw (cut by truncation) count as not selected, with the lowest score:
  an explainer cannot find what was cut off, and every explainer shares the same truncation.

Protocols that reproduce published tables (see docs/design.md, "Metric protocols"):
- ERASER (DeYoung et al. 2020): gold rule ``majority`` on multi-annotator data, words, the
  explainer's own selection or top-k by rate; ``f1``/``precision``/``recall`` (instance macro),
  ``iou_f1``, ``auprc``, ``average_precision``, ``auroc``.
- HateXplain (Mathew et al. 2021): gold rule ``union``, hateful/offensive posts only (normal posts
  carry no rationale, so they are skipped), subword tokens, a fixed top-5 (``top_k=5``);
  ``iou_f1``, token ``f1``, ``auprc``.
- ferret (Attanasio et al. 2023): gold rule ``union``, subword tokens, top-7 (``top_k=7``),
  ``auprc``, token ``f1``, IOU. Not reproduced: ferret keeps only positive scores in its top-k
  (``only_pos``); here the k highest scores are taken whatever their sign.

Subword tokens (:func:`expand_to_pieces`): the gold word mask is expanded to the word's pieces,
as ferret's ``get_true_rationale_from_words_to_tokens`` and HateXplain do, so a long word weighs as
many times as it has pieces. Explanations here are word scores (pieces pooled by each explainer),
so every piece gets its word's score; ferret scores pieces with the explainer's own per-piece
attributions, which this cannot reproduce. Ties within a word go to its first pieces in the top-k.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

IOU_THRESHOLD = 0.5


@dataclass
class PlausibilityScores:
    f1: float
    precision: float
    recall: float
    auroc: float
    average_precision: float
    auprc: float
    iou_f1: float
    f1_pooled: float
    precision_pooled: float
    recall_pooled: float
    auroc_pooled: float
    average_precision_pooled: float
    auprc_pooled: float
    iou_f1_pooled: float
    n_examples: int
    # Per annotated example, in input order: f1, precision, recall, auroc, average_precision and
    # auprc (NaN where undefined), for paired comparisons; left out of to_dict.
    per_example: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        values = asdict(self)
        del values["per_example"]
        return values


def top_k_size(rate: float, n: int) -> int:
    """k for a text of ``n`` words: max(1, rate * n rounded half up). Half up, not Python's
    half-to-even, so that k never shrinks as a text grows (rate 0.5: 2 of 3 words, 3 of 5); the
    epsilon keeps products such as 0.15 * 10 from rounding down by their last bit."""
    return max(1, math.floor(rate * n + 0.5 + 1e-9))


def top_k_mask(scores: np.ndarray, rate: float, k: int | None = None) -> np.ndarray:
    """Select the k highest-scoring words: ``k`` when given (HateXplain's top-5, ferret's top-7),
    else ``top_k_size(rate, n)`` over all n words. Only scored words are picked: a word the
    classifier never saw (NaN or another non-finite score) is never selected, even when k is
    larger than the scored words (a long text cut by truncation). Ties go to the earlier word."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    k = min(int(finite.sum()), top_k_size(rate, len(scores)) if k is None else k)
    order = np.argsort(-np.where(finite, scores, -np.inf), kind="stable")
    mask = np.zeros(len(scores), dtype=np.int8)
    mask[order[:k]] = 1
    return mask


def expand_to_pieces(values: np.ndarray, pieces: np.ndarray) -> np.ndarray:
    """Per-word values (gold mask, scores, selection) repeated once per subword piece of the word."""
    return np.repeat(np.asarray(values), np.asarray(pieces, dtype=np.int64))


def _prf(gold: np.ndarray, predicted: np.ndarray) -> tuple[float, float, float]:
    true_positive = float((gold * predicted).sum())
    precision = true_positive / predicted.sum() if predicted.sum() else 0.0
    recall = true_positive / gold.sum() if gold.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _trapezoid_auprc(gold: np.ndarray, scores: np.ndarray) -> float:
    with warnings.catch_warnings():
        # An all-negative text warns that recall is set to 1; ERASER keeps that value.
        warnings.simplefilter("ignore", UserWarning)
        precision, recall, _ = precision_recall_curve(gold, scores)
    return float(auc(recall, precision))


def _ranking(gold: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """AUROC and average precision; NaN on a single-class text, where they are undefined."""
    if gold.min() == gold.max():
        return float("nan"), float("nan")
    return float(roc_auc_score(gold, scores)), float(average_precision_score(gold, scores))


def _fill_unscored(scores: np.ndarray) -> np.ndarray:
    """Scores with every unscored word (NaN, or another non-finite value) below the text's lowest."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    if not finite.any():
        return np.zeros_like(scores)
    return np.where(finite, scores, scores[finite].min() - 1.0)


def _scaled_for_pooling(scores: np.ndarray) -> np.ndarray:
    """One text's scores min-max scaled to [0, 1] over its scored words, unscored words at -1:
    below every word of every text (scaled after filling, a text's cut words would squeeze its
    scored ones into the top of the range and shift them against other texts)."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    if not finite.any():
        return np.full_like(scores, -1.0)
    low, span = scores[finite].min(), np.ptp(scores[finite])
    scaled = (scores - low) / span if span > 0 else np.zeros_like(scores)
    return np.where(finite, scaled, -1.0)


def spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive selected positions as (start, end) with ``end`` exclusive."""
    padded = np.concatenate([[0], np.asarray(mask, dtype=np.int8) != 0, [0]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def iou_matches(gold: np.ndarray, predicted: np.ndarray) -> tuple[int, int, int]:
    """(predicted spans whose best IOU with a gold span is >= 0.5, predicted spans, gold spans)."""
    truth, guess = spans(gold), spans(predicted)
    matched = 0
    for start, end in guess:
        best = max(
            ((min(end, t_end) - max(start, t_start)) / (max(end, t_end) - min(start, t_start)) for t_start, t_end in truth),
            default=0.0,
        )
        matched += best >= IOU_THRESHOLD
    return matched, len(guess), len(truth)


def _iou_f1(counts: list[tuple[int, int, int]]) -> tuple[float, float]:
    """ERASER's macro (F1 of mean precision and mean recall) and micro IOU-F1."""
    precisions = [m / p for m, p, _ in counts if p]
    recalls = [m / t for m, _, t in counts if t]
    macro = _f1(float(np.mean(precisions)) if precisions else 0.0, float(np.mean(recalls)) if recalls else 0.0)
    matched, predicted, truth = (sum(c[i] for c in counts) for i in range(3))
    micro = _f1(matched / predicted if predicted else 0.0, matched / truth if truth else 0.0)
    return macro, micro


def _nanmean(values: np.ndarray) -> float:
    return float(np.mean(values[~np.isnan(values)])) if (~np.isnan(values)).any() else float("nan")


def plausibility(
    gold_masks: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    rationales: Sequence[np.ndarray],
) -> PlausibilityScores:
    """Scores against gold masks; ``rationales`` are the binary selections to score for F1."""
    nan = float("nan")
    if not gold_masks:
        # mypy cannot count the starred list: it fills exactly the 14 float fields before n_examples.
        return PlausibilityScores(*[nan] * 14, n_examples=0)  # type: ignore[misc, arg-type]
    rows, iou_counts = [], []
    pooled_gold, pooled_pred, pooled_scores = [], [], []
    for gold, score, rationale in zip(gold_masks, scores, rationales, strict=True):
        gold = np.asarray(gold, dtype=np.int8)
        rationale = np.nan_to_num(np.asarray(rationale, dtype=np.float64)).astype(np.int8)
        filled = _fill_unscored(score)
        rows.append((*_prf(gold, rationale), *_ranking(gold, filled), _trapezoid_auprc(gold, filled)))
        iou_counts.append(iou_matches(gold, rationale))
        pooled_gold.append(gold)
        pooled_pred.append(rationale)
        pooled_scores.append(_scaled_for_pooling(score))
    table = np.array(rows, dtype=np.float64)
    per_example = dict(zip(("precision", "recall", "f1", "auroc", "average_precision", "auprc"), table.T, strict=True))
    gold_all, pred_all, score_all = (np.concatenate(x) for x in (pooled_gold, pooled_pred, pooled_scores))
    pooled_p, pooled_r, pooled_f1 = _prf(gold_all, pred_all)
    pooled_auroc, pooled_ap = _ranking(gold_all, score_all)
    iou_macro, iou_micro = _iou_f1(iou_counts)
    return PlausibilityScores(
        f1=float(per_example["f1"].mean()),
        precision=float(per_example["precision"].mean()),
        recall=float(per_example["recall"].mean()),
        auroc=_nanmean(per_example["auroc"]),
        average_precision=_nanmean(per_example["average_precision"]),
        auprc=float(per_example["auprc"].mean()),
        iou_f1=iou_macro,
        f1_pooled=pooled_f1,
        precision_pooled=pooled_p,
        recall_pooled=pooled_r,
        auroc_pooled=pooled_auroc,
        average_precision_pooled=pooled_ap,
        auprc_pooled=_trapezoid_auprc(gold_all, score_all),
        iou_f1_pooled=iou_micro,
        n_examples=len(gold_masks),
        per_example=per_example,
    )
