"""Hardening (issue 15): model code never runs unasked, outputs never destroy what was there,
interrupted folder swaps recover, and bad data or arguments get one clear line."""

from __future__ import annotations

import io
import json
import shutil

import pytest

from expnet.cli.main import main
from expnet.errors import ExpnetError
from expnet.models.classifier import Classifier


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, fragment):
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert fragment in lines[0], lines[0]


def copy_classifier(source, folder):
    shutil.copytree(source, folder)
    return folder


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


# --- 1. code from a model folder runs ------------------------------------------------------
@pytest.fixture()
def custom_code_classifier(tiny_classifier_dir, tmp_path):
    """A classifier whose config points at a Python file in its folder; importing it leaves a mark."""
    folder = copy_classifier(tiny_classifier_dir, tmp_path / "custom")
    marker = tmp_path / "code-ran"
    (folder / "custom.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from transformers import BertConfig as CustomConfig\n"
        "from transformers import BertForSequenceClassification as CustomModel\n"
    )
    edit_json(
        folder / "config.json",
        model_type="custom-unknown",
        auto_map={"AutoConfig": "custom.CustomConfig", "AutoModelForSequenceClassification": "custom.CustomModel"},
    )
    return folder, marker


def test_custom_code_is_refused_without_prompting(capsys, monkeypatch, custom_code_classifier):
    folder, marker = custom_code_classifier
    # transformers' own prompt would read this "y" and run custom.py.
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    code, _, err = run_cli(capsys, "explain", "--classifier", folder, "--explainer", "random", "good")
    assert_one_line_error(code, err, "--trust-remote-code")
    assert "auto_map" in err
    assert not marker.exists()


def test_custom_code_is_refused_even_when_a_builtin_class_could_load_it(tiny_classifier_dir, tmp_path):
    folder = copy_classifier(tiny_classifier_dir, tmp_path / "bert-with-code")
    edit_json(folder / "config.json", auto_map={"AutoModelForSequenceClassification": "custom.Model"})
    with pytest.raises(ExpnetError, match="auto_map"):
        Classifier.load(folder)


@pytest.mark.parametrize("command", ["finetune", "train", "explain", "evaluate", "diagnose", "concepts"])
def test_classifier_commands_offer_trust_remote_code(capsys, command):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--trust-remote-code" in capsys.readouterr().out


def test_finetune_refuses_a_custom_code_backbone(capsys, monkeypatch, custom_code_classifier, tmp_path):
    folder, marker = custom_code_classifier
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    data = tmp_path / "toy.jsonl"
    data.write_text(json.dumps({"id": "a", "tokens": ["good"], "label": 1}) + "\n")
    code, _, err = run_cli(capsys, "finetune", "--task", data, "--backbone", folder, "--out", tmp_path / "clf")
    assert_one_line_error(code, err, "--trust-remote-code")
    assert not marker.exists()


# --- 2. --out never deletes what was there ---------------------------------------------------
GOOD_ROWS = [
    {"id": "a", "tokens": ["a", "very", "good", "movie."], "label": 1, "rationale": [0, 1, 1, 0]},
    {"id": "b", "tokens": ["Boring", "film", "!"], "label": 0, "rationales": [[1, 0, 0], [1, 1, 0]]},
    {"id": "c", "tokens": ["i", "love", "this"], "label": 1, "rationale": [0, 1, 0]},
]


@pytest.fixture()
def toy_data(tmp_path):
    path = tmp_path / "toy.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in GOOD_ROWS * 4))
    return path


def train_args(toy_data, classifier, out):
    return ["train", "--task", f"{toy_data}={classifier}", "--out", out, "--include-wrong"]


def test_train_refuses_a_folder_of_unrelated_files(capsys, tiny_classifier_dir, toy_data, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    code, _, err = run_cli(capsys, *train_args(toy_data, tiny_classifier_dir, out))
    assert_one_line_error(code, err, "--overwrite")
    assert (out / "thesis.tex").read_text() == "years of work"


def test_overwrite_replaces_unrelated_files_and_a_previous_output_needs_no_flag(capsys, tiny_classifier_dir, toy_data, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "old.txt").write_text("x")
    code, _, err = run_cli(capsys, *train_args(toy_data, tiny_classifier_dir, out), "--overwrite")
    assert code == 0, err
    assert not (out / "old.txt").exists() and (out / "model.safetensors").is_file()
    code, _, err = run_cli(capsys, *train_args(toy_data, tiny_classifier_dir, out))  # its own output: replaced
    assert code == 0, err


def test_out_equal_to_the_classifier_is_refused(capsys, tiny_classifier_dir, toy_data, tmp_path):
    classifier = copy_classifier(tiny_classifier_dir, tmp_path / "clf")
    before = sorted(p.name for p in classifier.iterdir())
    for out in (classifier, classifier / "expnet"):
        code, _, err = run_cli(capsys, *train_args(toy_data, classifier, out), "--overwrite")
        assert_one_line_error(code, err, "overlaps the input")
    assert sorted(p.name for p in classifier.iterdir()) == before


def test_finetune_into_its_backbone_is_refused_before_training(capsys, monkeypatch, tiny_classifier_dir, toy_data, tmp_path):
    classifier = copy_classifier(tiny_classifier_dir, tmp_path / "clf")
    (classifier / "metrics.json").write_text("{}")  # looks like a finetune output, yet it is the input
    monkeypatch.setattr("expnet.cli.finetune.finetune", lambda *a, **k: pytest.fail("trained before checking --out"))
    code, _, err = run_cli(capsys, "finetune", "--task", toy_data, "--backbone", classifier, "--out", classifier)
    assert_one_line_error(code, err, "overlaps the input")
    assert (classifier / "model.safetensors").is_file()


def test_out_holding_the_working_directory_is_refused(capsys, monkeypatch, tiny_classifier_dir, toy_data, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("keep")
    monkeypatch.chdir(work)
    for out in (".", work, ".."):
        code, _, err = run_cli(capsys, *train_args(toy_data, tiny_classifier_dir, out), "--overwrite")
        assert_one_line_error(code, err, "current folder")
    assert (work / "notes.txt").read_text() == "keep"


def test_diagnose_refuses_its_classifier_folder(capsys, tiny_classifier_dir, toy_data, tmp_path):
    classifier = copy_classifier(tiny_classifier_dir, tmp_path / "clf")
    (classifier / "diagnostics.json").write_text("{}")
    code, _, err = run_cli(
        capsys, "diagnose", "--classifier", classifier, "--data", toy_data, "--out", classifier, "--diagnostics", "uniform"
    )
    assert_one_line_error(code, err, "overlaps the input")
    assert (classifier / "model.safetensors").is_file()


def test_out_that_is_a_file_or_under_a_file_is_refused(capsys, tiny_classifier_dir, toy_data, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, fragment in ((afile, "is a file"), (afile / "sub", "is a file")):
        code, _, err = run_cli(capsys, *train_args(toy_data, tiny_classifier_dir, out))
        assert_one_line_error(code, err, fragment)
    assert afile.read_text() == "x"
