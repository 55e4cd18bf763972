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
    # Average precision, example 1 ranking 0.9(+) 0.8(-) 0.2(+) 0.1(-): AP = (1/1 + 2/3) / 2
    assert result.average_precision == pytest.approx(((1 + 2 / 3) / 2 + 1.0) / 2)
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


def test_seen_window_scores_only_the_words_the_classifier_saw():
    from expnet.evaluation import seen_window_scores

    gold = [np.array([1, 0, 1, 1]), np.array([0, 0, 1]), np.array([1, 0])]
    scores = [np.array([0.2, 0.1, np.nan, np.nan]), np.array([0.5, 0.4, np.nan]), np.array([0.3, 0.9])]
    seen = [np.array([1, 1, 0, 0], bool), np.array([1, 1, 0], bool), np.array([1, 1], bool)]
    result = seen_window_scores(gold, scores, seen, rate=0.5)
    # Text 2's only gold word was cut off: left out. Text 1 within its window: gold [1, 0], scores
    # [0.2, 0.1] -> top-1 picks word 0: F1 1, AUROC 1. Text 3: top-1 picks word 1 (0.9): F1 0, AUROC 0.
    assert result["n_examples_seen"] == 2
    assert result["n_truncated"] == 2
    assert result["f1_topk_seen"] == pytest.approx(0.5)
    assert result["auroc_seen"] == pytest.approx(0.5)
    # Without truncation the seen view is the main one.
    untouched = seen_window_scores([gold[2]], [scores[2]], [seen[2]], rate=0.5)
    main = plausibility([gold[2]], [scores[2]], [top_k_mask(scores[2], 0.5)])
    assert (untouched["f1_topk_seen"], untouched["auroc_seen"]) == (main.f1, main.auroc)
