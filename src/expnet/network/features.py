"""ExpNet's input: per-word features read where the classification head reads.

Two stages. **Raw values** (``FeatureSpec.raw_names``), one column each:

- for each chosen layer, direction and value kind, one value per head. Direction ``cls_to_token``
  is the readout row ``A[h, r, j]`` (r = the readout position: [CLS] = 0 for BERT-style models,
  the last real token for decoders; ``expnet.models.readout``), ``token_to_cls`` the readout column ``A[h, j, r]``. Value
  ``attention`` is the paper's; ``attention_x_gradient`` is ``A * dlogit_y/dA`` (one backward pass,
  ``expnet.network.gradient_features``); ``head_norm`` is Kobayashi et al.'s
  ``||alpha^h_rj f^h(x_j)||`` (readout row only; ``expnet.models.decomposition``).
- per-token scalar ``signals`` (``expnet.models.decomposition``): ``value_zeroing`` (the target
  logit's change when the token's value vector is zeroed in the last layer), ``decompx`` (the
  token's part of the target logit, last-layer DecompX), ``attention_norm``
  (the last layer's head-mixed ``||sum_h alpha^h_rj f^h(x_j)||``), ``globenc``, ``alti``.
- per-word ``word_properties``, read from the words alone, not from the classifier:
  ``stopword`` (scikit-learn's English stop-word list), ``punctuation`` (no letter or digit),
  ``word_length`` (log(1 + characters)) and ``position`` (the word's place in its text, 0 to 1).
  People rarely mark a stop word or a comma as a rationale, on any task; a classifier's attention
  often rests on them. Learned from the source tasks' rationales, this prior transfers because it
  does not depend on the classifier (for English; elsewhere only the punctuation flag helps).

**Features** (``FeatureSpec.transform``), what the MLP sees (word properties are appended as
they are, after the views: they are already comparable between texts):

- ``head_pooling="none"`` keeps one value per head (the paper). ``"quantiles"`` replaces each
  block of head values by its max, 75th percentile, median, 25th percentile, min and mean over
  heads: which head does what differs between two separately fine-tuned classifiers (and the
  number of heads between models), the distribution over heads much less.
- ``views``: ``absolute`` values, ``zscore`` (standardised over the scored words of the text) and
  ``rank`` (percentile rank within the text, in [0, 1]). Within-text views do not depend on a
  task's overall attention levels or text lengths, which is what transfer between tasks needs.

Word pooling (not public in the paper; our choice): readout-row values and the scalar signals are
*summed* over a word's pieces (mass the readout gives the word), readout-column values are
*averaged*. Readout-row attention (and head norms, GlobEnc/ALTI rows) shrink as texts grow; with
``length_scaled`` they are multiplied by the number of real tokens (1.0 = uniform attention).

The default spec gives exactly the paper's features in the paper's order, and configs saved by
older versions (with ``in_text``) load with the same columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import torch
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from expnet.errors import ExpnetError
from expnet.models.attention import ReadoutAttention
from expnet.models.readout import readout_columns, readout_rows
from expnet.words import EncodedBatch, Pooling, pool_to_words

DIRECTIONS = ("cls_to_token", "token_to_cls")
VALUES = ("attention", "attention_x_gradient", "head_norm")
SIGNALS = ("value_zeroing", "decompx", "attention_norm", "globenc", "alti")
WORD_PROPERTIES = ("stopword", "punctuation", "word_length", "position")
HEAD_POOLINGS = ("none", "quantiles")
VIEWS = ("absolute", "zscore", "rank")
LAYER_RULES = ("last", "all", "listed")
HEAD_STATISTICS = ("max", "q75", "median", "q25", "min", "mean")
_VALUE_SUFFIX = {"attention": "", "attention_x_gradient": ".xgrad", "head_norm": ".norm"}
_VIEW_SUFFIX = {"absolute": "", "zscore": ".in_text", "rank": ".rank"}
# Decomposition signal (expnet.models.decomposition) behind each scalar feature signal.
_DECOMPOSED = {"value_zeroing": "value_zeroing", "decompx": "decompx", "attention_norm": "attention_norms", "globenc": "globenc", "alti": "alti"}
# Signals in logit units (not shares of a row that sums to one): never length-scaled.
_LOGIT_SIGNALS = ("value_zeroing", "decompx")
_ROW_SUMMED: dict[str, Pooling] = {"cls_to_token": "sum", "token_to_cls": "mean"}


@dataclass(frozen=True)
class FeatureSpec:
    """Which values make a word's feature vector; saved with every ExpNet."""

    layers: tuple[int, ...]
    num_layers: int
    num_heads: int
    directions: tuple[str, ...] = DIRECTIONS
    length_scaled: bool = True
    values: tuple[str, ...] = ("attention",)
    signals: tuple[str, ...] = ()
    head_pooling: str = "none"
    views: tuple[str, ...] = ("absolute",)
    # "last"/"all" specs can be re-bound to a classifier with another depth (``for_classifier``).
    layer_rule: str = "listed"
    word_properties: tuple[str, ...] = ()

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
        signals: Sequence[str] = (),
        head_pooling: str = "none",
        views: Sequence[str] | None = None,
        word_properties: Sequence[str] = (),
    ) -> FeatureSpec:
        chosen, rule = _resolve_layers(layers, num_layers)
        _check_choice("attention direction", directions, DIRECTIONS, allow_empty=bool(signals))
        _check_choice("feature value", values, VALUES, allow_empty=bool(signals))
        _check_choice("signal", signals, SIGNALS, allow_empty=True)
        _check_choice("word property", word_properties, WORD_PROPERTIES, allow_empty=True)
        _check_choice("head pooling", [head_pooling], HEAD_POOLINGS)
        views = tuple(views) if views else (("absolute", "zscore") if in_text else ("absolute",))
        _check_choice("feature view", views, VIEWS)
        if "head_norm" in values and "cls_to_token" not in directions:
            raise ExpnetError("head_norm values exist only for the readout row: add the cls_to_token direction")
        return cls(
            chosen, num_layers, num_heads, tuple(dict.fromkeys(directions)) if values else (), length_scaled,
            tuple(dict.fromkeys(values)) if directions else (), tuple(dict.fromkeys(signals)), head_pooling,
            tuple(dict.fromkeys(views)), rule, tuple(p for p in WORD_PROPERTIES if p in word_properties),
        )

    # --- the raw columns one classifier pass produces ----------------------------------------
    def _blocks(self) -> list[tuple[int, str, str]]:
        """(layer, direction, value) triples with one column per head, in the paper's order."""
        return [
            (layer, direction, value)
            for layer in self.layers
            for direction in self.directions
            for value in self.values
            if not (value == "head_norm" and direction != "cls_to_token")
        ]

    def raw_names(self) -> list[str]:
        return self._classifier_names() + self._property_names()

    def _classifier_names(self) -> list[str]:
        heads = [
            f"L{layer}.h{head}.{direction}{_VALUE_SUFFIX[value]}"
            for layer, direction, value in self._blocks()
            for head in range(self.num_heads)
        ]
        return heads + list(self.signals)

    def _property_names(self) -> list[str]:
        return [f"word.{name}" for name in self.word_properties]

    @property
    def is_raw(self) -> bool:
        return self.head_pooling == "none" and self.views == ("absolute",)

    def raw(self) -> FeatureSpec:
        """The spec of the raw columns this spec's features are computed from."""
        return replace(self, head_pooling="none", views=("absolute",))

    # --- the features the MLP sees ------------------------------------------------------------
    def _pooled_names(self) -> list[str]:
        if self.head_pooling == "none":
            return self._classifier_names()
        pooled = [
            f"L{layer}.{statistic}.{direction}{_VALUE_SUFFIX[value]}"
            for layer, direction, value in self._blocks()
            for statistic in HEAD_STATISTICS
        ]
        return pooled + list(self.signals)

    def names(self) -> list[str]:
        pooled = self._pooled_names()
        return [f"{name}{_VIEW_SUFFIX[view]}" for view in self.views for name in pooled] + self._property_names()

    @property
    def dim(self) -> int:
        return len(self.names())

    @property
    def in_text(self) -> bool:
        return "zscore" in self.views

    @property
    def needs_gradient(self) -> bool:
        return "attention_x_gradient" in self.values

    @property
    def decomposition_signals(self) -> tuple[str, ...]:
        """What ``expnet.models.decomposition.decompose`` must compute for these features."""
        wanted = {"head_norms"} if "head_norm" in self.values else set()
        wanted |= {_DECOMPOSED[signal] for signal in self.signals}
        return tuple(sorted(wanted))

    def reads_layout(self, num_layers: int, num_heads: int) -> bool:
        """True when the features mean the same on a classifier of this layout: the trained one,
        or, with statistics over heads, any number of heads; the last layer of any depth, but
        every layer only at the trained depth (one block of features per layer)."""
        if (num_layers, num_heads) == (self.num_layers, self.num_heads):
            return True
        if self.head_pooling == "none":
            return False
        return self.layer_rule == "last" or (self.layer_rule == "all" and num_layers == self.num_layers)

    def transform(self, raw: torch.Tensor, raw_names: Sequence[str], valid: torch.Tensor) -> torch.Tensor:
        """Features [B, W, dim] from raw columns [B, W, len(raw_names)] (any superset of this
        spec's raw columns); ``valid`` [B, W] marks the scored words of each text."""
        position = {name: i for i, name in enumerate(raw_names)}
        missing = [name for name in self.raw().raw_names() if name not in position]
        if missing:
            raise ExpnetError(f"feature {missing[0]!r} cannot be taken from this feature pass")
        parts = []
        for layer, direction, value in self._blocks():
            columns = [position[f"L{layer}.h{h}.{direction}{_VALUE_SUFFIX[value]}"] for h in range(self.num_heads)]
            heads = raw[..., columns]
            parts.append(heads if self.head_pooling == "none" else _head_statistics(heads))
        parts += [raw[..., [position[name]]] for name in self.signals]
        pooled = torch.cat(parts, dim=-1)
        views = {"absolute": lambda: pooled, "zscore": lambda: within_text(pooled, valid), "rank": lambda: rank_within_text(pooled, valid)}
        properties = [raw[..., [position[name]]] for name in self._property_names()]
        return torch.cat([views[view]() for view in self.views] + properties, dim=-1)

    # --- one wide pass for several variants ---------------------------------------------------
    def union(self, other: FeatureSpec) -> FeatureSpec:
        """The smallest raw spec whose columns hold both specs' raw values, so one feature pass
        can serve several ExpNet variants (see ``select_columns``)."""
        if (self.num_layers, self.num_heads, self.length_scaled) != (other.num_layers, other.num_heads, other.length_scaled):
            raise ExpnetError("feature specs of different models or length scaling cannot share one feature pass")
        return FeatureSpec(
            layers=tuple(sorted(set(self.layers) | set(other.layers))),
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            directions=tuple(d for d in DIRECTIONS if d in self.directions or d in other.directions),
            length_scaled=self.length_scaled,
            values=tuple(v for v in VALUES if v in self.values or v in other.values),
            signals=tuple(s for s in SIGNALS if s in self.signals or s in other.signals),
            word_properties=tuple(p for p in WORD_PROPERTIES if p in self.word_properties or p in other.word_properties),
        )

    def select_columns(self, features: torch.Tensor, source: FeatureSpec) -> torch.Tensor:
        """This spec's features [W, dim] of one text's scored words, from the raw features
        [W, source.dim] of a wider raw ``source`` spec (per-text views recomputed here)."""
        if not source.is_raw:
            raise ExpnetError("features can only be taken from a raw feature pass (no head pooling, absolute view only)")
        valid = torch.ones(1, features.shape[0], dtype=torch.bool)
        return self.transform(features.unsqueeze(0), source.raw_names(), valid)[0]

    # --- layouts ------------------------------------------------------------------------------
    def check_model(self, num_layers: int, num_heads: int) -> None:
        """Refuse a classifier whose attention layout differs from the one trained on."""
        if not self.reads_layout(num_layers, num_heads):
            raise ExpnetError(
                f"this ExpNet was trained on a classifier with {self.num_layers} layers x "
                f"{self.num_heads} heads, but this classifier has {num_layers} x {num_heads}; "
                "train an ExpNet for it with 'expnet train'"
            )

    def for_classifier(self, num_layers: int, num_heads: int) -> FeatureSpec:
        """This spec bound to a classifier's layout (itself when the layout is the trained one)."""
        self.check_model(num_layers, num_heads)
        if (num_layers, num_heads) == (self.num_layers, self.num_heads):
            return self
        layers, _ = _resolve_layers(self.layer_rule, num_layers)
        return replace(self, layers=layers, num_layers=num_layers, num_heads=num_heads)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> FeatureSpec:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__) - {"in_text"})  # in_text: older folders
        if unknown:
            raise ExpnetError(f"unknown feature setting(s) {unknown}")
        views = data.get("views") or (("absolute", "zscore") if data.get("in_text") else ("absolute",))
        _check_choice("attention direction", data["directions"], DIRECTIONS, allow_empty=True)
        _check_choice("feature value", data.get("values", ()), VALUES, allow_empty=True)
        _check_choice("signal", data.get("signals", ()), SIGNALS, allow_empty=True)
        _check_choice("head pooling", [data.get("head_pooling", "none")], HEAD_POOLINGS)
        _check_choice("feature view", views, VIEWS)
        _check_choice("layer rule", [data.get("layer_rule", "listed")], ("listed", "last", "all"))
        # Exact types: int("1") or bool("false") would load a model that reads something else.
        layers, num_layers = data["layers"], data["num_layers"]
        whole = [num_layers, data["num_heads"], *layers] if isinstance(layers, list | tuple) else [None]
        if any(type(value) is not int for value in whole) or type(data["length_scaled"]) is not bool:
            raise ExpnetError("layers must be a list of whole numbers, num_layers and num_heads whole numbers, length_scaled true or false")
        if not layers or min(layers) < 0 or max(layers) >= num_layers:
            raise ExpnetError(f"layers {layers} do not exist in a model of {num_layers} layers")
        _check_choice("word property", data.get("word_properties", ()), WORD_PROPERTIES, allow_empty=True)
        return cls(
            layers=tuple(data["layers"]),
            num_layers=data["num_layers"],
            num_heads=data["num_heads"],
            directions=tuple(data["directions"]),
            length_scaled=data["length_scaled"],
            values=tuple(data.get("values", ("attention",))),
            signals=tuple(data.get("signals", ())),
            head_pooling=str(data.get("head_pooling", "none")),
            views=tuple(views),
            layer_rule=str(data.get("layer_rule", "listed")),
            word_properties=tuple(data.get("word_properties", ())),
        )


