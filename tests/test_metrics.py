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


def test_top_k_never_selects_a_word_the_classifier_did_not_see():
    # k = 3 of 6 words, but only 3 were read; the cut words 3-4 are gold (a long review's tail).
    scores, gold = np.array([3.0, 2.0, 1.0, np.nan, np.nan, np.nan]), np.array([0, 0, 0, 1, 1, 0])
    mask = top_k_mask(scores, 0.5, k=5)
    assert mask.tolist() == [1, 1, 1, 0, 0, 0]
    assert plausibility([gold], [scores], [mask]).f1 == 0.0  # 0.571 when the cut words were picked
    # Infinite scores are unscored too (as Explanation.to_dict saves them), not a scikit-learn error.
    infinite = np.array([np.inf, 0.2, -np.inf, 0.1])
    assert top_k_mask(infinite, 0.5).tolist() == [0, 1, 0, 1]
    # Both infinities below 0.1: positives {0.2, low} against negatives {low, 0.1}: 2 + 0.5 of 4.
    assert plausibility([np.array([0, 1, 1, 0])], [infinite], [top_k_mask(infinite, 0.5)]).auroc == pytest.approx(0.625)
    assert top_k_mask(np.full(3, np.nan), 0.5).tolist() == [0, 0, 0]


def test_top_k_rounds_half_up_so_k_never_shrinks_as_a_text_grows():
    from expnet.metrics.plausibility import top_k_size

    assert [top_k_size(0.5, n) for n in (1, 3, 5, 7, 9)] == [1, 2, 3, 4, 5]  # half-to-even: 0, 2, 2, 4, 4
    assert top_k_size(0.15, 10) == 2 and top_k_size(0.35, 20) == 7 and top_k_size(0.01, 10) == 1


def test_pooled_ranking_scales_each_texts_scored_words_not_its_cut_ones():
    gold = [np.array([0, 1, 0]), np.array([0, 1, 0])]
    scores = [np.array([0.0, 1.0, np.nan]), np.array([0.0, 0.4, 1.0])]
    # Text A scaled over its read words: 0, 1 (cut word below everything); text B: 0, 0.4, 1.
    # Positives {1, 0.4} against negatives {0, -1 (cut), 0, 1}: 1 wins 3 and ties 1, 0.4 wins 3.
    assert plausibility(gold, scores, [np.zeros(3)] * 2).auroc_pooled == pytest.approx(6.5 / 8)


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
    result, per_example = seen_window_scores(gold, scores, seen, rate=0.5)
    # Text 2's only gold word was cut off: left out. Text 1 within its window: gold [1, 0], scores
    # [0.2, 0.1] -> top-1 picks word 0: F1 1, AUROC 1. Text 3: top-1 picks word 1 (0.9): F1 0, AUROC 0.
    assert result["n_examples_seen"] == 2
    assert result["f1_topk_seen"] == pytest.approx(0.5)
    assert result["auroc_seen"] == pytest.approx(0.5)
    # Per example, aligned with the inputs; the left-out text is NaN (a comparison drops its pair).
    np.testing.assert_array_equal(per_example["f1_topk_seen"], [1.0, np.nan, 0.0])
    np.testing.assert_array_equal(per_example["auroc_seen"], [1.0, np.nan, 0.0])
    # Without truncation the seen view is the main one.
    untouched, _ = seen_window_scores([gold[2]], [scores[2]], [seen[2]], rate=0.5)
    main = plausibility([gold[2]], [scores[2]], [top_k_mask(scores[2], 0.5)])
    assert (untouched["f1_topk_seen"], untouched["auroc_seen"]) == (main.f1, main.auroc)


def test_auprc_is_erasers_trapezoid_over_every_text_and_average_precision_skips_single_class():
    from expnet.metrics.plausibility import plausibility as score

    gold = [np.array([1, 1, 0, 0]), np.array([0, 0])]
    scores = [np.array([0.9, 0.2, 0.8, 0.1]), np.array([0.3, 0.1])]
    result = score(gold, scores, [np.array([1, 0, 0, 0]), np.array([1, 0])])
    # Text 1, ranking 0.9(+) 0.8(-) 0.2(+): PR points (recall, precision) (0, 1), (1/2, 1),
    # (1/2, 1/2), (1, 2/3); trapezoids 1/2 * 1 + 0 + 1/2 * (1/2 + 2/3) / 2 = 19/24, while average
    # precision is (1 + 2/3) / 2 = 5/6. Text 2 has no gold word: recall is 1 at every threshold and
    # precision 0 then 1 at recall 0 -> area 1/2 for AUPRC; undefined (skipped) for AP and AUROC.
    assert result.auprc == pytest.approx((19 / 24 + 0.5) / 2)
    assert result.average_precision == pytest.approx(5 / 6)
    assert result.per_example["auprc"] == pytest.approx([19 / 24, 0.5])
    assert np.isnan(result.per_example["auroc"][1])


