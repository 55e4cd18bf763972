"""Adversarial attention (Jain & Wallace 2019): very different attention, (almost) the same output?

Per text, ``candidates`` (k = 5) attention distributions for the chosen layer are searched with
Adam (lr 0.01, AMSGrad, as in the authors' code) from ``log(uniform) + 3 * N(0, 1)`` logits. The
loss per candidate is ``-JSD(adv, orig) + 500 * relu(TVD(y_adv, y) - 0.01)`` and the candidates
of a text are pushed apart by subtracting their mean pairwise JSD. What is searched is the [CLS]
query row of every head of the layer (the row a raw-attention explanation reads and, in the
final layer, the only row the output depends on); the other rows keep their weights. JSD is in
nats (natural log; at most ln 2 = 0.693), averaged over heads.

Reported per text: the largest JSD among all candidates, at any step of the search, whose output
stayed within ``report_epsilon`` = 0.05 TVD of the original (0 when none did: the original
attention itself is the only one found). Texts are searched in batches, every candidate a row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from expnet.diagnostics.intervention import (
    attention_intervention,
    output_distribution,
    reference_pass,
    repeat_rows,
    require_calls,
    resolve_layer,
    skip_to_layer,
    total_variation,
)
from expnet.models.classifier import Classifier

LN2 = math.log(2.0)


def jsd(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Jensen-Shannon divergence in nats over the last axis (zeros handled as in the authors' code)."""
    m = 0.5 * (p + q)

    def kl(a, b):
        return (a * (torch.log(a + eps) - torch.log(b + eps))).sum(-1)

    return 0.5 * (kl(p, m) + kl(q, m))


@dataclass
class AdversarialResult:
    layer: int
    candidates: int
    steps: int
    learning_rate: float
    hinge_epsilon: float
    report_epsilon: float
    max_jsd: np.ndarray  # [N] nats, mean over heads; 0 when no candidate stayed within epsilon
    max_jsd_head_mean: np.ndarray  # [N] JSD between the head-averaged [CLS] rows of that candidate and the original
    tvd_at_max: np.ndarray  # [N]
    found: np.ndarray  # [N] bool: some candidate stayed within report_epsilon

    def summary(self) -> dict:
        values = self.max_jsd
        return {
            "layer": self.layer,
            "candidates": self.candidates,
            "steps": self.steps,
            "learning_rate": self.learning_rate,
            "hinge_epsilon": self.hinge_epsilon,
            "report_epsilon": self.report_epsilon,
            "jsd_units": "nats (max ln 2 = 0.693)",
            "examples": int(values.size),
            "share_found_within_epsilon": float(self.found.mean()),
            "mean_max_jsd": float(values.mean()),
            "median_max_jsd": float(np.median(values)),
            "median_max_jsd_where_found": float(np.median(values[self.found])) if self.found.any() else None,
            "quartiles_max_jsd": [float(q) for q in np.quantile(values, [0.25, 0.75])],
            "share_max_jsd_above_half_ln2": float(np.mean(values > LN2 / 2)),
            "median_max_jsd_head_mean": float(np.median(self.max_jsd_head_mean)),
        }

    def per_example(self) -> list[dict]:
        return [
            {"max_jsd": float(j), "max_jsd_head_mean": float(h), "tvd": float(t), "found": bool(f)}
            for j, h, t, f in zip(self.max_jsd, self.max_jsd_head_mean, self.tvd_at_max, self.found, strict=True)
        ]


