"""Every registered explainer on every architecture, and the readout position they all share.

The grid test runs each explainer on each tiny architecture (``tests/architectures.py``): one
finite score per scored word, or a one-line ExpnetError for a pair listed in EXPECTED_REFUSALS.
A new explainer, or a new architecture, that crashes or refuses silently fails it.

The readout tests pin down *where* the explainers read: the attention rows of the token the
classification head reads ([CLS] for encoders, the last real token for decoder-only models),
checked against the model's own head, against attention steered onto a chosen word, and across
left and right padding.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

import expnet.explainers.attention as attention_module
import expnet.explainers.attention_gradient as attention_gradient_module
from architectures import ARCHITECTURES, DECODERS, budgets_for, build_deberta_v2
from expnet.errors import ExpnetError
from expnet.explainers import explainer_names, get_explainer
from expnet.models.attention import forward_with_attentions
from expnet.models.classifier import Classifier
from expnet.models.gradients import AttentionGradients
from expnet.models.readout import (
    align_padding,
    head_reads_readout,
    is_causal,
    readout_columns,
    readout_kind,
    readout_positions,
    readout_rows,
    readout_weights,
)

# Small budgets: the grid checks shapes and refusals, not estimates.
BUDGETS = {"n_samples": 4, "n_steps": 4, "max_evals": 8, "batch_size": 3}
TEXTS = [
    ["the", "movie", "was", "unbelievable", "!"],
    ["i", "hate", "this"],
    ["they", "love", "you", "but", "not", "that", "boring", "film"],
]
LONG = ["good"] * 12  # cut by max_length

BERT_FAMILY = ("bert", "roberta", "electra")
# attention_norm, globenc, alti, value_zeroing...: one support check for the whole module.
CONTRIBUTIONS = tuple(
    name for name in explainer_names() if type(get_explainer(name)).__module__ == "expnet.explainers.contributions"
)
CONTRIBUTION_REASON = "support BERT, RoBERTa and ELECTRA sequence classifiers only"
ATTNLRP_REASON = "attnlrp supports BERT-style encoders"
SCALE_IGNORED_REASON = "its word embeddings go straight into a LayerNorm"
# (explainer, architecture) -> what the one-line refusal must say. Anything else must work.
EXPECTED_REFUSALS = {
    **{
        (name, arch): CONTRIBUTION_REASON
        for name in CONTRIBUTIONS
        for arch in ARCHITECTURES
        if arch not in BERT_FAMILY
    },
    **{("attnlrp", arch): ATTNLRP_REASON for arch in ("deberta_v2", "modernbert", "modernbert_mean", *DECODERS)},
    **{("input_x_gradient", arch): SCALE_IGNORED_REASON for arch in ("modernbert", "modernbert_mean")},
}
READOUT_KINDS = {arch: "last" if arch in DECODERS else "first" for arch in ARCHITECTURES} | {"modernbert_mean": "mean"}


def small(name: str):
    """Explainer ``name`` with the small budgets it has (explainers refuse settings they lack)."""
    return get_explainer(name, **budgets_for(name, BUDGETS))


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("architectures")
    return {arch: build(root / arch, initializer_range=0.5) for arch, build in ARCHITECTURES.items()}


def load(folder: str, max_length: int = 32, padding_side: str | None = None) -> Classifier:
    classifier = Classifier.load(folder, device="cpu", max_length=max_length)
    if padding_side:
        classifier.tokenizer.padding_side = padding_side
    return classifier


# --- every explainer x every architecture ---------------------------------------------------
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("name", explainer_names())
def test_every_explainer_scores_every_architecture_or_refuses_in_one_line(folders, arch, name):
    classifier = load(folders[arch], max_length=8)
    texts = [*TEXTS, LONG]
    expected = EXPECTED_REFUSALS.get((name, arch))
    if expected is not None:
        with pytest.raises(ExpnetError, match=re.escape(expected)) as refusal:
            small(name).explain(classifier, texts)
        assert "\n" not in str(refusal.value)
        return
    explanations = small(name).explain(classifier, texts)
    for words, explanation in zip(texts, explanations, strict=True):
        assert len(explanation.scores) == len(words)
        assert explanation.scored.any()
        assert np.isfinite(explanation.scores[explanation.scored]).all()
        assert np.isnan(explanation.scores[~explanation.scored]).all()
    assert not explanations[-1].scored.all(), "the long text must be cut"


def test_refusal_table_names_only_registered_explainers_and_known_architectures():
    names, archs = set(explainer_names()), set(ARCHITECTURES)
    assert {name for name, _ in EXPECTED_REFUSALS} <= names
    assert {arch for _, arch in EXPECTED_REFUSALS} <= archs


def test_input_x_gradient_refuses_exactly_the_models_whose_logits_ignore_the_embeddings_scale(folders, tmp_path):
    # It once gave ModernBERT and DeBERTa-v3 scores of 1e-5 to 1e-7 (saliency's: 0.1 to 5), a
    # ranking of rounding noise. Brute force: scale every word piece's embedding by 2.
    cases = {**folders, "deberta_v3": build_deberta_v2(tmp_path / "v3", initializer_range=0.5, position_biased_input=False)}
    for arch, folder in cases.items():
        classifier = load(folder)
        batch = classifier.encode(TEXTS)
        embeddings = classifier.input_embeddings()(batch.input_ids)
        scaled = torch.where(batch.word_tokens.unsqueeze(-1), 2 * embeddings, embeddings)
        with torch.no_grad(), head_reads_readout(classifier):
            change = (classifier.forward(batch, inputs_embeds=scaled).logits - classifier.forward(batch, inputs_embeds=embeddings).logits).abs().max()
        ignored = float(change) < 1e-3
        assert ignored == (arch in ("modernbert", "modernbert_mean", "deberta_v3")), (arch, float(change))
        if ignored:
            with pytest.raises(ExpnetError, match=SCALE_IGNORED_REASON):
                small("input_x_gradient").explain(classifier, TEXTS)
        else:
            assert np.abs(small("input_x_gradient").explain(classifier, TEXTS)[0].scores).max() > 1e-3, arch


# --- where the head reads ---------------------------------------------------------------------
@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_readout_kind_per_architecture(folders, arch):
    config = load(folders[arch]).config
    assert readout_kind(config) == READOUT_KINDS[arch]
    assert is_causal(config) == (arch in DECODERS)


def _head_logits(classifier: Classifier, batch) -> torch.Tensor:
    """The per-token logits [B, T, C] of a decoder's ``score`` head, captured by a hook."""
    seen = []
    handle = classifier.model.score.register_forward_hook(lambda m, a, out: seen.append(out))
    try:
        logits = classifier.predict_logits(batch)
    finally:
        handle.remove()
    return seen[0], logits