def test_iou_f1_matches_spans_at_half_overlap_erasers_macro_and_micro():
    from expnet.metrics.plausibility import spans

    assert spans(np.array([0, 1, 1, 0, 1])) == [(1, 3), (4, 5)]
    gold = [np.array([1, 1, 0, 0, 1, 0]), np.array([0, 1, 1, 1]), np.array([0, 0, 0])]
    picked = [np.array([1, 0, 0, 1, 1, 1]), np.array([0, 1, 1, 0]), np.array([1, 0, 0])]
    result = plausibility(gold, [p.astype(float) for p in picked], picked)
    # Text 1: gold spans [0,2) [4,5); predicted [0,1) (IOU 1/2: a match) and [3,6) (IOU 1/3: not).
    # P 1/2, R 1/2. Text 2: [1,3) vs [1,4), IOU 2/3: P 1, R 1. Text 3: one predicted span, no gold
    # span: P 0, and no recall (ERASER averages recall over texts with gold spans).
    # Macro: mean P 1/2, mean R 3/4 -> F1 = 2 * 1/2 * 3/4 / (5/4) = 3/5.
    assert result.iou_f1 == pytest.approx(0.6)
    # Micro: 2 matches of 4 predicted and 3 gold spans: P 1/2, R 2/3 -> 4/7.
    assert result.iou_f1_pooled == pytest.approx(4 / 7)


def test_fixed_top_k_overrides_the_rate():
    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.3])
    assert top_k_mask(scores, 0.2, k=3).tolist() == [0, 1, 1, 1, 0]
    assert top_k_mask(scores, 0.2, k=7).tolist() == [1, 1, 1, 1, 1]


def _run(scores, rationale=None):
    from expnet.evaluation import ExplainerRun
    from expnet.explainers.base import Explanation

    explanation = Explanation(
        words=["a", "bcd", "e"], scores=np.asarray(scores, float), scored=np.ones(3, bool), target=0,
        prediction=0, probabilities=np.array([1.0, 0.0]), explainer="fake", rationale=rationale,
    )
    return ExplainerRun("fake", [explanation], 1.0)


def test_subword_scoring_expands_gold_and_scores_to_pieces():
    from expnet.data.records import RationaleExample
    from expnet.evaluation import score_run

    example = RationaleExample("x", "t", ["a", "bcd", "e"], 0, ("n", "p"), rationales=[[0, 1, 0]])
    run = _run([0.9, 0.5, 0.1])
    words = score_run(run, [example], rate=0.2, gold_rule="majority", top_k=3)
    # Words: top-3 of 3 selects everything: P 1/3, R 1, F1 1/2.
    assert words["f1_topk"] == pytest.approx(0.5)
    pieces = score_run(run, [example], rate=0.2, gold_rule="majority", top_k=3, pieces=[np.array([1, 3, 1])])
    # Pieces: gold [0, 1, 1, 1, 0], scores [0.9, 0.5, 0.5, 0.5, 0.1]; top-3 = the first piece and
    # two pieces of "bcd": P 2/3, R 2/3, F1 2/3. AUROC: each gold piece beats 0.1, loses to 0.9.
    assert pieces["f1_topk"] == pytest.approx(2 / 3)
    assert pieces["auroc"] == pytest.approx(0.5)
    assert pieces["per_example"] == {
        "ids": ["x"], "f1": [pytest.approx(2 / 3)], "f1_topk": [pytest.approx(2 / 3)], "auroc": [0.5],
        # Every word was read: the seen view is the main one.
        "f1_topk_seen": [pytest.approx(2 / 3)], "auroc_seen": [0.5],
    }
    # An explainer's own rationale is expanded too: "bcd" selected -> its three pieces, F1 1.
    own = score_run(_run([0.9, 0.5, 0.1], np.array([0, 1, 0])), [example], 0.2, "majority", pieces=[np.array([1, 3, 1])])
    assert own["f1"] == pytest.approx(1.0) and own["iou_f1"] == pytest.approx(1.0)