def adversarial_attention(
    classifier: Classifier,
    texts: Sequence[Sequence[str]],
    layer: int | None = None,
    candidates: int = 5,
    steps: int = 100,
    learning_rate: float = 0.01,
    hinge_epsilon: float = 0.01,
    report_epsilon: float = 0.05,
    hinge_weight: float = 500.0,
    batch_size: int = 8,
    seed: int = 0,
    progress: bool = False,
) -> AdversarialResult:
    """Max JSD within ``report_epsilon`` of the output, per text (see the module docstring)."""
    layer = resolve_layer(classifier, layer)
    # The search settings, in the order both _search and AdversarialResult take them.
    search = (candidates, steps, learning_rate, hinge_epsilon, report_epsilon)
    results = {"jsd": [], "head_mean": [], "tvd": [], "found": []}
    bar = tqdm(total=len(texts), desc="adversarial", disable=not progress, leave=False)
    for start in range(0, len(texts), batch_size):
        chunk = [list(words) for words in texts[start : start + batch_size]]
        generator = torch.Generator().manual_seed(seed * 1_000_003 + start)
        found = _search(classifier, chunk, layer, *search, hinge_weight, generator)
        for key, values in found.items():
            results[key].append(values)
        bar.update(len(chunk))
    bar.close()
    merged = {key: np.concatenate(values) for key, values in results.items()}
    return AdversarialResult(
        layer,
        *search,
        merged["jsd"],
        merged["head_mean"],
        merged["tvd"],
        merged["found"].astype(bool),
    )


def _search(classifier, chunk, layer, k, steps, lr, hinge_epsilon, report_epsilon, hinge_weight, generator) -> dict:
    batch = classifier.encode(chunk)
    reference = reference_pass(classifier, batch)
    n, heads = batch.batch_size, classifier.num_heads
    device = reference.logits.device
    original_y = output_distribution(reference.logits).repeat_interleave(k, 0)  # [N, C]
    original_a = reference.attentions[layer][:, :, 0, :].float().repeat_interleave(k, 0)  # [N, H, T]
    keys = batch.attention_mask.bool().repeat_interleave(k, 0)[:, None, :].expand_as(original_a)  # [N, H, T]
    real = keys.float().sum(-1, keepdim=True)
    noise = torch.randn(original_a.shape, generator=generator).to(device)
    logits = torch.where(keys, -torch.log(real) + 3.0 * noise, torch.zeros_like(noise)).requires_grad_(True)
    optimiser = torch.optim.Adam([logits], lr=lr, amsgrad=True)

    best_jsd = torch.zeros(n * k, device=device)
    best_tvd = torch.zeros(n * k, device=device)
    best_attention = original_a.clone()
    found = torch.zeros(n * k, dtype=torch.bool, device=device)
    rows = repeat_rows(batch, k)
    current = {}

    def replace_cls_row(weights, _key_mask):
        return torch.cat([current["attention"].to(weights.dtype).unsqueeze(2), weights[:, :, 1:, :]], dim=2)

    with (
        skip_to_layer(classifier, layer, reference.hidden_states[layer].repeat_interleave(k, 0)),
        attention_intervention(classifier, replace_cls_row, layer) as state,
        torch.enable_grad(),
    ):
        for step in range(steps + 1):
            attention = logits.masked_fill(~keys, float("-inf")).softmax(-1)
            current["attention"] = attention
            y = output_distribution(classifier.forward(rows).logits)
            tvd = total_variation(y, original_y)
            divergence = jsd(attention, original_a).mean(-1)  # [N], mean over heads
            with torch.no_grad():
                better = (tvd <= report_epsilon) & (divergence > best_jsd)
                best_jsd = torch.where(better, divergence, best_jsd)
                best_tvd = torch.where(better, tvd, best_tvd)
                best_attention[better] = attention[better].detach()
                found |= tvd <= report_epsilon
            if step == steps:
                break
            grouped = attention.view(n, k, heads, -1)
            spread = jsd(grouped.unsqueeze(1), grouped.unsqueeze(2)).mean(-1).mean(dim=(1, 2))  # [n]
            loss = (-divergence + hinge_weight * torch.relu(tvd - hinge_epsilon)).sum() - spread.sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        require_calls(state, classifier)

    head_mean = jsd(best_attention.mean(1), original_a.mean(1))  # [N]
    per_text = best_jsd.view(n, k)
    pick = per_text.argmax(-1)
    index = torch.arange(n, device=device) * k + pick
    head_mean = torch.where(found[index] & (best_jsd[index] > 0), head_mean[index], torch.zeros_like(head_mean[index]))
    return {
        "jsd": per_text.max(-1).values.detach().cpu().numpy(),
        "head_mean": head_mean.detach().cpu().numpy(),
        "tvd": best_tvd[index].detach().cpu().numpy(),
        "found": found.view(n, k).any(-1).cpu().numpy(),
    }
