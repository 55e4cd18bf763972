"""Concept sensitivity: a planted concept is found, a random one is not; the real-model path and CLI."""

from __future__ import annotations

import json
import random
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import BertTokenizerFast

from cli_helpers import run_cli
from conftest import VOCAB
from expnet.concepts import (
    directional_derivatives,
    read_texts,
    run_tcav,
    shipped_sets,
    target_gradients,
    tcav_scores,
    word_heat,
)
from expnet.concepts.cavs import SETS_DIR
from expnet.concepts.tcav import t_test_half, t_test_random
from expnet.errors import ExpnetError
from expnet.models.classifier import Classifier

CONCEPT_WORDS = ["awful", "bad", "boring"]
NEUTRAL_WORDS = ["the", "a", "movie", "film", "was", "is", "i", "you", "they", "people", "this", "that", "and", "but", "offer"]


class PlantedModel(torch.nn.Module):
    """A transparent classifier with the Hugging Face interface and a planted concept direction.

    Embeddings: random, plus ``3 u`` for the concept words. Layer l maps every token's state by
    a fixed random rotation ``Q_l`` and attends uniformly (so the concept lives along a different
    direction ``R_l u`` at every layer). The logit of class 1 is the attention-weighted sum of
    ``(R_L u) · h_t`` over the last states (class 0: its negative), so at every layer the gradient
    at every token points along that layer's concept direction. A CAV taken from the wrong layer,
    with the wrong sign, or against the wrong class misses it.
    """

    def __init__(self, vocab: list[str], layers: int = 3, heads: int = 2, dim: int = 12, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        u = torch.randn(dim, generator=generator)
        u = u / u.norm()
        table = torch.randn(len(vocab), dim, generator=generator)
        for word in CONCEPT_WORDS:
            table[vocab.index(word)] += 3 * u
        self.embeddings = torch.nn.Embedding.from_pretrained(table, freeze=True)
        rotations = [torch.linalg.qr(torch.randn(dim, dim, generator=generator))[0] for _ in range(layers)]
        self.register_buffer("rotations", torch.stack(rotations))
        direction = u
        for q in rotations:
            direction = q @ direction
        self.register_buffer("readout", torch.stack([-direction, direction]))  # [2, D]
        self.config = SimpleNamespace(
            num_labels=2, id2label={0: "neg", 1: "pos"}, num_hidden_layers=layers, num_attention_heads=heads
        )

    def get_input_embeddings(self):
        return self.embeddings

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, output_attentions=False, output_hidden_states=False, **_):
        h = self.embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        mask = attention_mask.to(h.dtype)
        batch, length = mask.shape
        uniform = (mask / mask.sum(-1, keepdim=True))[:, None, None, :].expand(batch, self.config.num_attention_heads, length, length)
        states, attentions = [h], []
        for q in self.rotations:
            h = h @ q.T
            states.append(h)
            attentions.append(uniform)
        pooled = (uniform[:, 0, 0, :, None] * h).sum(1)
        return SimpleNamespace(
            logits=pooled @ self.readout.T,
            attentions=tuple(attentions) if output_attentions else None,
            hidden_states=tuple(states) if output_hidden_states else None,
        )


def make_texts(rng: random.Random, count: int, concept: bool) -> list[list[str]]:
    texts = []
    for _ in range(count):
        words = [rng.choice(NEUTRAL_WORDS) for _ in range(rng.randint(3, 6))]
        if concept:
            words[rng.randrange(len(words))] = rng.choice(CONCEPT_WORDS)
        texts.append(words)
    return texts


@pytest.fixture(scope="module")
def planted():
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(VOCAB)}, do_lower_case=True)
    classifier = Classifier.from_parts(PlantedModel(VOCAB), tokenizer, max_length=32)
    rng = random.Random(0)
    return SimpleNamespace(
        classifier=classifier,
        concept=make_texts(rng, 40, concept=True),
        nonsense=make_texts(rng, 40, concept=False),
        random=make_texts(rng, 120, concept=False),
        inputs=[[rng.choice(NEUTRAL_WORDS + ["good", "great"]) for _ in range(5)] for _ in range(30)],
    )


def test_planted_concept_is_detected_and_random_concept_is_not(planted):
    result = run_tcav(
        planted.classifier,
        {"planted": planted.concept, "nonsense": planted.nonsense},
        planted.random,
        planted.inputs,
        target=1,
        n_cavs=30,
        texts_per_cav=20,
        seed=0,
    )
    for s in result.scores["planted"]:
        assert s.mean > 0.95 and s.significant and s.p_vs_half < 1e-6 and s.p_vs_random < 1e-3, s.to_dict()
    for s, n in zip(result.scores["planted"], result.scores["nonsense"], strict=True):
        # About one token in four of a concept text carries the concept, so AUROC is well below 1.
        assert s.cav_auroc > 0.58 and abs(n.cav_auroc - 0.5) < 0.05
    for s in result.scores["nonsense"]:
        assert 0.2 < s.mean < 0.8 and not s.significant, s.to_dict()
        assert s.p_vs_random > 0.01
    data = json.loads(json.dumps(result.to_dict()))  # JSON-clean
    assert set(data["concepts"]) == {"planted", "nonsense"} and data["layers"] == [0, 1, 2]


