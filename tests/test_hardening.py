"""Hardening (issue 15): model code never runs unasked, outputs never destroy what was there,
interrupted folder swaps recover, and bad data or arguments get one clear line."""

from __future__ import annotations

import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_helpers import assert_one_line_error, run_cli
from expnet.cli.main import main
from expnet.errors import ExpnetError, NotAboveChanceWarning
from expnet.models.classifier import Classifier


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
    copies = [{**row, "id": f"{row['id']}{copy}"} for copy in range(4) for row in GOOD_ROWS]
    path.write_text("".join(json.dumps(row) + "\n" for row in copies))
    return path


def train_args(toy_data, classifier, out):
    return ["train", "--task", f"{toy_data}={classifier}", "--out", out, "--include-wrong"]


def evaluate_args(classifier, data, out):
    return ["evaluate", "--classifier", classifier, "--data", data, "--explainers", "random", "--out", out]


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


def test_train_refuses_an_expnet_folder_holding_more_than_train_writes(capsys, tiny_classifier_dir, toy_data, tmp_path):
    # A copy of the shipped ExpNet with its model card and the user's notes: once replaced whole.
    from expnet.explainers.registry import pretrained_folder

    out = Path(shutil.copytree(pretrained_folder("expnet"), tmp_path / "shipcopy"))
    (out / "NOTES.txt").write_text("mine")
    code, _, err = run_cli(capsys, *train_args(toy_data, tiny_classifier_dir, out))
    assert_one_line_error(code, err, "--overwrite")
    assert (out / "NOTES.txt").read_text() == "mine" and (out / "README.md").is_file()


def test_finetune_and_diagnose_replace_their_own_output_but_not_a_folder_with_the_users_files(tiny_classifier_dir, tmp_path):
    import argparse

    from expnet.cli.common import check_out_folder

    classifier = Path(shutil.copytree(tiny_classifier_dir, tmp_path / "clf"))
    (classifier / "metrics.json").write_text("{}")
    report = tmp_path / "diag"
    report.mkdir()
    for name in ("diagnostics.json", "report.html", "permutation.png", "uniform.png"):
        (report / name).write_text("x")
    for command, folder, notes in (("finetune", classifier, "MY_NOTES.md"), ("diagnose", report, "analysis.ipynb")):
        args = argparse.Namespace(out=str(folder), overwrite=False, command=command)
        assert check_out_folder(args, []) == folder  # what it wrote before: replaced without asking
        (folder / notes).write_text("mine")  # once deleted with the folder, unasked
        with pytest.raises(ExpnetError, match="--overwrite"):
            check_out_folder(args, [])
        assert check_out_folder(argparse.Namespace(out=str(folder), overwrite=True, command=command), []) == folder


def test_a_folder_named_like_a_shipped_explainer_is_refused_not_shadowed(capsys, tiny_classifier_dir, toy_data, tmp_path, monkeypatch):
    # "--explainer expnet" with a folder ./expnet once gave the shipped model's scores, silently.
    from expnet.explainers import get_explainer

    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, *train_args(toy_data, tiny_classifier_dir, "expnet"))
    assert code == 0, err
    with pytest.raises(ExpnetError, match=r"'expnet' is both a shipped ExpNet and an ExpNet folder here; write ./expnet"):
        get_explainer("expnet")
    assert get_explainer("./expnet").history["train_examples"] > 0
    code, _, err = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "expnet", "good film")
    assert_one_line_error(code, err, "write ./expnet for the folder")


def test_a_training_text_with_no_scored_word_is_skipped_not_averaged_into_nan(capsys, tiny_classifier_dir, toy_data, tmp_path):
    # Two zero-width words: no subword token, no scored word; its rationale rate was NaN, saved as bare NaN.
    with toy_data.open("a") as file:
        file.write(json.dumps({"id": "z", "tokens": ["\u200b", "\u200b"], "label": 0, "rationale": [1, 0]}) + "\n")
    code, _, err = run_cli(capsys, *train_args(toy_data, tiny_classifier_dir, tmp_path / "e"))
    assert code == 0, err
    history = json.loads((tmp_path / "e" / "config.json").read_text(), parse_constant=lambda c: pytest.fail(f"bare {c}"))["history"]
    assert 0 < history["rationale_rate"] < 1 and history["skipped_unannotated"] == 1


def test_in_text_with_a_recipe_that_has_its_views_is_refused_and_bars_stay_out_of_logs(capsys, tiny_classifier_dir, toy_data, tmp_path):
    # --in-text with the transfer recipe gave byte-identical weights while config.json said in_text.
    code, _, err = run_cli(capsys, *train_args(toy_data, tiny_classifier_dir, tmp_path / "e"), "--in-text")
    assert_one_line_error(code, err, "--in-text adds within-text z-scores, which the transfer recipe's views")
    code, _, err = run_cli(capsys, *train_args(toy_data, tiny_classifier_dir, tmp_path / "e"), "--in-text", "--recipe", "paper")
    assert code == 0 and "\r" not in err, err  # stderr is no terminal here: no tqdm bar


def test_an_expnet_a_decoder_cannot_feed_is_refused_in_one_line_without_a_warning_first(capsys, tiny_classifier_dir, toy_data, tmp_path):
    from architectures import build_gpt2

    decoder = build_gpt2(tmp_path / "gpt2")
    code, _, err = run_cli(capsys, *train_args(toy_data, tiny_classifier_dir, tmp_path / "norms"), "--recipe", "transfer_norms")
    assert code == 0, err
    code, _, err = run_cli(capsys, "explain", "--classifier", decoder, "--explainer", tmp_path / "norms", "good film")
    assert_one_line_error(code, err, "BERT, RoBERTa and ELECTRA")


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


def test_a_killed_fine_tune_resumes_from_its_checkpoint_to_the_same_weights(monkeypatch, tiny_classifier_dir, toy_data, tmp_path):
    from dataclasses import replace

    from safetensors.torch import load_file

    import expnet.models.finetune as finetuning
    from expnet.data import load_examples
    from expnet.models.checkpoint import checkpoint_folder

    examples = load_examples(str(toy_data))
    settings = finetuning.FinetuneSettings(epochs=3, batch_size=4, max_length=16)  # 3 x 4 steps

    def run(out, **changed):
        return finetuning.finetune(tiny_classifier_dir, examples, examples[:4], examples[0].label_names, out,
                                   finetuning.FinetuneSettings(**{**settings.__dict__, **changed}), seed=0, progress=False)  # fmt: skip

    run(tmp_path / "whole")
    monkeypatch.setattr(finetuning, "CHECKPOINT_SECONDS", -1)  # a checkpoint after every step
    real_save, saves = finetuning.save_checkpoint, []

    def killed_after_five(*args):
        real_save(*args)
        saves.append(args[-1].steps_done)
        if len(saves) == 5:  # in the second epoch, mid-way
            raise KeyboardInterrupt

    monkeypatch.setattr(finetuning, "save_checkpoint", killed_after_five)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed")
    assert not (tmp_path / "resumed").exists() and checkpoint_folder(tmp_path / "resumed").is_dir()
    monkeypatch.setattr(finetuning, "save_checkpoint", real_save)
    metrics = run(tmp_path / "resumed")
    assert metrics["resumed_at_step"] == 5
    whole, resumed = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "resumed" / "model.safetensors")
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert not checkpoint_folder(tmp_path / "resumed").exists()  # done: nothing left beside it
    # A checkpoint of another training (another learning rate) is not resumed from.
    monkeypatch.setattr(finetuning, "save_checkpoint", killed_after_five)
    saves.clear()
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "other")
    monkeypatch.setattr(finetuning, "save_checkpoint", real_save)
    assert run(tmp_path / "other", learning_rate=1e-4)["resumed_at_step"] is None
    # Nor one of other texts under the same ids and labels, nor a damaged one (cut short): both
    # train from the start, to the weights of a run never stopped.
    for damage in ("texts", "cut"):
        monkeypatch.setattr(finetuning, "save_checkpoint", killed_after_five)
        saves.clear()
        with pytest.raises(KeyboardInterrupt):
            run(tmp_path / damage)
        monkeypatch.setattr(finetuning, "save_checkpoint", real_save)
        if damage == "cut":
            tensors = checkpoint_folder(tmp_path / damage) / "tensors.safetensors"
            tensors.write_bytes(tensors.read_bytes()[:1000])
            assert run(tmp_path / damage)["resumed_at_step"] is None
            again = load_file(tmp_path / damage / "model.safetensors")
            assert all(torch.equal(whole[k], again[k]) for k in whole)
        else:
            examples[:] = [replace(e, words=[w.upper() for w in e.words]) for e in examples]
            assert run(tmp_path / damage)["resumed_at_step"] is None


