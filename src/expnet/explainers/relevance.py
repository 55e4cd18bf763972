"""Relevance propagation: AttnLRP (Achtibat et al., ICML 2024) in its gradient x input form.

AttnLRP's "efficient" implementation (the ``lxt`` package) computes LRP relevance as
``input x gradient`` after changing the backward pass of a few operations so that the gradient
carries LRP's rules:

- LayerNorm: the identity rule on the normalisation, i.e. no gradient through the standard
  deviation (``(x - mean) / stop_grad(std) * w + b``);
- element-wise activations (GELU in the MLP, tanh in the pooler): the identity rule, i.e. the
  gradient is ``f(x) / x`` times the incoming gradient;
- the two matrix products of attention (``Q K^T`` and ``A V``): the uniform rule, i.e. the
  gradient into the query and key projections is divided by 4 and into the value projection
  by 2 (lxt's ``wrap_attention_forward``); the softmax is left to plain autograd, which is
  AttnLRP's softmax rule in gradient x input form;
- linear layers, residual sums and the classifier: plain gradient x input (LRP-0).

``lxt`` itself is not used: its BERT support is a copied transformers 4.x model file that does
not import under transformers 5, and it patches classes process-wide. Here the same rules are
applied with forward hooks that keep every forward value exactly and only change the backward
pass; they are removed when the batch is done. No model file is copied.

Scope: encoders whose attention projections are ``query``/``key``/``value`` (BERT, MiniLM,
RoBERTa, ELECTRA...) or ``q_lin``/``k_lin``/``v_lin`` (DistilBERT) and whose norms are
``nn.LayerNorm``. Activations written as plain functions rather than modules (e.g. the tanh of
RoBERTa's classification head) get plain gradient x input instead of the identity rule.

Token relevance is ``sum_d inputs_embeds x grad`` for the target logit (position and segment
embeddings keep their own share, as in lxt's BERT example). Note from the AttnLRP authors: LRP
is patented; it is free for personal and scientific use.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from transformers import activations as hf_activations

from expnet.errors import ExpnetError
from expnet.explainers.base import BatchAttribution, Explainer, resolve_targets
from expnet.explainers.registry import register
from expnet.models.gradients import input_embeddings, target_logits
from expnet.models.readout import head_reads_readout
from expnet.words import pool_to_words

_PROJECTIONS = (("query", "key", "value"), ("q_lin", "k_lin", "v_lin"))
_ACTIVATIONS = (
    nn.GELU,
    nn.Tanh,
    nn.ReLU,
    nn.SiLU,
    nn.Sigmoid,
    hf_activations.GELUActivation,
    hf_activations.NewGELUActivation,
    hf_activations.FastGELUActivation,
    hf_activations.QuickGELUActivation,
    hf_activations.ClippedGELUActivation,
    hf_activations.AccurateGELUActivation,
    hf_activations.SiLUActivation if hasattr(hf_activations, "SiLUActivation") else nn.SiLU,
)


def scale_gradient(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``x`` in the forward pass; the gradient is multiplied by ``factor`` (the uniform rule)."""
    return x.detach() + (x - x.detach()) * factor


def identity_rule(x: torch.Tensor, out: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``out = f(x)`` in the forward pass; gradient ``f(x) / x`` (the identity rule: relevance
    ``x * grad_in`` equals ``out * grad_out``). ``x`` is kept away from 0 by ``eps``."""
    safe = torch.where(x >= 0, x.clamp(min=eps), x.clamp(max=-eps))
    return out.detach() + (x - x.detach()) * (out / safe).detach()


def layer_norm_identity(module: nn.LayerNorm, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """LayerNorm's value; gradient of ``(x - mean) / stop_grad(std) * w`` (identity rule)."""
    dims = tuple(range(-len(module.normalized_shape), 0))
    mean = x.mean(dim=dims, keepdim=True)
    std = (x.var(dim=dims, keepdim=True, unbiased=False) + module.eps).sqrt().detach()
    linear = (x - mean) / std
    if module.weight is not None:
        linear = linear * module.weight
    return out.detach() + (linear - linear.detach())


def _projection_hooks(model: nn.Module) -> list[tuple[nn.Module, float]]:
    found = []
    for module in model.modules():
        for names in _PROJECTIONS:
            if all(isinstance(getattr(module, n, None), nn.Linear) for n in names):
                q, k, v = (getattr(module, n) for n in names)
                found += [(q, 0.25), (k, 0.25), (v, 0.5)]
    return found


@contextmanager
def attnlrp_rules(model: nn.Module):
    """Install AttnLRP's backward rules on ``model`` with forward hooks; removed on exit."""
    projections = _projection_hooks(model)
    if not projections:
        raise ExpnetError(
            f"attnlrp supports BERT-style encoders (query/key/value or q_lin/k_lin/v_lin attention "
            f"projections); {type(model).__name__} has none: use gae, grad_sam or a gradient explainer"
        )
    handles = []
    seen: set[int] = set()

    def once(module: nn.Module) -> bool:
        if id(module) in seen:
            return False
        seen.add(id(module))
        return True

    try:
        for module, factor in projections:
            if once(module):
                handles.append(module.register_forward_hook(lambda m, a, o, f=factor: scale_gradient(o, f)))
        for module in model.modules():
            if isinstance(module, nn.LayerNorm) and once(module):
                handles.append(module.register_forward_hook(lambda m, a, o: layer_norm_identity(m, a[0], o)))
            elif isinstance(module, _ACTIVATIONS) and once(module):
                handles.append(module.register_forward_hook(lambda m, a, o: identity_rule(a[0], o)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def attnlrp_token_relevance(classifier, batch, targets: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(token relevance [B, T], logits [B, C]) for the target logits, one forward + one backward."""
    with attnlrp_rules(classifier.model), head_reads_readout(classifier), torch.enable_grad():
        embeddings = input_embeddings(classifier, batch).requires_grad_(True)
        output = classifier.forward(batch, inputs_embeds=embeddings)
        chosen = resolve_targets(output.logits, targets)
        (gradient,) = torch.autograd.grad(target_logits(output.logits, chosen).sum(), embeddings)
    relevance = (embeddings.detach().float() * gradient.float()).sum(-1)  # float32 sum under bf16/fp16
    relevance = relevance * batch.attention_mask.to(relevance.dtype)
    return relevance, output.logits.detach()


@register
class AttnLRP(Explainer):
    """AttnLRP (Achtibat et al. 2024) as gradient x input under LRP backward rules installed
    with hooks (identity rule on LayerNorm and activations, uniform rule on the attention
    products); the target logit's relevance on each word-piece embedding, summed per word.
    Signed. LRP is patented: free for personal and scientific use (its authors' note)."""

    name = "attnlrp"
    family = "gradient"
    cost = "1 forward + 1 backward"
    signed = True
    explains = "logit"
    needs_attention = False

    def explain_batch(self, classifier, batch, targets) -> BatchAttribution:
        relevance, logits = attnlrp_token_relevance(classifier, batch, targets)
        return BatchAttribution(pool_to_words(relevance, batch, "sum"), logits)