def _resolve_layers(layers: str | Sequence[int], num_layers: int) -> tuple[tuple[int, ...], str]:
    if layers == "last":
        return (num_layers - 1,), "last"
    if layers == "all":
        return tuple(range(num_layers)), "all"
    if isinstance(layers, str):
        raise ExpnetError(f"layers must be 'last', 'all' or layer numbers, not {layers!r}")
    chosen = sorted({int(i) for i in layers})
    if not chosen or chosen[0] < -num_layers or chosen[-1] >= num_layers:
        raise ExpnetError(f"layers {list(layers)} do not exist in a classifier with {num_layers} layers (0..{num_layers - 1}, or -1 for the last)")
    return tuple(sorted({i % num_layers for i in chosen})), "listed"


def _check_choice(what: str, given: Sequence[str], allowed: Sequence[str], allow_empty: bool = False) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown or not (given or allow_empty):
        raise ExpnetError(f"unknown {what}(s) {unknown or '(none given)'}: use some of {list(allowed)}")


def _head_statistics(heads: torch.Tensor) -> torch.Tensor:
    """[..., H] -> [..., 6]: max, 75th percentile, median, 25th percentile, min, mean over heads."""
    quantiles = torch.quantile(heads.float(), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0], device=heads.device), dim=-1)
    return torch.cat([quantiles.movedim(0, -1), heads.float().mean(-1, keepdim=True)], dim=-1).to(heads.dtype)


