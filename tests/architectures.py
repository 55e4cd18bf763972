"""Tiny random classifiers of eleven architectures (twelve setups), with real fast tokenizers built offline.

Each builder saves a randomly initialised ``*ForSequenceClassification`` (hidden size 16, two
layers, a few kB) and its tokenizer to a folder that ``expnet.models.Classifier.load(folder)``
opens. Tokenizers are trained on a small corpus with the ``tokenizers`` library and wrapped in the
architecture's own transformers tokenizer class, so pieces and offsets look like the real ones:

- BERT, DistilBERT, ELECTRA: a WordPiece vocabulary (the one in ``conftest.py``), lower-cased;
- RoBERTa: a byte-level BPE in ``RobertaTokenizerFast`` (words carry the ``Ġ`` space marker);
- DeBERTa-v2: a SentencePiece-style Unigram (``▁`` marker) with [CLS] ... [SEP];
- ModernBERT (``cls`` and ``mean`` pooling): a byte-level BPE with [CLS] ... [SEP]
  (``PreTrainedTokenizerFast``, as the real one);
- GPT-2, Qwen2: byte-level BPEs, no special tokens added, pad = eos (the usual fine-tuning setup);
- Llama, Mistral: a SentencePiece-style BPE that adds <s>, with its own <pad> token;
- Gemma: the same kind of BPE with Gemma's <pad>/<eos>/<bos> layout, adding <bos>.

Decoder-only models get ``pad_token_id`` in their config, which their head needs to find each
text's last real token.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import torch
from tokenizers import ByteLevelBPETokenizer, SentencePieceBPETokenizer, SentencePieceUnigramTokenizer
from tokenizers.processors import TemplateProcessing
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    BertTokenizerFast,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    DebertaV2Tokenizer,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    DistilBertTokenizerFast,
    ElectraConfig,
    ElectraForSequenceClassification,
    ElectraTokenizerFast,
    GemmaConfig,
    GemmaForSequenceClassification,
    GemmaTokenizer,
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2Tokenizer,
    LlamaConfig,
    LlamaForSequenceClassification,
    LlamaTokenizer,
    MistralConfig,
    MistralForSequenceClassification,
    ModernBertConfig,
    ModernBertForSequenceClassification,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForSequenceClassification,
    Qwen2Tokenizer,
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
    bpe = _trained(ByteLevelBPETokenizer, ROBERTA_SPECIALS, min_frequency=2)
    return RobertaTokenizerFast(
        vocab=bpe.get_vocab(), merges=_merges(bpe), model_max_length=MAX_POSITIONS, trim_offsets=trim_offsets
    )


def _model_json(trained) -> dict:
    return json.loads(trained._tokenizer.to_str())["model"]


def _merges(bpe) -> list[tuple[str, str]]:
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in _model_json(bpe)["merges"]]


def _trained(kind, specials: list[str], vocab_size: int = 320, **options):
    """A ``tokenizers`` model of ``kind`` trained on the corpus, specials first in the vocabulary."""
    trained = kind()
    trained.train_from_iterator(
        ROBERTA_CORPUS, vocab_size=vocab_size, special_tokens=specials, show_progress=False, **options
    )
    return trained


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


BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def deberta_tokenizer() -> DebertaV2Tokenizer:
    """A SentencePiece-style Unigram ("▁word") in DeBERTa-v2's tokenizer: [CLS] text [SEP]."""
    unigram = _trained(SentencePieceUnigramTokenizer, BERT_SPECIALS, vocab_size=120, unk_token="[UNK]")
    vocab = [tuple(entry) for entry in _model_json(unigram)["vocab"]]
    return DebertaV2Tokenizer(vocab=vocab, unk_id=1, model_max_length=MAX_POSITIONS)


def build_deberta_v2(
    folder, num_labels: int = 2, seed: int = 0, initializer_range: float = 0.02, position_biased_input: bool = True
) -> str:
    """DeBERTa-v2; ``position_biased_input=False`` (no absolute positions) is how the v3 checkpoints are."""
    tokenizer = deberta_tokenizer()
    torch.manual_seed(seed)
    config = DebertaV2Config(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=MAX_POSITIONS, type_vocab_size=0,
        relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=16, max_relative_positions=-1,
        pooler_hidden_size=HIDDEN, pad_token_id=tokenizer.pad_token_id, initializer_range=initializer_range,
        position_biased_input=position_biased_input, **_labels(num_labels),
    )
    return _save(folder, DebertaV2ForSequenceClassification(config), tokenizer)


def modernbert_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE that wraps texts in [CLS] ... [SEP], as ModernBERT's own tokenizer does."""
    bpe = _trained(ByteLevelBPETokenizer, BERT_SPECIALS, min_frequency=2)
    bpe._tokenizer.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[(t, bpe.token_to_id(t)) for t in ("[CLS]", "[SEP]")]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, model_max_length=MAX_POSITIONS, pad_token="[PAD]", unk_token="[UNK]",
        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
    )


def build_modernbert(
    folder, num_labels: int = 2, seed: int = 0, initializer_range: float = 0.02, pooling: str = "cls"
) -> str:
    """ModernBERT with alternating local (window 4) and global attention; ``pooling`` is its
    ``classifier_pooling`` ("cls" or "mean")."""
    tokenizer = modernbert_tokenizer()
    torch.manual_seed(seed)
    config = ModernBertConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=MAX_POSITIONS, global_attn_every_n_layers=2,
        local_attention=4, classifier_pooling=pooling, pad_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
        initializer_range=initializer_range, **_labels(num_labels),
    )
    return _save(folder, ModernBertForSequenceClassification(config), tokenizer)


