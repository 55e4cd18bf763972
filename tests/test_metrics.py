"""Plausibility metrics against values computed by hand."""

import numpy as np
import pytest

from expnet.metrics.plausibility import plausibility, top_k_mask


def test_top_k_rounds_rate_and_keeps_at_least_one():
    scores = np.array([0.1, 0.9, 0.5, 0.7])
    assert top_k_mask(scores, 0.5).tolist() == [0, 1, 0, 1]
    assert top_k_mask(scores, 0.01).tolist() == [0, 1, 0, 0]
    # Unscored (NaN) words are never picked before scored ones.
    assert top_k_mask(np.array([np.nan, 0.2, 0.1]), 0.34).tolist() == [0, 1, 0]


def test_f1_precision_recall_by_hand():
    gold = [np.array([1, 1, 0, 0]), np.array([0, 1, 0])]
    rationale = [np.array([1, 0, 1, 0]), np.array([0, 1, 1])]
    scores = [np.array([0.9, 0.2, 0.8, 0.1]), np.array([0.1, 0.9, 0.5])]
    result = plausibility(gold, scores, rationale)
    # example 1: tp=1, P=1/2, R=1/2, F1=1/2; example 2: tp=1, P=1/2, R=1, F1=2/3
    assert result.precision == pytest.approx(0.5)
    assert result.recall == pytest.approx(0.75)
    assert result.f1 == pytest.approx((0.5 + 2 / 3) / 2)
    # pooled: tp=2, predicted=4, gold=3 -> P=1/2, R=2/3, F1=4/7
    assert result.f1_pooled == pytest.approx(4 / 7)
    # AUROC example 1: positives {0.9, 0.2} vs negatives {0.8, 0.1}: pairs won 3 of 4 -> 0.75
    # example 2: positive 0.9 beats both negatives -> 1.0
    assert result.auroc == pytest.approx((0.75 + 1.0) / 2)
    # AUPRC example 1 ranking 0.9(+) 0.8(-) 0.2(+) 0.1(-): AP = (1/1 + 2/3) / 2
    assert result.auprc == pytest.approx(((1 + 2 / 3) / 2 + 1.0) / 2)
    assert result.n_examples == 2


def test_single_class_examples_skip_ranking_but_count_for_f1():
    result = plausibility([np.array([1, 1])], [np.array([0.3, 0.2])], [np.array([1, 0])])
    assert result.f1 == pytest.approx(2 / 3)
    assert np.isnan(result.auroc)


def test_unscored_words_count_as_missed():
    gold = [np.array([1, 0, 1])]
    scores = [np.array([0.2, 0.1, np.nan])]  # last word was cut by truncation
    result = plausibility(gold, scores, [np.array([1, 0, 0])])
    assert result.recall == pytest.approx(0.5)
    # NaN is ranked below every scored word: positives {0.2, low} vs negative {0.1}: 1 of 2
    assert result.auroc == pytest.approx(0.5)