def test_a_diverged_fine_tune_saves_nothing_and_a_broken_classifier_is_not_explained(capsys, tiny_classifier_dir, toy_data, tmp_path):
    from transformers import AutoModelForSequenceClassification

    code, _, err = run_cli(capsys, "finetune", "--task", toy_data, "--backbone", tiny_classifier_dir, "--max-length", "16",
                           "--learning-rate", "1e6", "--epochs", "5", "--out", tmp_path / "clf")  # fmt: skip
    assert_one_line_error(code, err, "fine-tuning diverged: the loss became nan")
    assert not (tmp_path / "clf").exists()
    # One step only: its loss was finite, the weights it left are not usable.
    code, _, err = run_cli(capsys, "finetune", "--task", toy_data, "--backbone", tiny_classifier_dir, "--max-length", "16",
                           "--learning-rate", "1e12", "--epochs", "1", "--batch-size", "64", "--out", tmp_path / "clf")  # fmt: skip
    assert_one_line_error(code, err, "fine-tuning diverged: the")
    assert "after the last step" in err and not (tmp_path / "clf").exists()
    broken = copy_classifier(tiny_classifier_dir, tmp_path / "broken")
    model = AutoModelForSequenceClassification.from_pretrained(broken)
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    model.save_pretrained(broken)
    capsys.readouterr()
    for explainer in ("raw_attention", "saliency", "random", "lime", "kernel_shap"):  # LIME's own regression failed first
        code, out, err = run_cli(capsys, "explain", "--classifier", broken, "--explainer", explainer, "a good movie")
        assert_one_line_error(code, err, "the classifier's logits are not finite")
        assert "nan" not in out


def test_train_refuses_a_task_given_twice(capsys, tiny_classifier_dir, toy_data, tmp_path, monkeypatch):
    monkeypatch.chdir(toy_data.parent)
    for second in (f"{toy_data}={tiny_classifier_dir}", f"{toy_data.name}=other-clf", f"./{toy_data.name}={tiny_classifier_dir}"):
        code, _, err = run_cli(capsys, *train_args(toy_data, tiny_classifier_dir, tmp_path / "w"), "--task", second)
        assert_one_line_error(code, err, "again; give each task once")
    code, _, err = run_cli(capsys, "train", "--task", f"sst2={tiny_classifier_dir}", "--task", f"sst2={tiny_classifier_dir}", "--out", tmp_path / "w")
    assert_one_line_error(code, err, "--task 'sst2=")
    assert not (tmp_path / "w").exists()


def test_what_ships_is_an_input_of_every_command_even_unnamed(capsys, monkeypatch, tiny_classifier_dir, toy_data, tmp_path):
    """The default backbone (no --backbone given) and expnet's own folder (samples, pretrained
    ExpNet) are never replaced, --overwrite or not: finetune --out BACKBONE once emptied it."""
    import expnet

    backbone = copy_classifier(tiny_classifier_dir, tmp_path / "pkg" / "model")
    (backbone / "README.md").write_text("the backbone's card")
    monkeypatch.setattr("expnet.cli.common.default_backbone", lambda: str(backbone))
    monkeypatch.setattr("expnet.cli.finetune.default_backbone", lambda: str(backbone))
    monkeypatch.setattr("expnet.cli.finetune.finetune", lambda *a, **k: pytest.fail("trained before checking --out"))
    for out in (backbone, backbone.parent, Path(expnet.__file__).parent / "samples" / "sst2"):
        code, _, err = run_cli(capsys, "finetune", "--task", toy_data, "--out", out, "--overwrite")
        assert_one_line_error(code, err, "overlaps the input")
    assert (backbone / "README.md").read_text() == "the backbone's card"
    code, _, err = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "random", "--out",
                           Path(expnet.__file__).parent / "samples" / "README.md", "--overwrite", "good")  # fmt: skip
    assert_one_line_error(code, err, "overlaps the input")


def test_an_empty_name_in_a_list_of_inputs_is_not_the_current_folder(capsys, tiny_classifier_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "e.json").write_text("{}")
    code, _, err = run_cli(capsys, "evaluate", "--classifier", tiny_classifier_dir, "--data", "sst2", "--explainers", "raw_attention,",
                           "--out", "e.json", "--overwrite", "--max-examples", "3")  # fmt: skip
    assert code == 0 and "overlaps the input" not in err, err


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


def test_diagnose_refuses_an_expnet_folder_without_an_expnet_before_any_work(capsys, tiny_classifier_dir, toy_data, tmp_path):
    (tmp_path / "empty").mkdir()
    for expnet, fragment in ((tmp_path / "empty", "holds no ExpNet"), (tiny_classifier_dir, "holds no ExpNet"), (tmp_path / "none", "is not a folder")):
        code, _, err = run_cli(capsys, "diagnose", "--classifier", tiny_classifier_dir, "--data", toy_data, "--expnet", expnet,
                               "--out", tmp_path / "d", "--diagnostics", "uniform")  # fmt: skip
        assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "d").exists()


def test_out_that_is_a_file_or_under_a_file_is_refused(capsys, tiny_classifier_dir, toy_data, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, fragment in ((afile, "is a file"), (afile / "sub", "is a file")):
        code, _, err = run_cli(capsys, *train_args(toy_data, tiny_classifier_dir, out))
        assert_one_line_error(code, err, fragment)
    assert afile.read_text() == "x"


def test_an_output_in_a_read_only_folder_is_refused_before_any_work(capsys, monkeypatch, tiny_classifier_dir, toy_data, tmp_path):
    import os

    read_only = tmp_path / "ro"
    read_only.mkdir()
    real_access = os.access
    # chmod does not stop root, so the check's view of the folder is what is made read-only
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(read_only) else real_access(path, mode))
    code, _, err = run_cli(capsys, *train_args(toy_data, tiny_classifier_dir, read_only / "e"))
    assert_one_line_error(code, err, "no permission to write in")
    code, _, err = run_cli(capsys, *evaluate_args(tiny_classifier_dir, toy_data, read_only / "r.json"))
    assert_one_line_error(code, err, "no permission to write in")


