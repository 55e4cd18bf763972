"""Gradient explainers (Captum on inputs_embeds): completeness, hand-computed gradients, seeds,
one finite score per word, and every architecture."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from architectures import ARCHITECTURES, BUILDERS, budgets_for, build_bert, check_one_score_per_word
from expnet.errors import IncompleteAttributionWarning
from expnet.explainers import get_explainer
from expnet.explainers.gradient import baseline_embeddings
from expnet.models.classifier import Classifier
from expnet.models.gradients import input_embeddings

GRADIENT = ["saliency", "input_x_gradient", "integrated_gradients", "smoothgrad"]
SMALL = {"n_steps": 4, "n_samples": 3}
# Different lengths, a word split into three pieces, punctuation glued to words.
TEXTS = [["Unbelievable", "movie.", "good!"], ["the", "film", "was", "not", "very", "boring"], ["fun"]]


@pytest.fixture(scope="module")
def sharp_bert(tmp_path_factory) -> Classifier:
    """A tiny BERT with large random weights, so that it is far from linear in its inputs."""
    folder = build_bert(tmp_path_factory.mktemp("sharp-bert"), initializer_range=0.5)
    return Classifier.load(folder, device="cpu", max_length=32)


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def architecture(request, tmp_path_factory) -> Classifier:
    folder = BUILDERS[request.param](tmp_path_factory.mktemp(request.param))
    return Classifier.load(folder, device="cpu", max_length=32)


def completeness_gaps(classifier, n_steps):
    batch = classifier.encode(TEXTS)
    with torch.no_grad():
        at_input = classifier.forward(batch).logits
        at_baseline = classifier.forward(batch, inputs_embeds=baseline_embeddings(classifier, batch)).logits
    explanations = get_explainer("integrated_gradients", n_steps=n_steps).explain(classifier, TEXTS)
    gaps = []
    for i, e in enumerate(explanations):
        difference = (at_input[i, e.target] - at_baseline[i, e.target]).item()
        gaps.append(abs(np.nansum(e.scores) - difference))
    return max(gaps), (at_input - at_baseline).abs().max().item()


def test_integrated_gradients_completeness_gap_shrinks_with_steps(sharp_bert):
    gap_1, difference = completeness_gaps(sharp_bert, 1)
    gap_4, _ = completeness_gaps(sharp_bert, 4)
    gap_50, _ = completeness_gaps(sharp_bert, 50)
    assert difference > 0.05  # the model output really moves between baseline and input
    assert gap_1 > gap_4 > gap_50
    # Word scores add up to f(x) - f(PAD baseline): specials and padding get nothing.
    assert gap_50 < 1e-3 * max(1.0, difference)


def warns_incomplete(classifier, n_steps) -> bool:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        get_explainer("integrated_gradients", n_steps=n_steps).explain(classifier, TEXTS)
    return any(issubclass(w.category, IncompleteAttributionWarning) for w in caught)


def misses_completeness(classifier, n_steps) -> bool:
    """Brute force: does some text's score sum miss f(x) - f(baseline) by more than 10% (0.01 at least)?"""
    batch = classifier.encode(TEXTS)
    with torch.no_grad():
        at_input = classifier.forward(batch).logits
        at_baseline = classifier.forward(batch, inputs_embeds=baseline_embeddings(classifier, batch)).logits
    explanations = get_explainer("integrated_gradients", n_steps=n_steps).explain(classifier, TEXTS)
    differences = [(at_input[i, e.target] - at_baseline[i, e.target]).item() for i, e in enumerate(explanations)]
    return any(
        abs(np.nansum(e.scores) - d) > max(0.1 * abs(d), 0.01) for e, d in zip(explanations, differences, strict=True)
    )


def test_integrated_gradients_warns_exactly_when_its_scores_miss_completeness(sharp_bert, tmp_path):
    # A tiny Qwen2 (RMSNorm, zero [PAD] embedding) needs about 64 steps; the sharp BERT more.
    qwen2 = Classifier.load(ARCHITECTURES["qwen2"](tmp_path), device="cpu", max_length=32)
    cases = [(classifier, n) for classifier in (sharp_bert, qwen2) for n in (1, 4, 16, 256)]
    missed = [misses_completeness(classifier, n) for classifier, n in cases]
    assert True in missed and False in missed  # both kinds of case, or the test could not fail
    assert [warns_incomplete(classifier, n) for classifier, n in cases] == missed


