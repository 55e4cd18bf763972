"""Words and subword tokens: encoding word lists and pooling token scores back to words.

A text is a list of words. It is tokenised as a whole (the words joined by single spaces) by the
fast tokenizer, and each subword token is mapped to the word its character offset falls in; words
are never re-tokenised one at a time, so the pieces are exactly the ones the classifier sees.
Special tokens belong to no word (index -1) and never get a score. A word without pieces is
"unscored": it keeps its place, with ``scored`` False, and ``cut`` says why: True when it lies
past the point where the text was truncated, False when the tokenizer makes no piece of it at all
(a word of only zero-width or control characters, which BERT-style normalizers delete).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch

from expnet.errors import ExpnetError

Pooling = Literal["sum", "mean", "max"]


def split_text(text: str) -> list[str]:
    """Words of a raw text: whitespace-separated, punctuation kept on its word."""
    words = text.split()
    if not words:
        raise ExpnetError("empty text: give at least one non-blank word to explain")
    return words


@dataclass
class EncodedBatch:
    """A padded batch of word lists, tokenised, with the token -> word map."""

    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    token_word: torch.Tensor  # [B, T], word index of each token, -1 for special and padding
    words: list[list[str]]
    token_type_ids: torch.Tensor | None = None
    word_scored: list[np.ndarray] = field(default_factory=list)  # per text, bool per word
    word_cut: list[np.ndarray] = field(default_factory=list)  # per text, bool per word: lost to truncation

    @property
    def batch_size(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def max_words(self) -> int:
        return max(len(w) for w in self.words)

    @property
    def word_tokens(self) -> torch.Tensor:
        """[B, T] True where a token belongs to a word (not special, not padding)."""
        return self.token_word >= 0

    def row(self, index: int) -> EncodedBatch:
        """Text ``index`` alone, as a batch of one without padding: its results cannot depend
        on the batch it came in."""
        real = self.attention_mask[index].bool()
        return self.map_tensors(
            lambda t: t[index, real].unsqueeze(0),
            words=[self.words[index]],
            word_scored=[self.word_scored[index]] if self.word_scored else [],
            word_cut=[self.word_cut[index]] if self.word_cut else [],
        )

    def map_tensors(self, function, **fields) -> EncodedBatch:
        """This batch with ``function`` applied to each token tensor (an absent one stays None)
        and ``fields`` replaced."""
        def apply(t):
            return None if t is None else function(t)

        return replace(
            self,
            input_ids=apply(self.input_ids),
            attention_mask=apply(self.attention_mask),
            token_word=apply(self.token_word),
            token_type_ids=apply(self.token_type_ids),
            **fields,
        )

    def truncated(self, index: int) -> bool:
        return not bool(self.word_scored[index].all())

    def to(self, device: torch.device | str) -> EncodedBatch:
        return self.map_tensors(lambda t: t.to(device))


def _word_starts(words: Sequence[str]) -> np.ndarray:
    """Character offset of each word in ``" ".join(words)``."""
    lengths = np.fromiter((len(w) + 1 for w in words), dtype=np.int64, count=len(words))
    return np.concatenate([[0], np.cumsum(lengths)[:-1]])


def _check_offsets(tokenizer, words, starts: np.ndarray, owners: np.ndarray, ends: np.ndarray) -> None:
    """Refuse a tokenizer whose offsets do not fall inside the words: a piece reaching into the
    next word means the offsets are shifted (a vocabulary that drops characters it cannot
    encode does this), and every word score would silently go to the wrong word."""
    word_ends = starts + np.fromiter((len(w) for w in words), dtype=np.int64, count=len(words))
    bad = (owners < 0) | (ends > word_ends[owners.clip(min=0)])
    if bad.any():
        raise ExpnetError(
            f"the tokenizer of this classifier ({type(tokenizer).__name__}) gives character offsets "
            "that do not match the text, so its pieces cannot be mapped to words; this happens "
            "when its vocabulary lacks byte tokens for characters it cannot encode: remove them "
            "from the text or use a tokenizer with byte fallback tokens"
        )


def encode_words(tokenizer, batch_words: Sequence[Sequence[str]], max_length: int) -> EncodedBatch:
    """Tokenise whole texts once and map every subword token to its word by character offset."""
    word_lists = [list(words) for words in batch_words]
    for words in word_lists:
        if not words or any(not w or w.isspace() for w in words):
            raise ExpnetError("empty text or empty word: every text needs at least one non-blank word")
    texts = [" ".join(words) for words in word_lists]
    encoded = tokenizer(
        texts,
        padding=True,
        # Right, whatever the tokenizer was set to since: an encoder's head reads position 0 and
        # GPT-2's positions are absolute, so left padding would change what they see; a decoder
        # reads its last real token on either side (``expnet.models.readout``).
        padding_side="right",
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_tensors="pt",
    )
    offsets = encoded["offset_mapping"].numpy()
    special = encoded["special_tokens_mask"].numpy().astype(bool)
    mask = encoded["attention_mask"].numpy().astype(bool)
    token_word = np.full(offsets.shape[:2], -1, dtype=np.int64)
    word_scored, word_cut = [], []
    for row, words in enumerate(word_lists):
        starts = _word_starts(words)
        # Every real piece, zero-width ones included: RoBERTa's offset trimming gives the bare "Ġ"
        # before a word (2, 2), and a piece left out would be in the input but in no word, so
        # removing that word would leave it behind.
        real = mask[row] & ~special[row]
        token_starts = offsets[row, real, 0].copy()
        # A piece that starts on the space between two words belongs to the word after it: both
        # "Ġword" of a byte-level BPE that keeps the space in its offsets (GPT-2 or RoBERTa style
        # with trim_offsets=False) and a bare "Ġ" or "▁" piece, which these tokenizers emit
        # before a word they have no merged piece for (rare words, digits, emoji, accents).
        text = texts[row]
        on_space = np.fromiter((text[i] == " " for i in token_starts), dtype=bool, count=len(token_starts))
        token_starts[on_space] += 1
        # The word a token belongs to is the last word starting at or before the token's start.
        token_word[row, real] = np.searchsorted(starts, token_starts, side="right") - 1
        _check_offsets(tokenizer, words, starts, token_word[row, real], offsets[row, real, 1])
        scored = np.zeros(len(words), dtype=bool)
        scored[token_word[row, real]] = True
        word_scored.append(scored)
        # Only words after the last kept one can have been cut off, and only if tokens were
        # (a word of no pieces right at the cut is counted as cut: nothing tells them apart).
        # The last kept word itself is cut when the first piece cut off starts inside it (not when
        # its kept pieces end before it does: a final combining accent or zero-width character
        # makes no piece): a score read from some of its pieces is not its score, so it is
        # unscored like the words after it.
        cut = np.zeros(len(words), dtype=bool)
        overflow = encoded.encodings[row].overflowing
        if overflow:
            last_kept = int(token_word[row, real].max()) if real.any() else -1
            first_cut = next((start for (start, _), sp in zip(overflow[0].offsets, overflow[0].special_tokens_mask, strict=True) if not sp), None)
            if last_kept >= 0 and first_cut is not None and first_cut < starts[last_kept] + len(words[last_kept]):
                scored[last_kept] = False
                last_kept -= 1
            cut[last_kept + 1 :] = True
        word_cut.append(cut)
    return EncodedBatch(
        input_ids=encoded["input_ids"],
        attention_mask=encoded["attention_mask"],
        token_word=torch.from_numpy(token_word),
        words=word_lists,
        token_type_ids=encoded.get("token_type_ids"),
        word_scored=word_scored,
        word_cut=word_cut,
    )


def pool_to_words(token_scores: torch.Tensor, batch: EncodedBatch, how: Pooling = "sum") -> torch.Tensor:
    """Pool token scores [B, T] or token vectors [B, T, F] into word scores [B, W(, F)].

    ``sum`` suits additive attributions (a word's share is the sum of its pieces' shares),
    ``mean`` suits per-token rates, ``max`` "important if any piece is". Words with no token
    get 0 here; callers mark them unscored through ``batch.word_scored``.
    """
    squeeze = token_scores.dim() == 2
    values = token_scores.unsqueeze(-1) if squeeze else token_scores
    batch_size, _, width = values.shape
    index = batch.token_word.to(values.device).clamp(min=0)
    keep = batch.word_tokens.to(values.device).unsqueeze(-1)
    num_words = batch.max_words
    index = index.unsqueeze(-1).expand(-1, -1, width)
    fill = {"sum": 0.0, "mean": 0.0, "max": float("-inf")}[how]
    source = torch.where(keep, values, torch.full_like(values, fill))
    out = torch.full((batch_size, num_words, width), fill, dtype=values.dtype, device=values.device)
    reduce = {"sum": "sum", "mean": "sum", "max": "amax"}[how]
    out = out.scatter_reduce(1, index, source, reduce=reduce, include_self=True)
    if how == "mean":
        counts = torch.zeros((batch_size, num_words, 1), dtype=values.dtype, device=values.device)
        counts = counts.scatter_add(1, index[..., :1], keep.to(values.dtype))
        out = out / counts.clamp(min=1)
    if how == "max":
        out = torch.where(torch.isinf(out), torch.zeros_like(out), out)
    return out.squeeze(-1) if squeeze else out
