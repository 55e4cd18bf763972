"""ExpNet on decoder classifiers, end to end through the command line: ``expnet train --recipe
transfer`` on a planted rationale, then ``explain`` and ``evaluate`` with it; its
features are the last real token's attention row; the paper recipe (token_to_cls) is refused."""

import json
from pathlib import Path

import pytest
import torch

from architectures import ARCHITECTURES
from expnet.cli.main import main
from expnet.explainers import ExpNetExplainer
from expnet.models.attention import forward_with_attentions
from expnet.models.classifier import Classifier
from expnet.network.features import valid_words
from expnet.network.gradient_features import batch_features
from expnet.words import pool_to_words
from test_attention_speed import used_fast_path
from test_cli import assert_one_line_error, run_cli, write_jsonl
from test_expnet import planted_examples, random_texts

DECODERS = ("gpt2", "llama")


def rows_of(examples) -> list[dict]:
    return [{"id": e.id, "tokens": e.words, "label": e.label, "rationale": e.gold_mask().tolist()} for e in examples]


@pytest.fixture(scope="module", params=DECODERS)
def trained(request, tmp_path_factory):
    """A decoder, its planted train/held-out JSONL files and the ExpNet 'expnet train' made."""
    root = tmp_path_factory.mktemp(f"expnet-{request.param}")
    folder = ARCHITECTURES[request.param](root / "clf", initializer_range=0.5)
    classifier = Classifier.load(folder, device="cpu", max_length=32)
    examples = planted_examples(classifier, n=160)
    train = write_jsonl(root / "planted.jsonl", rows_of(examples[:120]))
    held_out = write_jsonl(root / "held_out.jsonl", rows_of(examples[120:]))
    train_cli = ["train", "--task", f"{train}={folder}", "--recipe", "transfer", "--include-wrong"]
    assert main([*train_cli, "--out", str(root / "expnet"), "--seed", "0", "--device", "cpu"]) == 0
    return {"folder": folder, "train": train, "held_out": held_out, "expnet": root / "expnet"}


def test_decoder_expnet_reads_the_last_real_tokens_row(trained, monkeypatch):
    classifier = Classifier.load(trained["folder"], device="cpu", max_length=32)
    spec = ExpNetExplainer.from_pretrained(trained["expnet"]).spec
    assert spec.directions == ("cls_to_token",) and spec.layers == (classifier.num_layers - 1,)
    batch = classifier.encode(random_texts(6, seed=5))
    fallbacks = used_fast_path(monkeypatch)
    features, logits = batch_features(classifier, batch, spec)
    assert not fallbacks  # read by the SDPA readout pass, not eager output_attentions
    # By hand: the eager last layer's row of each text's last real token (right padding).
    eager_logits, attentions = forward_with_attentions(classifier, batch)
    last = batch.attention_mask.sum(-1) - 1
    rows = attentions[-1][torch.arange(batch.batch_size), :, last]  # [B, H, T]
    n_tokens = batch.attention_mask.sum(-1).view(-1, 1, 1)
    raw = pool_to_words(rows.transpose(1, 2) * n_tokens, batch, "sum")
    expected = spec.transform(raw, spec.raw().raw_names(), valid_words(batch))
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, eager_logits, atol=1e-5, rtol=0)


def test_decoder_expnet_explains_and_learns_the_planted_rationale(trained, tmp_path, capsys):
    explain = ("explain", "--classifier", trained["folder"], "--explainer", trained["expnet"], "--device", "cpu")
    code, out, err = run_cli(capsys, *explain, "--format", "json", "the movie was very good")
    assert code == 0, err
    [explained] = json.loads(out)["explanations"]
    assert len(explained["scores"]) == 5 and all(0 <= s <= 1 for s in explained["scores"])
    results = tmp_path / "results.json"
    code, _, err = run_cli(
        capsys, "evaluate", "--classifier", trained["folder"], "--data", trained["held_out"],
        "--explainers", f"{trained['expnet']},random", "--out", results, "--device", "cpu",
    )
    assert code == 0, err
    scores = json.loads(results.read_text())["explainers"]
    folder = Path(trained["expnet"])
    label = f"{folder.parent.name}/{folder.name}"  # a folder named "expnet" is not the shipped one
    assert scores[label]["auroc"] > 0.8
    assert scores[label]["auroc"] > scores["random"]["auroc"]


def test_the_paper_recipe_is_refused_on_a_decoder_in_one_line(trained, tmp_path, capsys):
    code, _, err = run_cli(
        capsys, "train", "--task", f"{trained['train']}={trained['folder']}", "--recipe", "paper",
        "--include-wrong", "--out", tmp_path / "paper", "--device", "cpu",
    )
    # As a terminal shows it: the feature progress bar, erased by its own carriage returns, then the error.
    shown = "\n".join(line.rsplit("\r", 1)[-1] for line in err.split("\n"))
    assert_one_line_error(code, shown, "token_to_cls")
