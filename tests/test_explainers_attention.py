"""Attention, attention x gradient and relevance explainers on the tiny random classifiers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import expnet.explainers.attention_gradient as attention_gradient_module
from expnet.errors import ExpnetError
from expnet.explainers import get_explainer
from expnet.explainers.attention import max_flow_to_sink, residual_attention, rollout_matrix
from expnet.explainers.attention_gradient import gae_matrix, grad_sam_matrix
from expnet.explainers.relevance import attnlrp_rules, identity_rule, layer_norm_identity
from expnet.models.classifier import Classifier
from expnet.models.gradients import attention_gradients

EXPLAINERS = ["attention_mean", "rollout", "attention_flow", "gae", "grad_sam", "attnlrp"]
ATTENTION_EXPLAINERS = ["attention_mean", "rollout", "attention_flow", "gae", "grad_sam"]
TEXTS = [
    "the movie was unbelievable !",
    "i hate this",
    "they love you but not that boring film , unbelievable",
]


# --- rollout ----------------------------------------------------------------------------------
def test_rollout_rows_sum_to_one_and_never_reach_padding(tiny_classifier):
    batch = tiny_classifier.encode([t.split() for t in TEXTS])
    assert not bool(batch.attention_mask.all()), "the batch must contain padding"
    with torch.no_grad():
        attentions = tiny_classifier.forward(batch, output_attentions=True).attentions
    joint = rollout_matrix(attentions, batch.attention_mask)
    assert torch.allclose(joint.sum(-1), torch.ones(joint.shape[:2]), atol=1e-5)
    real = batch.attention_mask.bool()
    for row in range(batch.batch_size):
        real_rows = joint[row][real[row]]
        assert float(real_rows[:, ~real[row]].abs().sum()) == 0.0


def test_residual_attention_drops_attention_on_padding():
    attention = torch.full((1, 2, 3, 3), 1 / 3)  # heads spread mass onto the padding key too
    mask = torch.tensor([[1, 1, 0]])
    layer = residual_attention(attention, mask)
    assert torch.allclose(layer.sum(-1), torch.ones(1, 3))
    assert float(layer[0, :2, 2].abs().max()) == 0.0
    assert torch.allclose(layer[0, 0], torch.tensor([0.8, 0.2, 0.0]))  # (1/3 + 1, 1/3) / (5/3)
    assert torch.allclose(layer[0, 2], torch.tensor([0.0, 0.0, 1.0]))  # a padding row stays put


def test_rollout_matches_hand_computed_two_layer_product():
    eye = torch.eye(3)
    head_b = torch.tensor([[0.0, 1, 0], [0, 1, 0], [0, 0, 1]])
    layer1 = torch.stack([eye, head_b]).unsqueeze(0)  # mean_h = [[.5,.5,0],[0,1,0],[0,0,1]]
    top = torch.tensor([[0.0, 0, 1], [0, 1, 0], [0, 0, 1]])
    layer2 = torch.stack([top, top]).unsqueeze(0)
    joint = rollout_matrix((layer1, layer2), torch.ones(1, 3, dtype=torch.long))
    # Â1 = [[.75,.25,0],[0,1,0],[0,0,1]], Â2 = [[.5,0,.5],[0,1,0],[0,0,1]]; J = Â2 Â1.
    assert torch.allclose(joint[0, 0], torch.tensor([0.375, 0.125, 0.5]))
    assert torch.allclose(joint[0, 1], torch.tensor([0.0, 1.0, 0.0]))


# --- attention flow ---------------------------------------------------------------------------
def test_attention_flow_two_layers_hand_computed():
    bottom = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]])
    top = np.array([[0.3, 0.5, 0.2], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # only row 0 reaches the sink
    flows = max_flow_to_sink(np.stack([bottom, top]), sink=0)
    # input 0: min(.5,.3) + min(.2,.5) = .5; input 1: min(.5,.3) + min(.3,.5) = .6;
    # input 2: min(.5,.5) + min(1,.2) = .7
    np.testing.assert_allclose(flows, [0.5, 0.6, 0.7], atol=1e-5)


def test_attention_flow_three_layers_needs_a_real_max_flow():
    layers = np.array(
        [
            [[1.0, 0.0], [0.5, 0.5]],  # into layer 1
            [[0.5, 0.5], [0.0, 1.0]],  # into layer 2
            [[0.6, 0.4], [0.0, 0.0]],  # into the top: only the sink's row matters
        ]
    )
    flows = max_flow_to_sink(layers, sink=0)
    # input 0 saturates the top cut (.6 + .4) by splitting node (1,1)'s .5 as .1 + .4;
    # input 1 only reaches node (1,1), through a .5 edge.
    np.testing.assert_allclose(flows, [1.0, 0.5], atol=1e-5)


# --- attention x gradient ---------------------------------------------------------------------
def test_gae_matrix_with_zero_gradients_is_identity():
    attentions = tuple(torch.rand(2, 3, 4, 4).softmax(-1) for _ in range(2))
    zeros = tuple(torch.zeros_like(a) for a in attentions)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    assert torch.equal(gae_matrix(attentions, zeros, mask), torch.eye(4).expand(2, 4, 4))


def test_gae_explainer_with_zero_gradients_scores_only_cls(tiny_classifier, monkeypatch):
    def zero_gradients(classifier, batch, targets):
        result = attention_gradients(classifier, batch, targets)
        result.gradients = tuple(torch.zeros_like(g) for g in result.gradients)
        return result

    monkeypatch.setattr(attention_gradient_module, "attention_gradients", zero_gradients)
    for explanation in get_explainer("gae").explain(tiny_classifier, TEXTS):
        assert np.array_equal(explanation.scores, np.zeros(len(explanation.words)))


def test_gae_two_layers_hand_computed():
    attention = torch.full((1, 1, 2, 2), 0.5)
    grad1 = torch.tensor([[[[0.0, 2.0], [0.0, 0.0]]]])  # Ā1 = [[0,1],[0,0]]
    grad2 = torch.tensor([[[[0.0, 0.0], [2.0, 0.0]]]])  # Ā2 = [[0,0],[1,0]]
    relevance = gae_matrix((attention, attention), (grad1, grad2), torch.ones(1, 2, dtype=torch.long))
    # R = (I + Ā2)(I + Ā1) = [[1,1],[1,2]]; the wrong order (I + Ā1)(I + Ā2) gives [[2,1],[1,1]].
    assert torch.allclose(relevance[0], torch.tensor([[1.0, 1.0], [1.0, 2.0]]))


def test_gae_and_grad_sam_ignore_padding_even_with_gradients_there():
    attention = torch.full((1, 1, 3, 3), 1 / 3)
    gradient = torch.ones(1, 1, 3, 3)
    mask = torch.tensor([[1, 1, 0]])
    relevance = gae_matrix((attention, attention), (gradient, gradient), mask)
    alone = gae_matrix((attention[..., :2, :2],) * 2, (gradient[..., :2, :2],) * 2, torch.ones(1, 2))
    assert torch.allclose(relevance[0, :2, :2], alone[0])
    assert float(relevance[0, :2, 2].abs().sum()) == 0.0
    assert float(grad_sam_matrix((attention,), (gradient,), mask)[0, :, 2].abs().sum()) == 0.0


def test_gae_and_grad_sam_keep_only_positive_gradient_parts():
    attention = torch.tensor([[[[0.5, 0.5], [0.25, 0.75]]]])  # [1, 1, 2, 2]
    gradient = torch.tensor([[[[2.0, -4.0], [-1.0, 1.0]]]])
    mask = torch.ones(1, 2, dtype=torch.long)
    expected = torch.tensor([[1.0, 0.0], [0.0, 0.75]])
    assert torch.allclose(grad_sam_matrix((attention,), (gradient,), mask)[0], expected)
    assert torch.allclose(gae_matrix((attention,), (gradient,), mask)[0], torch.eye(2) + expected)


# --- every explainer ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", EXPLAINERS)
def test_one_finite_score_per_word_and_deterministic(tiny_classifier, name):
    batch = tiny_classifier.encode([t.split() for t in TEXTS])
    pieces = (batch.token_word[0] == 3).sum()  # "unbelievable" -> un ##believ ##able
    assert int(pieces) == 3
    first = get_explainer(name, seed=3).explain(tiny_classifier, TEXTS)
    again = get_explainer(name, seed=3).explain(tiny_classifier, TEXTS)
    for explanation, repeat, text in zip(first, again, TEXTS, strict=True):
        assert explanation.words == text.split()
        assert explanation.scores.shape == (len(text.split()),)
        assert np.isfinite(explanation.scores).all()
        np.testing.assert_array_equal(explanation.scores, repeat.scores)
    if not get_explainer(name).signed:
        assert all((e.scores >= 0).all() for e in first)
    assert any(np.abs(e.scores).max() > 0 for e in first), "all-zero scores explain nothing"


@pytest.mark.parametrize("name", EXPLAINERS)
def test_single_text_equals_text_inside_padded_batch(tiny_classifier, name):
    explainer = get_explainer(name)
    batched = explainer.explain(tiny_classifier, TEXTS)
    for text, inside in zip(TEXTS, batched, strict=True):
        (alone,) = explainer.explain(tiny_classifier, [text])
        np.testing.assert_allclose(alone.scores, inside.scores, rtol=1e-4, atol=1e-6)
        assert alone.prediction == inside.prediction


def test_rollout_word_scores_leave_out_special_tokens(tiny_classifier):
    batch = tiny_classifier.encode([TEXTS[0].split()])
    with torch.no_grad():
        attentions = tiny_classifier.forward(batch, output_attentions=True).attentions
    cls_row = rollout_matrix(attentions, batch.attention_mask)[0, 0]
    (explanation,) = get_explainer("rollout").explain(tiny_classifier, [TEXTS[0]])
    words_mass = float(cls_row[batch.word_tokens[0]].sum())
    assert explanation.scores.sum() == pytest.approx(words_mass, rel=1e-5)
    assert words_mass < float(cls_row.sum()) - 1e-3  # [CLS] and [SEP] hold the rest


@pytest.mark.parametrize("name", EXPLAINERS)
def test_explicit_target_changes_gradient_methods_and_is_refused_by_the_others(tiny_classifier, name):
    # Attention is the same whichever class is asked for: such an explainer explains the
    # prediction or refuses, never labels its scores as another class's.
    explainer = get_explainer(name)
    predictions = [e.prediction for e in explainer.explain(tiny_classifier, TEXTS[:2])]
    others = [1 - p for p in predictions]
    if explainer.explains == "attention":
        with pytest.raises(ExpnetError, match="scores are the same for every class"):
            explainer.explain(tiny_classifier, TEXTS[:2], targets=others)
        return
    asked = explainer.explain(tiny_classifier, TEXTS[:2], targets=predictions)
    other = explainer.explain(tiny_classifier, TEXTS[:2], targets=others)
    assert [e.target for e in other] == others
    assert not all(np.allclose(a.scores, b.scores) for a, b in zip(asked, other, strict=True))


# --- models without attention ------------------------------------------------------------------
class _NoAttention(nn.Module):
    """A classifier that never returns attention weights."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config

    def get_input_embeddings(self):
        return self.inner.get_input_embeddings()

    def forward(self, **kwargs):
        output = self.inner(**kwargs)
        output.attentions = None
        return output


