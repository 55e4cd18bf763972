"""Contribution explainers and the decomposition module, against brute force on tiny random models.

Brute-force references are written from the papers with explicit loops over heads, queries and
keys, from the module weights and the hidden states the model itself returns; value zeroing is
checked against real forward passes with one value vector zeroed by a hook.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from architectures import BUILDERS, check_one_score_per_word
from expnet.errors import ExpnetError
from expnet.explainers import get_explainer
from expnet.models.classifier import Classifier
from expnet.models.decomposition import decompose
from expnet.models.encoder import capture_layers, classifier_head, encoder_layers
from expnet.models.layer_contributions import decompx_last_layer

CONTRIBUTION = ["attention_norm", "globenc", "alti", "value_zeroing", "decompx", "value_zeroing_rollout"]
TARGETED = ("value_zeroing", "decompx")
SUPPORTED = ["bert", "roberta", "electra"]
TEXTS = [["the", "movie", "was", "unbelievable", "!"], ["i", "hate", "this"], ["not", "very", "boring", "fun"]]


@pytest.fixture(scope="module")
def deep_bert(tiny_classifier_3heads_dir) -> Classifier:
    """3 layers, 4 heads, wide random weights (peaked, varied attention)."""
    return Classifier.load(tiny_classifier_3heads_dir, device="cpu", max_length=32)


@pytest.fixture(scope="module", params=SUPPORTED)
def architecture(request, tmp_path_factory) -> Classifier:
    folder = BUILDERS[request.param](tmp_path_factory.mktemp(request.param), initializer_range=0.3)
    return Classifier.load(folder, device="cpu", max_length=32)


def layer_states(classifier, batch):
    """Per layer input hidden states (the model's own output_hidden_states) and attentions."""
    with torch.no_grad():
        output = classifier.forward(batch, output_attentions=True, output_hidden_states=True)
    return output.hidden_states, output.attentions


def head_vectors(layer, x, head, num_heads):
    """f^h(x_j) = (x_j W_V^h + b_V^h) W_O^h for every token, from the weights: [T, D]."""
    size = x.shape[-1] // num_heads
    part = slice(head * size, (head + 1) * size)
    value, dense = layer.attention.self.value, layer.attention.output.dense
    return (x @ value.weight[part].T + value.bias[part]) @ dense.weight[:, part].T


def decomposed_vectors(layer, x, attention, num_heads):
    """z[i, j] = sum_h alpha^h_ij f^h(x_j) + [i = j] x_j, by loops: [T, T, D]."""
    length = x.shape[0]
    transformed = [head_vectors(layer, x, h, num_heads) for h in range(num_heads)]
    z = torch.zeros(length, length, x.shape[-1])
    for i in range(length):
        for j in range(length):
            for h in range(num_heads):
                z[i, j] += attention[h, i, j] * transformed[h][j]
        z[i, i] += x[i]
    return z


def normalise(v, pre, norm):
    """LayerNorm's linear part on a decomposed vector: gamma * (v - mean v) / std(pre)."""
    return (v - v.mean(-1, keepdim=True)) / (pre.var(-1, unbiased=False, keepdim=True) + norm.eps).sqrt() * norm.weight


def brute_force_layers(classifier, words):
    """Per layer of one unpadded text: (z, pre_ln1, y = LN1 output, pre_ln2), checked against the
    model's own next hidden state."""
    batch = classifier.encode([words])
    hidden, attentions = layer_states(classifier, batch)
    heads = classifier.num_heads
    out = []
    for index, layer in enumerate(classifier.model.bert.encoder.layer):
        x = hidden[index][0]
        z = decomposed_vectors(layer, x, attentions[index][0], heads)
        pre1 = z.sum(1) + layer.attention.output.dense.bias
        y = layer.attention.output.LayerNorm(pre1)
        pre2 = layer.output.dense(layer.intermediate(y)) + y
        torch.testing.assert_close(layer.output.LayerNorm(pre2), hidden[index + 1][0], atol=1e-5, rtol=1e-5)
        out.append((z, pre1, y, pre2, layer))
    return out


# --- attention norms ----------------------------------------------------------------------------
def test_head_norms_and_attention_norm_match_loops_over_heads(deep_bert):
    batch = deep_bert.encode(TEXTS)
    assert not bool(batch.attention_mask.all()), "the batch must contain padding"
    hidden, attentions = layer_states(deep_bert, batch)
    parts = decompose(deep_bert, batch, {"head_norms", "attention_norms"}, layers=(0, -1))
    assert set(parts.head_norms) == {0, -1} and parts.globenc is None and parts.value_zeroing is None
    heads, layers = deep_bert.num_heads, deep_bert.model.bert.encoder.layer
    for key, index in ((0, 0), (-1, 2)):
        assert parts.head_norms[key].shape == batch.input_ids.shape[:1] + (heads,) + batch.input_ids.shape[1:]
        for row in range(batch.batch_size):
            real = batch.attention_mask[row].bool()
            x = hidden[index][row]
            total = torch.zeros(x.shape)
            for h in range(heads):
                per_head = attentions[index][row, h, 0].unsqueeze(-1) * head_vectors(layers[index], x, h, heads)
                total += per_head
                expected = per_head.norm(dim=-1) * real
                torch.testing.assert_close(parts.head_norms[key][row, h], expected, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(parts.attention_norms[key][row], total.norm(dim=-1) * real, atol=1e-5, rtol=1e-4)
            assert float(parts.head_norms[key][row][:, ~real].abs().sum()) == 0.0


def test_attention_norm_explainer_reads_the_asked_layer(deep_bert):
    batch = deep_bert.encode(TEXTS)
    parts = decompose(deep_bert, batch, {"attention_norms"}, layers=(1,))
    (explanation, *_) = get_explainer("attention_norm", layer=1).explain(deep_bert, TEXTS)
    tokens = parts.attention_norms[1][0]
    expected = [float(tokens[batch.token_word[0] == w].sum()) for w in range(len(TEXTS[0]))]
    np.testing.assert_allclose(explanation.scores, expected, rtol=1e-5)
    with pytest.raises(ExpnetError, match="layer 7 does not exist"):
        get_explainer("attention_norm", layer=7).explain(deep_bert, TEXTS[:1])


# --- GlobEnc and ALTI -------------------------------------------------------------------------------
def readout_row_of_product(matrices):
    joint = matrices[0]
    for matrix in matrices[1:]:
        joint = matrix @ joint
    return joint[0] / joint[0].sum()


@pytest.mark.parametrize("second_norm", [True, False])
def test_globenc_matches_explicit_decomposed_vectors(deep_bert, second_norm):
    words = TEXTS[0]
    matrices = []
    for z, pre1, _, pre2, layer in brute_force_layers(deep_bert, words):
        vectors = normalise(z, pre1[:, None], layer.attention.output.LayerNorm)
        if second_norm:
            vectors = normalise(vectors, pre2[:, None], layer.output.LayerNorm)
        matrices.append(vectors.norm(dim=-1))
    expected = readout_row_of_product(matrices)
    batch = deep_bert.encode([words] + TEXTS[1:])  # the longest text, padded company
    got = decompose(deep_bert, batch, {"globenc"}, globenc_second_norm=second_norm).globenc
    torch.testing.assert_close(got[0], expected, atol=1e-5, rtol=1e-4)
    assert torch.allclose(got.sum(-1), torch.ones(3))
    assert float(got[1][~batch.attention_mask[1].bool()].abs().sum()) == 0.0


def test_alti_matches_explicit_contributions(deep_bert):
    words = TEXTS[0]
    matrices = []
    for z, pre1, y, _, layer in brute_force_layers(deep_bert, words):
        length = z.shape[0]
        contributions = torch.zeros(length, length)
        for i in range(length):
            for j in range(length):
                transformed = normalise(z[i, j], pre1[i], layer.attention.output.LayerNorm)
                contributions[i, j] = max(0.0, float(y[i].abs().sum() - (y[i] - transformed).abs().sum()))
        matrices.append(contributions / contributions.sum(-1, keepdim=True))
    expected = readout_row_of_product(matrices)
    batch = deep_bert.encode([words] + TEXTS[1:])
    got = decompose(deep_bert, batch, {"alti"}).alti
    torch.testing.assert_close(got[0], expected, atol=1e-5, rtol=1e-4)
    assert torch.allclose(got.sum(-1), torch.ones(3)) and bool((got >= 0).all())
    assert float(got[1][~batch.attention_mask[1].bool()].abs().sum()) == 0.0


def test_decomposed_vectors_add_up_to_the_real_layer_norm_output(deep_bert):
    """ALTI's premise: sum_j T_i(x_j) plus the LayerNorm'd bias terms is exactly y_i."""
    for z, pre1, y, _, layer in brute_force_layers(deep_bert, TEXTS[2]):
        norm = layer.attention.output.LayerNorm
        parts = normalise(z, pre1[:, None], norm).sum(1)
        bias = normalise(layer.attention.output.dense.bias, pre1, norm) + norm.bias
        torch.testing.assert_close(parts + bias, y, atol=1e-5, rtol=1e-4)


# --- value zeroing ------------------------------------------------------------------------------
def zeroed_logits(classifier, batch, row, token):
    """A real forward pass with token ``token``'s value vector zeroed in every last-layer head."""
    value = classifier.model.base_model.encoder.layer[-1].attention.self.value

    def zero(module, args, output):
        output = output.clone()
        output[row, token] = 0.0
        return output

    handle = value.register_forward_hook(zero)
    try:
        return classifier.predict_logits(batch)[row]
    finally:
        handle.remove()


@pytest.mark.parametrize("explicit", [False, True])
def test_value_zeroing_matches_forwards_with_a_zeroed_value(architecture, explicit):
    batch = architecture.encode(TEXTS)
    logits = architecture.predict_logits(batch)
    targets = torch.tensor([1, 0, 1]) if explicit else None
    parts = decompose(architecture, batch, {"value_zeroing"}, targets=targets)
    chosen = logits.argmax(-1) if targets is None else targets
    assert torch.equal(parts.targets, chosen)
    torch.testing.assert_close(parts.logits, logits)
    for row in range(batch.batch_size):
        for token in range(batch.input_ids.shape[1]):
            if not batch.attention_mask[row, token]:
                assert float(parts.value_zeroing[row, token]) == 0.0
                continue
            expected = logits[row, chosen[row]] - zeroed_logits(architecture, batch, row, token)[chosen[row]]
            assert float(parts.value_zeroing[row, token]) == pytest.approx(float(expected), abs=1e-5)
    assert float(parts.value_zeroing.abs().max()) > 1e-3, "zeroing a value must move the logit"


def layer_outputs_with_zeroed_value(classifier, batch, layer_index, row, token):
    """Every layer's output from a real forward pass with one value vector zeroed in one layer."""
    layers = classifier.model.base_model.encoder.layer
    seen = []

    def zero(module, args, output):
        output = output.clone()
        output[row, token] = 0.0
        return output

    handles = [layers[layer_index].attention.self.value.register_forward_hook(zero)]
    handles += [layer.register_forward_hook(lambda m, a, out: seen.append(out)) for layer in layers]
    try:
        classifier.predict_logits(batch)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def test_value_zeroing_rollout_matches_layer_wise_forwards(architecture):
    """Mohebbi et al.: C_ij^l = cosine distance of layer l's output at i with token j's value
    zeroed in layer l only (its inputs are then the original ones), row-normalised, rolled out."""
    batch = architecture.encode(TEXTS)
    with torch.no_grad():
        original = architecture.forward(batch, output_hidden_states=True).hidden_states[1:]
    num_layers, length = len(original), batch.input_ids.shape[1]
    got = decompose(architecture, batch, {"value_zeroing_rollout"}).value_zeroing_rollout
    for row in range(batch.batch_size):
        size = int(batch.attention_mask[row].sum())  # right padding: the real tokens come first
        matrices = []
        for layer in range(num_layers):
            scores = torch.zeros(size, size)
            for token in range(size):
                zeroed = layer_outputs_with_zeroed_value(architecture, batch, layer, row, token)[layer][row, :size]
                scores[:, token] = 1 - torch.cosine_similarity(zeroed, original[layer][row, :size], dim=-1)
            matrices.append(scores.clamp(min=0) / scores.clamp(min=0).sum(-1, keepdim=True))
        expected = readout_row_of_product(matrices)
        torch.testing.assert_close(got[row, :size], expected, atol=1e-5, rtol=1e-4)
        assert float(got[row, size:].abs().sum()) == 0.0
    assert got.shape == (batch.batch_size, length)


def test_decompx_parts_add_up_to_the_logits(architecture):
    batch = architecture.encode(TEXTS)
    layers = encoder_layers(architecture)
    parts = decompose(architecture, batch, {"decompx"})
    with capture_layers(layers, [len(layers) - 1]) as captures, torch.no_grad():
        output = architecture.forward(batch, output_attentions=True)
    readout = torch.zeros(batch.batch_size, dtype=torch.long)
    split = decompx_last_layer(architecture, layers[-1], captures[len(layers) - 1], output.attentions[-1], readout)
    torch.testing.assert_close(split.sum(1), output.logits, atol=1e-5, rtol=1e-4)
    chosen = output.logits.argmax(-1)
    torch.testing.assert_close(parts.decompx, split[torch.arange(3), :-1, chosen] * batch.attention_mask)
    assert float(parts.decompx.abs().max()) > 1e-3


def test_decompx_matches_token_by_token_linearisation(deep_bert):
    """Each token's part, followed by hand through the last layer and BERT's pooler and classifier,
    with every activation linearised at the model's own pre-activations."""
    words = TEXTS[0]
    batch = deep_bert.encode([words])
    hidden, attentions = layer_states(deep_bert, batch)
    *_, (_, pre1, y, pre2, layer) = brute_force_layers(deep_bert, words)
    model, heads = deep_bert.model, deep_bert.num_heads
    logits = deep_bert.predict_logits(batch)[0]
    target = int(logits.argmax())
    inputs = layer.intermediate.dense(y[0])
    ratio_ffn = layer.intermediate.intermediate_act_fn(inputs) / inputs
    pooled = model.bert.pooler.dense(hidden[-1][0, 0])
    ratio_pool = torch.tanh(pooled) / pooled
    expected = []
    for j in range(hidden[-1].shape[1]):
        x = hidden[-2][0]
        z = sum(attentions[-1][0, h, 0, j] * head_vectors(layer, x, h, heads)[j] for h in range(heads))
        z = z + (x[0] if j == 0 else 0.0)
        part = normalise(z, pre1[0], layer.attention.output.LayerNorm)
        part = layer.output.dense.weight @ (ratio_ffn * (layer.intermediate.dense.weight @ part)) + part
        part = normalise(part, pre2[0], layer.output.LayerNorm)
        part = model.classifier.weight @ (ratio_pool * (model.bert.pooler.dense.weight @ part))
        expected.append(float(part[target]))
    got = decompose(deep_bert, batch, {"decompx"}).decompx[0]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_classifier_head_reproduces_the_logits_from_the_readout_state(architecture):
    batch = architecture.encode(TEXTS)
    with torch.no_grad():
        output = architecture.forward(batch, output_hidden_states=True)
        torch.testing.assert_close(classifier_head(architecture, output.hidden_states[-1][:, 0]), output.logits)


# --- every contribution explainer -----------------------------------------------------------------
@pytest.mark.parametrize("name", CONTRIBUTION)
def test_one_finite_score_per_word_and_truncated_words_unscored(name, tiny_classifier_dir):
    info = check_one_score_per_word(name, {}, tiny_classifier_dir, TEXTS)
    assert info.family == "contribution" and info.explains == ("logit" if name in TARGETED else "readout state")


@pytest.mark.parametrize("name", CONTRIBUTION)
def test_single_text_equals_text_inside_padded_batch(architecture, name):
    explainer = get_explainer(name)
    batched = explainer.explain(architecture, TEXTS)
    for words, inside in zip(TEXTS, batched, strict=True):
        (alone,) = explainer.explain(architecture, [words])
        np.testing.assert_allclose(alone.scores, inside.scores, rtol=1e-4, atol=1e-6)
        assert np.isfinite(inside.scores).all()
        if not explainer.info().signed:
            assert (inside.scores >= 0).all()
    assert any(np.abs(e.scores).max() > 0 for e in batched)


def test_unsupported_architecture_gets_one_line(tmp_path):
    distilbert = Classifier.load(BUILDERS["distilbert"](tmp_path / "distilbert"), device="cpu", max_length=32)
    for name in CONTRIBUTION:
        with pytest.raises(ExpnetError, match="support BERT, RoBERTa and ELECTRA") as error:
            get_explainer(name).explain(distilbert, TEXTS[:1])
        assert "\n" not in str(error.value)
    with pytest.raises(ExpnetError, match="unknown decomposition signal"):
        decompose(distilbert, distilbert.encode(TEXTS[:1]), {"rollout"})


@pytest.mark.parametrize("name", CONTRIBUTION)
def test_only_logit_explainers_depend_on_the_target(deep_bert, name):
    explainer = get_explainer(name)
    predictions = [e.prediction for e in explainer.explain(deep_bert, TEXTS)]
    others = [1 - p for p in predictions]
    if explainer.info().explains != "logit":  # a readout state: the same for every class
        with pytest.raises(ExpnetError, match="scores are the same for every class"):
            explainer.explain(deep_bert, TEXTS, targets=others)
        return
    asked = explainer.explain(deep_bert, TEXTS, targets=predictions)
    other = explainer.explain(deep_bert, TEXTS, targets=others)
    assert not all(np.allclose(a.scores, b.scores) for a, b in zip(asked, other, strict=True))
