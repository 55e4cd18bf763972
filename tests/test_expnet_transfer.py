"""ExpNet's transfer machinery: head-order statistics, within-text views, contribution signals,
the listwise loss, the anchored model and layout-free ExpNets, each against a hand computation."""

import numpy as np
import pytest
import torch

from expnet.errors import ExpnetError
from expnet.explainers import ExpNetExplainer, get_explainer
from expnet.models.classifier import Classifier
from expnet.models.decomposition import decompose
from expnet.network.features import FeatureSpec, rank_within_text, word_features
from expnet.network.gradient_features import batch_features
from expnet.network.model import ExpNetModel
from expnet.network.training import PERPLEXITY_TEMPERATURES, ExpNetSettings, listwise_loss
from test_expnet import planted_examples, random_texts


def test_head_quantiles_by_hand(tiny_classifier_3heads_dir):
    classifier = Classifier.load(tiny_classifier_3heads_dir)  # 3 layers x 4 heads
    batch = classifier.encode([["good", "fun"]])  # [CLS] good fun [SEP]
    T = batch.input_ids.shape[1]
    attention = torch.zeros(1, 4, T, T)
    attention[0, :, 0, 1] = torch.tensor([0.1, 0.4, 0.2, 0.3])  # the heads' readout mass on "good"
    spec = FeatureSpec.for_model(1, 4, directions=["cls_to_token"], length_scaled=False, head_pooling="quantiles")
    features = word_features((attention,), batch, spec)
    # max, q75, median, q25, min, mean of (0.1, 0.2, 0.3, 0.4), numpy's linear interpolation
    assert features[0, 0].tolist() == pytest.approx([0.4, 0.325, 0.25, 0.175, 0.1, 0.25], abs=1e-6)
    assert spec.names() == [f"L0.{s}.cls_to_token" for s in ("max", "q75", "median", "q25", "min", "mean")]


def test_rank_view_by_hand():
    values = torch.tensor([[[3.0], [1.0], [2.0], [9.0]], [[5.0], [0.0], [0.0], [0.0]]])
    valid = torch.tensor([[True, True, True, False], [True, False, False, False]])
    ranks = rank_within_text(values, valid)
    assert ranks[0, :, 0].tolist() == pytest.approx([1.0, 0.0, 0.5, 0.0])  # 4th word is unscored
    assert ranks[1, :, 0].tolist() == pytest.approx([0.5, 0.0, 0.0, 0.0])  # one word: the middle


def test_listwise_loss_by_hand():
    logits = torch.tensor([0.0, 1.0, 2.0, 0.5, -0.5])
    labels = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0])  # text 1 has no gold word: left out
    texts = torch.tensor([0, 0, 0, 1, 1])
    log_softmax = torch.log_softmax(logits[:3], 0)
    expected = -(0.5 * log_softmax[0] + 0.5 * log_softmax[1])
    assert float(listwise_loss(logits, labels, texts, 2)) == pytest.approx(float(expected), rel=1e-6)


def test_anchored_model_starts_from_its_anchor():
    torch.manual_seed(0)
    features = torch.randn(50, 3) * 4 + 1
    model = ExpNetModel(3, hidden_size=8, dropout=0.0, anchor=2)
    model.set_feature_statistics(features)
    standardised = (features[:, 2] - features[:, 2].mean()) / features[:, 2].std()
    bias = model.mlp[3].bias  # the only MLP term left at initialisation
    torch.testing.assert_close(model(features), standardised + bias, rtol=1e-5, atol=1e-5)