def test_planted_concept_lowers_the_other_class(planted):
    result = run_tcav(planted.classifier, {"planted": planted.concept}, planted.random, planted.inputs, target=0, n_cavs=10, texts_per_cav=20)
    for s in result.scores["planted"]:
        assert s.mean < 0.05 and s.significant and s.to_dict()["direction"] == "down"


def test_small_sets_still_leave_texts_out_for_every_cavs_auroc(planted):
    # Sets no larger than texts_per_cav: each CAV is fitted on 80% at most, so none has an empty
    # held-out part (a NaN AUROC and numpy's "mean of empty slice" warning before).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run_tcav(planted.classifier, {"planted": planted.concept[:3]}, planted.random[:20], planted.inputs, target=1, n_cavs=3, texts_per_cav=50)
    data = result.to_dict()
    assert all(np.isfinite(s["cav_heldout_auroc"]) for s in data["concepts"]["planted"])
    assert all(np.isfinite(layer["cav_heldout_auroc"]) for layer in data["random_vs_random"].values())


def test_a_cav_budget_of_a_few_tokens_is_refused(planted):
    with pytest.raises(ExpnetError, match="max_tokens 9: a CAV needs at least 10 token states per side"):
        run_tcav(planted.classifier, {"planted": planted.concept}, planted.random, planted.inputs, target=1, n_cavs=3, max_tokens=9)


def test_directional_derivatives_by_hand():
    grad = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    alpha = np.array([0.5, 0.3, 0.2])
    cavs = np.array([[1.0, 0.0], [0.0, -1.0]])
    d = directional_derivatives(grad, alpha, cavs)
    s = grad @ cavs.T  # [[1, 0], [0, -2], [1, -1]]
    expected = alpha[:, None] * s * (np.linalg.norm(alpha) / np.linalg.norm(s, axis=0))
    np.testing.assert_allclose(d, expected)
    assert d[:, 0].mean() > 0 > d[:, 1].mean()


def test_t_tests():
    assert t_test_half(np.full(10, 0.5)) == 1.0
    # Constant scores: the sign test's 2 * 0.5^n (two CAVs that agree prove nothing), and the exact
    # rank test's 2 / C(na + nb, na) against constant random scores.
    assert t_test_half(np.ones(2)) == 0.5 and t_test_half(np.zeros(10)) == pytest.approx(2 / 1024)
    assert t_test_random(np.ones(2), np.zeros(2)) == pytest.approx(2 / 6)
    assert t_test_random(np.ones(10), np.zeros(10)) == pytest.approx(2 / 184756)
    assert t_test_half(np.array([0.4, 0.6, 0.5, 0.45, 0.55])) > 0.5
    assert t_test_random(np.ones(20), np.array([0.0, 1.0] * 10)) < 0.001
    assert t_test_random(np.array([0.0, 1.0] * 5), np.array([1.0, 0.0] * 5)) == pytest.approx(1.0)


# --- a real Hugging Face model --------------------------------------------------------------
def test_gradients_and_heat_on_a_tiny_bert(tiny_classifier):
    texts = [["the", "movie", "was", "unbelievable"], ["bad"], ["good"] * 40]
    gradients = target_gradients(tiny_classifier, texts, target=1)
    assert gradients.layers == (0, 1)
    last = gradients.layers[-1]
    for i in range(len(texts)):
        # Only [CLS] reaches the logit from the last layer; earlier layers reach every token.
        assert np.abs(gradients.grads[last][i][1:]).max() == 0 and np.abs(gradients.grads[last][i][0]).max() > 0
        assert np.abs(gradients.grads[0][i][1:-1]).max() > 0
        assert gradients.alphas[0][i].sum() == pytest.approx(1.0, abs=1e-5)
    cav = np.random.default_rng(0).normal(size=16)
    heat = word_heat(gradients, 0, 0, cav)
    assert heat.shape == (4,) and np.isfinite(heat).all()
    # A direction, not a vector: the opposite CAV flips every word, a longer one changes nothing;
    # the words' heat is all their pieces' (specials left out).
    np.testing.assert_allclose(word_heat(gradients, 0, 0, -cav), -heat, rtol=1e-6)
    np.testing.assert_allclose(word_heat(gradients, 0, 0, 3 * cav), heat, rtol=1e-6)
    pieces = directional_derivatives(gradients.grads[0][0], gradients.alphas[0][0], cav[None, :])[:, 0]
    assert heat.sum() == pytest.approx(pieces[gradients.token_word[0] >= 0].sum(), rel=1e-6)
    assert (gradients.token_word[0] == 3).sum() > 1  # "unbelievable" is several pieces, summed
    long_heat = word_heat(gradients, 2, 0, cav)
    assert np.isnan(long_heat[-1]) and np.isfinite(long_heat[0])  # truncated words are unscored
    scores = tcav_scores(gradients, 0, np.stack([cav, -cav]))
    assert ((0 <= scores) & (scores <= 1)).all()
    assert scores.sum() == pytest.approx(1.0)  # opposite CAVs: every text flips sign


