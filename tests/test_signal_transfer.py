"""benchmarks/signal_transfer.py's inputs and per-text scores against hand-computed values."""

import importlib.util
from pathlib import Path

import numpy as np
import torch

from expnet.network.training import recipe_settings, settings_spec

_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "signal_transfer.py"
_SPEC = importlib.util.spec_from_file_location("signal_transfer", _SCRIPT)
signal_transfer = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(signal_transfer)


def test_a_scalar_score_becomes_expnets_three_views():
    views = signal_transfer.scalar_views(torch.tensor([1.0, 3.0, 2.0]))
    std = np.sqrt(2 / 3)  # population std of 1, 3, 2
    np.testing.assert_allclose(views[:, 0], [3.0, 9.0, 6.0])  # times the text's 3 words
    np.testing.assert_allclose(views[:, 1], [-1 / std, 1 / std, 0.0], atol=1e-5)
    np.testing.assert_allclose(views[:, 2], [0.0, 1.0, 0.5])


def test_per_text_f1_at_k_and_auroc_by_hand():
    rows = [{"gold": torch.tensor([1.0, 0.0, 0.0, 1.0])}, {"gold": torch.tensor([1.0, 1.0])}]
    scores = [np.array([0.9, 0.8, 0.1, 0.2]), np.array([0.3, 0.7])]
    f1, auroc = signal_transfer.per_example(rows, scores, rate=0.5)
    # Text 1: top-2 = words 0 and 1, one of two gold: F1 0.5; gold above non-gold in 3 of 4 pairs
    # Text 2: both words gold; top-1 picks one of two: F1 2/3; one class only: no AUROC.
    np.testing.assert_allclose(f1, [0.5, 2 / 3])
    assert auroc[0] == 0.75 and np.isnan(auroc[1])


def test_collected_inputs_cover_exactly_the_words_read(tiny_classifier):
    from expnet.data.records import RationaleExample

    long_text = ["word"] * 200  # past the tiny classifier's input limit: only the first words are read
    examples = [
        RationaleExample(id="a", task="t", words=["a", "dull", "film"], label=0, label_names=("n", "p"), rationales=[[0, 1, 0]]),
        RationaleExample(id="b", task="t", words=long_text, label=1, label_names=("n", "p"), rationales=[[1] * 200]),
    ]
    rows = signal_transfer.collect(tiny_classifier, examples)
    width = settings_spec(recipe_settings("transfer"), tiny_classifier).dim
    hidden = tiny_classifier.config.hidden_size
    assert rows[0]["gold"].tolist() == [0.0, 1.0, 0.0]
    read = len(rows[1]["gold"])
    assert 0 < read < 200 and read == int(tiny_classifier.encode([long_text]).word_scored[0].sum())
    for row in rows:
        n = len(row["gold"])
        assert row["attention"].shape == (n, width) and row["hidden"].shape == (n, hidden)
        assert all(row[name].shape == (n,) for name in signal_transfer.BASELINES)
        assert isinstance(row["correct"], bool)
    # Each row is its own text's: the baseline scores the explainer gives it alone, and the
    # prediction checked against its own label.
    from expnet.explainers import get_explainer

    for example, row in zip(examples, rows, strict=True):
        alone = get_explainer("raw_attention").explain(tiny_classifier, [example.words])[0]
        n = len(row["gold"])
        np.testing.assert_allclose(row["raw_attention"].numpy(), alone.scores[:n], rtol=1e-5, atol=1e-7)
        assert row["correct"] == (alone.prediction == example.label)
