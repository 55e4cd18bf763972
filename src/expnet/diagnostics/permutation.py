"""Random permutation (Jain & Wallace 2019): shuffle one layer's attention, rerun the rest.

Per text: the chosen layer's weights (every head, every query row) are shuffled among the real
tokens ``permutations`` times, the model is rerun from that layer, and the total variation
distance ``TVD = 0.5 * sum |y - y'|`` between the permuted and the original output distribution
is recorded. The text's score is the median TVD, plotted against its maximum attention weight:
the largest entry of the layer's [CLS] row, averaged over heads (the distribution a raw
attention explanation shows), over all real tokens including [CLS] and [SEP].

In the final layer only the [CLS] query row can reach the output (the classification heads of
BERT-family models read position 0 alone, and a row only changes its own token's state), so there
only that row is shuffled: the outputs are distributed exactly as when every row is shuffled, at a
fraction of the cost on long texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
from tqdm.auto import tqdm

from expnet.diagnostics.intervention import (
    attention_intervention,
    output_distribution,
    permute_weights,
    reference_pass,
    repeat_rows,
    require_calls,
    resolve_layer,
    skip_to_layer,
    total_variation,
)
from expnet.models.classifier import Classifier

MAX_ATTENTION_BINS = (0.0, 0.25, 0.5, 0.75, 1.0000001)


@dataclass
class PermutationResult:
    layer: int
    permutations: int
    max_attention: np.ndarray  # [N]
    median_tvd: np.ndarray  # [N]
    flip_rate: np.ndarray  # [N] share of permutations that change the predicted class

    def summary(self) -> dict:
        bins = []
        for low, high in pairwise(MAX_ATTENTION_BINS):
            inside = (self.max_attention >= low) & (self.max_attention < high)
            values = self.median_tvd[inside]
            bins.append(
                {
                    "max_attention": [low, min(high, 1.0)],
                    "examples": int(inside.sum()),
                    "median_tvd": float(np.median(values)) if values.size else None,
                }
            )
        return {
            "layer": self.layer,
            "permutations": self.permutations,
            "examples": int(self.median_tvd.size),
            "median_tvd": float(np.median(self.median_tvd)),
            "mean_tvd": float(np.mean(self.median_tvd)),
            "share_tvd_below_0.01": float(np.mean(self.median_tvd < 0.01)),
            "mean_flip_rate": float(np.mean(self.flip_rate)),
            "spearman_max_attention_tvd": _spearman(self.max_attention, self.median_tvd),
            "by_max_attention": bins,
        }

    def per_example(self) -> list[dict]:
        return [
            {"max_attention": float(a), "median_tvd": float(t), "flip_rate": float(f)}
            for a, t, f in zip(self.max_attention, self.median_tvd, self.flip_rate, strict=True)
        ]


def _spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    from scipy.stats import spearmanr

    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y).statistic)


def max_cls_attention(attention: torch.Tensor) -> torch.Tensor:
    """[B, H, T, T] -> [B]: the largest weight of the head-averaged [CLS] row (padding is 0)."""
    return attention[:, :, 0, :].float().mean(1).max(-1).values


@torch.no_grad()
def permutation_effects(
    classifier: Classifier,
    texts: Sequence[Sequence[str]],
    layer: int | None = None,
    permutations: int = 100,
    seed: int = 0,
    token_budget: int = 8192,
    progress: bool = False,
) -> PermutationResult:
    """Median TVD of the output under ``permutations`` shufflings of ``layer``'s attention, per text.

    Each text runs alone (no padding); its permutations go through the model in chunks of at
    most ``token_budget`` tokens, starting at ``layer`` (the earlier layers are computed once).
    """
    layer = resolve_layer(classifier, layer)
    cls_only = 1 if layer == classifier.num_layers - 1 else None
    max_attention, median_tvd, flip_rate = [], [], []
    for index, words in enumerate(tqdm(texts, desc="permutation", disable=not progress, leave=False)):
        batch = classifier.encode([list(words)])
        reference = reference_pass(classifier, batch)
        original = output_distribution(reference.logits)
        max_attention.append(float(max_cls_attention(reference.attentions[layer])[0]))
        generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
        def shuffle(w, m, g=generator):
            return permute_weights(w, m, g, rows=cls_only)

        rows = max(1, token_budget // batch.input_ids.shape[1])
        distances, flips = [], []
        with (
            skip_to_layer(classifier, layer, reference.hidden_states[layer]),
            attention_intervention(classifier, shuffle, layer) as state,
        ):
            for start in range(0, permutations, rows):
                count = min(rows, permutations - start)
                permuted = output_distribution(classifier.forward(repeat_rows(batch, count)).logits)
                distances.append(total_variation(permuted, original))
                flips.append(permuted.argmax(-1) != original.argmax(-1))
            require_calls(state, classifier)
        median_tvd.append(float(np.median(torch.cat(distances).cpu().numpy())))
        flip_rate.append(float(torch.cat(flips).float().mean()))
    return PermutationResult(layer, permutations, np.array(max_attention), np.array(median_tvd), np.array(flip_rate))
