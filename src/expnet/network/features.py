"""ExpNet's input: per-word attention features through the [CLS] token.

For each chosen layer and head, two values per token (the paper's features): ``A[h, CLS, i]``
(CLS attends to token i) and ``A[h, i, CLS]`` (token i attends to CLS). The classifier reads its
decision from position 0 ([CLS] for BERT, <s> for RoBERTa), so position 0 plays the CLS role.

Word pooling (not public in the paper; our choice): CLS->word is the *sum* over the word's
pieces (the attention mass CLS gives the word), word->CLS is the *mean* (how much the word's
pieces look at CLS on average). CLS->token attention is a distribution over all tokens, so its
values shrink as texts grow; with ``length_scaled`` they are multiplied by the number of real
tokens (1.0 = uniform attention), which makes features comparable between short tweets and long
reviews — the cross-task setting depends on this.

Optional attention x gradient values (``values`` containing ``"attention_x_gradient"``; see
``expnet.network.gradient_features``): the same CLS row/column of ``A * dlogit_y/dA`` per head,
pooled and length-scaled like the attention values. The default ``values=("attention",)`` gives
exactly the paper's features in the same order, and configs saved without ``values`` load as that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import torch

from expnet.errors import ExpnetError
from expnet.words import EncodedBatch, pool_to_words

DIRECTIONS = ("cls_to_token", "token_to_cls")
VALUES = ("attention", "attention_x_gradient")


@dataclass(frozen=True)
class FeatureSpec:
    """Which attention values make a word's feature vector; saved with every ExpNet."""

    layers: tuple[int, ...]
    num_layers: int
    num_heads: int
    directions: tuple[str, ...] = DIRECTIONS
    length_scaled: bool = True
    values: tuple[str, ...] = ("attention",)
    # Append every value again relative to its own text ((x - text mean) / text std): which words
    # stand out *within* a text transfers across tasks better than absolute attention levels.
    in_text: bool = False

    @classmethod
    def for_model(
        cls,
        num_layers: int,
        num_heads: int,
        layers: str | Sequence[int] = "last",
        directions: Sequence[str] = DIRECTIONS,
        length_scaled: bool = True,
        values: Sequence[str] = ("attention",),
        in_text: bool = False,
    ) -> FeatureSpec:
        if layers == "last":
            chosen = (num_layers - 1,)
        elif layers == "all":
            chosen = tuple(range(num_layers))
        else:
            chosen = tuple(sorted({int(i) % num_layers for i in layers}))
        unknown = set(directions) - set(DIRECTIONS)
        if unknown or not directions:
            raise ExpnetError(f"unknown attention direction(s) {sorted(unknown)}: use {DIRECTIONS}")
        unknown = set(values) - set(VALUES)
        if unknown or not values:
            raise ExpnetError(f"unknown feature value(s) {sorted(unknown)}: use {VALUES}")
        return cls(chosen, num_layers, num_heads, tuple(directions), length_scaled, tuple(dict.fromkeys(values)), in_text)

    @property
    def dim(self) -> int:
        base = len(self.layers) * self.num_heads * len(self.directions) * len(self.values)
        return 2 * base if self.in_text else base

    @property
    def needs_gradient(self) -> bool:
        return "attention_x_gradient" in self.values

    def names(self) -> list[str]:
        suffix = {"attention": "", "attention_x_gradient": ".xgrad"}
        names = [
            f"L{l}.h{h}.{d}{suffix[v]}"
            for l in self.layers
            for d in self.directions
            for v in self.values
            for h in range(self.num_heads)
        ]
        return names + [f"{name}.in_text" for name in names] if self.in_text else names

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSpec:
        return cls(
            layers=tuple(data["layers"]),
            num_layers=int(data["num_layers"]),
            num_heads=int(data["num_heads"]),
            directions=tuple(data["directions"]),
            length_scaled=bool(data["length_scaled"]),
            values=tuple(data.get("values", ("attention",))),
            in_text=bool(data.get("in_text", False)),
        )

    def union(self, other: FeatureSpec) -> FeatureSpec:
        """The smallest spec (without per-text features) whose columns hold both specs' values,
        so one feature pass can serve several ExpNet variants (see ``select_columns``)."""
        if (self.num_layers, self.num_heads, self.length_scaled) != (other.num_layers, other.num_heads, other.length_scaled):
            raise ExpnetError("feature specs of different models or length scaling cannot share one feature pass")
        return FeatureSpec(
            layers=tuple(sorted(set(self.layers) | set(other.layers))),
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            directions=tuple(d for d in DIRECTIONS if d in self.directions or d in other.directions),
            length_scaled=self.length_scaled,
            values=tuple(v for v in VALUES if v in self.values or v in other.values),
        )

    def select_columns(self, features: torch.Tensor, source: FeatureSpec) -> torch.Tensor:
        """This spec's features [W, dim] of one text's scored words, taken from features [W, source.dim]
        computed with a wider ``source`` spec (same values; per-text columns recomputed here)."""
        position = {name: i for i, name in enumerate(source.names())}
        base = replace(self, in_text=False).names()
        missing = [name for name in base if name not in position]
        if missing or source.in_text:
            raise ExpnetError(f"feature {missing[0] if missing else 'in_text'!r} cannot be taken from this feature pass")
        chosen = features[:, [position[name] for name in base]]
        if not self.in_text:
            return chosen
        # Same as ``within_text`` for a text whose rows are exactly its scored words.
        mean = chosen.mean(0, keepdim=True)
        std = ((chosen - mean) ** 2).mean(0, keepdim=True).sqrt()
        return torch.cat([chosen, (chosen - mean) / (std + 1e-6)], dim=-1)

    def check_model(self, num_layers: int, num_heads: int) -> None:
        """Refuse a classifier whose attention layout differs from the one trained on."""
        if (num_layers, num_heads) != (self.num_layers, self.num_heads):
            raise ExpnetError(
                f"this ExpNet was trained on a classifier with {self.num_layers} layers x "
                f"{self.num_heads} heads, but this classifier has {num_layers} x {num_heads}; "
                "train an ExpNet for it with 'expnet train'"
            )


