"""Property-based tests (hypothesis): the word <-> piece map and the JSONL loader on random input.

Words come with punctuation, zero-width and combining characters, emoji, CJK and blanks; they go
through ``encode_words`` / ``pool_to_words`` with a WordPiece (BERT) and a byte-level BPE
(RoBERTa) tokenizer. JSONL lines are random bytes, random text and random near-valid records.
Either the code works and keeps its invariants, or it raises a one-line ``ExpnetError``.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import assume, event, example, given, settings
from hypothesis import strategies as st
from transformers import BertTokenizerFast

from architectures import roberta_tokenizer
from conftest import VOCAB
from expnet.data import jsonl
from expnet.errors import ExpnetError
from expnet.words import encode_words, pool_to_words

TOKENIZERS = {
    "bert": BertTokenizerFast(vocab={token: i for i, token in enumerate(VOCAB)}, do_lower_case=True),
    "roberta": roberta_tokenizer(),
}
AWKWARD = [
    "\u200b", "\u200d", "\ufeff", "\u00ad", "\u0301", "e\u0301", "😀", "👍🏽", "👨‍👩‍👧", "中", "文字",
    ".", ",", "!", "?", "'", "-", "...", "Ünïcödé", "\x00", "\x7f", "a b", "x\ty",
]
BLANKS = ["", " ", "\t", "\n", "\u3000"]
CHARS = st.one_of(
    st.sampled_from(AWKWARD),
    st.sampled_from(VOCAB[5:]),
    # Any code point a Python str can be encoded from (surrogates cannot reach a tokenizer).
    st.characters(exclude_categories=("Cs",)),
)
WORD = st.one_of(st.sampled_from(VOCAB[5:] + AWKWARD), st.lists(CHARS, min_size=1, max_size=4).map("".join))
# Mostly texts of real words; now and then an empty text or a blank word, which must be refused.
TEXTS = st.lists(
    st.one_of(
        st.lists(WORD, min_size=1, max_size=10),
        st.lists(st.one_of(WORD, st.sampled_from(BLANKS)), min_size=0, max_size=3),
    ),
    min_size=1,
    max_size=3,
)


def _blank(words: list[str]) -> bool:
    return not words or any(not w or w.isspace() for w in words)


@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
@settings(max_examples=120, deadline=None, derandomize=True)
@given(texts=TEXTS, max_length=st.integers(min_value=3, max_value=40))
def test_encode_words_maps_every_piece_into_its_own_word(kind, texts, max_length):
    tokenizer = TOKENIZERS[kind]
    if any(_blank(words) for words in texts):
        event("refused: blank word or empty text")
        with pytest.raises(ExpnetError):
            encode_words(tokenizer, texts, max_length)
        return
    batch = encode_words(tokenizer, texts, max_length)
    token_word = batch.token_word.numpy()
    assert token_word.shape == batch.input_ids.shape
    for row, words in enumerate(texts):
        scored, cut = batch.word_scored[row], batch.word_cut[row]
        assert scored.shape == cut.shape == (len(words),)
        pieces = token_word[row]
        # A scored word has at least one piece; a word with pieces is scored, but for the last
        # kept word when the cut went through it (then it counts as cut); no piece is lost.
        counts = np.bincount(pieces[pieces >= 0], minlength=len(words))
        assert len(counts) == len(words)
        assert (counts[scored] >= 1).all()
        partly = np.flatnonzero((counts >= 1) & ~scored)
        assert len(partly) <= 1 and cut[partly].all() and (len(partly) == 0 or partly[0] == np.flatnonzero(counts)[-1])
        assert not (scored & cut).any()
        _check_pieces_inside_their_words(tokenizer, words, pieces, max_length)


def _check_pieces_inside_their_words(tokenizer, words, pieces, max_length):
    """Each piece's characters (a byte-level BPE's leading space aside) lie inside the word it is
    mapped to: pieces of different words never overlap."""
    text = " ".join(words)
    offsets = tokenizer(text, truncation=True, max_length=max_length, return_offsets_mapping=True)["offset_mapping"]
    starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]])  # each word's offset in the joined text
    for (start, end), word in zip(offsets, pieces[: len(offsets)], strict=True):
        if word < 0:
            continue
        if text[start] == " " and start + 1 < end:
            start += 1
        assert starts[word] <= start and end <= starts[word] + len(words[word]), (text, start, end, word)


@pytest.mark.parametrize("kind", sorted(TOKENIZERS))
@settings(max_examples=60, deadline=None, derandomize=True)
@given(texts=TEXTS, seed=st.integers(min_value=0, max_value=2**31 - 1))
def test_pool_to_words_sums_each_words_pieces(kind, texts, seed):
    assume(not any(_blank(words) for words in texts))
    batch = encode_words(TOKENIZERS[kind], texts, 32)
    scores = torch.rand(batch.input_ids.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    pooled = pool_to_words(scores, batch, "sum")
    assert pooled.shape == (len(texts), batch.max_words)
    for row, words in enumerate(texts):
        for word in range(batch.max_words):
            expected = scores[row][batch.token_word[row] == word].sum() if word < len(words) else 0.0
            assert torch.isclose(pooled[row, word], torch.as_tensor(expected, dtype=pooled.dtype))


JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
MASK = st.lists(st.sampled_from([0, 1, 2, True, 0.5, "1", None]), max_size=4)
RECORD = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.text(max_size=3), st.integers(), JSON_VALUE),
        "tokens": st.one_of(st.lists(WORD, max_size=4), JSON_VALUE),
        "label": st.one_of(st.integers(min_value=-2, max_value=12_000), JSON_VALUE),
        "rationale": st.one_of(MASK, JSON_VALUE),
        "rationales": st.one_of(st.lists(MASK, max_size=3), JSON_VALUE),
        "label_names": st.one_of(st.lists(st.text(max_size=4), max_size=3), JSON_VALUE),
    },
)
# Records with the required fields right, so that whole files load too (ids may clash).
VALID = st.fixed_dictionaries(
    {"id": st.integers(min_value=0, max_value=3), "tokens": st.lists(WORD, min_size=1, max_size=4),
     "label": st.integers(min_value=0, max_value=2)},
    optional={"label_names": st.lists(st.text(max_size=4), min_size=1, max_size=3)},
)
LINE = st.one_of(
    VALID.map(lambda record: json.dumps(record).encode()),
    RECORD.map(lambda record: json.dumps(record).encode()),
    JSON_VALUE.map(lambda value: json.dumps(value).encode()),
    st.text(max_size=30).map(str.encode),
    st.binary(max_size=30),
    st.just(b"[" * 100_000),  # deeper than the JSON parser's recursion limit
).map(lambda line: line.replace(b"\n", b" "))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(lines=st.lists(LINE, min_size=1, max_size=4))
@example(lines=[b"\x1c"])  # a control character Python counts as whitespace: a blank file
def test_jsonl_lines_load_or_fail_naming_the_line(lines):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "task.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        try:
            examples = jsonl.load(path)
        except ExpnetError as err:
            event("refused")
            message = str(err)
            assert "\n" not in message
            # Blank as the loader reads text: Python's whitespace (which includes \x1c-\x1f) only.
            if all(not line.decode("utf-8", errors="replace").strip() for line in lines):
                assert message.startswith(f"{path}: no examples")
                return
            named = re.match(rf"{re.escape(str(path))}:(\d+): ", message)
            assert named and 1 <= int(named.group(1)) <= len(lines), message
            return
    event("loaded")
    assert 1 <= len(examples) <= len(lines)
    for loaded in examples:
        assert loaded.task == "task" and len(loaded.words) >= 1