# --- 3. an interrupted folder swap never loses the folder ------------------------------------
def folder_contents(folder):
    return {path.name: path.read_text() for path in folder.iterdir()}


def hidden_leftovers(parent):
    return sorted(path.name for path in parent.iterdir() if path.name.startswith("."))


def dead_pid():
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(child.stdout)


def save_in_a_process_killed(target, when):
    """Run atomic_directory(target) in a child that dies (os._exit, like SIGKILL) at ``when``:
    'writing' (inside the staging write) or 'swap' (after the old folder was moved aside)."""
    import subprocess
    import sys

    script = f"""
import os, pathlib
import expnet.io as io
real_replace = os.replace
def replace(src, dst):
    if {when!r} == "swap" and pathlib.Path(dst) == pathlib.Path({str(target)!r}):
        os._exit(9)  # between 'old folder moved aside' and 'new folder renamed in'
    real_replace(src, dst)
io.os.replace = replace
with io.atomic_directory({str(target)!r}) as staging:
    (staging / "a.txt").write_text("new")
    if {when!r} == "writing":
        os._exit(9)
"""
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 9


def make_folder(path, text="old"):
    path.mkdir()
    (path / "a.txt").write_text(text)
    return path


def test_a_kill_between_the_renames_is_recovered_by_the_next_save(tmp_path):
    from expnet.io import atomic_directory

    target = make_folder(tmp_path / "out")
    save_in_a_process_killed(target, "swap")
    assert not target.exists()  # the state the kill leaves; the next use repairs it
    with atomic_directory(target) as staging:
        assert folder_contents(target) == {"a.txt": "new"}  # the killed save had finished writing
        (staging / "a.txt").write_text("newer")
    assert folder_contents(target) == {"a.txt": "newer"}
    assert hidden_leftovers(tmp_path) == []


def test_a_kill_during_the_staging_write_keeps_the_old_folder_and_clears_the_staging(tmp_path):
    from expnet.io import recover_directory

    target = make_folder(tmp_path / "out")
    save_in_a_process_killed(target, "writing")
    assert hidden_leftovers(tmp_path)  # the half-written staging folder
    recover_directory(target)
    assert folder_contents(target) == {"a.txt": "old"}
    assert hidden_leftovers(tmp_path) == []


def test_classifier_load_restores_a_folder_left_aside_by_a_killed_save(tiny_classifier_dir, tmp_path):
    classifier = copy_classifier(tiny_classifier_dir, tmp_path / "clf")
    classifier.rename(tmp_path / f".clf.old-{dead_pid()}")  # what the old swap left after a kill
    assert Classifier.load(classifier).num_labels == 2
    assert hidden_leftovers(tmp_path) == []


def test_an_output_left_aside_by_a_killed_run_is_recognised_as_the_commands_own(capsys, tiny_classifier_dir, toy_data, tmp_path):
    out = tmp_path / "e"
    code, _, err = run_cli(capsys, *train_args(toy_data, tiny_classifier_dir, out))
    assert code == 0, err
    out.rename(tmp_path / f".e.old-{dead_pid()}")  # killed mid-swap by an earlier run
    code, _, err = run_cli(capsys, *train_args(toy_data, tiny_classifier_dir, out))
    assert code == 0, err
    assert (out / "model.safetensors").is_file() and hidden_leftovers(tmp_path) == []


def test_a_failed_rename_in_the_swap_keeps_the_old_folder(monkeypatch, tmp_path):
    import os

    from expnet.io import atomic_directory

    target = make_folder(tmp_path / "out")
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst) == str(target) and ".old-" not in str(src):  # the rename that puts the new folder in
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr("expnet.io.os.replace", failing_replace)
    with pytest.raises(OSError, match="disk full"), atomic_directory(target) as staging:
        (staging / "a.txt").write_text("new")
    assert folder_contents(target) == {"a.txt": "old"}
    assert hidden_leftovers(tmp_path) == []


def test_a_live_process_swap_is_left_alone(tmp_path):
    import os

    from expnet.io import recover_directory

    target = tmp_path / "out"
    in_progress = make_folder(tmp_path / f".out.old-{os.getppid()}-ab12")  # pytest's parent process is alive
    recover_directory(target)
    assert in_progress.is_dir() and not target.exists()


def test_a_failed_repair_deletes_no_copy(monkeypatch, tmp_path):
    from expnet.io import recover_directory

    target = tmp_path / "out"
    aside = make_folder(tmp_path / f".out.old-{dead_pid()}")

    def refused(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("expnet.io.os.replace", refused)
    recover_directory(target)
    assert folder_contents(aside) == {"a.txt": "old"}


def test_a_temporary_file_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    from expnet.io import atomic_write_text

    stale = tmp_path / f".r.json.tmp-{dead_pid()}-abcd1234"
    stale.write_text("half")
    atomic_write_text(tmp_path / "r.json", "{}")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["r.json"]


def test_saved_classifier_files_are_readable_by_others(tiny_classifier_dir, tmp_path):
    import stat

    from expnet.data import jsonl
    from expnet.models.finetune import FinetuneSettings, finetune

    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in GOOD_ROWS))
    rows = jsonl.load(data)
    out = tmp_path / "clf"
    finetune(tiny_classifier_dir, rows, rows, rows[0].label_names, out, FinetuneSettings(max_length=16), progress=False)
    mode = stat.S_IMODE((out / "model.safetensors").stat().st_mode)
    assert mode & stat.S_IROTH and mode & stat.S_IRGRP, oct(mode)
    assert Classifier.load(out).num_labels == 2


# --- 4. one data line cannot exhaust memory ---------------------------------------------------
@pytest.mark.parametrize("label", [10**30, 10_000, -1, 1.5, True])
def test_a_label_that_is_not_a_small_class_index_is_refused_with_its_line(tmp_path, label):
    from expnet.data import DataError, jsonl

    path = tmp_path / "toy.jsonl"
    path.write_text(json.dumps(GOOD_ROWS[0]) + "\n" + json.dumps({**GOOD_ROWS[1], "label": label}) + "\n")
    with pytest.raises(DataError, match=r"toy\.jsonl:2: 'label' must be a class index") as raised:
        jsonl.load(path)
    assert len(str(raised.value)) < 200 and "\n" not in str(raised.value)


def test_the_largest_allowed_label_loads(tmp_path):
    from expnet.data import jsonl

    path = tmp_path / "toy.jsonl"
    path.write_text(json.dumps({**GOOD_ROWS[0], "label": 9_999}) + "\n")
    assert len(jsonl.load(path)[0].label_names) == 10_000


# --- silently wrong results -------------------------------------------------------------------
def test_a_classifier_without_tokenizer_files_is_refused(capsys, tiny_classifier_dir, tmp_path):
    folder = copy_classifier(tiny_classifier_dir, tmp_path / "clf")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (folder / name).unlink(missing_ok=True)
    # transformers would build a 5-token vocabulary: every word [UNK], exit 0
    code, _, err = run_cli(capsys, "explain", "--classifier", folder, "--explainer", "random", "good movie")
    assert_one_line_error(code, err, "no tokenizer files")


