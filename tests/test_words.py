import numpy as np
import pytest
import torch

from expnet.errors import ExpnetError
from expnet.words import encode_words, pool_to_words, split_text


def test_subwords_map_to_their_word_and_specials_to_none(tiny_classifier):
    batch = encode_words(tiny_classifier.tokenizer, [["Unbelievable", "movie."], ["good"]], 32)
    tokens = tiny_classifier.tokenizer.convert_ids_to_tokens(batch.input_ids[0])
    mapping = dict(zip(tokens, batch.token_word[0].tolist(), strict=True))
    assert mapping["[CLS]"] == -1 and mapping["[SEP]"] == -1
    assert mapping["un"] == 0 and mapping["##believ"] == 0 and mapping["##able"] == 0
    assert mapping["movie"] == 1 and mapping["."] == 1  # punctuation stays on its word
    assert batch.token_word[1].tolist().count(0) == 1
    assert all(s.all() for s in batch.word_scored)


def test_truncated_words_are_marked_unscored(tiny_classifier):
    words = ["good"] * 20
    batch = encode_words(tiny_classifier.tokenizer, [words], max_length=8)
    scored = batch.word_scored[0]
    assert scored[:6].all() and not scored[6:].any()
    assert batch.truncated(0)


def test_a_word_cut_in_the_middle_is_unscored_and_counts_as_cut(tiny_classifier):
    # [CLS] good good good un ##believ | ##able [SEP]: "unbelievable" keeps two of its three pieces.
    batch = encode_words(tiny_classifier.tokenizer, [["good"] * 3 + ["unbelievable", "fun"]], max_length=6)
    assert batch.word_scored[0].tolist() == [True, True, True, False, False]
    assert batch.word_cut[0].tolist() == [False, False, False, True, True] and batch.truncated(0)
    # A whole last word is scored as before.
    whole = encode_words(tiny_classifier.tokenizer, [["good"] * 3 + ["unbelievable", "fun"]], max_length=8)
    assert whole.word_scored[0].tolist() == [True] * 4 + [False] and whole.word_cut[0].tolist() == [False] * 4 + [True]
    # A whole last word ending in characters that make no piece (a combining accent, a zero-width
    # space) is whole too: its pieces end before it does, but nothing of it was cut off.
    for word in ("cafe\u0301", "good\u200b"):
        ends = encode_words(tiny_classifier.tokenizer, [["the", word, "is", "good"]], max_length=4)
        assert ends.word_scored[0].tolist() == [True, True, False, False], word
        assert ends.word_cut[0].tolist() == [False, False, True, True], word


def test_pooling_sum_mean_max_by_hand(tiny_classifier):
    batch = encode_words(tiny_classifier.tokenizer, [["unbelievable", "fun"]], 32)
    # tokens: [CLS] un ##believ ##able fun [SEP]
    scores = torch.tensor([[9.0, 1.0, 2.0, 3.0, 5.0, 9.0]])
    assert pool_to_words(scores, batch, "sum").tolist() == [[6.0, 5.0]]
    assert pool_to_words(scores, batch, "mean").tolist() == [[2.0, 5.0]]
    assert pool_to_words(scores, batch, "max").tolist() == [[3.0, 5.0]]
    vectors = torch.stack([scores, -scores], dim=-1)
    assert pool_to_words(vectors, batch, "sum")[0, 0].tolist() == [6.0, -6.0]


def test_blank_text_is_refused():
    with pytest.raises(ExpnetError, match="empty"):
        split_text("   \n ")


def test_word_offsets_survive_unknown_characters(tiny_classifier):
    batch = encode_words(tiny_classifier.tokenizer, [["good", "☃☃", "bad"]], 32)
    words = batch.token_word[0][batch.token_word[0] >= 0].tolist()
    assert words[0] == 0 and words[-1] == 2
    assert np.array_equal(batch.word_scored[0], [True, True, True])


def _pieces_of_each_word(tokenizer, words):
    batch = encode_words(tokenizer, [words], 64)
    tokens = tokenizer.convert_ids_to_tokens(batch.input_ids[0])
    owners = batch.token_word[0].tolist()
    pieces = [[t for t, o in zip(tokens, owners, strict=True) if o == w] for w in range(len(words))]
    return [tokenizer.convert_tokens_to_string(p).lstrip() for p in pieces]


@pytest.mark.parametrize("make_tokenizer", ["gpt2", "deberta_v2"])
def test_a_bare_space_piece_belongs_to_the_word_it_starts(make_tokenizer):
    # Byte-level BPE and SentencePiece emit a lone "Ġ" / "▁" before a word they have no merged
    # piece for; its offset sits on the space, which once gave it to the word before.
    from transformers import GPT2Tokenizer

    from architectures import _byte_level, deberta_tokenizer

    tokenizer = _byte_level(GPT2Tokenizer) if make_tokenizer == "gpt2" else deberta_tokenizer()
    words = "unbelievable ! you love this movie".split()
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(" ".join(words))["input_ids"])
    assert {"Ġ", "▁"} & set(tokens)  # the case under test occurs
    assert _pieces_of_each_word(tokenizer, words) == words


def test_every_piece_but_the_special_ones_belongs_to_a_word():
    from architectures import roberta_tokenizer

    tokenizer = roberta_tokenizer()  # trims the bare "Ġ" before "naïve" and the emoji to (p, p)
    batch = encode_words(tokenizer, [["a", "naïve", "😀", "good"]], 64)
    tokens = tokenizer.convert_ids_to_tokens(batch.input_ids[0])
    owners = batch.token_word[0].tolist()
    assert [o for t, o in zip(tokens, owners, strict=True) if t == "Ġ"] == [1, 2]
    assert [t for t, o in zip(tokens, owners, strict=True) if o < 0] == ["<s>", "</s>"]


def test_offsets_that_miss_the_words_are_refused():
    # A Llama vocabulary without its byte tokens: the backend drops "é" and shifts the offsets of
    # every later piece, which would hand "good"'s piece to "café".
    from architectures import _llama_tokenizer

    with pytest.raises(ExpnetError, match="offsets that do not match"):
        encode_words(_llama_tokenizer(byte_tokens=False), [["café", "good", "film"]], 32)
    assert _pieces_of_each_word(_llama_tokenizer(byte_tokens=False), ["good", "film"]) == ["good", "film"]
    # With them, as in real Llama vocabularies, every piece lands in its word.
    assert _pieces_of_each_word(_llama_tokenizer(), ["café", "good", "film"]) == ["café", "good", "film"]
