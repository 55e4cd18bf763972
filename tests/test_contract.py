"""The contract every explainer keeps, checked for each registered name and the shipped ExpNets.

A new explainer joins these tests by registering: one score per word (NaN exactly where a word
is unscored), the same scores for the same seed whatever the batch, cut words unscored when a
text is longer than the classifier's ``max_length``, and explicit targets honoured. Budgets are
tiny: the contract is about shapes and bookkeeping, not estimates.
"""

from __future__ import annotations

import numpy as np
import pytest

from architectures import budgets_for
from expnet.errors import ExpnetError
from expnet.explainers import explainer_names, get_explainer
from expnet.explainers.registry import PRETRAINED, pretrained_folder
from expnet.models.classifier import Classifier

BUDGETS = {"n_samples": 4, "n_steps": 4, "max_evals": 8, "batch_size": 2, "seed": 0}
TEXTS = [
    ["the", "movie", "was", "unbelievable", "!"],
    # "\u200b" (zero width space) has no word piece: an unscored word inside the text.
    ["i", "hate", "\u200b", "this", "boring", "film"],
    ["they", "love", "you", "but", "not", "that"],
]
MAX_LENGTH = 8  # [CLS] + 6 pieces + [SEP]
LONG = ["good", "fun"] * 6  # cut after 6 pieces
NAMES = explainer_names() + sorted(PRETRAINED)


def make(name: str):
    if name in PRETRAINED:
        if not pretrained_folder(name).is_dir():
            pytest.skip(f"shipped ExpNet {name!r} is not in this checkout ({pretrained_folder(name)} is missing)")
        return get_explainer(name, **{k: v for k, v in BUDGETS.items() if k in ("batch_size", "seed")})
    return get_explainer(name, **budgets_for(name, BUDGETS))


@pytest.fixture(scope="module")
def classifier(tiny_classifier_dir) -> Classifier:
    return Classifier.load(tiny_classifier_dir, device="cpu", max_length=MAX_LENGTH)


@pytest.mark.parametrize("name", NAMES)
def test_one_score_per_word_nan_exactly_unscored(name, classifier):
    explanations = make(name).explain(classifier, TEXTS + [LONG])
    for words, explanation in zip(TEXTS + [LONG], explanations, strict=True):
        assert explanation.words == words
        assert explanation.scores.shape == (len(words),)
        np.testing.assert_array_equal(np.isnan(explanation.scores), ~explanation.scored)
    assert not explanations[1].scored[2] and explanations[1].scored[[0, 1, 3, 4, 5]].all()
    long = explanations[-1]
    assert long.truncated and long.scored.sum() == 6
    np.testing.assert_array_equal(long.cut_words, [False] * 6 + [True] * 6)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_scores_whatever_the_batch(name, classifier):
    first = [e.scores for e in make(name).explain(classifier, TEXTS)]
    again = [e.scores for e in make(name).explain(classifier, TEXTS)]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    # Another batch (another partner, other padding): the same scores up to float rounding.
    alone = make(name).explain(classifier, [TEXTS[2], TEXTS[0]])
    np.testing.assert_allclose(alone[0].scores, first[2], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(alone[1].scores, first[0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_explicit_targets(name, classifier):
    explainer = make(name)
    if not explainer.reads_the_target():  # the same scores for every class: only the prediction's
        predictions = [e.prediction for e in explainer.explain(classifier, TEXTS)]
        assert [e.target for e in explainer.explain(classifier, TEXTS, targets=predictions)] == predictions
        with pytest.raises(ExpnetError, match="scores are the same for every class"):
            explainer.explain(classifier, TEXTS, targets=[1 - p for p in predictions])
        return
    by_target = {t: explainer.explain(classifier, TEXTS, targets=[t] * len(TEXTS)) for t in (0, 1)}
    for target, explanations in by_target.items():
        assert [e.target for e in explanations] == [target] * len(TEXTS)
    if explainer.info().explains in ("logit", "probability"):
        differ = [
            not np.allclose(a.scores[a.scored], b.scores[b.scored])
            for a, b in zip(by_target[0], by_target[1], strict=True)
        ]
        assert any(differ), f"{name} explains a {explainer.info().explains} but ignores the target"
