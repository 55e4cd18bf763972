"""ExpNet: features, training, prediction, saving and loading."""

import json

import numpy as np
import pytest
import torch

from expnet.data.records import RationaleExample
from expnet.errors import ExpnetError
from expnet.explainers import ExpNetExplainer, get_explainer
from expnet.metrics.plausibility import plausibility
from expnet.models.classifier import Classifier
from expnet.network.features import FeatureSpec, word_features
from expnet.network.training import ExpNetSettings, focal_loss

WORDS = ["the", "movie", "was", "very", "good", "bad", "boring", "fun", "i", "love", "unbelievable", "not"]


def random_texts(n, seed=0):
    rng = np.random.default_rng(seed)
    return [list(rng.choice(WORDS, size=rng.integers(3, 9))) for _ in range(n)]


def test_features_by_hand(tiny_classifier):
    batch = tiny_classifier.encode([["unbelievable", "fun"], ["good"]])
    # tokens: [CLS] un ##believ ##able fun [SEP]; a hand-made attention with known CLS row/column
    T = batch.input_ids.shape[1]
    attention = torch.zeros(2, 2, T, T)
    attention[0, :, 0, :] = torch.tensor([0.1, 0.2, 0.1, 0.1, 0.4, 0.1])
    attention[0, :, :, 0] = torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9, 0.2])
    spec = FeatureSpec.for_model(num_layers=1, num_heads=2)
    features = word_features((attention,), batch, spec)
    n_tokens = 6
    # CLS->word: summed over pieces, times the number of real tokens; word->CLS: mean over pieces
    assert features[0, 0, :2].tolist() == pytest.approx([0.4 * n_tokens] * 2)
    assert features[0, 1, :2].tolist() == pytest.approx([0.4 * n_tokens] * 2)
    assert features[0, 0, 2:].tolist() == pytest.approx([0.5, 0.5])
    assert features[0, 1, 2:].tolist() == pytest.approx([0.9, 0.9])
    assert spec.names()[:3] == ["L0.h0.cls_to_token", "L0.h1.cls_to_token", "L0.h0.token_to_cls"]


def test_focal_loss_by_hand():
    logits, labels = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0])
    p = torch.sigmoid(torch.tensor(2.0))
    expected = (0.25 * 0.5**2 * np.log(2) + 0.75 * p**2 * -torch.log(1 - p)) / 2
    assert float(focal_loss(logits, labels, alpha=0.25, gamma=2.0)) == pytest.approx(float(expected), rel=1e-5)


def planted_examples(classifier, n=120):
    """Gold = words [CLS] attends to more than uniformly (mean over heads): a rule on each word's
    own features, so ExpNet can learn it, but only by combining heads and length scaling."""
    raw = get_explainer("raw_attention")
    texts = random_texts(n)
    out = []
    for i, explanation in enumerate(raw.explain(classifier, texts)):
        n_tokens = len(classifier.tokenizer(" ".join(texts[i]))["input_ids"])
        mask = (explanation.scores * n_tokens > 1.0).astype(int)
        out.append(RationaleExample(str(i), "toy", texts[i], explanation.prediction, ("a", "b"), [mask.tolist()]))
    return out


@pytest.fixture(scope="module")
def trained(tiny_classifier_dir):
    classifier = Classifier.load(tiny_classifier_dir, max_length=32)
    examples = planted_examples(classifier)
    settings = ExpNetSettings(max_epochs=80, patience=15, learning_rate=3e-3, focal_alpha=0.75)
    return classifier, examples, ExpNetExplainer.train([(classifier, examples[:90])], settings, seed=0, progress=False)


def test_expnet_learns_a_planted_rationale(trained):
    classifier, examples, expnet = trained
    held_out = examples[90:]
    explanations = expnet.explain(classifier, [e.words for e in held_out])
    result = plausibility([e.gold_mask() for e in held_out], [x.scores for x in explanations], [x.rationale for x in explanations])
    assert result.auroc > 0.85
    assert expnet.history["tasks"] == ["toy"]