@pytest.mark.parametrize("name", ATTENTION_EXPLAINERS)
def test_models_without_attention_get_a_clear_error(tiny_classifier, name):
    hidden = Classifier(_NoAttention(tiny_classifier.model), tiny_classifier.tokenizer, "no-attention", 32)
    with pytest.raises(ExpnetError, match="returns no attention weights"):
        get_explainer(name).explain(hidden, TEXTS[:1])


# --- AttnLRP rules -----------------------------------------------------------------------------
def test_identity_rule_keeps_value_and_passes_relevance_unchanged():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.7, 3.0], requires_grad=True)
    out = nn.functional.gelu(x)
    ruled = identity_rule(x, out)
    upstream = torch.tensor([1.0, -2.0, 0.5, 3.0, 0.25])
    (grad,) = torch.autograd.grad((ruled * upstream).sum(), x)
    assert torch.equal(ruled, out)
    assert torch.allclose(x.detach() * grad, out.detach() * upstream, atol=1e-6)  # R_in == R_out


def test_layer_norm_identity_rule_conserves_relevance_up_to_the_bias():
    torch.manual_seed(0)
    norm = nn.LayerNorm(6)
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    x = torch.randn(2, 6, requires_grad=True)
    out = norm(x)
    ruled = layer_norm_identity(norm, x, out)
    upstream = torch.randn(2, 6)
    (grad,) = torch.autograd.grad((ruled * upstream).sum(), x)
    assert torch.equal(ruled, out)
    relevance_in = (x.detach() * grad).sum()
    relevance_out = ((out.detach() - norm.bias.detach()) * upstream).sum()
    assert float(relevance_in) == pytest.approx(float(relevance_out), rel=1e-4)