@pytest.mark.parametrize("arch", DECODERS)
def test_readout_positions_are_where_the_decoder_head_reads(folders, arch):
    classifier = load(folders[arch])
    batch = classifier.encode(TEXTS)
    assert not bool(batch.attention_mask.all()), "the batch must be padded"
    positions = readout_positions(classifier, batch)
    mask = batch.attention_mask.bool()
    for row, position in enumerate(positions.tolist()):
        assert bool(mask[row, position]) and not bool(mask[row, position + 1 :].any())  # last real token
    per_token, logits = _head_logits(classifier, batch)
    torch.testing.assert_close(per_token[torch.arange(batch.batch_size), positions], logits)


@pytest.mark.parametrize("arch", [a for a, kind in sorted(READOUT_KINDS.items()) if kind == "first"])
def test_encoders_read_position_zero(folders, arch):
    classifier = load(folders[arch])
    batch = classifier.encode(TEXTS)
    assert readout_positions(classifier, batch).tolist() == [0] * len(TEXTS)
    assert torch.equal(readout_weights(classifier, batch)[:, 0], torch.ones(len(TEXTS)))


def test_readout_rows_and_columns_gather_one_row_or_average_rows():
    matrix = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    positions = torch.tensor([3, 1])
    rows = readout_rows(matrix, positions)
    assert torch.equal(rows[0], matrix[0, :, 3, :]) and torch.equal(rows[1], matrix[1, :, 1, :])
    columns = readout_columns(matrix, positions)
    assert torch.equal(columns[0], matrix[0, :, :, 3]) and torch.equal(columns[1], matrix[1, :, :, 1])
    weights = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    averaged = readout_rows(matrix.mean(1), weights)  # without heads: [B, T, T] -> [B, T]
    assert torch.allclose(averaged[0], matrix[0].mean(0)[:2].mean(0))
    assert torch.allclose(averaged[1], matrix[1].mean(0)[3])