def test_an_example_whose_gold_rationale_is_empty_is_not_scored():
    from expnet.data.records import RationaleExample
    from expnet.evaluation import ExplainerRun, score_run

    # Three annotators marking disjoint words (HateXplain test post 9183625_gab): empty majority.
    disjoint = RationaleExample("d", "t", ["a", "bcd", "e"], 0, ("n", "p"), rationales=[[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    marked = RationaleExample("m", "t", ["a", "bcd", "e"], 0, ("n", "p"), rationales=[[0, 1, 0]])
    one = _run([0.1, 0.9, 0.2])
    run = ExplainerRun("fake", one.explanations * 2, 1.0)
    scores = score_run(run, [disjoint, marked], rate=0.34, gold_rule="majority")
    assert scores["per_example"]["ids"] == ["m"] and scores["f1_topk"] == pytest.approx(1.0)  # F1 0.5 with it
    assert score_run(run, [disjoint, marked], rate=0.34, gold_rule="union")["per_example"]["ids"] == ["d", "m"]


def test_a_word_without_subword_tokens_is_not_counted_as_truncation():
    from dataclasses import replace

    from expnet.data.records import RationaleExample
    from expnet.evaluation import ExplainerRun, score_run

    example = RationaleExample("x", "t", ["a", "bcd", "e"], 0, ("n", "p"), rationales=[[0, 1, 0]])
    fake = _run([0.9, 0.5, 0.1]).explanations[0]
    dropped = replace(fake, scores=np.array([0.9, 0.5, np.nan]), scored=np.array([True, True, False]), cut=np.zeros(3, bool))
    assert score_run(ExplainerRun("fake", [dropped], 1.0), [example], 0.34, "majority")["n_truncated"] == 0
    cut = replace(dropped, cut=np.array([False, False, True]))
    assert score_run(ExplainerRun("fake", [cut], 1.0), [example], 0.34, "majority")["n_truncated"] == 1


def test_subword_pieces_are_counted_on_the_whole_text(tiny_classifier):
    from expnet.evaluation import subword_pieces

    # un ##believ ##able, film ##s, movie; the words past the classifier's 32 tokens keep their count.
    long_text = ["unbelievable", "films", "movie"] + ["funs"] * 40
    pieces = subword_pieces(tiny_classifier, [long_text, ["this", "films"]])
    assert pieces[0].tolist() == [3, 2, 1] + [2] * 40
    assert pieces[1].tolist() == [1, 2]


def test_evaluate_keeps_the_explainers_batch_size_unless_the_caller_gives_one(tiny_classifier, monkeypatch):
    from expnet.data.records import RationaleExample
    from expnet.evaluation import evaluate
    from expnet.explainers import get_explainer
    from expnet.explainers.random_baseline import RandomExplainer

    seen = []
    explain_batch = RandomExplainer.explain_batch

    def recording(self, classifier, batch, targets):
        seen.append(batch.batch_size)
        return explain_batch(self, classifier, batch, targets)

    monkeypatch.setattr(RandomExplainer, "explain_batch", recording)
    examples = [RationaleExample(str(i), "toy", ["good", "movie", "fun"], 0, ("a", "b"), [[1, 0, 0]]) for i in range(5)]
    explainer = get_explainer("random", batch_size=2)
    evaluate(tiny_classifier, examples, {"random": explainer}, rationale_rate=0.3)
    assert seen[1:] == [2, 2, 1]  # after the one-text warm-up: the explainer's own batch size
    seen.clear()
    evaluate(tiny_classifier, examples, {"random": explainer}, rationale_rate=0.3, batch_size=4)
    assert seen[1:] == [4, 1] and explainer.batch_size == 2  # the caller's, on a copy


def test_forward_pass_batches_by_length_and_returns_predictions_in_input_order(tiny_classifier, monkeypatch):
    from expnet.evaluation import forward_pass

    texts = [["good"] * n for n in (9, 1, 7, 2, 8, 1)] + [["bad", "movie"]]
    expected = [int(tiny_classifier.predict_logits(tiny_classifier.encode([t])).argmax(-1)) for t in texts]
    widths = []
    predict = tiny_classifier.predict_logits
    monkeypatch.setattr(tiny_classifier, "predict_logits", lambda batch: widths.append(batch.input_ids.shape[1]) or predict(batch))
    predictions, speed = forward_pass(tiny_classifier, texts, batch_size=2)
    assert predictions.tolist() == expected and speed > 0
    # After the warm-up, neighbours by length: the two one-word texts share a short batch.
    assert widths[1] == 3 and sorted(widths[1:]) == widths[1:]
