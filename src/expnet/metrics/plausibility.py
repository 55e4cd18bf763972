"""Word-level agreement between an explanation and a human rationale.

Conventions (documented because peers differ):
- F1, precision and recall of a binary rationale are computed per example and averaged
  (ERASER), and also pooled over all words ("*_pooled").
- AUROC and AUPRC of the continuous scores are computed per example and averaged over examples
  whose gold mask has both classes (scores are only compared within a text, so explainers whose
  scale changes with text length are not penalised); pooled versions are reported too.
- Words the classifier never saw (cut by truncation) count as not selected, with the lowest score:
  an explainer cannot find what was cut off, and every explainer shares the same truncation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score


@dataclass
class PlausibilityScores:
    f1: float
    precision: float
    recall: float
    auroc: float
    auprc: float
    f1_pooled: float
    precision_pooled: float
    recall_pooled: float
    auroc_pooled: float
    auprc_pooled: float
    n_examples: int

    def to_dict(self) -> dict:
        return asdict(self)


def top_k_mask(scores: np.ndarray, rate: float) -> np.ndarray:
    """Select the k = max(1, round(rate * n)) highest-scoring words; NaN scores are never picked
    unless there is nothing else. Ties go to the earlier word (stable order)."""
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    k = min(n, max(1, round(rate * n)))
    filled = np.where(np.isnan(scores), -np.inf, scores)
    order = np.argsort(-filled, kind="stable")
    mask = np.zeros(n, dtype=np.int8)
    mask[order[:k]] = 1
    return mask


def _prf(gold: np.ndarray, predicted: np.ndarray) -> tuple[float, float, float]:
    true_positive = float((gold * predicted).sum())
    precision = true_positive / predicted.sum() if predicted.sum() else 0.0
    recall = true_positive / gold.sum() if gold.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _ranking(gold: np.ndarray, scores: np.ndarray) -> tuple[float, float] | None:
    if gold.min() == gold.max():
        return None
    return float(roc_auc_score(gold, scores)), float(average_precision_score(gold, scores))


def _fill_unscored(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if np.isnan(scores).all():
        return np.zeros_like(scores)
    low = np.nanmin(scores) - 1.0
    return np.where(np.isnan(scores), low, scores)


def plausibility(
    gold_masks: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    rationales: Sequence[np.ndarray],
) -> PlausibilityScores:
    """Scores against gold masks; ``rationales`` are the binary selections to score for F1."""
    if not gold_masks:
        nan = float("nan")
        return PlausibilityScores(nan, nan, nan, nan, nan, nan, nan, nan, nan, nan, 0)
    per_example, rankings = [], []
    pooled_gold, pooled_pred, pooled_scores = [], [], []
    for gold, score, rationale in zip(gold_masks, scores, rationales, strict=True):
        gold = np.asarray(gold, dtype=np.int8)
        rationale = np.nan_to_num(np.asarray(rationale, dtype=np.float64)).astype(np.int8)
        filled = _fill_unscored(score)
        per_example.append(_prf(gold, rationale))
        ranking = _ranking(gold, filled)
        if ranking is not None:
            rankings.append(ranking)
        pooled_gold.append(gold)
        pooled_pred.append(rationale)
        # Pooled ranking compares words across texts, so scores are min-max scaled per text.
        span = filled.max() - filled.min()
        pooled_scores.append((filled - filled.min()) / span if span > 0 else np.zeros_like(filled))
    precision, recall, f1 = np.mean(per_example, axis=0)
    gold_all, pred_all, score_all = (np.concatenate(x) for x in (pooled_gold, pooled_pred, pooled_scores))
    pooled_p, pooled_r, pooled_f1 = _prf(gold_all, pred_all)
    pooled_rank = _ranking(gold_all, score_all) or (float("nan"), float("nan"))
    auroc, auprc = np.mean(rankings, axis=0) if rankings else (float("nan"), float("nan"))
    return PlausibilityScores(
        f1=float(f1),
        precision=float(precision),
        recall=float(recall),
        auroc=float(auroc),
        auprc=float(auprc),
        f1_pooled=pooled_f1,
        precision_pooled=pooled_p,
        recall_pooled=pooled_r,
        auroc_pooled=pooled_rank[0],
        auprc_pooled=pooled_rank[1],
        n_examples=len(gold_masks),
    )
