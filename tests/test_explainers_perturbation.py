"""Word perturbation explainers (Captum, shap): hand-computed values on toy models whose output we
control, whole words masked and specials never, seeds, one finite score per word, every
architecture."""

from __future__ import annotations

import math
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import BertTokenizerFast

from architectures import ARCHITECTURES, BUILDERS, budgets_for, check_one_score_per_word, roberta_tokenizer
from conftest import VOCAB
from expnet.errors import ExpnetError
from expnet.explainers import get_explainer
from expnet.models.classifier import Classifier
from expnet.words import encode_words

PERTURBATION = ["occlusion", "lime", "kernel_shap", "shapley_sampling", "partition_shap"]
SMALL = {"n_samples": 6, "max_evals": 12}
TEXTS = [["Unbelievable", "movie.", "good!"], ["the", "film", "was", "not", "very", "boring"], ["fun"]]

# Per-token weights of the toy model; [MASK] weighs nothing, [CLS] does (masking it would show).
WEIGHTS = {"[CLS]": 0.1, "good": 0.3, "un": 0.05, "##believ": 0.05, "##able": 0.05, "movie": 0.1}


class ToyModel(torch.nn.Module):
    """A classifier whose output we control: s = sum of its tokens' weights (attention-masked).

    ``"logit"``: logits [s, 0], so p(class 0) = sigmoid(s).
    ``"probability"``: p(class 0) = s exactly (logits are log-probabilities): an additive game,
    whose Shapley and Owen values are the words' weights."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.config = SimpleNamespace(num_labels=2, id2label={0: "pos", 1: "neg"})
        self.embedding = torch.nn.Embedding(len(VOCAB), 1)
        with torch.no_grad():
            self.embedding.weight.zero_()
            for token, weight in WEIGHTS.items():
                self.embedding.weight[VOCAB.index(token), 0] = weight

    def get_input_embeddings(self):
        return self.embedding

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, token_type_ids=None, **_):
        embedded = self.embedding(input_ids) if inputs_embeds is None else inputs_embeds
        s = (embedded[..., 0] * attention_mask).sum(-1)
        if self.mode == "logit":
            logits = torch.stack([s, torch.zeros_like(s)], dim=-1)
        else:
            logits = torch.stack([s, 1 - s], dim=-1).log()
        return SimpleNamespace(logits=logits, attentions=None)


def toy(mode: str) -> Classifier:
    tokenizer = BertTokenizerFast(vocab={t: i for i, t in enumerate(VOCAB)}, do_lower_case=True)
    return Classifier.from_parts(ToyModel(mode), tokenizer, max_length=32)


TOY_TEXTS = [["good", "unbelievable", "movie"], ["movie", "good"]]


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def architecture(request, tmp_path_factory) -> Classifier:
    folder = BUILDERS[request.param](tmp_path_factory.mktemp(request.param))
    return Classifier.load(folder, device="cpu", max_length=32)


def test_occlusion_is_the_hand_computed_probability_drop():
    explanations = get_explainer("occlusion").explain(toy("logit"), TOY_TEXTS, targets=[0, 0])
    # text 1: s = 0.1 + 0.3 + 0.15 + 0.1; removing a word removes all of its pieces' weights.
    s = 0.65
    expected = [sigmoid(s) - sigmoid(s - 0.3), sigmoid(s) - sigmoid(s - 0.15), sigmoid(s) - sigmoid(s - 0.1)]
    np.testing.assert_allclose(explanations[0].scores, expected, rtol=1e-5)
    s = 0.5
    expected_short = [sigmoid(s) - sigmoid(0.4), sigmoid(s) - sigmoid(0.2)]
    np.testing.assert_allclose(explanations[1].scores, expected_short, rtol=1e-5)
    # Class 1 is explained by its own probability: the drops change sign.
    flipped = get_explainer("occlusion").explain(toy("logit"), TOY_TEXTS[:1], targets=[1])
    np.testing.assert_allclose(flipped[0].scores, -np.array(expected), rtol=1e-5)


@pytest.mark.parametrize("name", ["shapley_sampling", "kernel_shap", "partition_shap"])
def test_shapley_methods_recover_an_additive_game(name):
    explainer = get_explainer(name, **budgets_for(name, {"n_samples": 40, "max_evals": 50}))
    explanations = explainer.explain(toy("probability"), TOY_TEXTS, targets=[0, 0])
    np.testing.assert_allclose(explanations[0].scores, [0.3, 0.15, 0.1], atol=1e-4)
    np.testing.assert_allclose(explanations[1].scores, [0.1, 0.3], atol=1e-4)


def test_lime_ranks_the_words_of_an_additive_game():
    explanation = get_explainer("lime", n_samples=200).explain(toy("probability"), TOY_TEXTS[:1], targets=[0])[0]
    assert list(np.argsort(-explanation.scores)) == [0, 1, 2]
    assert (explanation.scores > 0).all()


@pytest.mark.parametrize("name", PERTURBATION)
def test_whole_words_are_masked_and_special_tokens_never(name, tiny_classifier, monkeypatch):
    texts = TEXTS[:2]
    batch = tiny_classifier.encode(texts)
    mask_id = tiny_classifier.tokenizer.mask_token_id
    originals = {}
    for i in range(len(texts)):
        real = batch.attention_mask[i].bool()
        originals[int(real.sum())] = (batch.input_ids[i, real], batch.token_word[i, real])
    seen = []
    model_forward = tiny_classifier.model.forward

    def recording_forward(*args, **kwargs):
        seen.append(kwargs["input_ids"].clone())
        return model_forward(*args, **kwargs)

    monkeypatch.setattr(tiny_classifier.model, "forward", recording_forward)
    get_explainer(name, **budgets_for(name, SMALL)).explain(tiny_classifier, texts)

    masked_rows = 0
    padded_rows = sorted(batch.input_ids.tolist())
    for ids in seen:
        if ids.shape == batch.input_ids.shape and sorted(ids.tolist()) == padded_rows:
            continue  # the full padded batch (in length order), for the reported logits
        original, token_word = originals[ids.shape[1]]
        special = token_word < 0
        for row in ids:
            assert torch.equal(row[special], original[special])
            changed = row != original
            assert (row[changed] == mask_id).all()
            for w in token_word[~special].unique():
                pieces = changed[token_word == w]
                assert pieces.all() or not pieces.any()  # a word is masked whole or not at all
            masked_rows += bool(changed.any())
    assert masked_rows > 0


@pytest.mark.parametrize("name", ["lime", "kernel_shap", "shapley_sampling", "partition_shap"])
def test_same_seed_same_scores(name, tiny_classifier):
    first = get_explainer(name, seed=5, **budgets_for(name, SMALL)).explain(tiny_classifier, TEXTS)
    again = get_explainer(name, seed=5, **budgets_for(name, SMALL)).explain(tiny_classifier, TEXTS)
    assert all(np.array_equal(a.scores, b.scores) for a, b in zip(first, again, strict=True))


@pytest.mark.parametrize("name", ["lime", "kernel_shap", "shapley_sampling"])
def test_another_seed_draws_other_samples(name):
    classifier = toy("logit")
    texts = [["good", "unbelievable", "movie", "the", "a"]]
    first = get_explainer(name, seed=1, n_samples=5).explain(classifier, texts)
    other = get_explainer(name, seed=2, n_samples=5).explain(classifier, texts)
    assert not np.array_equal(first[0].scores, other[0].scores)


@pytest.mark.parametrize("name", PERTURBATION)
def test_one_finite_score_per_word_and_truncated_words_unscored(name, tiny_classifier_dir):
    info = check_one_score_per_word(name, SMALL, tiny_classifier_dir, TEXTS)
    assert info.family == "perturbation" and info.explains == "probability"


@pytest.mark.parametrize("name", PERTURBATION)
def test_runs_on_every_architecture(name, architecture):
    explanations = get_explainer(name, **budgets_for(name, SMALL)).explain(architecture, TEXTS)
    for words, e in zip(TEXTS, explanations, strict=True):
        assert len(e.scores) == len(words) and np.isfinite(e.scores).all()


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_occlusion_is_the_brute_force_probability_drop_on_every_architecture(arch, tmp_path):
    """Each text alone (no padding), each word's pieces set to the mask (else pad) id, one plain
    forward of the model on the embeddings per word: the readout stays the text's own position
    on decoders, whose head would otherwise look for the last non-pad id."""
    architecture = Classifier.load(ARCHITECTURES[arch](tmp_path), device="cpu", max_length=32)
    model = architecture.model
    replacement = architecture.tokenizer.mask_token_id
    replacement = architecture.tokenizer.pad_token_id if replacement is None else replacement
    explanations = get_explainer("occlusion").explain(architecture, TEXTS)

    def probability(ids: torch.Tensor, target: int) -> float:
        with torch.no_grad():
            logits = model(inputs_embeds=model.get_input_embeddings()(ids), attention_mask=torch.ones_like(ids)).logits
        return float(logits.float().softmax(-1)[0, target])

    for words, explanation in zip(TEXTS, explanations, strict=True):
        batch = architecture.encode([words])
        ids, owner = batch.input_ids[:1], torch.as_tensor(batch.token_word[0])
        full = probability(ids, explanation.target)
        expected = [full - probability(torch.where(owner == w, replacement, ids), explanation.target) for w in range(len(words))]
        np.testing.assert_allclose(explanation.scores, expected, rtol=1e-4, atol=1e-6)
        assert np.abs(explanation.scores).max() > 0


def test_partition_shap_without_shap_says_how_to_install(tiny_classifier, monkeypatch):
    monkeypatch.setitem(sys.modules, "shap", None)  # makes "import shap" raise ImportError
    with pytest.raises(ExpnetError, match=r"expnet\[shap\]"):
        get_explainer("partition_shap").explain(tiny_classifier, TEXTS[:1])


@pytest.mark.parametrize("trim_offsets", [True, False])
def test_byte_level_pieces_belong_to_their_own_word(trim_offsets):
    """Perturbing a word must mask its own pieces: with untrimmed offsets "Ġfilm" starts on the
    space before "film" and must still belong to "film", not to the word before."""
    tokenizer = roberta_tokenizer(trim_offsets=trim_offsets)
    words = ["the", "film", "was", "boring!", "Unbelievable"]
    batch = encode_words(tokenizer, [words], 32)
    tokens = tokenizer.convert_ids_to_tokens(batch.input_ids[0])
    for w, word in enumerate(words):
        pieces = [t for t, i in zip(tokens, batch.token_word[0].tolist(), strict=True) if i == w]
        assert tokenizer.convert_tokens_to_string(pieces).strip() == word


def test_default_budget_is_read_from_the_constructor():
    from expnet.explainers.perturbation import LimeExplainer, ShapleySamplingExplainer

    assert LimeExplainer.info().default_budget == "n_samples=300"
    assert ShapleySamplingExplainer.info().default_budget == "n_samples=10 permutations"

    class CheaperLime(LimeExplainer):
        def __init__(self, n_samples: int = 7, perturbations_per_eval: int = 64, batch_size: int = 16, seed: int = 0):
            super().__init__(n_samples, perturbations_per_eval, batch_size, seed)

    assert CheaperLime.info().default_budget == "n_samples=7"