def test_attnlrp_hooks_keep_the_forward_and_are_removed(tiny_classifier):
    model = tiny_classifier.model
    batch = tiny_classifier.encode([t.split() for t in TEXTS])
    before = tiny_classifier.predict_logits(batch)
    with attnlrp_rules(model):
        assert any(m._forward_hooks for m in model.modules())
        during = tiny_classifier.predict_logits(batch)
    assert torch.equal(before, during)
    assert not any(m._forward_hooks for m in model.modules())
    with pytest.raises(RuntimeError), attnlrp_rules(model):
        raise RuntimeError("boom")
    assert not any(m._forward_hooks for m in model.modules())


def test_attnlrp_differs_from_plain_gradient_times_input(tiny_classifier):
    batch = tiny_classifier.encode([TEXTS[2].split()])
    from expnet.explainers.relevance import attnlrp_token_relevance
    from expnet.models.gradients import input_embeddings

    ruled, logits = attnlrp_token_relevance(tiny_classifier, batch, None)
    with torch.enable_grad():
        embeddings = input_embeddings(tiny_classifier, batch).requires_grad_(True)
        output = tiny_classifier.forward(batch, inputs_embeds=embeddings)
        target = output.logits[0, logits.argmax(-1)[0]]
        (grad,) = torch.autograd.grad(target, embeddings)
    plain = (embeddings.detach() * grad).sum(-1)
    assert not torch.allclose(ruled, plain, atol=1e-6)


