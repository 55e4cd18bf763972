"""Faithfulness metrics by hand, on a bag-of-words classifier whose every probability we know.

The model: logit(class 0) = 0, logit(class 1) = sum of a weight per token present, so
p(class 1) = sigmoid(sum). Position plays no part, so deletion only differs from masking by the
[MASK] token's own weight (0.5 here).
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import BertTokenizerFast

from conftest import VOCAB
from expnet.errors import ExpnetError
from expnet.metrics.faithfulness import (
    DEFAULT_BINS,
    FaithfulnessScores,
    faithfulness,
    kendall_against,
    leave_one_out,
    words_for_bin,
)
from expnet.models.classifier import Classifier

WEIGHTS = {"good": 2.0, "bad": -1.0, "fun": 1.0, "the": 0.0, "[MASK]": 0.5, "un": 1.0, "##believ": 1.0, "##able": 1.0}
MASK = WEIGHTS["[MASK]"]


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class BagOfWords(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        weights = torch.zeros(len(VOCAB))
        for token, value in WEIGHTS.items():
            weights[VOCAB.index(token)] = value
        self.weights = torch.nn.Parameter(weights, requires_grad=False)
        self.config = SimpleNamespace(num_labels=2, id2label={0: "neg", 1: "pos"}, num_hidden_layers=1, num_attention_heads=1)

    def forward(self, input_ids, attention_mask, token_type_ids=None, output_attentions=False, **_):
        total = (self.weights[input_ids] * attention_mask).sum(-1)
        return SimpleNamespace(logits=torch.stack([torch.zeros_like(total), total], -1), attentions=None)

    def get_input_embeddings(self):
        raise NotImplementedError


@pytest.fixture(scope="module")
def bag() -> Classifier:
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(VOCAB)}, do_lower_case=True)
    return Classifier.from_parts(BagOfWords(), tokenizer, max_length=32)


WORDS = ["good", "bad", "fun", "the"]  # logit 2 - 1 + 1 + 0 = 2
SCORES = np.array([3.0, 0.0, 2.0, 1.0])  # ranking: good, fun, the, bad


def test_words_for_bin():
    assert [words_for_bin(4, b) for b in DEFAULT_BINS] == [1, 1, 1, 1, 2]
    assert [words_for_bin(20, b) for b in DEFAULT_BINS] == [1, 1, 2, 4, 10]
    assert words_for_bin(3, 0.5) == 2 and words_for_bin(1, 0.5) == 1 and words_for_bin(0, 0.5) == 0


def test_comprehensiveness_and_sufficiency_by_deletion(bag):
    result = faithfulness(bag, [WORDS], [SCORES], [1], removal="delete", bins=(0.25, 0.5))
    full = sigmoid(2.0)
    # 25%: remove "good" -> logit 0; 50%: remove "good", "fun" -> logit -1.
    removed = [sigmoid(0.0), sigmoid(-1.0)]
    # 25%: keep only "good" -> 2; 50%: keep "good", "fun" -> 3.
    kept = [sigmoid(2.0), sigmoid(3.0)]
    assert result.full[0] == pytest.approx(full)
    np.testing.assert_allclose(result.removed[0], removed)
    np.testing.assert_allclose(result.kept[0], kept)
    comp = np.mean([full - r for r in removed])
    suff = np.mean([full - k for k in kept])
    assert result.comprehensiveness == pytest.approx(comp)
    assert result.sufficiency == pytest.approx(suff)
    assert result.deletion_curve() == pytest.approx([full, *removed])
    assert math.isnan(result.kendall_tau)  # not asked for


def test_comprehensiveness_and_sufficiency_by_masking(bag):
    result = faithfulness(bag, [WORDS], [SCORES], [1], removal="mask", bins=(0.25, 0.5))
    full = sigmoid(2.0)
    # Every removed word becomes one [MASK] worth 0.5.
    removed = [sigmoid(0.0 + MASK), sigmoid(-1.0 + 2 * MASK)]
    kept = [sigmoid(2.0 + 3 * MASK), sigmoid(3.0 + 2 * MASK)]
    np.testing.assert_allclose(result.removed[0], removed)
    np.testing.assert_allclose(result.kept[0], kept)
    assert result.comprehensiveness == pytest.approx(np.mean([full - r for r in removed]))
    assert result.sufficiency == pytest.approx(np.mean([full - k for k in kept]))


def test_default_bins_and_target_class_zero(bag):
    # Bins 1/5/10/20% remove 1 word of 4, 50% removes 2; class 0 has p = 1 - sigmoid(logit).
    result = faithfulness(bag, [WORDS], [SCORES], [0], removal="delete")
    full = 1 - sigmoid(2.0)
    removed = [1 - sigmoid(0.0)] * 4 + [1 - sigmoid(-1.0)]
    assert result.comprehensiveness == pytest.approx(np.mean([full - r for r in removed]))
    kept = [1 - sigmoid(2.0)] * 4 + [1 - sigmoid(3.0)]
    assert result.sufficiency == pytest.approx(np.mean([full - k for k in kept]))
    np.testing.assert_allclose(result.comprehensiveness_per_bin(), [full - r for r in removed])


def test_multi_piece_word_is_removed_whole(bag):
    # "unbelievable" = un ##believ ##able, 3 pieces worth 1 each.
    words, scores = ["unbelievable", "the"], np.array([1.0, 0.0])
    deleted = faithfulness(bag, [words], [scores], [1], removal="delete", bins=(0.5,))
    masked = faithfulness(bag, [words], [scores], [1], removal="mask", bins=(0.5,))
    assert deleted.full[0] == pytest.approx(sigmoid(3.0))
    assert deleted.removed[0, 0] == pytest.approx(sigmoid(0.0))
    assert masked.removed[0, 0] == pytest.approx(sigmoid(3 * MASK))
    assert masked.kept[0, 0] == pytest.approx(sigmoid(3.0 + MASK))


def test_leave_one_out_and_kendall(bag):
    loo = leave_one_out(bag, [WORDS], [1], removal="mask")[0]
    full = sigmoid(2.0)
    expected = [full - sigmoid(0.0 + MASK), full - sigmoid(3.0 + MASK), full - sigmoid(1.0 + MASK), full - sigmoid(2.0 + MASK)]
    np.testing.assert_allclose(loo, expected, atol=1e-6)  # float32 model
    # LOO ranks good > fun > the > bad, exactly like SCORES: tau = 1; reversed: -1.
    same = faithfulness(bag, [WORDS], [SCORES], [1], removal="mask", kendall=True)
    assert same.kendall_tau == pytest.approx(1.0)
    reverse = faithfulness(bag, [WORDS], [-SCORES], [1], removal="mask", loo=[loo])
    assert reverse.kendall_tau == pytest.approx(-1.0)
    # One adjacent pair swapped (fun <-> the): 5 concordant, 1 discordant of 6 -> 4/6.
    swapped = np.array([3.0, 0.0, 1.0, 2.0])
    assert kendall_against(swapped, loo) == pytest.approx(2 / 3)
    assert math.isnan(kendall_against(np.ones(4), loo))


def test_truncated_words_are_never_ranked_or_removed(bag):
    # max_length 5 = [CLS] good bad fun [SEP]: "the" is cut off, so its high score is ignored.
    short = Classifier.from_parts(bag.model, bag.tokenizer, max_length=5)
    scores = np.array([1.0, 0.5, 0.0, 9.0])
    result = faithfulness(short, [WORDS], [scores], [1], removal="delete", bins=(0.2,))
    assert result.full[0] == pytest.approx(sigmoid(2.0))
    assert result.removed[0, 0] == pytest.approx(sigmoid(0.0))  # "good" removed, not "the"
    assert result.kept[0, 0] == pytest.approx(sigmoid(2.0))  # only "good" kept of what was seen
    loo = leave_one_out(short, [WORDS], [1], removal="delete")[0]
    assert math.isnan(loo[3]) and loo[0] == pytest.approx(sigmoid(2.0) - sigmoid(0.0), abs=1e-6)


def test_batching_padding_and_subsets(bag):
    texts = [WORDS, ["good"], ["bad", "fun", "unbelievable", "the", "good"], ["the", "fun"]]
    rng = np.random.default_rng(0)
    scores = [rng.normal(size=len(t)) for t in texts]
    targets = [1, 0, 1, 1]
    one = faithfulness(bag, texts, scores, targets, removal="delete", batch_size=1, kendall=True)
    many = faithfulness(bag, texts, scores, targets, removal="delete", batch_size=7, kendall=True)
    np.testing.assert_allclose(one.removed, many.removed)
    np.testing.assert_allclose(one.kept, many.kept)
    np.testing.assert_allclose(one.kendall, many.kendall, equal_nan=True)
    # A one-word text: removing its only word leaves [CLS][SEP] (logit 0).
    assert one.removed[1, -1] == pytest.approx(0.5)
    assert math.isnan(one.kendall[1])
    sub = one.subset([0])
    single = faithfulness(bag, [texts[0]], [scores[0]], [1], removal="delete", kendall=True)
    assert sub.comprehensiveness == pytest.approx(single.comprehensiveness)
    back = FaithfulnessScores.from_arrays(one.to_arrays())
    assert back.to_arrays() == one.to_arrays()


def test_bad_arguments(bag):
    with pytest.raises(ExpnetError, match="removal"):
        faithfulness(bag, [WORDS], [SCORES], [1], removal="zero")
    with pytest.raises(ExpnetError, match="bins"):
        faithfulness(bag, [WORDS], [SCORES], [1], bins=(0.0,))
    with pytest.raises(ValueError, match="scores"):
        faithfulness(bag, [WORDS], [SCORES[:2]], [1])


def test_many_explainers_share_rows_and_match_single_runs(bag):
    texts = [WORDS, ["good", "fun"], ["bad", "the", "unbelievable"]]
    rng = np.random.default_rng(1)
    first = [rng.normal(size=len(t)) for t in texts]
    second = [rng.normal(size=len(t)) for t in texts[:2]]  # a prefix subset, like slow explainers
    from expnet.metrics.faithfulness import faithfulness_many

    both = faithfulness_many(bag, texts, {"a": first, "b": second}, [1, 0, 1], removal="mask", kendall=True)
    alone_a = faithfulness(bag, texts, first, [1, 0, 1], removal="mask", kendall=True)
    alone_b = faithfulness(bag, texts[:2], second, [1, 0], removal="mask", kendall=True)
    assert both["a"].to_arrays() == alone_a.to_arrays()
    assert both["b"].to_arrays() == alone_b.to_arrays() and both["b"].n_examples == 2


def test_leave_one_out_is_occlusion_exactly(tiny_classifier):
    from expnet.explainers import get_explainer

    texts = [["unbelievable", "movie", "good", "!"], ["the", "film", "was", "not", "very", "boring"], ["fun"]]
    occlusion = get_explainer("occlusion", perturbations_per_eval=8).explain(tiny_classifier, texts)
    loo = leave_one_out(tiny_classifier, texts, [e.target for e in occlusion], removal="mask", batch_size=8)
    for explanation, importance in zip(occlusion, loo, strict=True):
        np.testing.assert_array_equal(importance, explanation.scores)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_masking_a_decoders_last_word_is_leave_one_out_not_deletion(arch, tmp_path):
    # A decoder masks with its pad token, which its head skips on input ids: masking the last word
    # once deleted it (Llama: comprehensiveness 0.06 against leave-one-out's 0.78).
    from architectures import ARCHITECTURES

    classifier = Classifier.load(ARCHITECTURES[arch](tmp_path / arch, initializer_range=0.5), device="cpu")
    words = "the movie was not very good".split()
    target = int(classifier.predict_logits(classifier.encode([words])).argmax())
    last_first = np.arange(len(words), dtype=float)
    for removal in ("mask", "delete"):
        result = faithfulness(classifier, [words, words[:3]], [last_first, last_first[:3]], [target, target], removal=removal, bins=(0.01,))
        alone = leave_one_out(classifier, [words], [target], removal=removal)[0]
        assert result.full[0] - result.removed[0, 0] == pytest.approx(alone[-1], abs=1e-5)
    masked = faithfulness(classifier, [words], [last_first], [target], removal="mask", bins=(0.01,)).removed[0, 0]
    deleted = faithfulness(classifier, [words], [last_first], [target], removal="delete", bins=(0.01,)).removed[0, 0]
    assert abs(masked - deleted) > 1e-3


def test_the_sufficiency_row_drops_the_pieces_of_a_word_cut_in_two(tiny_classifier_dir, monkeypatch):
    # [CLS] the movie was good un ##believ [SEP]: "unbelievable" is cut after two of its pieces,
    # so it is unscored, yet those pieces are in the text; only "good" may remain beside specials.
    from expnet.metrics.faithfulness import _RowRunner

    classifier = Classifier.load(tiny_classifier_dir, device="cpu", max_length=8)
    words = ["the", "movie", "was", "good", "unbelievable", "fun"]
    rows = []
    real_run = _RowRunner.run
    monkeypatch.setattr(_RowRunner, "run", lambda self: (rows.extend(ids for ids, _ in self.rows), real_run(self))[1])
    faithfulness(classifier, [words], [np.array([0.1, 0.2, 0.3, 0.9, np.nan, np.nan])], [0], removal="delete", bins=(0.25,))
    kept = classifier.tokenizer.convert_ids_to_tokens(rows[-1])  # rows: full, top removed, top kept
    assert kept == ["[CLS]", "good", "[SEP]"]