def test_pickle_weights_are_never_read(monkeypatch, tiny_classifier_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    folder = copy_classifier(tiny_classifier_dir, tmp_path / "clf")
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load (unpickling) was called"))
    with pytest.raises(ExpnetError, match="safe_serialization=True") as raised:
        Classifier.load(folder)
    assert "pytorch_model.bin" in str(raised.value)


@pytest.mark.parametrize("target", [1.7, True, 1.0, None])
def test_a_target_that_is_not_a_whole_number_is_refused(tiny_classifier, target):
    with pytest.raises(ExpnetError, match="not a class"):
        tiny_classifier.label_id(target)


def test_integer_like_targets_still_work(tiny_classifier):
    import numpy as np
    import torch

    assert [tiny_classifier.label_id(t) for t in (1, np.int64(1), torch.tensor(1), "1", "class1")] == [1] * 5


@pytest.mark.parametrize("batch_size", [0, -1])
def test_explain_refuses_a_batch_size_below_one(tiny_classifier, batch_size):
    from expnet.explainers import get_explainer

    with pytest.raises(ExpnetError, match="batch_size"):
        get_explainer("random", batch_size=batch_size).explain(tiny_classifier, ["good movie"])


def test_explain_refuses_one_bare_string(tiny_classifier):
    from expnet.explainers import get_explainer

    with pytest.raises(ExpnetError, match="one string; pass a list"):
        get_explainer("random").explain(tiny_classifier, "good movie")


@pytest.mark.parametrize(
    ("second_id", "fragment"),
    [("a", "toy.jsonl:2: id 'a' is already used on line 1"), (None, "toy.jsonl:2: 'id' must be"), ("", "toy.jsonl:2: 'id' must be")],
)
def test_jsonl_ids_must_be_unique_and_present(tmp_path, second_id, fragment):
    from expnet.data import DataError, jsonl

    path = tmp_path / "toy.jsonl"
    path.write_text(json.dumps(GOOD_ROWS[0]) + "\n" + json.dumps({**GOOD_ROWS[1], "id": second_id}) + "\n")
    with pytest.raises(DataError) as raised:
        jsonl.load(path)
    assert fragment in str(raised.value)


def test_train_refuses_labels_outside_the_classifier(capsys, tiny_classifier_dir, tmp_path):
    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps({**row, "label": 4}) + "\n" for row in GOOD_ROWS))
    code, _, err = run_cli(capsys, *train_args(data, tiny_classifier_dir, tmp_path / "e"))
    assert_one_line_error(code, err, "has label 4, outside this classifier's 2 classes")


@pytest.mark.parametrize("name", ["folder", "folder.jsonl"])
def test_a_folder_given_as_data_is_called_a_folder(capsys, tiny_classifier_dir, tmp_path, name):
    (tmp_path / name).mkdir()
    code, _, err = run_cli(
        capsys, "evaluate", "--classifier", tiny_classifier_dir, "--data", tmp_path / name,
        "--explainers", "random", "--out", tmp_path / "r.json",
    )
    assert_one_line_error(code, err, "is a folder")


def test_a_data_dir_that_is_a_file_is_called_a_file(capsys, tiny_classifier_dir, tmp_path):
    afile = tmp_path / "data"
    afile.write_text("x")
    code, _, err = run_cli(capsys, *evaluate_args(tiny_classifier_dir, "sst2", tmp_path / "r.json"), "--data-dir", afile)
    assert_one_line_error(code, err, "is a file")


# --- one line, not a traceback ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        (b'{"id": "\xff", "tokens": ["a"], "label": 0}', "toy.jsonl:2: not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "toy.jsonl:2: JSON nested too deeply"),
    ],
)
def test_unreadable_jsonl_lines_get_one_line(capsys, tiny_classifier_dir, tmp_path, line, fragment):
    data = tmp_path / "toy.jsonl"
    data.write_bytes(json.dumps(GOOD_ROWS[0]).encode() + b"\n" + line + b"\n")
    code, _, err = run_cli(capsys, *evaluate_args(tiny_classifier_dir, data, tmp_path / "r.json"))
    assert_one_line_error(code, err, fragment)


def test_stdin_that_is_not_utf8_gets_one_line(capsys, monkeypatch, tiny_classifier_dir):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"good \xff movie\n"), encoding="utf-8"))
    code, _, err = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "random")
    assert_one_line_error(code, err, "not UTF-8")


def test_stdin_read_as_a_terminal_reads_it_not_utf8_gets_one_line(capsys, monkeypatch, tiny_classifier_dir):
    # Python's own stdin under a C or UTF-8 locale turns bad bytes into lone surrogates; the
    # tokenizer then raised a TypeError traceback.
    stdin = io.TextIOWrapper(io.BytesIO(b"good movie\ngood \xff movie\n"), encoding="utf-8", errors="surrogateescape")
    monkeypatch.setattr("sys.stdin", stdin)
    code, _, err = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "random")
    assert_one_line_error(code, err, "text 2 is not UTF-8 text (character 6)")


def test_stdin_lines_drop_a_byte_order_mark_and_blank_lines(capsys, monkeypatch, tiny_classifier_dir):
    monkeypatch.setattr("sys.stdin", io.StringIO("\ufeffgood movie\n\n  \nbad\n"))
    code, out, err = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "random", "--format", "json")
    assert code == 0, err
    assert [e["words"] for e in json.loads(out)["explanations"]] == [["good", "movie"], ["bad"]]


def test_a_data_file_that_cannot_be_opened_gets_one_line(capsys, monkeypatch, tiny_classifier_dir, tmp_path):
    import builtins

    data = tmp_path / "toy.jsonl"
    data.write_text(json.dumps(GOOD_ROWS[0]) + "\n")
    real_open = builtins.open

    def denied(path, *args, **kwargs):  # chmod does not stop root, so deny the open itself
        if str(path) == str(data):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", denied)
    code, _, err = run_cli(capsys, *evaluate_args(tiny_classifier_dir, data, tmp_path / "r.json"))
    assert_one_line_error(code, err, "cannot read it (Permission denied)")


@pytest.mark.parametrize(("damage", "fragment"), [("truncate", "corrupt or truncated"), ("random", "corrupt or truncated"), ("labels", "do not fit config.json")])
def test_a_broken_classifier_folder_gets_one_line(capsys, tiny_classifier_dir, tmp_path, damage, fragment):
    folder = copy_classifier(tiny_classifier_dir, tmp_path / "clf")
    weights = folder / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:2000])
    elif damage == "random":
        weights.write_bytes(bytes(range(256)) * 8)
    else:
        edit_json(folder / "config.json", id2label={str(i): f"c{i}" for i in range(3)}, label2id={f"c{i}": i for i in range(3)})
    code, _, err = run_cli(capsys, "explain", "--classifier", folder, "--explainer", "random", "good")
    assert_one_line_error(code, err, fragment)


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--seed", "-1"], "is not a seed"),
        # Not a number at all: the flag's expectation, not argparse's "invalid seed_value value".
        (["--seed", "x"], "'x' is not a seed: give a whole number"),
        (["--epochs", "1.5"], "'1.5' is not a positive whole number"),
        (["--learning-rate", "fast"], "'fast' is not a positive number"),
        (["--learning-rate", "0"], "not a positive number"),
        (["--learning-rate", "nan"], "not a positive number"),
        (["--max-length", "1000"], "more than the 64 tokens"),
        (["--device", "gpu7"], "unknown --device"),
    ],
)
def test_out_of_range_values_get_one_line(capsys, tiny_classifier_dir, toy_data, tmp_path, extra, fragment):
    argv = ["finetune", "--task", toy_data, "--backbone", tiny_classifier_dir, "--out", tmp_path / "clf", *extra]
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, fragment)  # argparse's refusals too: no usage block above
    assert not (tmp_path / "clf").exists()


