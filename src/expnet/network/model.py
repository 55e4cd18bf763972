"""The ExpNet network: standardise the features, then a two-layer MLP to one logit per word.

With an anchor feature the logit is ``w * feature + b + MLP(x)``: the MLP's last layer starts at
zero, so training starts from the anchor's own ranking and learns a correction of it.
"""

from __future__ import annotations

import torch
from torch import nn


class ExpNetModel(nn.Module):
    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    def __init__(self, input_dim: int, hidden_size: int = 64, dropout: float = 0.1, anchor: int | None = None) -> None:
        super().__init__()
        # The feature statistics live in buffers so they are saved with the weights.
        self.register_buffer("feature_mean", torch.zeros(input_dim))
        self.register_buffer("feature_std", torch.ones(input_dim))
        self.mlp = nn.Sequential(
            nn.Linear(input_dim, hidden_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_size, 1),
        )
        self.anchor = anchor
        if anchor is not None:
            output = self.mlp[3]
            assert isinstance(output, nn.Linear)
            nn.init.zeros_(output.weight)
            self.anchor_weight = nn.Parameter(torch.ones(1))

    def set_feature_statistics(self, features: torch.Tensor) -> None:
        self.feature_mean.copy_(features.mean(0))
        self.feature_std.copy_(features.std(0).clamp(min=1e-6))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Importance logits with the shape of ``features`` minus its last axis."""
        standardised = (features - self.feature_mean) / self.feature_std
        logits = self.mlp(standardised).squeeze(-1)
        if self.anchor is not None:
            logits = logits + self.anchor_weight * standardised[..., self.anchor]
        return logits
