"""benchmarks/layer_agreement.py's per-layer agreement and AUROC against hand-computed values."""

import importlib.util
from pathlib import Path

import numpy as np
import torch

from expnet.models.classifier import Classifier
from expnet.words import pool_to_words

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "layer_agreement.py"
_SPEC = importlib.util.spec_from_file_location("layer_agreement", _SCRIPT)
layer_agreement = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(layer_agreement)

NAN = np.nan


def test_spearman_is_over_the_words_both_classifiers_read():
    # Layer 1; the other classifier did not read word 3. Over words 0-2 the ranks are reversed.
    own = [np.array([[0.0, 1.0], [0.0, 2.0], [0.0, 3.0], [0.0, 9.0]])]
    other = [np.array([[0.0, 3.0], [0.0, 2.0], [0.0, 1.0], [0.0, NAN]])]
    assert layer_agreement.mean_spearman(own, other, 1) == -1.0
    # A text with only two words read by both is left out, so the mean is the first text's.
    own.append(np.array([[0.0, 1.0], [0.0, 2.0], [0.0, NAN]]))
    other.append(np.array([[0.0, 2.0], [0.0, 1.0], [0.0, 5.0]]))
    assert layer_agreement.mean_spearman(own, other, 1) == -1.0


def test_auroc_over_read_words_skips_single_class_texts():
    gold = [np.array([1, 0, 0, 1]), np.array([1, 1, 0])]
    attention = [np.array([[0.9], [0.8], [0.1], [NAN]]), np.array([[0.5], [0.4], [NAN]])]
    # Text 1 over words 0-2: the gold word 0 above both others, AUROC 1. Text 2 read only gold
    # words: no AUROC, so the mean is text 1's.
    assert layer_agreement.mean_auroc(gold, attention, 0) == 1.0
    attention[0][0, 0] = 0.05  # now below both non-gold words
    assert layer_agreement.mean_auroc(gold, attention, 0) == 0.0


def test_layer_attention_marks_unread_words(tiny_classifier: Classifier):
    texts = [["a", "b", "c"], ["d"] * 200]
    attention = layer_agreement.layer_attention(tiny_classifier, texts)
    assert attention[0].shape == (3, tiny_classifier.num_layers)
    assert not np.isnan(attention[0]).any()
    # The long text is cut at the classifier's length: its tail is NaN, its head is not.
    assert np.isnan(attention[1][-1]).all() and not np.isnan(attention[1][0]).any()
    # Up to the text's length scale, each layer's column is the readout row's eager attention (mean
    # over heads) to each word.
    batch = tiny_classifier.encode(texts[:1])
    with torch.no_grad():
        eager = tiny_classifier.forward(batch, output_attentions=True).attentions
    for layer in range(tiny_classifier.num_layers):
        expected = pool_to_words(eager[layer][:, :, 0].mean(1), batch, "sum")[0, :3].numpy()
        ratio = attention[0][:, layer] / expected
        np.testing.assert_allclose(ratio, ratio[0], rtol=1e-4)