def test_finetune_refuses_training_data_without_every_class(capsys, tiny_classifier_dir, tmp_path):
    # One example is one class, whichever the draw picks.
    code, _, err = run_cli(
        capsys, "finetune", "--task", "movies", "--backbone", tiny_classifier_dir, "--max-length", "32",
        "--max-examples", "1", "--out", tmp_path / "clf",
    )
    assert_one_line_error(code, err, "the 1 training examples have no example of class")
    assert not (tmp_path / "clf").exists()
    # The library's own cut, the first N (benchmark and demo settings), is checked as well: the
    # movies training split lists every negative review first, so its first 60 are one class.
    from expnet.data import load_examples
    from expnet.errors import ExpnetError
    from expnet.models.finetune import FinetuneSettings, finetune

    train = load_examples("movies", None, None, purpose="classifier_train")
    with pytest.raises(ExpnetError, match="the 60 training examples have no example of class 'positive'"):
        finetune(tiny_classifier_dir, train, train[:2], train[0].label_names, tmp_path / "lib", FinetuneSettings(max_examples=60, max_length=32))
    assert not (tmp_path / "lib").exists()


def test_finetune_on_a_jsonl_file_measures_dev_accuracy_on_its_held_out_part(capsys, tiny_classifier_dir, toy_data, tmp_path):
    from expnet.data import JSONL_EVAL_FRACTION, jsonl_split, load_examples, task_name

    code, out, err = run_cli(capsys, "finetune", "--task", toy_data, "--backbone", tiny_classifier_dir, "--max-length", "16", "--out", tmp_path / "clf")
    assert code == 0, err
    metrics = json.loads((tmp_path / "clf" / "metrics.json").read_text())
    dev, train = jsonl_split(load_examples(str(toy_data)), task_name(str(toy_data)), JSONL_EVAL_FRACTION)
    assert (metrics["dev_examples"], metrics["train_examples"]) == (len(dev), len(train))
    assert len(dev) + len(train) == len(load_examples(str(toy_data))) and len(dev) < len(train)
    # Its bar only on a terminal or with --progress: a log file once filled with carriage returns.
    assert "fine-tune" not in err
    code, _, err = run_cli(capsys, "finetune", "--task", toy_data, "--backbone", tiny_classifier_dir, "--max-length", "16", "--out", tmp_path / "clf", "--progress")
    assert code == 0 and "fine-tune" in err


def test_finetune_gives_its_dev_accuracy_an_interval_and_warns_when_it_is_not_above_chance(capsys, tiny_classifier_dir, toy_data, tmp_path):
    import math

    from expnet.data import JSONL_EVAL_FRACTION, jsonl_split, load_examples, task_name
    from expnet.models.classifier import Classifier
    from expnet.models.finetune import describe_accuracy, dev_metrics, warn_if_not_above_chance

    def wilson(correct, n, z=1.959964):  # by hand, to check scipy's
        p = correct / n
        centre, spread = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return [(centre - spread) / (1 + z * z / n), (centre + spread) / (1 + z * z / n)]

    examples = load_examples(str(toy_data))
    classifier = Classifier.load(tiny_classifier_dir, device="cpu", max_length=16)
    predicted = classifier.predict_logits(classifier.encode([e.words for e in examples])).argmax(-1).tolist()
    correct = sum(p == e.label for p, e in zip(predicted, examples, strict=True))
    metrics = dev_metrics(classifier, examples, batch_size=5)
    assert metrics is not None
    labels = [e.label for e in examples]
    assert metrics["dev_accuracy"] == correct / len(examples)
    assert metrics["dev_majority_accuracy"] == max(labels.count(0), labels.count(1)) / len(examples)
    assert metrics["dev_accuracy_interval"] == pytest.approx(wilson(correct, len(examples)), abs=1e-4)
    shown = describe_accuracy({**metrics, "dev_examples": 1922})  # the demo's line fits 80 columns
    assert len(f"classifier hatexplain: dev accuracy {shown}") <= 80 and shown.startswith(f"{metrics['dev_accuracy']:.3f} [")
    # 22 of 40 right on a balanced set could be chance; 30 of 40 could not.
    for right, warns in ((22, True), (30, False)):
        given = {"dev_accuracy": right / 40, "dev_accuracy_interval": wilson(right, 40), "dev_majority_accuracy": 0.5, "dev_examples": 40}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warn_if_not_above_chance(given)
        assert [issubclass(w.category, NotAboveChanceWarning) for w in caught] == ([True] if warns else [])
    # The command line: the interval in metrics.json and its output, and the warning in one line
    # (a tiny random classifier on a few dev texts is never clearly above chance).
    code, out, err = run_cli(capsys, "finetune", "--task", toy_data, "--backbone", tiny_classifier_dir, "--max-length", "16", "--out", tmp_path / "clf")
    assert code == 0, err
    saved = json.loads((tmp_path / "clf" / "metrics.json").read_text())
    dev, _ = jsonl_split(examples, task_name(str(toy_data)), JSONL_EVAL_FRACTION)
    assert json.loads(out)["dev_accuracy_interval"] == saved["dev_accuracy_interval"]
    assert saved["dev_majority_accuracy"] == max([e.label for e in dev].count(c) for c in (0, 1)) / len(dev)
    assert [line for line in err.splitlines() if line.strip()] == [line for line in err.splitlines() if "warning: dev accuracy" in line]
    assert err.count("is not clearly above the") == 1 and err.startswith("expnet finetune: warning: dev accuracy")


def test_rationales_that_mark_no_word_are_refused_by_train_and_evaluate(capsys, tiny_classifier_dir, tmp_path):
    rows = [{"id": f"z{i}", "tokens": ["a", "good", "film"], "label": i % 2, "rationale": [0, 0, 0]} for i in range(8)]
    data = tmp_path / "zeros.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    expected = "no example of " + str(data) + " marks any word in its rationales (every mask is all 0)"
    code, _, err = run_cli(capsys, "train", "--task", f"{data}={tiny_classifier_dir}", "--out", tmp_path / "w", "--include-wrong")
    assert_one_line_error(code, err, expected)
    code, _, err = run_cli(capsys, "evaluate", "--classifier", tiny_classifier_dir, "--data", data, "--explainers", "random", "--out", tmp_path / "e.json")
    assert_one_line_error(code, err, expected)
    assert not (tmp_path / "w").exists() and not (tmp_path / "e.json").exists()


def test_train_refuses_teacher_options_without_unlabelled_texts_and_unknown_teachers(capsys, tiny_classifier_dir, toy_data, tmp_path):
    from expnet.errors import ExpnetError
    from expnet.explainers.distillation import TeacherSettings

    for extra in (["--teacher", "lime"], ["--max-unlabelled", "10"]):
        code, _, err = run_cli(capsys, *train_args(toy_data, tiny_classifier_dir, tmp_path / "w"), *extra)
        assert_one_line_error(code, err, "--teacher and --max-unlabelled label --unlabelled texts; add --unlabelled")
    with pytest.raises(ExpnetError, match="unknown teacher explainer 'nosuch'"):
        TeacherSettings(("saliency", "nosuch"))