# --- shipped sets and the CLI ----------------------------------------------------------------
def test_shipped_sets():
    assert {"negation", "intensifiers", "slurs", "random_sst2", "random_hatexplain"} <= set(shipped_sets())
    readme = (SETS_DIR / "README.md").read_text()
    for name in shipped_sets():
        lines = (SETS_DIR / f"{name}.txt").read_text().splitlines()
        assert 100 <= len(lines) <= 300 and all(line.strip() for line in lines)
        assert f"`{name}" in readme
    assert any("not" in text or "n't" in text for text in read_texts("negation"))


def write_lines(path, texts):
    path.write_text("\n".join(" ".join(t) if not isinstance(t, str) else t for t in texts) + "\n")
    return path


@pytest.fixture()
def concept_files(tmp_path):
    rng = random.Random(1)
    return SimpleNamespace(
        concept=write_lines(tmp_path / "concept.txt", make_texts(rng, 12, True)),
        random=write_lines(tmp_path / "random.txt", make_texts(rng, 24, False)),
        inputs=write_lines(tmp_path / "inputs.txt", ["<script>alert(1)</script> good movie"] + make_texts(rng, 8, False)),
        empty=write_lines(tmp_path / "empty.txt", ["", "   "]),
        out=tmp_path / "out",
    )


def base_args(tiny_classifier_dir, f):
    return ["concepts", "--classifier", tiny_classifier_dir, "--concept", f"awful={f.concept}", "--random", f.random,
            "--inputs", f.inputs, "--target", "class1", "--n-cavs", "4", "--texts-per-cav", "6", "--out", f.out]


def test_cli_writes_json_plot_and_escaped_html(capsys, tiny_classifier_dir, concept_files):
    code, out, err = run_cli(capsys, *base_args(tiny_classifier_dir, concept_files))
    assert code == 0, err
    data = json.loads((concept_files.out / "tcav.json").read_text())
    assert data["target_name"] == "class1" and [s["layer"] for s in data["concepts"]["awful"]] == [0, 1]
    assert all(0 <= s["p_vs_half"] <= 1 and len(s["scores"]) == 4 for s in data["concepts"]["awful"])
    assert (concept_files.out / "scores_by_layer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (concept_files.out / "heat.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "awful" in out


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda a, f: a[:4] + [f"awful={f.empty}"] + a[5:], "is empty"),
        (lambda a, f: a[:4] + ["awful=/no/such/file.txt"] + a[5:], "not found"),
        # A shipped set's name in a missing folder is a wrong path, not the shipped set.
        (lambda a, f: a[:4] + ["awful=/no/such/negation"] + a[5:], "'/no/such/negation' not found"),
        (lambda a, f: a[:7] + a[9:] + ["--data", "hatexplain"], "are not this classifier's"),
        (lambda a, f: a[:10] + ["nosuchlabel"] + a[11:], "unknown label"),
        (lambda a, f: a + ["--layers", "7"], "layer 7 does not exist"),
        (lambda a, f: a + ["--layers", "x"], "--layers"),
        (lambda a, f: [*a[:-5], "1", *a[-4:]], "--n-cavs 1: the t-tests need at least 2 CAVs"),
        # One token per side: every CAV fit on one pair, every held-out AUROC 0.000.
        (lambda a, f: a + ["--max-tokens", "1"], "--max-tokens 1: a CAV needs at least 10 token states per side"),
        (lambda a, f: a + ["--data", "sst2"], "exactly one of --inputs"),
        (lambda a, f: a + ["--concept", f"awful={f.concept}"], "given twice"),
    ],
)
def test_cli_bad_input_is_one_line(capsys, tiny_classifier_dir, concept_files, change, fragment):
    code, _, err = run_cli(capsys, *change(base_args(tiny_classifier_dir, concept_files), concept_files))
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert fragment in lines[0], lines[0]


def test_read_texts_errors(tmp_path):
    with pytest.raises(ExpnetError, match="folder"):
        read_texts(tmp_path)
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ExpnetError, match="UTF-8"):
        read_texts(tmp_path / "bin.txt")


def test_concept_versus_other_concepts(planted):
    result = run_tcav(
        planted.classifier, {"planted": planted.concept, "nonsense": planted.nonsense}, planted.random, planted.inputs,
        target=1, n_cavs=10, texts_per_cav=20, versus="concepts",
    )
    assert all(s.mean > 0.95 for s in result.scores["planted"])
    assert all(s.mean < 0.05 for s in result.scores["nonsense"])  # nonsense vs planted points away from u
    with pytest.raises(ExpnetError, match="at least two concepts"):
        run_tcav(planted.classifier, {"planted": planted.concept}, planted.random, planted.inputs, target=1, versus="concepts")