def test_contribution_signals_are_the_decomposition_summed_per_word(tiny_classifier):
    batch = tiny_classifier.encode([["unbelievable", "fun"], ["good", "bad", "movie"]])
    spec = FeatureSpec.for_model(2, 2, directions=["cls_to_token"], values=["head_norm"], signals=["value_zeroing", "decompx"], length_scaled=False)
    features, _ = batch_features(tiny_classifier, batch, spec)
    reference = decompose(tiny_classifier, batch, {"head_norms", "value_zeroing", "decompx"}, layers=(1,))
    # word 0 of text 0 is un ##believ ##able = tokens 1..3: head norms and value zeroing summed
    torch.testing.assert_close(features[0, 0, :2], reference.head_norms[1][0, :, 1:4].sum(-1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(features[0, 0, 2], reference.value_zeroing[0, 1:4].sum(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(features[0, 0, 3], reference.decompx[0, 1:4].sum(), rtol=1e-5, atol=1e-6)
    assert spec.names() == ["L1.h0.cls_to_token.norm", "L1.h1.cls_to_token.norm", "value_zeroing", "decompx"]


def test_layout_free_expnet_explains_another_layout(tiny_classifier, tiny_classifier_3heads_dir, tmp_path):
    examples = planted_examples(tiny_classifier, n=40)
    settings = ExpNetSettings(
        directions=("cls_to_token",), head_pooling="quantiles", views=("zscore", "rank"), loss="listwise", max_epochs=3
    )
    expnet = ExpNetExplainer.train([(tiny_classifier, examples)], settings, seed=0, progress=False)
    assert expnet.spec.dim == 12  # 6 head statistics x 2 views, whatever the number of heads
    other = Classifier.load(tiny_classifier_3heads_dir)  # 3 layers x 4 heads instead of 2 x 2
    loaded = get_explainer(str(expnet.save_pretrained(tmp_path / "free")))
    texts = random_texts(3, seed=1)
    # The scores are the MLP on the other layout's own head statistics, not a constant.
    features, _ = batch_features(other, other.encode(texts), expnet.spec)
    with torch.no_grad():
        expected = torch.sigmoid(expnet.model(features.float())).numpy()
    for i, (a, b) in enumerate(zip(expnet.explain(other, texts), loaded.explain(other, texts), strict=True)):
        assert a.scored.all() and np.ptp(a.scores) > 0
        np.testing.assert_allclose(a.scores, expected[i, : len(texts[i])], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)


def test_training_on_two_layouts_with_per_head_features_is_refused_before_any_feature_pass(
    tiny_classifier, tiny_classifier_3heads_dir, monkeypatch
):
    other = Classifier.load(tiny_classifier_3heads_dir)  # 3 x 4 against 2 x 2: per-head columns differ
    sources = [(tiny_classifier, planted_examples(tiny_classifier, n=4)), (other, planted_examples(tiny_classifier, n=4))]
    passes = []
    monkeypatch.setattr(Classifier, "encode", lambda self, texts: passes.append(texts))
    with pytest.raises(ExpnetError, match="attention layouts differ"):
        ExpNetExplainer.train(sources, ExpNetSettings(max_epochs=1), seed=0, progress=False)
    assert passes == []  # refused up front, not after the first classifier's features


def test_an_every_layer_expnet_refuses_another_depth_but_reads_other_heads(
    tiny_classifier, tiny_classifier_3heads_dir, tmp_path
):
    # One block of head statistics per layer: 2 layers give 24 features, 3 layers would give 36.
    examples = planted_examples(tiny_classifier, n=30)
    settings = ExpNetSettings(
        layers="all", directions=("cls_to_token",), head_pooling="quantiles", views=("zscore", "rank"), max_epochs=2
    )
    expnet = ExpNetExplainer.train([(tiny_classifier, examples)], settings, seed=0, progress=False)
    assert expnet.spec.dim == 24
    deeper = Classifier.load(tiny_classifier_3heads_dir)  # 3 layers x 4 heads
    with pytest.raises(ExpnetError, match="2 layers x 2 heads, but this classifier has 3 x 4"):
        expnet.explain(deeper, random_texts(2, seed=1))
    assert expnet.spec.reads_layout(2, 5) and not expnet.spec.reads_layout(3, 2)


def test_listwise_and_anchored_expnet_learn_a_planted_rationale(tiny_classifier):
    from expnet.metrics.plausibility import plausibility

    examples = planted_examples(tiny_classifier, n=120)
    for settings in (
        ExpNetSettings(views=("absolute", "zscore"), loss="listwise", max_epochs=60, patience=10),
        ExpNetSettings(views=("absolute", "zscore"), loss="focal+listwise", anchor="L1.h0.cls_to_token.in_text", max_epochs=60, patience=10),
    ):
        expnet = ExpNetExplainer.train([(tiny_classifier, examples[:90])], settings, seed=0, progress=False)
        held_out = examples[90:]
        explanations = expnet.explain(tiny_classifier, [e.words for e in held_out])
        result = plausibility([e.gold_mask() for e in held_out], [x.scores for x in explanations], [x.rationale for x in explanations])
        assert result.auroc > 0.8, settings.loss


def test_word_properties_by_hand(tiny_classifier):
    batch = tiny_classifier.encode([["The", "film", ",", "unbelievable"], ["fun"]])
    spec = FeatureSpec.for_model(
        2, 2, directions=["cls_to_token"], length_scaled=False, views=["absolute", "rank"],
        word_properties=["position", "stopword", "punctuation", "word_length"],
    )
    features, _ = batch_features(tiny_classifier, batch, spec)
    # Kept in the canonical order, appended once after the views, never ranked or standardised.
    assert spec.names()[-4:] == ["word.stopword", "word.punctuation", "word.word_length", "word.position"]
    assert spec.dim == 2 * 2 + 4
    properties = features[..., -4:]
    np.testing.assert_allclose(properties[0].numpy(), [
        [1.0, 0.0, np.log(4), 0.0],  # "The" is a stop word in any case
        [0.0, 0.0, np.log(5), 1 / 3],
        [0.0, 1.0, np.log(2), 2 / 3],  # "," has no letter or digit
        [0.0, 0.0, np.log(13), 1.0],
    ], rtol=1e-6)
    assert properties[1, 0].tolist() == pytest.approx([0.0, 0.0, np.log(4), 0.0])  # one word: position 0
    assert properties[1, 1:].abs().sum() == 0  # padding
    # The features without properties are the same columns as before (a superset spec).
    plain, _ = batch_features(tiny_classifier, batch, FeatureSpec.for_model(2, 2, directions=["cls_to_token"], length_scaled=False, views=["absolute", "rank"]))
    torch.testing.assert_close(features[..., :4], plain)
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    wide = spec.union(FeatureSpec.for_model(2, 2, directions=["cls_to_token"], length_scaled=False))
    raw, _ = batch_features(tiny_classifier, batch, wide)
    selected = spec.select_columns(raw[0, :4], wide)
    torch.testing.assert_close(selected[:, -4:], properties[0])


def test_expnet_learns_a_planted_word_property(tiny_classifier):
    """Gold = the punctuation marks: only the punctuation property can tell it; with it the
    listwise ExpNet ranks them first, without it it cannot."""
    from expnet.data.records import RationaleExample
    from expnet.metrics.plausibility import plausibility

    rng = np.random.default_rng(0)
    texts = [[str(w) for w in words] for words in random_texts(80, seed=3)]
    for words in texts:
        words.insert(int(rng.integers(len(words) + 1)), str(rng.choice([",", "!", "?"])))
    examples = [
        RationaleExample(str(i), "toy", words, 0, ("a", "b"), [[int(not w.isalnum()) for w in words]]) for i, words in enumerate(texts)
    ]
    aurocs = {}
    for properties in ((), ("punctuation",)):
        settings = ExpNetSettings(directions=("cls_to_token",), views=("zscore",), word_properties=properties, loss="listwise", only_correct=False, max_epochs=40, patience=10)
        expnet = ExpNetExplainer.train([(tiny_classifier, examples[:60])], settings, seed=0, progress=False)
        explanations = expnet.explain(tiny_classifier, [e.words for e in examples[60:]])
        aurocs[properties] = plausibility([e.gold_mask() for e in examples[60:]], [x.scores for x in explanations], [x.rationale for x in explanations]).auroc
    assert aurocs[("punctuation",)] > 0.95 > aurocs[()] + 0.1


def test_unknown_feature_choices_are_one_line_errors():
    with pytest.raises(ExpnetError, match="head pooling"):
        FeatureSpec.for_model(2, 2, head_pooling="sorted")
    with pytest.raises(ExpnetError, match="view"):
        FeatureSpec.for_model(2, 2, views=["log"])
    with pytest.raises(ExpnetError, match="word property"):
        FeatureSpec.for_model(2, 2, word_properties=["capitalised"])
    with pytest.raises(ExpnetError, match="word property"):
        FeatureSpec.from_dict({**FeatureSpec.for_model(2, 2).to_dict(), "word_properties": ["capitalised"]})
    with pytest.raises(ExpnetError, match="do not exist"):
        FeatureSpec.for_model(4, 2, layers=[99, -100])  # no silent modulo
    with pytest.raises(ExpnetError, match="loss"):
        ExpNetSettings(loss="hinge")
    with pytest.raises(ExpnetError, match="anchor"):
        _fit_with_anchor("nope")


def _fit_with_anchor(anchor):
    from expnet.network.training import WordDataset, fit_model

    spec = FeatureSpec.for_model(2, 2)
    dataset = WordDataset(features=[torch.randn(3, spec.dim)] * 4, labels=[torch.tensor([1.0, 0.0, 0.0])] * 4, tasks=["t"] * 4)
    fit_model(dataset, spec, ExpNetSettings(anchor=anchor, max_epochs=1), seed=0)


def test_nan_weights_and_unknown_settings_are_refused(tiny_classifier, tmp_path):
    from safetensors.torch import load_file, save_file

    expnet = ExpNetExplainer.train([(tiny_classifier, planted_examples(tiny_classifier, n=20))], ExpNetSettings(max_epochs=1), progress=False)
    folder = expnet.save_pretrained(tmp_path / "e")
    with pytest.raises(ExpnetError, match="no setting 'n_sample'"):
        get_explainer(str(folder), n_sample=10)
    with pytest.raises(ExpnetError, match="no setting 'n_sample'"):
        get_explainer("lime", n_sample=10)  # a typo is an error, not a silent default
    assert get_explainer(str(folder), batch_size=3).batch_size == 3  # loading settings do reach it
    weights = load_file(str(folder / "model.safetensors"))
    weights["mlp.0.weight"][0, 0] = float("nan")
    save_file(weights, str(folder / "model.safetensors"))
    with pytest.raises(ExpnetError, match="NaN"):
        get_explainer(str(folder))


def test_a_broken_perplexity_window_is_refused(tiny_classifier, tmp_path):
    import json

    settings = ExpNetSettings(loss="listwise", max_epochs=1)
    folder = ExpNetExplainer.train([(tiny_classifier, planted_examples(tiny_classifier, n=20))], settings, progress=False).save_pretrained(tmp_path / "e")
    config = json.loads((folder / "config.json").read_text())
    for broken in (0, -3, 2.5, "ten", True):
        config["history"]["perplexity_window"] = broken
        (folder / "config.json").write_text(json.dumps(config))
        with pytest.raises(ExpnetError, match=r"perplexity_window \(words, or null\) must be a whole number"):
            get_explainer(str(folder))
    config["history"]["perplexity_window"] = None  # no window: texts counted whole
    (folder / "config.json").write_text(json.dumps(config))
    assert get_explainer(str(folder)).history["perplexity_window"] is None


def test_the_perplexity_temperature_is_fitted_to_the_gold_counts():
    from expnet.network.training import fit_perplexity_temperature, perplexity_counts

    # Gold words score 1, the others 0: at temperature 1 the softmax is too flat (perplexity of
    # [1, 1, 0, 0, 0, 0] is ~5.3, of [1, 0, 0, 0, 0, 0, 0, 0] ~7.4), at a low one it counts the gold.
    logits = [torch.tensor([1.0, 1.0, 0, 0, 0, 0]), torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0]), torch.tensor([0.0, 0.0])]
    labels = [torch.tensor([1.0, 1, 0, 0, 0, 0]), torch.tensor([1.0, 0, 0, 0, 0, 0, 0, 0]), torch.tensor([0.0, 0.0])]
    padded = torch.tensor([[1.0, 1, 0, 0, 0, 0, 0, 0], [1.0, 0, 0, 0, 0, 0, 0, 0]])
    valid = torch.tensor([[True] * 6 + [False] * 2, [True] * 8])
    assert perplexity_counts(padded, valid).tolist() == [5, 7]
    temperature = fit_perplexity_temperature(logits, labels)  # the unannotated third text is ignored
    assert temperature < 0.25
    assert perplexity_counts(padded, valid, temperature).tolist() == [2, 1]
    # Counts already right at 1: ties go to 1.0.
    assert fit_perplexity_temperature([torch.tensor([0.0, 0.0])], [torch.tensor([1.0, 1.0])]) == 1.0
    # The explainer reads it from its training history (1.0 for folders saved before).
    spec = FeatureSpec.for_model(2, 2)
    calibrated = ExpNetExplainer(ExpNetModel(spec.dim), spec, ExpNetSettings(loss="listwise"), history={"perplexity_temperature": temperature})
    plain = ExpNetExplainer(ExpNetModel(spec.dim), spec, ExpNetSettings(loss="listwise"))
    assert calibrated._rationale(padded, valid).sum(-1).tolist() == [2, 1]
    assert plain._rationale(padded, valid).sum(-1).tolist() == [5, 7]


def test_a_text_longer_than_the_window_is_counted_window_by_window():
    from expnet.network.training import perplexity_counts

    # Text 0: 10 valid words with an unscored one inside (it belongs to no window). Its windows of
    # 4 valid words: four equal logits (perplexity 4), two high of four (2), two equal (2): 8 words,
    # where one softmax over all of it counts only the two high ones.
    logits = torch.tensor([[0.0, 0, 0, 0, 9, 20, 20, -9, -9, 0, 0, 0, 0], [1.0, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    valid = torch.ones_like(logits, dtype=torch.bool)
    valid[0, 4] = False
    valid[0, 11:] = False
    valid[1, 3:] = False
    assert perplexity_counts(logits, valid).tolist() == [2, 2]
    assert perplexity_counts(logits, valid, window=4).tolist() == [4 + 2 + 2, 2]
    # A window at least as long as the text changes nothing; the counts add up, never below 1.
    assert perplexity_counts(logits, valid, window=10).tolist() == perplexity_counts(logits, valid).tolist()
    assert perplexity_counts(logits, valid, window=1).tolist() == [10, 3]
    # The explainer reads the window from its history; folders saved before it count texts whole.
    spec = FeatureSpec.for_model(2, 2)
    windowed = ExpNetExplainer(ExpNetModel(spec.dim), spec, ExpNetSettings(loss="listwise"), history={"perplexity_window": 4})
    whole = ExpNetExplainer(ExpNetModel(spec.dim), spec, ExpNetSettings(loss="listwise"))
    assert windowed._rationale(logits, valid).sum(-1).tolist() == [8, 2]
    assert whole._rationale(logits, valid).sum(-1).tolist() == [2, 2]


def test_listwise_training_fits_the_temperature_on_its_validation_texts(tiny_classifier):
    from expnet.network.training import WordDataset, _split, fit_model, fit_perplexity_temperature, perplexity_counts

    # One gold word in texts of 6..15 words, marked by a feature: the trained softmax is peaked
    # but not enough at temperature 1, so the fit must move it and count closer to the gold.
    settings = ExpNetSettings(loss="listwise", max_epochs=2)
    lengths = [6 + i % 10 for i in range(40)]
    generator = torch.Generator().manual_seed(0)
    features = [torch.cat([torch.eye(n)[:, :1], torch.randn(n, 3, generator=generator)], 1) for n in lengths]
    labels = [torch.eye(n)[0] for n in lengths]
    dataset = WordDataset(features=features, labels=labels, tasks=["t"] * len(lengths))
    model, history = fit_model(dataset, FeatureSpec.for_model(1, 4, directions=["cls_to_token"], length_scaled=False), settings, seed=0)
    _, validation = _split(len(lengths), settings.validation_fraction, torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = [model(features[i]) for i in validation]
    temperature = history["perplexity_temperature"]
    assert temperature == fit_perplexity_temperature(logits, [labels[i] for i in validation])
    assert temperature in PERPLEXITY_TEMPERATURES and temperature != 1.0

    def count_error(t: float) -> float:
        return float(np.mean([abs(int(perplexity_counts(x.view(1, -1), torch.ones(1, len(x), dtype=torch.bool), t)) - 1) for x in logits]))

    assert count_error(temperature) < count_error(1.0)
    focal = ExpNetExplainer.train([(tiny_classifier, planted_examples(tiny_classifier, n=30))], ExpNetSettings(max_epochs=1), progress=False)
    assert focal.history["perplexity_temperature"] == 1.0  # no softmax rule to calibrate
    assert focal.history["perplexity_window"] is None


def test_the_window_is_the_longest_annotated_validation_text():
    from expnet.network.training import WordDataset, _split, fit_model

    # Texts of 3..22 words, each with its own length, so the window names exactly one text.
    lengths = list(range(3, 23))
    settings = ExpNetSettings(loss="listwise", max_epochs=1)
    _, validation = _split(len(lengths), settings.validation_fraction, torch.Generator().manual_seed(0))
    assert len(validation) >= 2
    *_, second, longest = sorted(validation, key=lengths.__getitem__)
    features = [torch.randn(n, 4, generator=torch.Generator().manual_seed(n)) for n in lengths]
    labels = [torch.eye(n)[0] for n in lengths]  # one gold word each
    labels[longest] = torch.zeros(lengths[longest])  # no gold: the temperature fit skips it, so must the window
    dataset = WordDataset(features=features, labels=labels, tasks=["t"] * len(lengths))

    class FourColumns:  # what fit_model reads of a feature spec
        dim = 4

        def names(self):
            return ["a", "b", "c", "d"]

    _, history = fit_model(dataset, FourColumns(), settings, seed=0)
    assert history["perplexity_window"] == lengths[second]


def test_listwise_rationale_takes_as_many_words_as_the_softmax_perplexity():
    spec = FeatureSpec.for_model(2, 2)
    listwise = ExpNetExplainer(ExpNetModel(spec.dim), spec, ExpNetSettings(loss="listwise"))
    logits = torch.tensor([[5.0, 5.0, -10.0, -10.0, 0.0], [1.0, 1.0, 1.0, 1.0, 9.0]])
    valid = torch.tensor([[True, True, True, True, False], [True, True, True, False, False]])
    # text 0: softmax ~ (1/2, 1/2, 0, 0), perplexity 2; text 1: uniform over 3 valid words -> 3
    assert listwise._rationale(logits, valid).tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 0, 0]]
    focal = ExpNetExplainer(ExpNetModel(spec.dim), spec, ExpNetSettings(), threshold=0.5)
    assert focal.rationale_rule == "threshold" and listwise.rationale_rule == "perplexity"
    assert focal._rationale(logits, valid).tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 0, 0]]


def test_explaining_a_layout_it_was_not_trained_on_warns_once_per_call(tiny_classifier, tiny_classifier_3heads_dir, tmp_path):
    import warnings

    from expnet.errors import UnmeasuredWarning

    settings = ExpNetSettings(directions=("cls_to_token",), head_pooling="quantiles", views=("zscore", "rank"), loss="listwise", max_epochs=2)
    expnet = ExpNetExplainer.train([(tiny_classifier, planted_examples(tiny_classifier, n=20))], settings, progress=False)
    assert expnet.history["classifiers"] == [{"model_type": "bert", "num_layers": 2, "num_heads": 2}]
    loaded = get_explainer(str(expnet.save_pretrained(tmp_path / "e")))
    assert loaded.history["classifiers"] == expnet.history["classifiers"]
    other = Classifier.load(tiny_classifier_3heads_dir)  # 3 layers x 4 heads
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded.explain(tiny_classifier, [["good", "fun"]])
        loaded.explain(other, [["good", "fun"], ["bad"]] * 20)  # several batches: still one warning
    unmeasured = [str(w.message) for w in caught if issubclass(w.category, UnmeasuredWarning)]
    assert unmeasured == [
        "this ExpNet was trained and measured on bert 2-layer x 2-head classifiers only; its scores on this bert 3-layer x "
        "4-head classifier are unmeasured: check them with 'expnet evaluate' on annotated texts of your task, or train one "
        "for it with 'expnet train'"
    ]
    # Folders saved before the layouts were recorded compare layers and heads only.
    # A record with a key this version does not know never matches, never crashes.
    loaded.history["classifiers"] = [{"num_layers": 2, "num_heads": 2, "pooling": "cls"}]
    assert "2-layer x 2-head classifiers" in loaded.unmeasured_on(tiny_classifier)
    del loaded.history["classifiers"]
    assert loaded.unmeasured_on(tiny_classifier) is None and "2-layer x 2-head classifiers" in loaded.unmeasured_on(other)


def test_a_broken_record_of_training_classifiers_is_refused(tiny_classifier, tmp_path):
    import json

    settings = ExpNetSettings(loss="listwise", max_epochs=1)
    folder = ExpNetExplainer.train([(tiny_classifier, planted_examples(tiny_classifier, n=20))], settings, progress=False).save_pretrained(tmp_path / "e")
    config = json.loads((folder / "config.json").read_text())
    for broken in ("bert", [{"num_layers": 2}], [{"num_layers": "2", "num_heads": 2}], [{"num_layers": True, "num_heads": 2}]):
        config["history"]["classifiers"] = broken
        (folder / "config.json").write_text(json.dumps(config))
        with pytest.raises(ExpnetError, match="history.classifiers must list"):
            get_explainer(str(folder))