def test_a_missing_cuda_device_gets_one_line(capsys, monkeypatch, tiny_classifier_dir):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "random", "--device", "cuda", "good")
    assert_one_line_error(code, err, "no such CUDA device")


@pytest.mark.parametrize("out", [".", "..", "folder"])
def test_a_folder_given_as_an_output_file_gets_one_line(capsys, monkeypatch, tiny_classifier_dir, tmp_path, out):
    (tmp_path / "work" / "folder").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    code, _, err = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "random", "--out", out, "good")
    assert_one_line_error(code, err, "is a folder; give a file path")


def test_evaluate_refuses_one_explainer_named_twice_however_spelled(capsys, tiny_classifier_dir, toy_data, tmp_path, monkeypatch):
    monkeypatch.chdir(Path(tiny_classifier_dir).parent)
    folder = Path(tiny_classifier_dir).name
    for spec, fragment in (
        ("random,random", "--explainers names 'random' twice; give each once"),
        (f"{tiny_classifier_dir},./{folder}", f"--explainers names './{folder}' twice (as '{tiny_classifier_dir}' too)"),
    ):
        code, _, err = run_cli(capsys, "evaluate", "--classifier", tiny_classifier_dir, "--data", toy_data, "--explainers", spec, "--out", tmp_path / "e.json")
        assert_one_line_error(code, err, fragment)


def test_evaluate_never_writes_over_its_data(capsys, tiny_classifier_dir, toy_data):
    before = toy_data.read_text()
    code, _, err = run_cli(capsys, *evaluate_args(tiny_classifier_dir, toy_data, toy_data))
    assert_one_line_error(code, err, "overlaps the input")
    assert toy_data.read_text() == before


def test_an_output_file_never_replaces_a_file_of_an_input_folder(capsys, tiny_classifier_dir, tmp_path):
    classifier = copy_classifier(tiny_classifier_dir, tmp_path / "clf")
    config = (classifier / "config.json").read_text()
    explain = ["explain", "--classifier", classifier, "--explainer", "random", "--out"]
    code, _, err = run_cli(capsys, *explain, classifier / "config.json", "good")
    assert_one_line_error(code, err, "overlaps the input")
    assert (classifier / "config.json").read_text() == config
    code, _, err = run_cli(capsys, *explain, classifier / "explanations.txt", "good")  # a new file beside it is fine
    assert code == 0, err



def test_sigterm_unwinds_like_ctrl_c_and_leaves_no_staging(capsys, monkeypatch, tmp_path):
    import os
    import signal

    from expnet.cli import main as cli_main
    from expnet.io import atomic_directory

    target = tmp_path / "out"

    def killed_mid_write(args):
        with atomic_directory(target) as staging:
            (staging / "half.bin").write_bytes(b"x")
            os.kill(os.getpid(), signal.SIGTERM)
        return 0

    previous = signal.getsignal(signal.SIGTERM)
    args = cli_main.parse(["explainers"])
    monkeypatch.setattr(cli_main, "parse", lambda argv: args)
    monkeypatch.setattr(args, "func", killed_mid_write)
    code, _, err = run_cli(capsys, "explainers")
    assert code == 143 and "terminated" in err
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) == previous


# --- 5. a text's scores depend on the seed and its words only ------------------------------------
STOCHASTIC = {
    "lime": {"n_samples": 8},
    "kernel_shap": {"n_samples": 8},
    "shapley_sampling": {"n_samples": 2},
    "partition_shap": {"max_evals": 12},  # deterministic: checked for batch independence only
    "smoothgrad": {"n_samples": 3},
    "random": {},
}
TEXT = ["not", "a", "good", "movie", "at", "all"]
OTHER_TEXTS = [["boring"], ["i", "love", "this", "film", "so", "very", "much", "!"]]


@pytest.mark.parametrize("name", sorted(STOCHASTIC))
def test_a_texts_scores_do_not_depend_on_the_batch_or_its_neighbours(tiny_classifier, name):
    from expnet.explainers import get_explainer

    def scores(texts, index=0, batch_size=4, seed=7):
        explainer = get_explainer(name, seed=seed, batch_size=batch_size, **STOCHASTIC[name])
        return explainer.explain(tiny_classifier, texts)[index].scores

    alone = scores([TEXT])
    for batch_size in (1, 4):
        np.testing.assert_array_equal(scores([*OTHER_TEXTS, TEXT], index=2, batch_size=batch_size), alone)
    np.testing.assert_array_equal(scores([TEXT], batch_size=1), alone)
    if name != "partition_shap":
        assert not np.allclose(scores([TEXT], seed=8), alone)


def test_text_seeds_are_stable_across_processes():
    import subprocess
    import sys

    from expnet.explainers.base import text_seed

    script = "from expnet.explainers.base import text_seed; print(text_seed(3, ['a', 'b']))"
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert int(child.stdout) == text_seed(3, ["a", "b"])
    assert len({text_seed(3, ["a", "b"]), text_seed(4, ["a", "b"]), text_seed(3, ["a b"]), text_seed(3, ["b", "a"])}) == 4


# --- 6. batches of similar lengths, results in input order -----------------------------------------
def test_batches_hold_texts_of_similar_length_and_results_keep_the_input_order(monkeypatch, tiny_classifier):
    from expnet.explainers import get_explainer

    texts = [["good"] * n for n in (9, 1, 7, 2, 8, 3)]
    targets = [0, 1, 1, 0, 0, 1]
    explainer = get_explainer("saliency", batch_size=2)
    real = explainer.explain_batch
    lengths = []

    def recording(classifier, batch, chunk_targets):
        lengths.append([len(words) for words in batch.words])
        return real(classifier, batch, chunk_targets)

    monkeypatch.setattr(explainer, "explain_batch", recording)
    bucketed = explainer.explain(tiny_classifier, texts, targets)
    assert lengths == [[1, 2], [3, 7], [8, 9]]
    assert [e.words for e in bucketed] == texts and [e.target for e in bucketed] == targets
    in_order = get_explainer("saliency", batch_size=1).explain(tiny_classifier, texts, targets)
    for got, expected in zip(bucketed, in_order, strict=True):
        # other padding changes float rounding only (padded keys get exactly zero attention)
        np.testing.assert_allclose(got.scores, expected.scores, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(got.probabilities, expected.probabilities, rtol=1e-5, atol=1e-7)


def test_buckets_never_reach_past_their_window(monkeypatch, tiny_classifier):
    from expnet.explainers import base

    monkeypatch.setattr(base, "BUCKET_BATCHES", 1)
    texts = [["good"] * n for n in (5, 1, 4, 2)]
    assert list(base.length_buckets(tiny_classifier, texts, 2)) == [[1, 0], [3, 2]]


# --- 7. words the tokenizer drops are unscored for what they are -----------------------------------
def test_words_of_only_zero_width_or_nul_characters_are_not_called_truncated(capsys, tiny_classifier_dir):
    text = "good \u200b\u200d movie \x00 !"
    code, out, err = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "random", "--format", "json", text)
    assert code == 0, err
    assert "longer than" not in err
    assert "2 word(s) made only of characters the tokenizer drops" in err and len(err.strip().splitlines()) == 1
    [result] = json.loads(out)["explanations"]
    assert result["scored"] == [True, False, True, False, True] and result["truncated"] is False
    assert result["unscored_reason"] == [None, "no subword tokens", None, "no subword tokens", None]
    code, out, _ = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "random", text)
    assert "\u200b\u200d(no tokens)" in out


