"""The readout-only attention pass (expnet.models.attention.readout_attention) against eager
``output_attentions=True``: the same rows, columns, logits and ExpNet features, in float32 and
bfloat16, on every architecture (the fast path or, where it cannot be exact, the eager one)."""

import numpy as np
import pytest
import torch

import expnet.models.attention as attention_module
from architectures import ARCHITECTURES, DECODERS
from expnet.explainers import ExpNetExplainer
from expnet.models.attention import READOUT_ATTENTION, forward_with_attentions, readout_attention
from expnet.models.classifier import Classifier
from expnet.models.readout import readout_columns, readout_kind, readout_positions, readout_rows, readout_weights
from expnet.network.features import FeatureSpec
from expnet.network.gradient_features import batch_features
from expnet.network.model import ExpNetModel

TEXTS = [["the", "movie", "was", "good"], ["bad", "film", "!", "i", "hate", "that", "boring", "film"], ["fun"]]
# Architectures the fast path serves; the others fall back to the eager pass (module doc).
FAST = {"bert", "roberta", "electra", "modernbert", *DECODERS}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("attention-speed")
    return {arch: build(root / arch, initializer_range=0.5) for arch, build in ARCHITECTURES.items()}


def load(folder: str) -> Classifier:
    return Classifier.load(folder, device="cpu", max_length=32)


def eager_reference(classifier: Classifier, batch, layers, with_columns: bool):
    logits, attentions = forward_with_attentions(classifier, batch)
    mean = readout_kind(classifier.config) == "mean"
    readout = readout_weights(classifier, batch) if mean else readout_positions(classifier, batch)
    rows = {layer: readout_rows(attentions[layer], readout) for layer in layers}
    columns = {layer: readout_columns(attentions[layer], readout) for layer in layers} if with_columns else {}
    return logits, rows, columns


def used_fast_path(monkeypatch) -> list[int]:
    """Counts calls of the eager fallback while the test runs."""
    fallbacks: list[int] = []
    eager = attention_module._eager_readout_attention
    monkeypatch.setattr(attention_module, "_eager_readout_attention", lambda *a: (fallbacks.append(1), eager(*a))[1])
    return fallbacks


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_readout_rows_and_columns_equal_eager_ones(folders, arch, monkeypatch):
    classifier = load(folders[arch])
    batch = classifier.encode(TEXTS)
    layers = range(classifier.num_layers)
    with_columns = arch not in DECODERS  # a decoder's readout column is refused upstream (causal mask)
    fallbacks = used_fast_path(monkeypatch)
    logits, found = readout_attention(classifier, batch, layers, layers if with_columns else ())
    assert bool(fallbacks) == (arch not in FAST)
    assert classifier.config._attn_implementation == "eager"  # restored after the pass
    expected_logits, rows, columns = eager_reference(classifier, batch, layers, with_columns)
    torch.testing.assert_close(logits, expected_logits, atol=1e-5, rtol=0)
    for layer in layers:
        assert found[layer].rows.dtype == torch.float32
        torch.testing.assert_close(found[layer].rows, rows[layer], atol=1e-5, rtol=0)
        if with_columns:
            torch.testing.assert_close(found[layer].columns, columns[layer], atol=1e-5, rtol=0)
        else:
            assert found[layer].columns is None


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_padded_and_unpadded_decoders_read_the_same_rows(folders, arch):
    # A padded batch has an explicit mask; one text alone has no mask at all, so SDPA's causal
    # rule must be applied by hand.
    classifier = load(folders[arch])
    for texts in (TEXTS, TEXTS[1:2]):
        batch = classifier.encode(texts)
        last = [classifier.num_layers - 1]
        logits, found = readout_attention(classifier, batch, last)
        expected_logits, rows, _ = eager_reference(classifier, batch, last, False)
        torch.testing.assert_close(logits, expected_logits, atol=1e-5, rtol=0)
        torch.testing.assert_close(found[last[0]].rows, rows[last[0]], atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_expnet_features_are_the_same_either_way(folders, arch, monkeypatch):
    classifier = load(folders[arch])
    directions = ["cls_to_token"] if arch in DECODERS else ["cls_to_token", "token_to_cls"]
    spec = FeatureSpec.for_model(classifier.num_layers, classifier.num_heads, layers="all", directions=directions)
    batch = classifier.encode(TEXTS)
    torch.manual_seed(0)
    expnet = ExpNetExplainer(ExpNetModel(spec.dim).eval(), spec)  # untrained: any weights show it
    fast, fast_logits = batch_features(classifier, batch, spec)
    fast_scores = [e.scores for e in expnet.explain(classifier, TEXTS)]
    monkeypatch.setattr(attention_module, "_fast_path_possible", lambda classifier: False)
    eager, eager_logits = batch_features(classifier, batch, spec)
    torch.testing.assert_close(fast, eager, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast_logits, eager_logits, atol=1e-5, rtol=0)
    for fast_score, eager_score in zip(fast_scores, (e.scores for e in expnet.explain(classifier, TEXTS)), strict=True):
        np.testing.assert_allclose(fast_score, eager_score, atol=1e-6)


def test_columns_are_computed_in_query_chunks(folders, monkeypatch):
    monkeypatch.setattr(attention_module, "_CHUNK_FLOATS", 1)  # one query per chunk
    classifier = load(folders["bert"])
    batch = classifier.encode(TEXTS)
    _, found = readout_attention(classifier, batch, (), [0])
    _, _, columns = eager_reference(classifier, batch, [0], True)
    torch.testing.assert_close(found[0].columns, columns[0], atol=1e-5, rtol=0)
    assert found[0].rows is None


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_bfloat16_scores_are_float32_and_close_to_eager(folders, arch):
    classifier = load(folders[arch])
    classifier.model.to(torch.bfloat16)
    batch = classifier.encode(TEXTS)
    last = [classifier.num_layers - 1]
    logits, found = readout_attention(classifier, batch, last)
    _, rows, _ = eager_reference(classifier, batch, last, False)
    assert found[last[0]].rows.dtype == torch.float32
    torch.testing.assert_close(found[last[0]].rows, rows[last[0]].float(), atol=2e-2, rtol=0)
    assert torch.isfinite(logits).all()
    spec = FeatureSpec.for_model(classifier.num_layers, classifier.num_heads, directions=["cls_to_token"], head_pooling="quantiles")
    features, _ = batch_features(classifier, batch, spec)
    assert features.dtype == torch.float32 and torch.isfinite(features).all()
    explanations = ExpNetExplainer(ExpNetModel(spec.dim).eval(), spec).explain(classifier, TEXTS)
    assert all(np.isfinite(e.scores).all() for e in explanations)


def test_an_intervention_in_progress_is_not_switched_away(folders, monkeypatch):
    from expnet.diagnostics.intervention import attention_intervention

    classifier = load(folders["bert"])
    batch = classifier.encode(TEXTS)
    fallbacks = used_fast_path(monkeypatch)
    with attention_intervention(classifier, lambda weights, mask: weights, layers=None):
        readout_attention(classifier, batch, [0])
        assert classifier.config._attn_implementation != READOUT_ATTENTION
    assert fallbacks == [1]