def test_rationale_is_never_empty_and_scores_are_probabilities(trained):
    classifier, _, expnet = trained
    strict = ExpNetExplainer(expnet.model, expnet.spec, threshold=1.01)  # nothing can pass
    for explanation in strict.explain(classifier, random_texts(5, seed=3)):
        assert explanation.rationale.sum() == 1
        assert explanation.rationale[np.nanargmax(explanation.scores)] == 1
        assert ((explanation.scores >= 0) & (explanation.scores <= 1)).all()


def test_save_load_round_trip(trained, tmp_path):
    classifier, _, expnet = trained
    folder = expnet.save_pretrained(tmp_path / "expnet")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["features"]["num_heads"] == 2 and len(config["feature_names"]) == expnet.spec.dim
    loaded = get_explainer(str(folder))
    texts = random_texts(4, seed=5)
    a, b = expnet.explain(classifier, texts), loaded.explain(classifier, texts)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.scores, y.scores, rtol=1e-6)


def test_save_refuses_a_folder_of_other_files_and_replaces_its_own(trained, tmp_path):
    _, _, expnet = trained
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ExpnetError, match="holds files that are not an ExpNet's"):
        expnet.save_pretrained(folder)
    assert (folder / "notes.txt").read_text() == "mine" and sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    own = expnet.save_pretrained(tmp_path / "own")
    expnet.save_pretrained(own)  # its own earlier save is replaced without asking
    (own / "README.md").write_text("a model card")
    with pytest.raises(ExpnetError, match="pass overwrite=True"):
        expnet.save_pretrained(own)
    expnet.save_pretrained(own, overwrite=True)
    assert sorted(p.name for p in own.iterdir()) == ["config.json", "model.safetensors"]


def test_refuses_classifier_of_another_shape(trained, tmp_path, tiny_classifier_3heads_dir):
    _, _, expnet = trained
    other = Classifier.load(tiny_classifier_3heads_dir)
    with pytest.raises(ExpnetError, match="2 layers x 2 heads.*3 x 4"):
        expnet.explain(other, [["good", "movie"]])


def test_corrupt_folder_is_refused_and_failed_save_keeps_old(trained, tmp_path):
    _, _, expnet = trained
    folder = expnet.save_pretrained(tmp_path / "e")
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ExpnetError, match="corrupt"):
        get_explainer(str(folder))
    good = expnet.save_pretrained(tmp_path / "keep")
    before = (good / "model.safetensors").read_bytes()

    class Boom(Exception):
        pass

    from expnet.explainers import learned

    original = learned.save_file
    learned.save_file = lambda *a, **k: (_ for _ in ()).throw(Boom())
    try:
        with pytest.raises(Boom):
            expnet.save_pretrained(good)
    finally:
        learned.save_file = original
    assert (good / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _edit(config: dict, path: str, value) -> dict:
    """``config`` with the key at a dotted ``path`` set to ``value`` (deleted when None)."""
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return config


@pytest.mark.parametrize(
    "path, value, fragment",
    [
        ("format_version", 99, "newer than this expnet reads"),
        ("format_version", "1", "format_version must be a whole number"),
        ("bogus_key", 1, r"unknown key\(s\) \['bogus_key'\]"),
        ("features.bogus", 1, "unknown feature setting"),
        ("features.head_pooling", "loudest", "unknown head pooling"),
        ("feature_names", None, "corrupt or incompatible"),
        ("feature_names", ["a"], "feature_names do not match"),
        ("threshold", "high", r"threshold must be a number in \[0, 1\]"),
        ("threshold", [0.5], r"e/config.json: threshold must be a number in \[0, 1\], got \[0.5\]"),  # which file
        ("training.bogus", 1, "unknown training setting"),
        ("training.dropout", 2.0, "dropout"),
        # Edits that gave a traceback, or changed the rationale silently (0: one word, -1: every word).
        ("history", [], "history must be a mapping"),
        ("features.length_scaled", "false", "length_scaled true or false"),  # once read as True
        ("features.layers", ["1"], "layers must be a list of whole numbers"),  # once a TypeError deep inside
        ("features.num_layers", 2.5, "num_layers and num_heads whole numbers"),  # once truncated to 2
        ("history.perplexity_temperature", 0, r"perplexity_temperature must be a number in \(0, inf\)"),
        ("history.perplexity_temperature", "abc", "perplexity_temperature must be a number"),
        ("history.rationale_rate", "x", r"rationale_rate must be a number in \(0, 1\]"),
    ],
)
def test_a_tampered_config_is_refused_in_one_line(trained, tmp_path, path, value, fragment):
    _, _, expnet = trained
    folder = expnet.save_pretrained(tmp_path / "e")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(_edit(config, path, value)))
    with pytest.raises(ExpnetError, match=fragment):
        get_explainer(str(folder))