def _byte_level(cls, eos: str = "<|endoftext|>"):
    """A GPT-2 style byte-level BPE: no special tokens added to texts, pad = eos."""
    bpe = _trained(ByteLevelBPETokenizer, [eos], min_frequency=2)
    return cls(
        vocab=bpe.get_vocab(), merges=_merges(bpe), unk_token=eos, eos_token=eos, pad_token=eos,
        model_max_length=MAX_POSITIONS,
    )


def _decoder_config(config_cls, tokenizer, initializer_range, num_labels, **extra):
    return config_cls(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=MAX_POSITIONS, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        initializer_range=initializer_range, **_labels(num_labels), **extra,
    )


def build_gpt2(folder, num_labels: int = 2, seed: int = 0, initializer_range: float = 0.02) -> str:
    tokenizer = _byte_level(GPT2Tokenizer)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=HIDDEN, n_layer=2, n_head=2, n_inner=32, n_positions=MAX_POSITIONS,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id, initializer_range=initializer_range, **_labels(num_labels),
    )
    return _save(folder, GPT2ForSequenceClassification(config), tokenizer)


def build_qwen2(folder, num_labels: int = 2, seed: int = 0, initializer_range: float = 0.02) -> str:
    tokenizer = _byte_level(Qwen2Tokenizer)
    torch.manual_seed(seed)
    config = _decoder_config(Qwen2Config, tokenizer, initializer_range, num_labels, num_key_value_heads=1)
    return _save(folder, Qwen2ForSequenceClassification(config), tokenizer)


def _sentencepiece_bpe(cls, specials: list[str], byte_tokens: bool = True, **tokens):
    """A SentencePiece-style BPE ("▁word") in a Llama-family tokenizer, with the 256 byte tokens
    ("<0x55>") that real Llama, Mistral and Gemma vocabularies have for characters outside them.
    Without them Llama's byte fallback drops such a character and shifts later offsets."""
    bpe = _trained(SentencePieceBPETokenizer, specials, vocab_size=200)
    vocab = bpe.get_vocab()
    if byte_tokens:
        for byte in range(256):
            vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    return cls(vocab=vocab, merges=_merges(bpe), model_max_length=MAX_POSITIONS, **tokens)


def _llama_tokenizer(byte_tokens: bool = True) -> LlamaTokenizer:
    return _sentencepiece_bpe(
        LlamaTokenizer, ["<unk>", "<s>", "</s>", "<pad>"], byte_tokens, pad_token="<pad>", add_bos_token=True
    )


def build_llama(folder, num_labels: int = 2, seed: int = 0, initializer_range: float = 0.02) -> str:
    tokenizer = _llama_tokenizer()
    torch.manual_seed(seed)
    config = _decoder_config(LlamaConfig, tokenizer, initializer_range, num_labels, num_key_value_heads=1)
    return _save(folder, LlamaForSequenceClassification(config), tokenizer)


def build_mistral(folder, num_labels: int = 2, seed: int = 0, initializer_range: float = 0.02) -> str:
    tokenizer = _llama_tokenizer()
    torch.manual_seed(seed)
    config = _decoder_config(
        MistralConfig, tokenizer, initializer_range, num_labels, num_key_value_heads=1, sliding_window=None
    )
    return _save(folder, MistralForSequenceClassification(config), tokenizer)


def build_gemma(folder, num_labels: int = 2, seed: int = 0, initializer_range: float = 0.02) -> str:
    tokenizer = _sentencepiece_bpe(GemmaTokenizer, ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"], add_bos_token=True)
    torch.manual_seed(seed)
    config = _decoder_config(GemmaConfig, tokenizer, initializer_range, num_labels, num_key_value_heads=1, head_dim=8)
    return _save(folder, GemmaForSequenceClassification(config), tokenizer)


# The four BERT-family encoders the gradient and perturbation tests run on.
BUILDERS = {
    "bert": build_bert,
    "roberta": build_roberta,
    "distilbert": build_distilbert,
    "electra": build_electra,
}
# Every architecture expnet supports (tests/test_architectures.py).
ARCHITECTURES = {
    **BUILDERS,
    "deberta_v2": build_deberta_v2,
    "modernbert": build_modernbert,
    "modernbert_mean": partial(build_modernbert, pooling="mean"),
    "gpt2": build_gpt2,
    "llama": build_llama,
    "mistral": build_mistral,
    "qwen2": build_qwen2,
    "gemma": build_gemma,
}
DECODERS = ("gpt2", "llama", "mistral", "qwen2", "gemma")


def budgets_for(name: str, budgets: dict) -> dict:
    """The shared test ``budgets`` that explainer ``name`` has (an unknown setting is an error)."""
    from expnet.explainers.registry import accepted_settings

    accepted = accepted_settings(name)
    return {key: value for key, value in budgets.items() if key in accepted}


def check_one_score_per_word(name: str, settings: dict, classifier_dir: str, texts: list[list[str]]):
    """Explain ``texts`` plus one text cut after 6 word pieces: one finite score per seen word,
    NaN for the cut words. Returns the explainer's info for family-specific checks."""
    import numpy as np

    from expnet.explainers import get_explainer
    from expnet.models.classifier import Classifier

    classifier = Classifier.load(classifier_dir, device="cpu", max_length=8)
    texts = texts + [["good"] * 12]
    explanations = get_explainer(name, **budgets_for(name, {**settings, "batch_size": 3})).explain(classifier, texts)
    for words, explanation in zip(texts, explanations, strict=True):
        assert len(explanation.scores) == len(words)
        assert np.isfinite(explanation.scores[explanation.scored]).all()
    assert explanations[-1].scored.sum() == 6 and np.isnan(explanations[-1].scores[6:]).all()
    return get_explainer(name).info()