def test_modernbert_mean_pooling_reads_the_mean_of_the_real_rows(folders):
    classifier = load(folders["modernbert_mean"])
    batch = classifier.encode(TEXTS)
    assert readout_kind(classifier.config) == "mean"
    with pytest.raises(ExpnetError, match="classifier_pooling='mean'"):
        readout_positions(classifier, batch)
    weights = readout_weights(classifier, batch)
    torch.testing.assert_close(weights.sum(-1), torch.ones(len(TEXTS)))
    assert bool((weights[~batch.attention_mask.bool()] == 0).all())
    _, attentions = forward_with_attentions(classifier, batch)
    expected = []
    for row in range(batch.batch_size):
        real = batch.attention_mask[row].bool()
        expected.append(attentions[-1][row].mean(0)[real].mean(0))
    explanations = get_explainer("raw_attention").explain(classifier, TEXTS)
    for row, explanation in enumerate(explanations):
        words = batch.token_word[row]
        want = [float(expected[row][words == w].sum()) for w in range(len(TEXTS[row]))]
        np.testing.assert_allclose(explanation.scores, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("arch", ["gpt2", "mistral"])
def test_decoders_on_embeddings_read_the_last_real_token_only_under_head_reads_readout(folders, arch):
    classifier = load(folders[arch], padding_side="right")
    batch = classifier.encode(TEXTS)
    on_ids = classifier.predict_logits(batch)
    embeddings = classifier.input_embeddings()(batch.input_ids)
    with torch.no_grad():
        plain = classifier.forward(batch, inputs_embeds=embeddings).logits
        with head_reads_readout(classifier):
            fixed = classifier.forward(batch, inputs_embeds=embeddings).logits
    torch.testing.assert_close(fixed, on_ids)
    assert not torch.allclose(plain, on_ids), "without the fix the head reads padding"
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in classifier.model.modules())


# --- explainers read the readout row ----------------------------------------------------------
def _expected_readout(arch: str, batch) -> torch.Tensor:
    """The test's own rule: [CLS] at 0 for encoders, the last unmasked token for decoders."""
    if arch not in DECODERS:
        return torch.zeros(batch.batch_size, dtype=torch.long)
    return torch.tensor([int(torch.nonzero(row)[-1]) for row in batch.attention_mask])


def _steer(attentions, positions: torch.Tensor, targets: torch.Tensor):
    """Every layer's readout row (all heads) put entirely on one target token per text."""
    rows = torch.arange(positions.numel())
    steered = []
    for attention in attentions:
        attention = attention.clone()
        attention[rows, :, positions, :] = 0.0
        attention[rows, :, positions, targets] = 1.0
        steered.append(attention)
    return tuple(steered)


STEERED = ["raw_attention", "attention_mean", "rollout", "attention_flow", "grad_sam", "gae"]
CHOSEN_WORD = 1  # never the first or the last word of a text


@pytest.mark.parametrize("arch", ["bert", "modernbert", *DECODERS])
def test_attention_explainers_follow_the_readout_row(folders, arch, monkeypatch):
    """With the readout row steered onto one word, every attention explainer ranks it first;
    reading row 0 of a decoder (the first token, which only sees itself) ranks word 0 first."""
    classifier = load(folders[arch])

    def steer(batch, attentions):  # from the batch itself: explain() batches texts by length
        targets = torch.tensor([int(torch.nonzero(row == CHOSEN_WORD)[0]) for row in batch.token_word])
        return _steer(attentions, _expected_readout(arch, batch), targets)

    def steered_forward(classifier, batch):
        logits, attentions = forward_with_attentions(classifier, batch)
        return logits, steer(batch, attentions)

    def steered_gradients(classifier, batch, targets_):
        logits, attentions = forward_with_attentions(classifier, batch)
        steered = steer(batch, attentions)
        ones = tuple(torch.ones_like(a) for a in steered)
        return AttentionGradients(logits, logits.argmax(-1), steered, ones)

    monkeypatch.setattr(attention_module, "forward_with_attentions", steered_forward)
    monkeypatch.setattr(attention_gradient_module, "attention_gradients", steered_gradients)
    for name in STEERED:
        explanations = get_explainer(name).explain(classifier, TEXTS)
        for explanation in explanations:
            assert int(np.argmax(explanation.scores)) == CHOSEN_WORD, (name, explanation.scores)
        if name in ("raw_attention", "attention_mean"):
            for explanation in explanations:
                np.testing.assert_allclose(explanation.scores.sum(), 1.0, rtol=1e-5)
                assert explanation.scores[CHOSEN_WORD] == pytest.approx(1.0, rel=1e-5)