def test_attnlrp_rejects_models_without_attention_projections():
    with pytest.raises(ExpnetError, match="BERT-style"), attnlrp_rules(nn.Sequential(nn.Linear(2, 2))):
        pass


def test_attnlrp_uniform_rule_on_attention_projections(tiny_classifier):
    attention = tiny_classifier.model.bert.encoder.layer[0].attention.self
    x = torch.randn(1, 3, attention.query.in_features, requires_grad=True)
    with attnlrp_rules(tiny_classifier.model), torch.enable_grad():
        for projection, factor in ((attention.query, 0.25), (attention.key, 0.25), (attention.value, 0.5)):
            out = projection(x)
            assert torch.equal(out, nn.functional.linear(x, projection.weight, projection.bias))
            (grad,) = torch.autograd.grad(out.sum(), x)
            assert torch.allclose(grad, factor * projection.weight.sum(0).expand_as(x))


def test_a_class_agnostic_explainer_refuses_a_target_other_than_the_prediction(tiny_classifier):
    # Library callers too: the same scores labelled as another class's would be silently wrong.
    texts = [["good", "movie"], ["bad", "film", "indeed"]]
    [first, second] = get_explainer("raw_attention").explain(tiny_classifier, texts)
    predictions = [first.prediction, second.prediction]
    again = get_explainer("raw_attention").explain(tiny_classifier, texts, targets=predictions)
    np.testing.assert_allclose(again[0].scores, first.scores)
    with pytest.raises(ExpnetError, match="raw_attention's scores are the same for every class"):
        get_explainer("raw_attention").explain(tiny_classifier, texts, targets=[predictions[0], 1 - predictions[1]])
    get_explainer("saliency").explain(tiny_classifier, texts, targets=[1 - p for p in predictions])  # reads the class
