"""Where a sequence classifier's head reads: one notion shared by every attention-based explainer.

Kinds (``readout_kind``):

- ``"first"``: the first token ([CLS], <s>) - BERT, RoBERTa, DistilBERT, ELECTRA, DeBERTa-v2 and
  ModernBERT with ``classifier_pooling="cls"``.
- ``"last"``: decoder-only classifiers (GPT-2, Llama, Mistral, Qwen2, Gemma ...
  ``ForSequenceClassification``). Their head reads, exactly as transformers does, the rightmost
  token whose id is not ``config.pad_token_id`` (so left and right padding both work); with no
  pad id it reads the last position, which the model only allows for a batch of one.
- ``"mean"``: ModernBERT with ``classifier_pooling="mean"``; the head reads the mean of the
  final hidden states over the real tokens. No single row is read, so explainers that read one
  attention row read the mean of the real tokens' rows instead (``readout_weights`` is uniform
  over them): that is the row of the pooled vector in the linear picture the fixed-rule
  explainers take of attention.

A model is decoder-only (``is_causal``) when transformers knows a causal LM for its model type
but no masked LM: BERT, RoBERTa and ELECTRA have both, DeBERTa-v2 and ModernBERT only the masked
one, GPT-2 and Llama only the causal one.

``head_reads_readout`` fixes the one pass where a decoder's own head gets it wrong: on
``inputs_embeds`` (every gradient explainer) the model cannot see pad ids and reads the last
position, which in a right-padded batch is padding (and, for a tokenizer that ends every text
with its pad token, an eos the head skips on input ids).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_MASKED_LM_MAPPING_NAMES

from expnet.errors import ExpnetError
from expnet.words import EncodedBatch

ReadoutKind = Literal["first", "last", "mean"]


def _config(classifier_or_config):
    """The config of a ``Classifier``, a model, or the config itself."""
    return getattr(classifier_or_config, "config", classifier_or_config)


def _text_config(config):
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def is_causal(config) -> bool:
    """True for decoder-only models (causal self-attention; the head reads the last token)."""
    model_type = getattr(_config(config), "model_type", "")
    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def readout_kind(config) -> ReadoutKind:
    """``"first"``, ``"last"`` or ``"mean"``: where the classification head reads (module doc)."""
    config = _config(config)
    if is_causal(config):
        return "last"
    if getattr(config, "model_type", "") == "modernbert" and getattr(config, "classifier_pooling", "cls") == "mean":
        return "mean"
    return "first"


def last_real_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B] the rightmost position whose mask is 1 (left or right padding); 0 for an empty row."""
    indices = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    return (indices * attention_mask.bool()).argmax(-1)


def appended_pad_tokens(tokenizer, pad_id: int | None) -> int:
    """How many tokens with the pad id the tokenizer appends to every text (an eos that is also
    the pad token, e.g. a Llama tokenizer with ``add_eos_token``): the head skips them on input
    ids, so the real readout is that many places before the last real token."""
    if pad_id is None:
        return 0
    ids = tokenizer("a")["input_ids"]
    count = 0
    while count < len(ids) and ids[len(ids) - 1 - count] == pad_id:
        count += 1
    return count


def _last_non_pad(config, batch: EncodedBatch) -> torch.Tensor:
    pad_id = getattr(_text_config(config), "pad_token_id", None)
    length = batch.input_ids.shape[-1]
    if pad_id is None:
        if batch.batch_size > 1 and not bool(batch.attention_mask.bool().all()):
            raise ExpnetError(
                "this decoder classifier has no pad_token_id in its config, so its head cannot find the "
                "last token of a padded text; set model.config.pad_token_id to the tokenizer's pad token id"
            )
        return torch.full((batch.batch_size,), length - 1, dtype=torch.long, device=batch.input_ids.device)
    # transformers' rule: the rightmost token that is not the pad id (argmax picks the last max).
    indices = torch.arange(length, device=batch.input_ids.device)
    return (indices * (batch.input_ids != pad_id)).argmax(-1)


def readout_positions(classifier_or_config, batch: EncodedBatch) -> torch.Tensor:
    """[B] long: the position each text's classification head reads.

    Raises ``ExpnetError`` for mean pooling (no single position; use ``readout_weights``).
    """
    config = _config(classifier_or_config)
    kind = readout_kind(config)
    if kind == "mean":
        raise ExpnetError(
            f"{config.model_type} with classifier_pooling='mean' reads the mean of every token, not one "
            "position; use readout_weights (or a classifier with classifier_pooling='cls')"
        )
    if kind == "last":
        return _last_non_pad(config, batch)
    return torch.zeros(batch.batch_size, dtype=torch.long, device=batch.input_ids.device)


def readout_weights(classifier_or_config, batch: EncodedBatch) -> torch.Tensor:
    """[B, T] float: how much the head reads of each position - one-hot at ``readout_positions``,
    or uniform over the real tokens for mean pooling. Rows sum to 1."""
    config = _config(classifier_or_config)
    if readout_kind(config) == "mean":
        real = batch.attention_mask.float()
        return real / real.sum(-1, keepdim=True).clamp(min=1)
    positions = readout_positions(config, batch)
    weights = torch.zeros(batch.input_ids.shape, dtype=torch.float32, device=batch.input_ids.device)
    return weights.scatter_(1, positions.unsqueeze(1), 1.0)