# --- padding never changes a text's scores ----------------------------------------------------
# Deterministic batch explainers (perturbation explainers run each text unpadded anyway); SmoothGrad's
# noise scale and draws depend on the batch, so it is left out.
PADDING_EXPLAINERS = [
    name
    for name in explainer_names()
    if name != "smoothgrad" and get_explainer(name).family in ("attention", "attention-gradient", "gradient")
]


def _scores(classifier: Classifier, name: str, texts) -> list[np.ndarray]:
    return [e.scores for e in small(name).explain(classifier, texts)]


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_a_batched_text_scores_as_alone_even_with_the_tokenizer_set_to_left_padding(folders, arch):
    """Batches are padded on the right: invisible to a causal model, and kept off an encoder's
    position 0. Setting the tokenizer to left padding after loading once changed what encoders
    and GPT-2 (absolute positions) read in a batch: probabilities off by up to 0.78. Gradient
    explainers run on embeddings, where only ``head_reads_readout`` keeps a decoder's head off
    the padding."""
    alone = load(folders[arch])
    padded = load(folders[arch], padding_side="left")
    batch = padded.encode(TEXTS)
    assert not bool(batch.attention_mask.all()) and bool(batch.attention_mask[:, 0].all()), "padded on the right"
    for name in PADDING_EXPLAINERS:
        if (name, arch) in EXPECTED_REFUSALS:
            continue
        single = [_scores(alone, name, [text])[0] for text in TEXTS]
        for text_scores, own in zip(_scores(padded, name, TEXTS), single, strict=True):
            np.testing.assert_allclose(text_scores, own, rtol=1e-3, atol=1e-5, err_msg=name)


def test_an_in_memory_decoder_is_padded_on_the_right_as_a_loaded_one(folders):
    """A notebook's GPT-2 tokenizer set to pad on the left would shift the learned positions of
    every shorter text in a batch; ``from_parts`` pads on the right as ``load`` does."""
    loaded = load(folders["gpt2"])
    loaded.tokenizer.padding_side = "left"
    wrapped = Classifier.from_parts(loaded.model, loaded.tokenizer, max_length=32)
    single = [_scores(wrapped, "saliency", [text])[0] for text in TEXTS]
    for text_scores, own in zip(_scores(wrapped, "saliency", TEXTS), single, strict=True):
        np.testing.assert_allclose(text_scores, own, rtol=1e-3, atol=1e-5)


def test_perturbed_decoder_texts_are_read_at_their_last_position(folders):
    """GPT-2 has no mask token, so a removed word becomes the pad (= eos) token, which the head
    would skip on input ids; perturbations must still be read at the text's last position."""
    from expnet.explainers.perturbation import TextPerturbation, replacement_id

    classifier = load(folders["gpt2"])
    batch = classifier.encode([TEXTS[1]])
    text = TextPerturbation(classifier, batch, 0)
    pad = replacement_id(classifier)
    assert pad == classifier.config.pad_token_id
    removed = text.pieces.clone()
    removed[0, -1] = pad  # the last word's piece
    ids = batch.input_ids.clone()
    ids[0, text.positions] = removed[0]
    per_token, _ = _head_logits(classifier, replace(batch, input_ids=ids))
    torch.testing.assert_close(text.probabilities(removed), per_token[:, -1].softmax(-1))


def test_a_decoder_whose_config_pads_with_another_id_reads_a_batched_text_as_alone(folders, tmp_path):
    # Llama fine-tunes often carry pad_token_id 0 (<unk>) while the tokenizer pads with another token.
    folder = shutil.copytree(folders["llama"], tmp_path / "llama")
    config = json.loads((folder / "config.json").read_text())
    config["pad_token_id"] = 0
    (folder / "config.json").write_text(json.dumps(config))
    classifier = load(folder)
    short, long = TEXTS[0], TEXTS[0] + TEXTS[0] + TEXTS[0]
    alone = get_explainer("raw_attention").explain(classifier, [short])[0]
    batched = get_explainer("raw_attention", batch_size=2).explain(classifier, [short, long])[0]
    np.testing.assert_allclose(batched.probabilities, alone.probabilities, atol=1e-5)
    np.testing.assert_allclose(batched.scores, alone.scores, atol=1e-5)