def test_a_truncated_text_tells_dropped_words_from_cut_ones():
    from transformers import BertTokenizerFast

    from conftest import VOCAB
    from expnet.words import encode_words

    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(VOCAB)}, do_lower_case=True)
    words = ["good", "\u200b", "movie", "\x00", *["fun"] * 6]
    batch = encode_words(tokenizer, [words, ["good", "\u200b"]], max_length=6)  # [CLS] + 4 pieces + [SEP]
    assert batch.word_scored[0].tolist() == [True, False, True, False, True, True, False, False, False, False]
    assert batch.word_cut[0].tolist() == [False] * 6 + [True] * 4
    assert batch.word_cut[1].tolist() == [False, False]  # not truncated: its dropped word is no cut


# --- 8. a progress bar for long runs ------------------------------------------------------------------
def test_explain_shows_a_progress_bar_with_progress(capsys, tiny_classifier_dir):
    explain = ["explain", "--classifier", tiny_classifier_dir, "--explainer", "random", "--batch-size", "1", "good", "bad movie"]
    code, _, err = run_cli(capsys, *explain, "--progress")
    assert code == 0, err
    assert "random:" in err and "/2" in err
    code, _, err = run_cli(capsys, *explain)  # stderr is no terminal here
    assert code == 0 and err == ""
    code, _, err = run_cli(capsys, *explain[:-1], "--progress")  # one batch: nothing to follow
    assert code == 0 and err == ""


# --- 9. a symbolic link as --out is written through, never replaced ---------------------------------
def explain_args(classifier, out):
    return ["explain", "--classifier", classifier, "--explainer", "random", "--out", out, "good"]


# What an earlier 'expnet explain --out' wrote: a later run may replace it without --overwrite.
EARLIER_EXPLANATION = "[random] predicted class1 (p=0.500), explaining class1\n  old(0.100)\n"


def test_a_symlinked_out_file_is_written_through_and_the_link_kept(capsys, tiny_classifier_dir, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "out.txt").write_text(EARLIER_EXPLANATION)
    link = tmp_path / "link.txt"
    link.symlink_to(real / "out.txt")
    code, _, err = run_cli(capsys, *explain_args(tiny_classifier_dir, link))
    assert code == 0, err
    assert link.is_symlink() and (real / "out.txt").read_text().startswith("[random]")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["link.txt", "real"]
    assert sorted(path.name for path in real.iterdir()) == ["out.txt"]


def test_a_symlinked_folder_is_replaced_through_the_link(tmp_path):
    from expnet.io import atomic_directory

    real = make_folder(tmp_path / "real")
    link = tmp_path / "out"
    link.symlink_to(real)
    with atomic_directory(link) as staging:
        (staging / "a.txt").write_text("new")
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert folder_contents(real) == {"a.txt": "new"}
    assert hidden_leftovers(tmp_path) == []


def test_a_link_to_nothing_is_refused(tmp_path):
    from expnet.io import atomic_directory, atomic_write_text

    link = tmp_path / "out"
    link.symlink_to(tmp_path / "missing")
    with pytest.raises(ExpnetError, match="is a symbolic link to .*, which does not exist"):
        atomic_write_text(link, "x")
    with pytest.raises(ExpnetError, match="is a symbolic link to .*, which does not exist"), atomic_directory(link):
        pass
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]


# --- 10. a full disk is one line, and the old output stays ------------------------------------------
def test_a_full_disk_gets_one_line_and_keeps_the_old_output(capsys, monkeypatch, tiny_classifier_dir, tmp_path):
    import errno
    import os

    out = tmp_path / "out.txt"
    out.write_text(EARLIER_EXPLANATION)
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("expnet.io.os.fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    code, _, err = run_cli(capsys, *explain_args(tiny_classifier_dir, out))
    assert_one_line_error(code, err, f"no space left on device writing {out}; free space or choose another --out")
    assert out.read_text() == EARLIER_EXPLANATION
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.txt"]


def test_a_full_disk_while_saving_a_folder_keeps_the_old_folder(tmp_path):
    import errno

    from expnet.io import atomic_directory

    target = make_folder(tmp_path / "out")
    with pytest.raises(ExpnetError, match="no space left on device writing"), atomic_directory(target) as staging:
        (staging / "a.txt").write_text("new")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert folder_contents(target) == {"a.txt": "old"}
    assert hidden_leftovers(tmp_path) == []


# --- 11. Ctrl-C while the command starts up -----------------------------------------------------------
def test_ctrl_c_while_torch_is_imported_is_one_line_and_exit_130():
    import signal
    import subprocess
    import sys

    # The child stops at the moment torch is being imported (by the parser's subcommand imports)
    # and says so; SIGINT is sent then, as a Ctrl-C would be.
    script = """
import importlib.abc, sys, time
class Pause(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            print("importing torch", flush=True)
            time.sleep(60)
        return None
sys.meta_path.insert(0, Pause())
from expnet.cli.main import main
sys.exit(main(["explainers"]))
"""
    # Ctrl-C as a terminal delivers it: a test run started in the background (`make test &`)
    # inherits SIGINT ignored, and Python then never raises KeyboardInterrupt.
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert child.stdout.readline() == "importing torch\n"
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert err.strip() == "expnet: interrupted; nothing half-written was kept"


def test_an_interrupted_command_says_whether_a_rerun_goes_on_from_its_finished_steps(capsys, tmp_path):
    from argparse import Namespace

    from expnet.cli.main import exit_status, resumes
    from expnet.models.checkpoint import checkpoint_folder

    checkpoint_folder(tmp_path / "resumable").mkdir()

    for args, resumable in (
        (Namespace(command="benchmark"), True),
        (Namespace(command="explain", input="texts.txt"), True),
        (Namespace(command="explain", input=None), False),
        (Namespace(command="finetune", out=str(tmp_path / "clf")), False),  # no checkpoint yet
        (Namespace(command="finetune", out=str(tmp_path / "resumable")), True),
        (Namespace(command="train"), False),
    ):
        assert resumes(args) == resumable
        assert exit_status(f"expnet {args.command}", KeyboardInterrupt(), resumes(args)) == 130
        err = capsys.readouterr().err.strip()
        assert err.endswith("rerun the same command to go on from them" if resumable else "nothing half-written was kept"), err


# --- 12. file outputs are checked before any work ------------------------------------------------------
@pytest.mark.parametrize("command", ["explain", "evaluate"])
@pytest.mark.parametrize("problem", ["under a file", "read-only folder", "link to nothing"])
def test_a_file_output_that_cannot_be_written_is_refused_before_any_work(capsys, monkeypatch, tiny_classifier_dir, toy_data, tmp_path, command, problem):
    import os

    from expnet.explainers.base import Explainer

    if problem == "under a file":
        (tmp_path / "afile").write_text("x")
        out, fragment = tmp_path / "afile" / "missing" / "r.json", "is a file, not a folder"
    elif problem == "read-only folder":
        read_only = tmp_path / "ro"
        read_only.mkdir()
        real_access = os.access  # chmod does not stop root: the check's view of the folder is changed
        monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(read_only) else real_access(path, mode))
        out, fragment = read_only / "new" / "r.json", "no permission to write in"
    else:
        out, fragment = tmp_path / "r.json", "is a symbolic link to"
        out.symlink_to(tmp_path / "nowhere" / "r.json")
    monkeypatch.setattr(Explainer, "explain", lambda *a, **k: pytest.fail("explained before checking --out"))
    monkeypatch.setattr(Classifier, "load", lambda *a, **k: pytest.fail("loaded the classifier before checking --out"))
    argv = explain_args(tiny_classifier_dir, out) if command == "explain" else evaluate_args(tiny_classifier_dir, toy_data, out)
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "nowhere").exists()


