"""Tiny random classifiers of four encoder architectures, with real fast tokenizers built offline.

Each builder saves a randomly initialised ``*ForSequenceClassification`` (hidden size 16, a few
kB) and its tokenizer to a folder that ``expnet.models.Classifier.load(folder)`` opens:

- BERT, DistilBERT, ELECTRA: a WordPiece vocabulary (the one in ``conftest.py``), lower-cased;
- RoBERTa: a byte-level BPE trained on a small corpus with the ``tokenizers`` library, wrapped in
  ``RobertaTokenizerFast`` (so words carry the ``Ġ`` space marker and offsets come from the
  joined text, as with the real roberta-base).
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertTokenizerFast,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    DistilBertTokenizerFast,
    ElectraConfig,
    ElectraForSequenceClassification,
    ElectraTokenizerFast,
    RobertaConfig,
    RobertaForSequenceClassification,
    RobertaTokenizerFast,
)

from conftest import VOCAB

HIDDEN = 16
MAX_POSITIONS = 64

ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
ROBERTA_CORPUS = [
    "the movie was good and the film was great",
    "the movie is bad , not very fun . i hate that boring film !",
    "you love this movie but they hate that film ?",
    "people offer a good movie , unbelievable !",
    "this was not awful , it was very good and fun",
] * 4


def _labels(num_labels: int) -> dict:
    return {
        "num_labels": num_labels,
        "id2label": {i: f"class{i}" for i in range(num_labels)},
        "label2id": {f"class{i}": i for i in range(num_labels)},
    }


def _save(folder: Path, model, tokenizer) -> str:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _wordpiece(cls):
    return cls(
        vocab={token: i for i, token in enumerate(VOCAB)}, do_lower_case=True, model_max_length=MAX_POSITIONS
    )


def build_bert(folder, num_labels: int = 2, seed: int = 0, initializer_range: float = 0.02) -> str:
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(VOCAB), hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=MAX_POSITIONS, initializer_range=initializer_range,
        **_labels(num_labels),
    )
    return _save(folder, BertForSequenceClassification(config), _wordpiece(BertTokenizerFast))


def build_distilbert(folder, num_labels: int = 2, seed: int = 0, initializer_range: float = 0.02) -> str:
    torch.manual_seed(seed)
    config = DistilBertConfig(
        vocab_size=len(VOCAB), dim=HIDDEN, n_layers=2, n_heads=2, hidden_dim=32,
        max_position_embeddings=MAX_POSITIONS, pad_token_id=0, initializer_range=initializer_range,
        **_labels(num_labels),
    )
    return _save(folder, DistilBertForSequenceClassification(config), _wordpiece(DistilBertTokenizerFast))


def build_electra(folder, num_labels: int = 2, seed: int = 0, initializer_range: float = 0.02) -> str:
    torch.manual_seed(seed)
    config = ElectraConfig(
        vocab_size=len(VOCAB), embedding_size=HIDDEN, hidden_size=HIDDEN, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=32, max_position_embeddings=MAX_POSITIONS,
        initializer_range=initializer_range, **_labels(num_labels),
    )
    return _save(folder, ElectraForSequenceClassification(config), _wordpiece(ElectraTokenizerFast))


def roberta_tokenizer(trim_offsets: bool = True) -> RobertaTokenizerFast:
    """A byte-level BPE (about 300 tokens) trained offline, in RoBERTa's clothes. With
    ``trim_offsets=False`` a "Ġword" token's offsets include the space before it (GPT-2 style)."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        ROBERTA_CORPUS, vocab_size=320, min_frequency=2, special_tokens=ROBERTA_SPECIALS, show_progress=False
    )
    vocab = bpe.get_vocab()
    merges = _merges(bpe)
    return RobertaTokenizerFast(
        vocab=vocab, merges=merges, model_max_length=MAX_POSITIONS, trim_offsets=trim_offsets
    )


def _merges(bpe: ByteLevelBPETokenizer) -> list[tuple[str, str]]:
    import json

    model = json.loads(bpe._tokenizer.to_str())["model"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]


def build_roberta(folder, num_labels: int = 2, seed: int = 0, initializer_range: float = 0.02) -> str:
    tokenizer = roberta_tokenizer()
    torch.manual_seed(seed)
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32,
        # RoBERTa numbers positions from pad_token_id + 1, so it needs two extra position rows.
        max_position_embeddings=MAX_POSITIONS + 2, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, type_vocab_size=1,
        initializer_range=initializer_range, **_labels(num_labels),
    )
    return _save(folder, RobertaForSequenceClassification(config), tokenizer)


BUILDERS = {
    "bert": build_bert,
    "roberta": build_roberta,
    "distilbert": build_distilbert,
    "electra": build_electra,
}


def check_one_score_per_word(name: str, settings: dict, classifier_dir: str, texts: list[list[str]]):
    """Explain ``texts`` plus one text cut after 6 word pieces: one finite score per seen word,
    NaN for the cut words. Returns the explainer's info for family-specific checks."""
    import numpy as np

    from expnet.explainers import get_explainer
    from expnet.models.classifier import Classifier

    classifier = Classifier.load(classifier_dir, device="cpu", max_length=8)
    texts = texts + [["good"] * 12]
    explanations = get_explainer(name, batch_size=3, **settings).explain(classifier, texts)
    for words, explanation in zip(texts, explanations):
        assert len(explanation.scores) == len(words)
        assert np.isfinite(explanation.scores[explanation.scored]).all()
    assert explanations[-1].scored.sum() == 6 and np.isnan(explanations[-1].scores[6:]).all()
    return get_explainer(name).info()