def readout_rows(matrix: torch.Tensor, readout: torch.Tensor) -> torch.Tensor:
    """The readout query row of each text: [B, (H,) T, T] -> [B, (H,) T].

    ``readout`` is ``readout_positions`` ([B] long: a gather of row r_b per text) or
    ``readout_weights`` ([B, T] float: the weighted mean of the rows).
    """
    if readout.dtype in (torch.int64, torch.int32):
        index = readout.to(matrix.device).view(-1, *([1] * (matrix.dim() - 1)))
        index = index.expand(*matrix.shape[:-2], 1, matrix.shape[-1])
        return matrix.gather(-2, index).squeeze(-2)
    weights = readout.to(matrix.device, matrix.dtype).view(readout.shape[0], *([1] * (matrix.dim() - 3)), 1, -1)
    return (weights @ matrix).squeeze(-2)


def readout_columns(matrix: torch.Tensor, readout: torch.Tensor) -> torch.Tensor:
    """The readout key column of each text (what every token pays the readout token):
    [B, (H,) T, T] -> [B, (H,) T]; ``readout`` as in ``readout_rows``."""
    return readout_rows(matrix.transpose(-1, -2), readout)


def _score_head(model: nn.Module) -> nn.Module | None:
    """The per-token head of a decoder classifier (``score`` in every transformers decoder)."""
    head = getattr(model, "score", None)
    return head if isinstance(head, nn.Module) else None


@contextmanager
def head_reads_readout(classifier) -> Iterator[None]:
    """While open, a decoder classifier run on ``inputs_embeds`` reads each text's last real token
    (by the attention mask of that call; before the pad-id tokens its tokenizer appends to every
    text, ``appended_pad_tokens``), as it does on ``input_ids``; other models are unchanged.

    The head's per-token logits at the readout position are copied to every position, so the
    model's own pick of the last position returns them; forward values and gradients are those
    of the readout token. Equal to the model's ``input_ids`` rule unless a text's own words end
    with the pad token's text.
    """
    model = classifier.model
    if readout_kind(model.config) != "last":
        yield
        return
    head = _score_head(model)
    if head is None:
        raise ExpnetError(
            f"{type(model).__name__} is a decoder classifier without a 'score' head, so expnet cannot make "
            "it read the last real token on inputs_embeds; use an attention or perturbation explainer"
        )
    masks: list[torch.Tensor] = []
    skipped = appended_pad_tokens(classifier.tokenizer, model.config.pad_token_id)

    def remember_mask(_module, args, kwargs):
        on_embeddings = kwargs.get("input_ids") is None and kwargs.get("attention_mask") is not None
        masks[:] = [kwargs["attention_mask"]] if on_embeddings else []

    def read_last_real(_module, _args, logits):
        if not masks or logits.dim() != 3:
            return None  # input_ids: the model finds the last non-pad token itself
        rows = torch.arange(logits.shape[0], device=logits.device)
        positions = (last_real_positions(masks[0]) - skipped).clamp(min=0)
        picked = logits[rows, positions.to(logits.device)]
        return picked.unsqueeze(1).expand_as(logits)

    handles = [
        model.register_forward_pre_hook(remember_mask, with_kwargs=True),
        head.register_forward_hook(read_last_real),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def align_padding(model: PreTrainedModel, tokenizer, trained: bool = True) -> None:
    """Batch a classifier exactly as it sees a text alone (for ``Classifier.load``):

    - right padding for every model: an encoder's head reads position 0, which left padding makes
      a pad token; a decoder's absolute positions (GPT-2's learned ones) would shift;
    - an encoder without a pad token is refused (one line);

    and for a decoder:

    - one pad token for the tokenizer and the head: the head reads the rightmost token that is not
      ``model.config.pad_token_id``, so the tokenizer pads with that id when the config has one
      (a config's pad id 0 beside a tokenizer padding with eos would make a batched head read
      padding); else the tokenizer's pad token (its eos token when it has none) is written into
      the config, unless the tokenizer ends every text with it: the head would then skip each
      text's last token, which the model without a pad id reads (refused for a ``trained``
      classifier; a backbone about to be fine-tuned learns to read what the rule gives).
    """
    tokenizer.padding_side = "right"
    if not is_causal(model.config):
        if tokenizer.pad_token_id is None:
            # Not a stand-in chosen here: the pad id is also what removed words become and the
            # gradient baseline, where a [SEP] in its place would change the scores unasked.
            raise ExpnetError(
                "this encoder's tokenizer has no pad token, so texts cannot be batched; set pad_token in its "
                "tokenizer_config.json to the token the model was trained to pad with"
            )
        return
    head_pad = getattr(model.config, "pad_token_id", None)
    if head_pad is not None and head_pad != tokenizer.pad_token_id:
        token = tokenizer.convert_ids_to_tokens(head_pad) if 0 <= head_pad < len(tokenizer) else None
        if token is None:
            raise ExpnetError(
                f"this decoder's config has pad_token_id {head_pad}, which its tokenizer ({len(tokenizer)} tokens) "
                "does not have; set pad_token_id in config.json to the tokenizer's pad or eos token id"
            )
        tokenizer.pad_token = token
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise ExpnetError("this decoder's tokenizer has neither a pad nor an eos token, so texts cannot be batched")
        tokenizer.pad_token = tokenizer.eos_token
    if head_pad is None:
        if trained and appended_pad_tokens(tokenizer, tokenizer.pad_token_id):
            raise ExpnetError(
                f"this decoder's config has no pad_token_id and its tokenizer ends every text with {tokenizer.pad_token!r}, "
                "the only token it could pad with: a head told to skip it would read another token than the model does; "
                "set pad_token_id in config.json (to that token's id if the model was fine-tuned skipping it) or give "
                "the tokenizer a pad token that texts do not end with"
            )
        model.config.pad_token_id = tokenizer.pad_token_id
