"""Attention diagnostics on tiny BERTs: the intervention mechanism, the four diagnostics on models
whose dependence on attention is known by construction, and ``expnet diagnose`` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import BertTokenizerFast, DistilBertConfig, DistilBertForSequenceClassification

from conftest import VOCAB, build_tiny_classifier
from expnet.cli.main import main
from expnet.diagnostics.adversarial import adversarial_attention, jsd
from expnet.diagnostics.correlation import kendall, reference_explanations
from expnet.diagnostics.intervention import (
    INTERVENTION,
    attention_intervention,
    check_supported,
    permute_weights,
    reference_pass,
    repeat_rows,
    skip_to_layer,
    uniform_weights,
)
from expnet.diagnostics.permutation import permutation_effects
from expnet.diagnostics.uniform import uniform_effects
from expnet.errors import ExpnetError
from expnet.explainers import get_explainer
from expnet.models.classifier import Classifier

TEXTS = [
    ["the", "movie", "was", "good"],
    ["i", "hate", "this", "boring", "film", "!"],
    ["not", "very", "fun", "but", "great"],
    ["they", "love", "that", "awful", "movie", "."],
    ["a", "bad", "film"],
]
# For the single-token model: every text holds "love", the one token its [CLS] attends to.
LOVE_TEXTS = [
    ["i", "love", "this", "movie"],
    ["the", "film", "was", "not", "love", "."],
    ["love", "is", "boring", "and", "awful"],
    ["they", "hate", "that", "love", "film", "!"],
]


# --- models whose reliance on attention is known --------------------------------------------
@pytest.fixture()
def ignoring_classifier(tiny_classifier_dir) -> Classifier:
    """The tiny BERT with every attention output projection zeroed: its output cannot depend
    on any attention weight (each layer sees LayerNorm(0 + hidden) instead)."""
    classifier = Classifier.load(tiny_classifier_dir, device="cpu", max_length=32)
    with torch.no_grad():
        for layer in classifier.model.bert.encoder.layer:
            layer.attention.output.dense.weight.zero_()
            layer.attention.output.dense.bias.zero_()
    return classifier


@pytest.fixture(scope="session")
def single_token_dir(tmp_path_factory) -> str:
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny-bert-1l"), layers=1, heads=1)


@pytest.fixture()
def single_token_classifier(single_token_dir) -> Classifier:
    """A one-layer, one-head BERT built so that [CLS] attends (almost) only to the token "love"
    and the prediction is the sign of the attended value: +1 for "love", -1 for every other token.

    Embeddings (zero-mean, unit-variance, so LayerNorm keeps them): dims 0-1 mark "love" (+1, -1)
    or anything else (-1, +1); dim 2 is the value (+1 "love", -1 else), dim 3 its negation, the
    other dims alternate +-1. Every query is the constant 40 * e0 and every key k[0] = h[0] - h[1]
    (+-2), so "love" outscores every other key by 20 logits. Values carry dim 2; the attention
    output puts 8x the attended value on dim 0; the feed-forward block is zero; the pooler reads
    dim 0 and the head turns its sign into the class (class1 = "love" attended).
    """
    classifier = Classifier.load(single_token_dir, device="cpu", max_length=32)
    model = classifier.model
    hidden = model.config.hidden_size
    love = VOCAB.index("love")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        emb = model.bert.embeddings
        base = torch.tensor([(-1.0) ** i for i in range(hidden)])
        table = base.repeat(len(VOCAB), 1)
        table[:, :4] = torch.tensor([-1.0, 1.0, -1.0, 1.0])
        table[love, :4] = torch.tensor([1.0, -1.0, 1.0, -1.0])
        emb.word_embeddings.weight.copy_(table)
        emb.LayerNorm.weight.fill_(1.0)
        layer = model.bert.encoder.layer[0]
        attention = layer.attention.self
        attention.query.bias[0] = 40.0
        attention.key.weight[0, 0], attention.key.weight[0, 1] = 1.0, -1.0
        attention.value.weight[0, 2] = 1.0
        layer.attention.output.dense.weight[0, 0] = 8.0
        layer.attention.output.LayerNorm.weight.fill_(1.0)
        layer.output.LayerNorm.weight.fill_(1.0)
        model.bert.pooler.dense.weight[0, 0] = 1.0
        model.classifier.weight[0, 0], model.classifier.weight[1, 0] = -5.0, 5.0
    return classifier


def probabilities(classifier, texts):
    with torch.no_grad():
        return classifier.forward(classifier.encode(texts)).logits.softmax(-1)


# --- the mechanism --------------------------------------------------------------------------
def test_identity_intervention_changes_nothing_and_restores_the_setting(tiny_classifier):
    batch = tiny_classifier.encode(TEXTS)
    before = reference_pass(tiny_classifier, batch)
    with attention_intervention(tiny_classifier, lambda w, m: w, layers=None) as state:
        assert tiny_classifier.config._attn_implementation == INTERVENTION
        during = tiny_classifier.forward(batch, output_attentions=True)
    assert state.calls == tiny_classifier.num_layers
    assert torch.equal(during.logits, before.logits)
    assert tiny_classifier.config._attn_implementation == "eager"
    with pytest.raises(RuntimeError, match="boom"), attention_intervention(tiny_classifier, uniform_weights, -1):
        raise RuntimeError("boom")
    assert tiny_classifier.config._attn_implementation == "eager"
    assert torch.equal(tiny_classifier.forward(batch).logits, before.logits)


def test_replaced_weights_reach_the_output_and_only_the_chosen_layer(tiny_classifier):
    batch = tiny_classifier.encode(TEXTS)
    before = reference_pass(tiny_classifier, batch)
    with attention_intervention(tiny_classifier, uniform_weights, layers=1):
        after = tiny_classifier.forward(batch, output_attentions=True)
    assert torch.equal(after.attentions[0], before.attentions[0])
    real = batch.attention_mask.bool()
    expected = real.float() / real.sum(-1, keepdim=True)
    assert torch.allclose(after.attentions[1], expected[:, None, None, :].expand_as(after.attentions[1]))
    assert not torch.allclose(after.logits, before.logits)
    with attention_intervention(tiny_classifier, before.attentions[1], layers=1):  # a fixed tensor works too
        assert torch.allclose(tiny_classifier.forward(batch).logits, before.logits, atol=1e-6)


def test_skip_to_layer_reproduces_the_full_model(tiny_classifier_3heads_dir):
    classifier = Classifier.load(tiny_classifier_3heads_dir, device="cpu", max_length=32)
    batch = classifier.encode(TEXTS)
    full = reference_pass(classifier, batch)
    for layer in range(classifier.num_layers):
        with torch.no_grad(), skip_to_layer(classifier, layer, full.hidden_states[layer]):
            logits = classifier.forward(batch).logits
        assert torch.allclose(logits, full.logits, atol=1e-6)
    row = classifier.encode([TEXTS[0]])
    single = reference_pass(classifier, row)
    with torch.no_grad(), skip_to_layer(classifier, 2, single.hidden_states[2]):
        repeated = classifier.forward(repeat_rows(row, 3)).logits
    assert torch.allclose(repeated, single.logits.expand(3, -1), atol=1e-6)
    assert len(classifier.model.bert.encoder.layer) == 3
    assert all(type(m).__name__ == "BertLayer" for m in classifier.model.bert.encoder.layer)


def test_only_the_cls_row_of_the_final_layer_reaches_the_output(tiny_classifier):
    """Why the final-layer permutation may shuffle the [CLS] row alone: the other rows cannot
    change the output, while the [CLS] row does."""
    batch = tiny_classifier.encode(TEXTS)
    before = reference_pass(tiny_classifier, batch)

    def keep_cls(replace_cls: bool):
        def replacement(weights, key_mask):
            other = uniform_weights(weights, key_mask)
            first, rest = (other, weights) if replace_cls else (weights, other)
            return torch.cat([first[:, :, :1], rest[:, :, 1:]], dim=2)

        return replacement

    with torch.no_grad(), attention_intervention(tiny_classifier, keep_cls(False), layers=-1):
        assert torch.allclose(tiny_classifier.forward(batch).logits, before.logits, atol=1e-6)
    with torch.no_grad(), attention_intervention(tiny_classifier, keep_cls(True), layers=-1):
        assert not torch.allclose(tiny_classifier.forward(batch).logits, before.logits, atol=1e-4)
    partly = permute_weights(
        before.attentions[1], batch.attention_mask.bool(), torch.Generator().manual_seed(0), rows=1
    )
    assert torch.equal(partly[:, :, 1:], before.attentions[1][:, :, 1:])
    assert torch.equal(partly[:, :, :1].sort(-1).values, before.attentions[1][:, :, :1].sort(-1).values)


def test_permutation_shuffles_each_row_among_real_tokens_only():
    torch.manual_seed(0)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    weights = torch.rand(2, 3, 6, 6) * mask[:, None, None, :]
    weights = weights / weights.sum(-1, keepdim=True)
    shuffled = permute_weights(weights, mask, torch.Generator().manual_seed(1))
    assert torch.equal(shuffled.sort(-1).values, weights.sort(-1).values)
    assert (shuffled[1, :, :, 3:] == 0).all()
    assert not torch.equal(shuffled, weights)
    rows = uniform_weights(weights, mask)
    assert torch.allclose(rows[1, 0, 0], torch.tensor([1 / 3] * 3 + [0.0] * 3))


def test_non_bert_models_get_a_clear_error(tmp_path):
    folder = tmp_path / "distilbert"
    config = DistilBertConfig(
        vocab_size=len(VOCAB), dim=16, n_layers=1, n_heads=2, hidden_dim=32, max_position_embeddings=64
    )
    DistilBertForSequenceClassification(config).save_pretrained(folder)
    BertTokenizerFast(vocab={t: i for i, t in enumerate(VOCAB)}).save_pretrained(folder)
    classifier = Classifier.load(folder, device="cpu")
    with pytest.raises(ExpnetError, match="BERT-family"):
        check_supported(classifier)
    with pytest.raises(ExpnetError, match="BERT-family"):
        permutation_effects(classifier, TEXTS[:1], permutations=2)


# --- the diagnostics on models with known behaviour -----------------------------------------
def test_output_that_ignores_attention_shows_no_effect(tiny_classifier, ignoring_classifier):
    control = permutation_effects(tiny_classifier, TEXTS, permutations=20, seed=0)
    assert control.median_tvd.max() > 1e-3  # the same measurement does see attention in the intact model
    ignored = permutation_effects(ignoring_classifier, TEXTS, permutations=20, seed=0)
    assert ignored.median_tvd.max() < 1e-6
    assert ignored.flip_rate.max() == 0
    uniform = uniform_effects(ignoring_classifier, TEXTS, [0] * len(TEXTS), batch_size=2)
    assert uniform.tvd("all").max() < 1e-6
    assert uniform.summary()["accuracy_change"] == 0


def test_output_driven_by_one_attended_token_shows_a_large_effect(single_token_classifier):
    p = probabilities(single_token_classifier, LOVE_TEXTS)
    assert (p[:, 1] > 0.99).all()  # "love" is attended, so class1
    found = permutation_effects(single_token_classifier, LOVE_TEXTS, permutations=50, seed=0)
    assert found.max_attention.min() > 0.99
    assert found.median_tvd.min() > 0.9  # most shuffles move the weight off "love" and flip the class
    assert found.flip_rate.min() > 0.5
    uniform = uniform_effects(single_token_classifier, LOVE_TEXTS, [1] * len(LOVE_TEXTS))
    summary = uniform.summary()
    assert summary["accuracy"] == 1.0 and summary["accuracy_uniform"] == 0.0
    assert summary["mean_tvd"] > 0.9


def test_adversary_finds_distant_attention_only_when_the_output_allows_it(ignoring_classifier, single_token_classifier):
    free = adversarial_attention(ignoring_classifier, TEXTS, steps=20, seed=0)
    assert free.found.all() and (free.tvd_at_max < 1e-6).all()
    assert np.median(free.max_jsd) > 0.3
    bound = adversarial_attention(single_token_classifier, LOVE_TEXTS, steps=20, seed=0)
    assert np.median(bound.max_jsd) < 0.25
    assert (bound.tvd_at_max <= 0.05).all()


def test_jsd_is_in_nats():
    p = torch.tensor([1.0, 0.0])
    q = torch.tensor([0.0, 1.0])
    assert jsd(p, q).item() == pytest.approx(np.log(2), abs=1e-6)
    assert jsd(p, p).item() == pytest.approx(0.0, abs=1e-6)


def test_detached_attention_changes_the_gradient_reference(tiny_classifier):
    detached = reference_explanations(tiny_classifier, TEXTS, detach_attention=True)["input_x_gradient"]
    live = reference_explanations(tiny_classifier, TEXTS, detach_attention=False)["input_x_gradient"]
    differences = [np.nanmax(np.abs(a.scores - b.scores)) for a, b in zip(detached, live, strict=True)]
    assert max(differences) > 1e-4
    # Live attention is the plain explainer's gradient, exactly.
    plain = get_explainer("input_x_gradient").explain(tiny_classifier, TEXTS)
    for a, b in zip(live, plain, strict=True):
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-7)
    assert tiny_classifier.config._attn_implementation == "eager"


def test_kendall_handles_ties_truncation_and_constant_scores():
    scored = np.array([True, True, True, False])
    tau, p = kendall(np.array([0.1, 0.2, 0.3, np.nan]), np.array([1.0, 2.0, 3.0, 9.0]), scored)
    assert tau == pytest.approx(1.0) and p == pytest.approx(1 / 3)  # exact, two-sided: 2 of the 3! orders are as extreme
    assert np.isnan(kendall(np.array([0.5, 0.5, 0.5, 0.1]), np.array([1.0, 2.0, 3.0, 0.0]), scored)[0])
    assert np.isnan(kendall(np.array([0.5, 0.4]), np.array([1.0, 2.0]), np.array([True, False]))[0])


# --- the command ----------------------------------------------------------------------------
def test_diagnose_command_writes_json_plots_and_an_escaped_page(tiny_classifier_dir, tmp_path, capsys):
    data = tmp_path / "<script>odd&.jsonl"
    rows = [{"id": f"x{i}", "tokens": words, "label": i % 2} for i, words in enumerate(TEXTS)]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "diag"
    argv = [
        "diagnose",
        "--classifier",
        tiny_classifier_dir,
        "--data",
        str(data),
        "--out",
        str(out),
        "--permutations",
        "4",
        "--adversarial-steps",
        "2",
        "--batch-size",
        "2",
        "--seed",
        "3",
    ]
    assert main(argv) == 0
    results = json.loads((out / "diagnostics.json").read_text())
    assert set(results) >= {"settings", "correlation", "permutation", "adversarial", "uniform", "interpretation"}
    assert results["settings"]["layer"] == 1 and results["settings"]["examples"] == len(TEXTS)
    pairs = results["correlation"]["summary"]["pairs"]
    assert {"raw_attention vs input_x_gradient", "rollout vs occlusion", "input_x_gradient vs occlusion"} <= set(pairs)
    assert len(results["permutation"]["per_example"]) == len(TEXTS)
    assert all(results[name]["seconds"] >= 0 for name in ("correlation", "permutation", "adversarial", "uniform"))
    for name in ("permutation.png", "adversarial.png", "correlation.png", "uniform.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    page = (out / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;odd&amp;" in page
    assert "TVD" in page and "nats" in page
    # Same seed, same numbers (into a new folder: the same one would keep the finished diagnostics).
    assert main([*argv[:6], str(tmp_path / "again"), *argv[7:]]) == 0
    again = json.loads((tmp_path / "again" / "diagnostics.json").read_text())
    assert again["permutation"]["per_example"] == results["permutation"]["per_example"]
    assert again["adversarial"]["per_example"] == results["adversarial"]["per_example"]
    capsys.readouterr()


def test_diagnose_keeps_finished_diagnostics_and_adds_new_ones(tiny_classifier_dir, tmp_path, capsys):
    out = tmp_path / "diag"
    base = ["diagnose", "--classifier", tiny_classifier_dir, "--data", "sst2", "--max-examples", "4", "--out", str(out)]
    assert main([*base, "--diagnostics", "uniform"]) == 0
    first = json.loads((out / "diagnostics.json").read_text())
    capsys.readouterr()
    assert main([*base, "--diagnostics", "uniform,permutation", "--permutations", "100"]) == 0
    assert "uniform: kept from the earlier run" in capsys.readouterr().out
    both = json.loads((out / "diagnostics.json").read_text())
    assert both["uniform"] == first["uniform"] and "permutation" in both
    assert both["settings"]["diagnostics"] == ["permutation", "uniform"]
    assert both["seconds_total"] == pytest.approx(both["uniform"]["seconds"] + both["permutation"]["seconds"])
    # Other settings (here the seed) start afresh.
    assert main([*base, "--diagnostics", "uniform", "--seed", "4"]) == 0
    fresh = json.loads((out / "diagnostics.json").read_text())
    assert "permutation" not in fresh and fresh["settings"]["seed"] == 4


def test_diagnose_recomputes_for_other_texts_or_a_classifier_saved_again(tmp_path, capsys):
    import conftest

    clf = conftest.build_tiny_classifier(tmp_path / "clf")
    rows = [{"id": f"e{i}", "tokens": text.split(), "label": i % 2} for i, text in enumerate(["good fun movie", "bad boring film", "not good", "very fun"])]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    base = ["diagnose", "--classifier", clf, "--data", str(data), "--diagnostics", "uniform", "--out", str(tmp_path / "diag")]
    assert main(base) == 0
    capsys.readouterr()
    rows[0]["tokens"] = ["awful", "movie"]  # same ids and labels, another text
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main(base) == 0
    assert "kept from the earlier run" not in capsys.readouterr().out
    conftest.build_tiny_classifier(tmp_path / "clf", seed=7)  # rebuilt in place
    assert main(base) == 0
    assert "kept from the earlier run" not in capsys.readouterr().out
    assert main(base) == 0  # nothing changed: kept
    assert "uniform: kept from the earlier run" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--layer", "5"], "--layer 5 is out of range"),
        (["--diagnostics", "permutation,bogus"], "--diagnostics"),
        (["--expnet", "/nonexistent/expnet"], "--expnet"),
    ],
)
def test_diagnose_bad_input_is_one_line(tiny_classifier_dir, tmp_path, capsys, extra, fragment):
    code = main(
        ["diagnose", "--classifier", tiny_classifier_dir, "--data", "sst2", "--out", str(tmp_path / "o"), *extra]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and fragment in err


def test_diagnose_refuses_to_replace_a_foreign_folder(tiny_classifier_dir, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    code = main(["diagnose", "--classifier", tiny_classifier_dir, "--data", "sst2", "--out", str(out)])
    assert code == 2 and "other files" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "keep me"


def test_diagnose_correlates_a_trained_expnet_too(tiny_classifier_dir, tmp_path, capsys):
    expnet_dir = tmp_path / "expnet"
    trained = main(
        [
            "train",
            "--task",
            f"sst2={tiny_classifier_dir}",
            "--out",
            str(expnet_dir),
            "--max-examples",
            "20",
            "--include-wrong",
        ]
    )
    assert trained == 0
    out = tmp_path / "diag"
    argv = [
        "diagnose",
        "--classifier",
        tiny_classifier_dir,
        "--data",
        "sst2",
        "--max-examples",
        "6",
        "--diagnostics",
        "correlation",
        "--expnet",
        str(expnet_dir),
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    results = json.loads((out / "diagnostics.json").read_text())
    assert set(results) & {"permutation", "adversarial", "uniform"} == set()
    pairs = results["correlation"]["summary"]["pairs"]
    assert pairs["expnet vs occlusion"]["examples"] + pairs["expnet vs occlusion"]["undefined"] == 6
    capsys.readouterr()


def test_the_permutation_verdict_does_not_call_weights_irrelevant_when_predictions_flip():
    from expnet.diagnostics.report import _permutation_meaning

    assert "does not matter" in _permutation_meaning(0.001, 0.0)
    flipped = _permutation_meaning(0.001, 0.243)
    assert "does not matter" not in flipped and "decides the output" in flipped