def test_a_threshold_for_an_expnet_that_never_reads_one_is_refused():
    # The shipped ExpNet picks its rationale by the perplexity rule: threshold 0, 0.5 and 0.99 gave
    # the same rationale while its settings reported each.
    with pytest.raises(ExpnetError, match="perplexity rule .* a threshold would be recorded but never used"):
        get_explainer("expnet", threshold=0.3)
    assert get_explainer("expnet").rationale_rule == "perplexity"


def test_training_is_deterministic(tiny_classifier):
    examples = planted_examples(tiny_classifier, n=30)
    settings = ExpNetSettings(max_epochs=5)
    a = ExpNetExplainer.train([(tiny_classifier, examples)], settings, seed=7, progress=False)
    b = ExpNetExplainer.train([(tiny_classifier, examples)], settings, seed=7, progress=False)
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key])


def test_in_text_features_are_standardised_per_text(tiny_classifier):
    from expnet.network.features import within_text

    batch = tiny_classifier.encode([["good", "fun", "movie"], ["bad"]])
    features = torch.tensor([[[1.0], [3.0], [5.0]], [[7.0], [0.0], [0.0]]])
    out = within_text(features, batch)
    std = np.sqrt(8 / 3)  # population std of 1, 3, 5
    assert out[0, :, 0].tolist() == pytest.approx([-2 / std, 0.0, 2 / std], abs=1e-5)
    assert out[1, :, 0].tolist() == [0.0, 0.0, 0.0]  # one word: nothing stands out; padding stays 0
    spec = FeatureSpec.for_model(2, 2, in_text=True)
    assert spec.dim == 8 and spec.names()[-1].endswith(".in_text")
    assert FeatureSpec.from_dict(spec.to_dict()) == spec


def test_one_wide_feature_pass_serves_every_variant(tiny_classifier):
    from expnet.network.gradient_features import batch_features

    batch = tiny_classifier.encode([["good", "fun", "movie"], ["unbelievable", "bad"]])
    narrow = FeatureSpec.for_model(2, 2, layers="last", directions=["cls_to_token"], values=["attention_x_gradient"], in_text=True)
    other = FeatureSpec.for_model(2, 2, layers=[0], directions=["token_to_cls"])
    wide = narrow.union(other)
    assert wide.layers == (0, 1) and wide.directions == ("cls_to_token", "token_to_cls") and not wide.in_text
    assert wide.values == ("attention", "attention_x_gradient")
    direct, _ = batch_features(tiny_classifier, batch, narrow)
    shared, _ = batch_features(tiny_classifier, batch, wide)
    for i, scored in enumerate(batch.word_scored):
        rows = torch.from_numpy(scored)
        n = len(scored)
        taken = narrow.select_columns(shared[i, :n][rows], wide)
        torch.testing.assert_close(taken, direct[i, :n][rows], rtol=1e-4, atol=1e-5)
    with pytest.raises(ExpnetError):
        wide.select_columns(direct[0], narrow)  # the narrow pass lacks the wide spec's columns
