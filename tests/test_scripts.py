"""The benchmark and maintenance scripts' own logic: their error handling, what they compare,
which cached runs they read, and that a failed run leaves earlier outputs alone."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from expnet.benchmark.cache import canonical, classifier_fingerprint, digest, examples_digest, source_digest
from expnet.cli.main import run_script
from expnet.data import load_examples
from expnet.errors import ExpnetError
from expnet.explainers import get_explainer
from expnet.models.classifier import Classifier

ROOT = Path(__file__).resolve().parents[1]


def script(relative: str):
    spec = importlib.util.spec_from_file_location(Path(relative).stem, ROOT / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_script_turns_a_user_error_into_one_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["some_script.py"])

    def fails():
        raise ExpnetError("no folder 'x': give one")

    assert run_script(fails) == 2
    assert capsys.readouterr().err == "some_script.py: error: no folder 'x': give one\n"

    def interrupted():
        raise KeyboardInterrupt

    assert run_script(interrupted) == 130
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        run_script(lambda: 1 / 0)


def test_compare_runs_ignores_when_a_run_finished_but_not_its_numbers():
    compare = script("benchmarks/compare_runs.py")
    a = {"provenance": {"finished": "2026-12-07T15:13:22+00:00", "torch": "2.13"}, "f1": 0.5}
    assert compare.json_differences(a, {**a, "provenance": {**a["provenance"], "finished": "2026-12-07T16:00:00+00:00"}}) == []
    assert compare.json_differences(a, {**a, "f1": 0.6}) == ["/f1: 0.5 vs 0.6"]


def test_headline_shows_a_missing_interval_as_n_a():
    headline = script("benchmarks/headline.py")
    comparison = {"explainer": "expnet", "metric": "auroc", "baseline": "saliency", "difference": 0.034, "low": None,
                  "high": None, "verdict": "n/a"}
    assert headline._comparison([comparison], "expnet", "auroc") == "+0.034 [n/a] n/a (saliency)"


def _cache_entry(cache: Path, classifier: dict, examples, scores: list[list[float]]) -> None:
    name = "raw_attention"
    key = {"classifier": classifier, "explainer": {"name": name, "code": source_digest(get_explainer(name))},
           "task": "hatexplain", "split": "test", "examples": examples_digest(examples), "n": len(examples)}
    payload = {"explanations": [{"scores": s} for s in scores]}
    (cache / f"{digest(key)[:32]}.json").write_text(json.dumps({"kind": "explanations", "key": canonical(key), "payload": payload}))


def test_fusion_ceiling_reads_the_cached_run_of_this_classifier_only(tmp_path, tiny_classifier_dir):
    fusion = script("benchmarks/fusion_ceiling.py")
    examples = load_examples("hatexplain", None, None, purpose="evaluation")[:2]
    cache = tmp_path / "cache" / "explanations"
    cache.mkdir(parents=True)
    words = [[0.1] * len(e.words) for e in examples]
    _cache_entry(cache, {"path": "/an/older/classifier"}, examples, [[0.9] * len(e.words) for e in examples])
    _cache_entry(cache, classifier_fingerprint(tiny_classifier_dir), examples, words)
    run = {"evaluation_split": "test", "classifier": {"folder": tiny_classifier_dir}}
    found = fusion.cached_scores(tmp_path, "hatexplain", run, examples)
    assert list(found) == ["raw_attention"]
    np.testing.assert_allclose(np.concatenate(found["raw_attention"]), 0.1)
    other_draw = load_examples("hatexplain", None, None, purpose="evaluation")[2:4]
    assert fusion.cached_scores(tmp_path, "hatexplain", run, other_draw) == {}


def test_make_samples_keeps_the_samples_when_a_source_is_missing(tmp_path):
    make_samples = script("scripts/make_samples.py")
    out = tmp_path / "samples"
    (out / "hatexplain").mkdir(parents=True)
    (out / "hatexplain" / "test.jsonl").write_text("kept\n")
    with pytest.raises(FileNotFoundError):
        make_samples.main(["--data-dir", str(tmp_path / "no-data"), "--out", str(out)])
    assert (out / "hatexplain" / "test.jsonl").read_text() == "kept\n"


def test_the_shipped_expnets_feature_bank_is_recomputed_for_another_classifier(
    tmp_path, monkeypatch, capsys, tiny_classifier_dir, tiny_classifier_3heads_dir
):
    shipped = script("scripts/train_shipped_expnet.py")
    annotated = [e for e in load_examples("sst2", None, None, purpose="explainer_train") if e.has_rationale][:6]
    monkeypatch.setattr(shipped, "examples_of", lambda task, data_dir, seed: annotated)
    path = tmp_path / "sst2.safetensors"
    first, _ = shipped.bank("sst2", Classifier.load(tiny_classifier_dir), None, 0, path)
    again, _ = shipped.bank("sst2", Classifier.load(tiny_classifier_dir), None, 0, path)
    assert len(first) == len(again) and all(torch.equal(a, b) for a, b in zip(first.features, again.features, strict=True))
    assert "computing them again" not in capsys.readouterr().out
    other_classifier = Classifier.load(tiny_classifier_3heads_dir)
    other, _ = shipped.bank("sst2", other_classifier, None, 0, path)
    assert "holds the features of another classifier" in capsys.readouterr().out
    fresh, _ = shipped.bank("sst2", other_classifier, None, 0, tmp_path / "fresh.safetensors")
    assert len(other) == len(fresh) and all(torch.equal(a, b) for a, b in zip(other.features, fresh.features, strict=True))
