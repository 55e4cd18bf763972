"""Fixtures: tiny randomly initialised classifiers (a few kB) with real fast tokenizers."""

from __future__ import annotations

import os

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

from expnet.models.classifier import Classifier

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tiny models gain nothing from threads, and on a small shared machine extra OpenMP threads only
# oversubscribe the cores.
torch.set_num_threads(1)

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "the", "a", "movie", "film", "was", "is", "good", "bad", "great", "awful", "not", "very",
    "i", "you", "they", "hate", "love", "people", "this", "that", "and", "but", "un", "##believ",
    "##able", "##s", "##ing", "fun", "boring", ".", ",", "!", "?", "offer", "'",
]


def build_tiny_classifier(folder, num_labels: int = 2, layers: int = 2, heads: int = 2, seed: int = 0) -> str:
    """Save a tiny random BERT classifier and its WordPiece tokenizer to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(VOCAB)}, do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=16,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=num_labels,
        # Wide initial weights give peaked, varied attention (near-uniform attention would make
        # attention-based tests vacuous).
        initializer_range=0.5,
        id2label={i: f"class{i}" for i in range(num_labels)},
        label2id={f"class{i}": i for i in range(num_labels)},
    )
    model = BertForSequenceClassification(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory) -> str:
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_classifier_3heads_dir(tmp_path_factory) -> str:
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny-bert-3h"), layers=3, heads=4, seed=1)


@pytest.fixture()
def tiny_classifier(tiny_classifier_dir) -> Classifier:
    return Classifier.load(tiny_classifier_dir, device="cpu", max_length=32)