def valid_words(batch: EncodedBatch, device: torch.device | str = "cpu") -> torch.Tensor:
    """[B, W] True for each text's scored words (not padding, not cut by truncation)."""
    valid = torch.zeros(batch.batch_size, batch.max_words, dtype=torch.bool)
    for i, scored in enumerate(batch.word_scored):
        valid[i, : len(scored)] = torch.from_numpy(scored)
    return valid.to(device)


def word_features(
    attentions: Sequence[torch.Tensor] | Mapping[int, ReadoutAttention],
    batch: EncodedBatch,
    spec: FeatureSpec,
    gradients: Sequence[torch.Tensor | None] | None = None,
    decomposition=None,
    readout: torch.Tensor | None = None,
) -> torch.Tensor:
    """Features [B, W, spec.dim]: the raw values of ``spec``'s raw columns (``spec.raw()``), from a
    forward pass's attentions (one [B, H, T, T] per layer, or ``{layer: ReadoutAttention}`` already
    read at the readout), then transformed. ``gradients`` (per layer dlogit/dA) for attention x
    gradient values, ``decomposition`` (``expnet.models.decomposition.Decomposition``) for head
    norms and signals, ``readout`` where the head reads: [B] positions or [B, T] weights
    (``expnet.models.readout``; default position 0, the [CLS] token)."""
    raw_spec = spec.raw()
    if raw_spec.values and not attentions:
        raise ExpnetError("the classifier returned no attention weights; load it with attn_implementation='eager'")
    if raw_spec.needs_gradient and gradients is None:
        raise ExpnetError("these ExpNet features need attention gradients; compute them with expnet.network.gradient_features.batch_features")
    if raw_spec.decomposition_signals and decomposition is None:
        raise ExpnetError("these ExpNet features need decomposed contributions; compute them with expnet.network.gradient_features.batch_features")
    mask = batch.attention_mask.float()
    n_tokens = mask.sum(-1).view(-1, 1, 1)  # [B, 1, 1]
    if readout is None:
        readout = torch.zeros(batch.batch_size, dtype=torch.long)
    parts = []
    for layer, direction, value in raw_spec._blocks():
        if value == "head_norm":
            values = decomposition.head_norms[layer].float()  # [B, H, T], readout row
        elif isinstance(layer_attention := attentions[layer], ReadoutAttention):  # read during the pass
            values = layer_attention.rows if direction == "cls_to_token" else layer_attention.columns
        else:
            attention = layer_attention.float()
            if value == "attention_x_gradient":
                gradient = None if gradients is None else gradients[layer]
                assert gradient is not None  # refused on entry when missing
                attention = attention * gradient.float()
            read = readout_rows if direction == "cls_to_token" else readout_columns
            values = read(attention, readout)
        values = values.transpose(1, 2).to(mask.device)  # [B, T, H]
        if direction == "cls_to_token" and raw_spec.length_scaled:
            values = values * n_tokens
        parts.append(pool_to_words(values, batch, _ROW_SUMMED[direction]))
    for signal in raw_spec.signals:
        if signal == "attention_norm":
            values = decomposition.attention_norms[raw_spec.num_layers - 1]
        else:
            values = getattr(decomposition, signal)
        values = values.float().to(mask.device).unsqueeze(-1)  # [B, T, 1]
        if raw_spec.length_scaled and signal not in _LOGIT_SIGNALS:  # rolled-out rows sum to one, like attention
            values = values * n_tokens
        parts.append(pool_to_words(values, batch, "sum"))
    if raw_spec.word_properties:
        parts.append(word_property_values(batch.words, raw_spec.word_properties, batch.max_words).to(mask.device))
    raw = torch.cat(parts, dim=-1)
    if spec.is_raw:
        return raw
    return spec.transform(raw, raw_spec.raw_names(), valid_words(batch, raw.device))