def test_input_x_gradient_matches_autograd_for_explicit_targets(sharp_bert):
    texts, targets = TEXTS[:2], [1, 0]
    batch = sharp_bert.encode(texts)
    embeddings = input_embeddings(sharp_bert, batch).requires_grad_(True)
    logits = sharp_bert.forward(batch, inputs_embeds=embeddings).logits
    (grad,) = torch.autograd.grad(logits[0, 1] + logits[1, 0], embeddings)
    token_scores = (embeddings * grad).sum(-1).detach()
    explanations = get_explainer("input_x_gradient").explain(sharp_bert, texts, targets=targets)
    for i, e in enumerate(explanations):
        expected = [token_scores[i][batch.token_word[i] == w].sum().item() for w in range(len(texts[i]))]
        np.testing.assert_allclose(e.scores, expected, rtol=1e-4, atol=1e-6)
        assert e.target == targets[i]


def test_saliency_explains_the_predicted_class_from_its_one_pass(tmp_path):
    """Saliency takes the target and the logits it reports from the pass it differentiates: the
    scores must be the L2 norm of d(predicted logit)/d(embedding), and the probabilities a plain
    forward pass's."""
    # Seed 1: a sharp BERT that predicts class 0 for two texts and 1 for the third.
    classifier = Classifier.load(build_bert(tmp_path, seed=1, initializer_range=0.5), device="cpu", max_length=32)
    batch = classifier.encode(TEXTS)
    embeddings = input_embeddings(classifier, batch).requires_grad_(True)
    logits = classifier.forward(batch, inputs_embeds=embeddings).logits
    predicted = logits.argmax(-1)
    assert len(set(predicted.tolist())) == 2  # both classes predicted: a fixed class would fail
    (grad,) = torch.autograd.grad(logits.gather(1, predicted[:, None]).sum(), embeddings)
    token_scores = grad.norm(dim=-1)
    explanations = get_explainer("saliency").explain(classifier, TEXTS)
    for i, e in enumerate(explanations):
        expected = [token_scores[i][batch.token_word[i] == w].sum().item() for w in range(len(TEXTS[i]))]
        np.testing.assert_allclose(e.scores, expected, rtol=1e-4, atol=1e-6)
        assert e.target == e.prediction == predicted[i].item()
        np.testing.assert_allclose(e.probabilities, logits[i].softmax(-1).detach().numpy(), rtol=1e-5)


def test_saliency_and_smoothgrad_are_unsigned_norms(sharp_bert):
    for name in ("saliency", "smoothgrad"):
        explanation = get_explainer(name, **budgets_for(name, {"n_samples": 3})).explain(sharp_bert, TEXTS)
        assert all((e.scores >= 0).all() for e in explanation)
        assert not get_explainer(name).info().signed


def test_smoothgrad_same_seed_same_scores(sharp_bert):
    first = get_explainer("smoothgrad", n_samples=4, seed=3).explain(sharp_bert, TEXTS)
    again = get_explainer("smoothgrad", n_samples=4, seed=3).explain(sharp_bert, TEXTS)
    other = get_explainer("smoothgrad", n_samples=4, seed=4).explain(sharp_bert, TEXTS)
    assert all(np.array_equal(a.scores, b.scores) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a.scores, b.scores) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize("name", GRADIENT)
def test_one_finite_score_per_word_and_truncated_words_unscored(name, tiny_classifier_dir):
    info = check_one_score_per_word(name, SMALL, tiny_classifier_dir, TEXTS)
    assert info.family == "gradient" and info.explains == "logit"


@pytest.mark.parametrize("name", GRADIENT)
def test_runs_on_every_architecture(name, architecture):
    explanations = get_explainer(name, **budgets_for(name, SMALL)).explain(architecture, TEXTS)
    for words, e in zip(TEXTS, explanations, strict=True):
        assert len(e.scores) == len(words) and np.isfinite(e.scores).all()
    assert any(np.abs(e.scores).sum() > 0 for e in explanations)


def test_smoothgrad_without_noise_is_saliency(sharp_bert):
    """Averaging n noiseless copies' gradients is the gradient itself: SmoothGrad's noise is its only difference."""
    smooth = get_explainer("smoothgrad", n_samples=3, noise=0.0).explain(sharp_bert, TEXTS)
    plain = get_explainer("saliency").explain(sharp_bert, TEXTS)
    noisy = get_explainer("smoothgrad", n_samples=3).explain(sharp_bert, TEXTS)
    for a, b, c in zip(smooth, plain, noisy, strict=True):
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-4, atol=1e-7)
        assert a.target == b.target
        assert not np.allclose(c.scores, b.scores, rtol=1e-3)
