"""One explanation serialisation: Explanation.to_dict/from_dict and the saved ExplanationRun."""

import json
from pathlib import Path

import numpy as np
import pytest

from expnet import __version__
from expnet.cli.main import main
from expnet.errors import ExpnetError
from expnet.explainers import get_explainer
from expnet.explainers.base import Explanation
from expnet.explanation_run import ExplanationRun


def assert_same(a: Explanation, b: Explanation) -> None:
    assert (a.words, a.target, a.prediction, a.explainer, a.label_names) == (b.words, b.target, b.prediction, b.explainer, b.label_names)
    np.testing.assert_array_equal(a.scores, b.scores)  # NaN where unscored, on both sides
    np.testing.assert_array_equal(a.scored, b.scored)
    np.testing.assert_array_equal(a.probabilities, b.probabilities)
    np.testing.assert_array_equal(a.cut_words, b.cut_words)
    np.testing.assert_array_equal(a.tokenless, b.tokenless)
    assert (a.rationale is None) == (b.rationale is None)
    if a.rationale is not None:
        np.testing.assert_array_equal(a.rationale, b.rationale)


def test_explanation_round_trip_keeps_words_labels_and_why_words_are_unscored():
    explanation = Explanation(
        words=["good", "\u200b", "film", "cut"],
        scores=np.array([0.5, np.nan, -1.25, np.nan]),
        scored=np.array([True, False, True, False]),
        target=1,
        prediction=0,
        probabilities=np.array([0.75, 0.25]),
        explainer="expnet",
        label_names=("neg", "pos"),
        rationale=np.array([1, 0, 0, 0], dtype=np.int8),
        cut=np.array([False, False, False, True]),
    )
    data = json.loads(json.dumps(explanation.to_dict(), allow_nan=False))  # strict JSON
    again = Explanation.from_dict(data)
    assert_same(explanation, again)
    assert again.target_name == "pos" and again.tokenless.tolist() == [False, True, False, False]
    # Infinite scores are as missing as NaN ones: null in JSON, NaN when read back.
    explanation.scores[0] = np.inf
    assert explanation.to_dict()["scores"][0] is None


def test_explanation_run_saves_and_loads(tmp_path, tiny_classifier):
    explainer = get_explainer("random", seed=4)
    texts = [["a", "good", "movie"], ["bad"] * 40]  # the second is cut at the tiny model's length
    explanations = explainer.explain(tiny_classifier, texts)
    run = ExplanationRun.of(explainer, explanations, tiny_classifier.source, seconds=0.5)
    assert (run.explainer, run.seed, run.expnet_version, run.examples_per_second) == ("random", 4, __version__, 4.0)
    assert run.settings == json.loads(json.dumps(explainer.settings(), default=repr))
    path = run.save(tmp_path / "run.json")
    loaded = ExplanationRun.load(path)
    assert (loaded.classifier, loaded.explainer, loaded.settings, loaded.seed, loaded.seconds) == (
        run.classifier, "random", run.settings, 4, 0.5,
    )
    assert len(loaded.explanations) == 2 and loaded.explanations[1].truncated
    for before, after in zip(explanations, loaded.explanations, strict=True):
        assert_same(before, after)
    assert ExplanationRun.from_dict(loaded.to_dict()).to_dict() == loaded.to_dict()


def test_explain_format_json_writes_a_run_that_load_reads(tmp_path, capsys, tiny_classifier_dir):
    path = tmp_path / "explained.json"
    argv = ["explain", "--classifier", tiny_classifier_dir, "--explainer", "random", "--format", "json", "--seed", "5"]
    assert main([*argv, "--out", str(path), "a good movie", " ".join(["bad"] * 100)]) == 0
    loaded = ExplanationRun.load(path)
    assert (loaded.classifier, loaded.explainer, loaded.seed, loaded.expnet_version) == (tiny_classifier_dir, "random", 5, __version__)
    assert loaded.settings == json.loads(json.dumps(get_explainer("random", batch_size=16, seed=5).settings(), default=repr))
    assert [e.words for e in loaded.explanations][0] == ["a", "good", "movie"] and loaded.explanations[1].truncated
    # stdout carries the same document as the file.
    capsys.readouterr()
    assert main([*argv, "a good movie", " ".join(["bad"] * 100)]) == 0
    assert capsys.readouterr().out == path.read_text()


def test_a_file_that_is_no_saved_run_gets_one_line(tmp_path):
    path = tmp_path / "other.json"
    for text, fragment in [
        ("{ broken", "not a readable JSON file"),
        ('{"format": 99}', "not a saved explanation run of format"),
        ('[1, 2]', "not a saved explanation run of format"),
        ('{"format": 1, "explanations": []}', "missing or bad field"),
    ]:
        path.write_text(text)
        with pytest.raises(ExpnetError, match=fragment):
            ExplanationRun.load(path)
    with pytest.raises(ExpnetError, match="no such file"):
        ExplanationRun.load(tmp_path / "missing.json")


def test_a_saved_run_whose_parts_disagree_is_refused_in_one_line(tmp_path, tiny_classifier):
    # Each once loaded, then failed far away (an IndexError in the HTML page, seed true read as 1).
    explainer = get_explainer("random")
    good = ExplanationRun.of(explainer, explainer.explain(tiny_classifier, [["a", "good", "movie"]]), "clf").to_dict()
    edits = {
        "a score short": (lambda d: d["explanations"][0]["scores"].pop(), "2 scores for 3 words"),
        "a target past the classes": (lambda d: d["explanations"][0].update(target=7), "target 7 is not one of the 2 classes"),
        "a boolean seed": (lambda d: d.update(seed=True), "seed True is not a whole number"),
    }
    for edit, message in edits.values():
        data = json.loads(json.dumps(good))
        edit(data)
        (tmp_path / "run.json").write_text(json.dumps(data))
        with pytest.raises(ExpnetError, match=f"missing or bad field .*{message}"):
            ExplanationRun.load(tmp_path / "run.json")
    (tmp_path / "run.json").write_text(json.dumps(good))
    assert ExplanationRun.load(tmp_path / "run.json").to_dict() == good


def test_a_saved_run_says_which_expnet_which_precision_and_where_the_classifier_is(capsys, tiny_classifier_dir, monkeypatch):
    # Two ExpNets' runs once read alike (both "expnet", the same settings) but for their scores.
    from expnet.explainers.learned import ExpNetExplainer
    from expnet.models.classifier import Classifier
    from expnet.network.training import ExpNetSettings
    from test_expnet import planted_examples

    classifier = Classifier.load(tiny_classifier_dir)
    mine = ExpNetExplainer.train([(classifier, planted_examples(classifier, n=12))], ExpNetSettings(max_epochs=1), progress=False)
    shipped_settings, my_settings = (ExplanationRun.of(e, [], "clf").settings for e in (get_explainer("expnet"), mine))
    assert shipped_settings["weights"] != my_settings["weights"]
    assert "threshold" not in shipped_settings and shipped_settings["rationale_rule"] == "perplexity"  # it uses none
    assert (my_settings["rationale_rule"], my_settings["threshold"]) == ("threshold", 0.5)
    # The classifier by its whole path (it was named relative to the current folder), in bfloat16.
    monkeypatch.chdir(Path(tiny_classifier_dir).parent)
    argv = ["explain", "--classifier", Path(tiny_classifier_dir).name, "--explainer", "random", "--format", "json", "--dtype", "bfloat16", "good"]
    assert main(argv) == 0
    saved = json.loads(capsys.readouterr().out)
    assert saved["dtype"] == "bfloat16" and saved["classifier"] == str(Path(tiny_classifier_dir).resolve())