def word_property_values(texts: Sequence[Sequence[str]], properties: Sequence[str], width: int | None = None) -> torch.Tensor:
    """[B, width, len(properties)]: each word's properties (``WORD_PROPERTIES``), 0 past a text's
    end; ``width`` defaults to the longest text."""
    width = max(len(words) for words in texts) if width is None else width
    out = torch.zeros(len(texts), width, len(properties))
    for row, words in enumerate(texts):
        last = max(1, len(words) - 1)
        columns = {
            "stopword": [float(w.lower() in ENGLISH_STOP_WORDS) for w in words],
            "punctuation": [float(not any(c.isalnum() for c in w)) for w in words],
            "word_length": [math.log1p(len(w)) for w in words],
            "position": [i / last for i in range(len(words))],
        }
        out[row, : len(words)] = torch.tensor([columns[p] for p in properties]).T
    return out


def within_text(features: torch.Tensor, valid: torch.Tensor | EncodedBatch) -> torch.Tensor:
    """Each feature standardised over the scored words of its own text (0 for a one-word text
    and for unscored words); ``valid`` is [B, W] (or an encoded batch, whose scored words count)."""
    if isinstance(valid, EncodedBatch):
        valid = valid_words(valid, features.device)
    weight = valid.to(features.dtype).unsqueeze(-1)
    count = weight.sum(1, keepdim=True).clamp(min=1)
    mean = (features * weight).sum(1, keepdim=True) / count
    std = (((features - mean) ** 2 * weight).sum(1, keepdim=True) / count).sqrt()
    return (features - mean) / (std + 1e-6) * weight


def rank_within_text(features: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Each feature's percentile rank among the scored words of its text, in [0, 1] (0.5 for a
    one-word text, 0 for unscored words). Ties are broken by word order: a sort, not a
    pairwise comparison, so memory stays O(W) per feature for long documents."""
    weight = valid.to(features.dtype).unsqueeze(-1)  # [B, W, 1]
    masked = features.masked_fill(~valid.unsqueeze(-1), float("inf"))  # unscored words sort last
    order = masked.argsort(dim=1, stable=True)
    rank = order.argsort(dim=1, stable=True).to(features.dtype)
    count = weight.sum(1, keepdim=True)
    rank = torch.where(count > 1, rank / (count - 1).clamp(min=1), torch.full_like(rank, 0.5))
    return rank * weight