def test_align_padding_gives_a_decoder_its_pad_token(folders):
    classifier = load(folders["gpt2"])
    model, tokenizer = classifier.model, classifier.tokenizer
    tokenizer.pad_token = None
    tokenizer.padding_side = "left"
    model.config.pad_token_id = None
    align_padding(model, tokenizer)
    assert tokenizer.pad_token == tokenizer.eos_token
    assert tokenizer.padding_side == "right"
    assert model.config.pad_token_id == tokenizer.eos_token_id
    # A config whose pad id is not the tokenizer's: the tokenizer pads with the id the head skips,
    # else a text in a batch is read at its padding (its prediction changed with the batch).
    tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = 0
    align_padding(model, tokenizer)
    assert tokenizer.pad_token_id == 0 == model.config.pad_token_id
    model.config.pad_token_id = len(tokenizer) + 5
    with pytest.raises(ExpnetError, match=f"pad_token_id {len(tokenizer) + 5}, which its tokenizer"):
        align_padding(model, tokenizer)
    encoder = load(folders["bert"])
    before = encoder.config.pad_token_id
    align_padding(encoder.model, encoder.tokenizer)
    assert encoder.config.pad_token_id == before


def _llama_ending_with_eos(folder, pad_token_id) -> str:
    """A tiny Llama whose tokenizer appends </s> to every text, with the config's pad id given."""
    from transformers import LlamaConfig, LlamaForSequenceClassification, LlamaTokenizer

    from architectures import _decoder_config, _save, _sentencepiece_bpe

    tokenizer = _sentencepiece_bpe(LlamaTokenizer, ["<unk>", "<s>", "</s>"], add_bos_token=True, add_eos_token=True)
    torch.manual_seed(0)
    config = _decoder_config(LlamaConfig, tokenizer, 0.5, 2, num_key_value_heads=1)
    config.pad_token_id = tokenizer.convert_tokens_to_ids("</s>") if pad_token_id == "eos" else pad_token_id
    return _save(folder, LlamaForSequenceClassification(config), tokenizer)


def test_a_decoder_ending_every_text_with_its_pad_token_is_explained_where_its_head_reads(tmp_path):
    # Fine-tuned with pad = eos and an appended eos: on input ids the head skips the eos and reads
    # the token before it; on embeddings (gradients, perturbations) it once read the eos itself.
    classifier = load(_llama_ending_with_eos(tmp_path / "llama", "eos"))
    words = "the movie was good".split()
    with torch.no_grad():
        expected = classifier.model(**classifier.tokenizer(" ".join(words), return_tensors="pt")).logits.softmax(-1)[0]
    for name in ("raw_attention", "saliency", "input_x_gradient", "grad_sam", "occlusion"):
        explanation = small(name).explain(classifier, [words])[0]
        np.testing.assert_allclose(explanation.probabilities, expected.numpy(), atol=1e-5, err_msg=name)


def test_a_decoder_without_a_pad_id_whose_texts_end_with_its_only_pad_candidate_is_refused(tmp_path):
    # The model reads the appended eos; a head told that eos is padding would read the word before.
    folder = _llama_ending_with_eos(tmp_path / "llama", None)
    with pytest.raises(ExpnetError, match="ends every text with '</s>'"):
        Classifier.load(folder, device="cpu")


def _with_tokenizer_setting(source: str, folder, **change) -> str:
    """A copy of a classifier folder with ``change`` written into its tokenizer_config.json."""
    folder = shutil.copytree(source, folder)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**settings, **change}))
    return str(folder)


def test_an_encoder_padding_on_the_left_reads_a_batched_text_as_alone_and_one_without_a_pad_token_is_refused(folders, tmp_path):
    # No pad token: once a transformers traceback on the first padded batch.
    with pytest.raises(ExpnetError, match="this encoder's tokenizer has no pad token"):
        load(_with_tokenizer_setting(folders["modernbert"], tmp_path / "modernbert", pad_token=None))
    # Left padding put [PAD] at position 0, where the head reads.
    classifier = load(_with_tokenizer_setting(folders["bert"], tmp_path / "bert", padding_side="left"))
    for name in ("raw_attention", "saliency"):
        alone = small(name).explain(classifier, [TEXTS[1]])[0]
        batched = get_explainer(name, batch_size=2).explain(classifier, [TEXTS[1], TEXTS[2]])[0]
        np.testing.assert_allclose(batched.probabilities, alone.probabilities, atol=1e-5, err_msg=name)
        np.testing.assert_allclose(batched.scores, alone.scores, rtol=1e-4, atol=1e-5, err_msg=name)