def test_a_folder_output_that_is_a_link_to_nothing_is_refused_before_training(capsys, tiny_classifier_dir, toy_data, tmp_path):
    out = tmp_path / "e"
    out.symlink_to(tmp_path / "nowhere")
    code, _, err = run_cli(capsys, *train_args(toy_data, tiny_classifier_dir, out))
    assert_one_line_error(code, err, "is a symbolic link to")
    assert not (tmp_path / "nowhere").exists()


def test_no_room_for_even_the_temporary_file_is_one_line(monkeypatch, tmp_path):
    import errno

    from expnet.io import atomic_directory, atomic_write_text

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("expnet.io.tempfile.mkstemp", full)
    monkeypatch.setattr("expnet.io.tempfile.mkdtemp", full)
    with pytest.raises(ExpnetError, match="no space left on device writing"):
        atomic_write_text(tmp_path / "r.json", "{}")
    with pytest.raises(ExpnetError, match="no space left on device writing"), atomic_directory(tmp_path / "out"):
        pass


# --- evaluation without any human rationale --------------------------------------------------
def test_evaluating_examples_without_rationales_is_an_error(tiny_classifier):
    from expnet.data.records import RationaleExample
    from expnet.evaluation import evaluate
    from expnet.explainers import get_explainer

    examples = [RationaleExample(str(i), "toy", ["good", "movie"], 0, ("a", "b")) for i in range(3)]
    with pytest.raises(ExpnetError, match="none of the 3 examples has a human rationale"):
        evaluate(tiny_classifier, examples, {"random": get_explainer("random")}, rationale_rate=0.3)


@pytest.mark.parametrize(
    "settings, values, fragment",
    [
        ("expnet", {"dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
        ("expnet", {"hidden_size": 0}, "hidden_size must be a whole number >= 1"),
        ("expnet", {"learning_rate": float("nan")}, "learning_rate"),
        ("expnet", {"validation_fraction": 1}, "validation_fraction"),
        ("expnet", {"max_epochs": True}, "max_epochs"),
        ("expnet", {"layers": []}, "layers must be"),
        ("finetune", {"warmup_ratio": 1.5}, "warmup_ratio"),
        ("finetune", {"max_examples": 0}, "max_examples"),
        ("diagnostics", {"permutations": 0}, "permutations"),
    ],
)
def test_settings_refuse_numbers_out_of_range(settings, values, fragment):
    # Library users reach these constructors without the CLI's argument checks.
    from expnet.diagnostics.suite import DiagnosticsSettings
    from expnet.models.finetune import FinetuneSettings
    from expnet.network.training import ExpNetSettings

    cls = {"expnet": ExpNetSettings, "finetune": FinetuneSettings, "diagnostics": DiagnosticsSettings}[settings]
    cls()  # the defaults pass
    with pytest.raises(ExpnetError, match=fragment):
        cls(**values)


def test_an_output_whose_temporary_cannot_be_made_is_named_not_its_temporary(monkeypatch, tmp_path):
    # A virtual or read-only folder (root passes os.access, then mkdtemp fails): the line names
    # the path the user chose, never the hidden staging sibling.
    from expnet.io import atomic_directory, atomic_write_text

    def refuse(prefix, dir):
        raise PermissionError(1, "Operation not permitted", str(Path(dir) / f"{prefix}abc"))

    monkeypatch.setattr("expnet.io.tempfile.mkdtemp", refuse)
    monkeypatch.setattr("expnet.io.tempfile.mkstemp", refuse)
    with pytest.raises(ExpnetError, match=r"^cannot write .*/out: Operation not permitted; choose a folder") as refused:
        with atomic_directory(tmp_path / "out"):
            pytest.fail("no staging folder was made")
    assert "staging" not in str(refused.value)
    with pytest.raises(ExpnetError, match=r"^cannot write .*/r.json: Operation not permitted") as refused:
        atomic_write_text(tmp_path / "r.json", "{}")
    assert ".tmp-" not in str(refused.value)


@pytest.mark.parametrize("fmt", ["text", "json", "html"])
def test_an_output_file_replaces_an_earlier_output_but_not_someone_elses_file(capsys, tiny_classifier_dir, toy_data, tmp_path, fmt):
    out = tmp_path / f"out.{'txt' if fmt == 'text' else fmt}"
    out.write_text("my notes\n")
    argv = [*explain_args(tiny_classifier_dir, out), "--format", fmt]
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, "is a file expnet did not write; give a new path, or pass --overwrite")
    assert out.read_text() == "my notes\n"
    for extra in (["--overwrite"], []):  # then its own output is replaced without asking
        code, _, err = run_cli(capsys, *argv, *extra)
        assert code == 0 and out.read_text() != "my notes\n", err
    results = tmp_path / "r.json"
    results.write_text('{"mine": 1}')
    code, _, err = run_cli(capsys, *evaluate_args(tiny_classifier_dir, toy_data, results))
    assert_one_line_error(code, err, "is a file expnet did not write")
    assert run_cli(capsys, *evaluate_args(tiny_classifier_dir, toy_data, results), "--overwrite")[0] == 0
    assert run_cli(capsys, *evaluate_args(tiny_classifier_dir, toy_data, results))[0] == 0


def test_corpus_mode_never_replaces_a_file_beside_its_output(capsys, tiny_classifier_dir, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("good movie\nbad film\n")
    output = tmp_path / "out.jsonl"
    (tmp_path / "out.jsonl.meta.json").write_text('{"mine": 1}')
    argv = ["explain", "--classifier", tiny_classifier_dir, "--explainer", "random", "--input", source, "--output", output]
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, "out.jsonl.meta.json is a file expnet did not write")
    assert not output.exists()
    assert run_cli(capsys, *argv, "--overwrite")[0] == 0
    assert run_cli(capsys, *argv)[0] == 0  # its own output and sidecars: replaced


def test_max_examples_is_a_seeded_draw_in_file_order_not_the_first_rows():
    from expnet.cli.common import load_limited
    from expnet.data import load_examples

    everything = load_examples("movies", None, None, purpose="classifier_train")
    assert {e.label for e in everything[:60]} == {0}  # why the first 60 would not do
    drawn = load_limited("movies", None, None, "classifier_train", 60, seed=0)
    assert len(drawn) == 60 and {e.label for e in drawn} == {0, 1}
    position = {e.id: i for i, e in enumerate(everything)}
    assert [position[e.id] for e in drawn] == sorted(position[e.id] for e in drawn)
    assert [e.id for e in load_limited("movies", None, None, "classifier_train", 60, seed=0)] == [e.id for e in drawn]
    assert [e.id for e in load_limited("movies", None, None, "classifier_train", 60, seed=1)] != [e.id for e in drawn]
