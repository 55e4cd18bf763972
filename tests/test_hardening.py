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