def word_features(
    attentions: Sequence[torch.Tensor],
    batch: EncodedBatch,
    spec: FeatureSpec,
    gradients: Sequence[torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """Features [B, W, spec.dim] from a forward pass's attentions (one [B, H, T, T] per layer);
    ``gradients`` (per layer dlogit/dA, same shape) are needed for attention x gradient values."""
    if not attentions:
        raise ExpnetError("the classifier returned no attention weights; load it with attn_implementation='eager'")
    if spec.needs_gradient and gradients is None:
        raise ExpnetError("these ExpNet features need attention gradients; compute them with expnet.network.gradient_features.batch_features")
    mask = batch.attention_mask.to(attentions[0].dtype).to(attentions[0].device)
    n_tokens = mask.sum(-1).view(-1, 1, 1)  # [B, 1, 1]
    parts = []
    for layer in spec.layers:
        for direction in spec.directions:
            for kind in spec.values:
                attention = attentions[layer]  # [B, H, T, T]
                if kind == "attention_x_gradient":
                    attention = attention * gradients[layer].to(attention.dtype)
                if direction == "cls_to_token":
                    values = attention[:, :, 0, :].transpose(1, 2)  # [B, T, H]
                    if spec.length_scaled:
                        values = values * n_tokens
                    parts.append(pool_to_words(values, batch, "sum"))
                else:
                    values = attention[:, :, :, 0].transpose(1, 2)
                    parts.append(pool_to_words(values, batch, "mean"))
    features = torch.cat(parts, dim=-1)
    return torch.cat([features, within_text(features, batch)], dim=-1) if spec.in_text else features


def within_text(features: torch.Tensor, batch: EncodedBatch) -> torch.Tensor:
    """Each feature standardised over the scored words of its own text (0 for a one-word text)."""
    valid = torch.zeros(features.shape[:2], dtype=features.dtype, device=features.device)
    for i, scored in enumerate(batch.word_scored):
        valid[i, : len(scored)] = torch.from_numpy(scored).to(features.dtype)
    weight = valid.unsqueeze(-1)
    count = weight.sum(1, keepdim=True).clamp(min=1)
    mean = (features * weight).sum(1, keepdim=True) / count
    std = (((features - mean) ** 2 * weight).sum(1, keepdim=True) / count).sqrt()
    return (features - mean) / (std + 1e-6) * weight
