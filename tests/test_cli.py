"""The command line: happy paths on tiny models, and one clear line for every kind of bad input."""

import json

import numpy as np
import pytest
from transformers import BertConfig, BertModel

import expnet
from cli_helpers import assert_one_line_error, run_cli
from expnet.cli.main import main
from expnet.data import load_examples
from expnet.explainers import get_explainer, list_explainers
from expnet.metrics.plausibility import plausibility, top_k_mask
from expnet.models.classifier import Classifier


def test_a_usage_mistake_is_one_line_pointing_at_help(capsys):
    code, _, err = run_cli(capsys, "explain", "good")
    assert_one_line_error(code, err, "expnet explain: error: the following arguments are required: --classifier")
    code, _, err = run_cli(capsys, "explainers", "--bogus")
    assert_one_line_error(code, err, "expnet explainers: error: unrecognized arguments: --bogus (see 'expnet explainers --help')")
    code, _, err = run_cli(capsys, "nonsense")
    assert_one_line_error(code, err, "invalid choice: 'nonsense'")
    # A single-value option given twice once kept the last one silently.
    code, _, err = run_cli(capsys, "explain", "--classifier", "a", "--explainer", "random", "--explainer", "saliency", "good")
    assert_one_line_error(code, err, "--explainer was given twice; give it once")


def test_explainers_json_lists_each_explainers_settings_and_their_defaults(capsys):
    code, out, _ = run_cli(capsys, "explainers", "--json")
    listed = {item["name"]: item["settings"] for item in json.loads(out)}
    assert code == 0 and listed["lime"]["n_samples"] == 300 and listed["smoothgrad"]["n_samples"] == 20  # once {} for all
    assert all(settings["batch_size"] == 16 for settings in listed.values())


def test_training_or_scoring_on_data_without_rationales_names_where_they_are(capsys, tiny_classifier_dir, tmp_path):
    # Once this trained on nothing ("no examples") or scored an empty table.
    bare = write_jsonl(tmp_path / "bare.jsonl", [{k: v for k, v in row.items() if k not in ("rationale", "rationales")} for row in TWELVE_ROWS])
    code, _, err = run_cli(capsys, "train", "--task", f"{bare}={tiny_classifier_dir}", "--out", tmp_path / "e", "--include-wrong")
    assert_one_line_error(code, err, "has no word rationales; give a file whose lines carry 'rationale'")
    code, _, err = run_cli(capsys, "evaluate", "--classifier", tiny_classifier_dir, "--data", bare, "--explainers", "random", "--out", tmp_path / "r.json")
    assert_one_line_error(code, err, "has no word rationales")
    code, _, err = run_cli(capsys, "train", "--task", f"hatexplain={tiny_classifier_dir}", "--split", "train", "--out", tmp_path / "e")
    assert_one_line_error(code, err, "hatexplain split 'train' carries no word rationales; use --split validation or test")
    assert not (tmp_path / "e").exists() and not (tmp_path / "r.json").exists()


def test_options_that_would_be_recorded_but_unused_are_refused(capsys, tiny_classifier_dir, tmp_path):
    data = write_jsonl(tmp_path / "toy.jsonl", TWELVE_ROWS)
    evaluate = ["evaluate", "--classifier", tiny_classifier_dir, "--data", data, "--explainers", "random", "--out", tmp_path / "r.json"]
    code, _, err = run_cli(capsys, *evaluate, "--top-k", "2", "--rationale-rate", "0.3")
    assert_one_line_error(code, err, "not allowed with argument")
    longest = max(len(row["tokens"]) for row in TWELVE_ROWS)
    code, _, err = run_cli(capsys, *evaluate, "--top-k", str(longest))
    assert code == 0 and f"warning: --top-k {longest} is at least every text's length" in err, err
    code, _, err = run_cli(capsys, *evaluate, "--overwrite", "--top-k", str(longest - 1))
    assert code == 0 and "--top-k" not in err, err
    settings = json.loads((tmp_path / "r.json").read_text())["settings"]
    # A JSONL file has no explainer-training split: its rate is the evaluated data's own; where it came from is recorded.
    assert settings["data_source"] == str(data.resolve()) and settings["expnet_version"] == expnet.__version__
    code, _, err = run_cli(capsys, *evaluate, "--overwrite")
    assert json.loads((tmp_path / "r.json").read_text())["settings"]["rationale_rate_source"] == "evaluated data"
    code, _, err = run_cli(capsys, *evaluate, "--overwrite", "--html-examples", "3")
    assert_one_line_error(code, err, "--html-examples sets the examples of the --html page; give --html FILE too")
    # Attention does not change with the class asked for: the scores would be labelled "explaining class0", falsely.
    explain = ["explain", "--classifier", tiny_classifier_dir, "good movie", "--explainer"]
    code, out, err = run_cli(capsys, *explain, "raw_attention")
    predicted = out.split("predicted ")[1].split(" ")[0]
    other = next(name for name in ("class0", "class1") if name != predicted)
    code, _, err = run_cli(capsys, *explain, "raw_attention", "--target", other)
    assert_one_line_error(code, err, f"raw_attention's scores are the same for every class (it explains the attention), so they cannot explain {other}")
    code, out, err = run_cli(capsys, *explain, "raw_attention", "--target", predicted)  # the prediction: honest
    assert code == 0 and f"explaining {predicted}" in out, err
    code, out, err = run_cli(capsys, *explain, "saliency", "--target", other)
    assert code == 0 and f"explaining {other}" in out, err


def write_jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


GOOD_ROWS = [
    {"id": "a", "tokens": ["a", "very", "good", "movie."], "label": 1, "rationale": [0, 1, 1, 0]},
    {"id": "b", "tokens": ["Boring", "film", "!"], "label": 0, "rationales": [[1, 0, 0], [1, 1, 0]]},
    {"id": "c", "tokens": ["i", "love", "this"], "label": 1, "rationale": [0, 1, 0]},
]
# Twelve examples with distinct ids (the JSONL loader refuses a repeated id).
TWELVE_ROWS = [{**row, "id": f"{row['id']}{copy}"} for copy in range(4) for row in GOOD_ROWS]


def test_help_on_every_subcommand_fits_80_columns(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    commands = ("finetune", "train", "explain", "evaluate", "explainers", "benchmark", "diagnose", "concepts", "demo")
    for command in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert "--" in out
        # argparse wraps help text but not group titles: a long title would overflow.
        assert max(map(len, out.splitlines())) <= 80, command


def test_explainers_table_fits_80_columns_and_names_every_explainer_whole(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # a pipe or an 80-column terminal
    code, out, _ = run_cli(capsys, "explainers")
    assert code == 0
    lines = out.splitlines()
    assert max(map(len, lines)) <= 80
    assert "…" not in out  # nothing cut with an ellipsis
    first_cells = {line.split()[0] for line in lines if line.strip()}
    infos = list_explainers()
    assert {info.name for info in infos} <= first_cells
    assert {info.family for info in infos} <= first_cells  # each family heads its section


def test_explain_formats(capsys, tiny_classifier_dir, tmp_path):
    code, out, _ = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "raw_attention", "a good movie", "bad")
    assert code == 0 and out.count("[raw_attention]") == 2
    code, out, _ = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "random", "--format", "json", "good fun")
    data = json.loads(out)
    assert (data["explainer"], data["classifier"], data["seed"]) == ("random", str(tiny_classifier_dir), 0)
    assert data["explanations"][0]["words"] == ["good", "fun"] and len(data["explanations"][0]["scores"]) == 2
    page = tmp_path / "x.html"
    code, _, _ = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "random", "--format", "html", "--out", page, "<script>alert(1)</script> good")
    text = page.read_text()
    assert code == 0 and "<script>alert" not in text and "&lt;script&gt;" in text
    # Without --format, the --out file's suffix picks it (o.html once held plain text).
    for name, starts in (("o.html", "<!doctype html>"), ("o.json", "{"), ("o.txt", "[random]")):
        code, _, err = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "random", "--out", tmp_path / name, "good")
        assert code == 0 and (tmp_path / name).read_text().lower().startswith(starts), (name, err)


def test_explain_reads_stdin(capsys, monkeypatch, tiny_classifier_dir):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("a good movie\nboring film\n"))
    code, out, _ = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "raw_attention")
    assert code == 0 and out.count("[raw_attention]") == 2


def test_long_text_is_truncated_with_warning(capsys, tiny_classifier_dir):
    text = " ".join(["good"] * 100)  # the tiny model allows 64 positions
    code, out, err = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "raw_attention", "--format", "json", text)
    assert code == 0 and "truncation" in err
    data = json.loads(out)["explanations"][0]
    assert data["truncated"] and data["scores"][-1] is None and data["scored"][0]


def test_train_and_evaluate_on_jsonl(capsys, tiny_classifier_dir, tmp_path):
    data = write_jsonl(tmp_path / "toy.jsonl", TWELVE_ROWS)
    code, _out, err = run_cli(
        capsys, "train", "--task", f"{data}={tiny_classifier_dir}", "--out", tmp_path / "e", "--include-wrong", "--seed", "1", "--word-properties", "all"
    )
    assert code == 0, err
    assert json.loads((tmp_path / "e" / "config.json").read_text())["features"]["word_properties"] == ["stopword", "punctuation", "word_length", "position"]
    results = tmp_path / "r.json"
    code, _, err = run_cli(
        capsys, "evaluate", "--classifier", tiny_classifier_dir, "--data", data,
        "--explainers", f"{tmp_path / 'e'},raw_attention,random", "--out", results, "--html", tmp_path / "r.html",
    )
    assert code == 0, err
    scores = json.loads(results.read_text())
    assert set(scores) >= {"explainers", "forward_examples_per_second", "n_examples", "accuracy", "settings"}
    # The folder is labelled by its name (a full path would wrap the table) and its path recorded.
    assert scores["settings"]["explainer_sources"]["e"] == str(tmp_path / "e")
    for name in ("e", "raw_attention", "random"):
        assert set(scores["explainers"][name]) >= {"f1", "precision", "recall", "auroc", "auprc", "examples_per_second"}
    assert scores["n_examples"] == 12
    # The figures are the library's: raw attention's AUROC recomputed from its own explanations.
    examples = load_examples(data)
    explanations = get_explainer("raw_attention").explain(Classifier.load(tiny_classifier_dir), [e.words for e in examples])
    direct = plausibility([e.gold_mask() for e in examples], [x.scores for x in explanations], [top_k_mask(x.scores, 0.4) for x in explanations])
    assert scores["explainers"]["raw_attention"]["auroc"] == pytest.approx(direct.auroc, abs=1e-9)
    assert scores["explainers"]["raw_attention"]["auroc"] != pytest.approx(scores["explainers"]["random"]["auroc"], abs=1e-3)


def test_display_names_are_the_shortest_unique_path_tails():
    from expnet.cli.evaluate import display_names

    names = ["runs/a/expnet", "runs/b/expnet", "runs/b/other", "raw_attention"]
    assert display_names(names) == {"runs/a/expnet": "a/expnet", "runs/b/expnet": "b/expnet", "runs/b/other": "other", "raw_attention": "raw_attention"}
    assert display_names(["a/b", "./a/b"]) == {"a/b": "a/b", "./a/b": "./a/b"}
    # A folder never takes a registered explainer's name: that label would claim the shipped one.
    assert display_names(["runs/x/expnet", "runs/y/saliency", "expnet"]) == {"runs/x/expnet": "x/expnet", "runs/y/saliency": "y/saliency", "expnet": "expnet"}


def test_an_explainer_named_twice_is_refused(capsys, tiny_classifier_dir, tmp_path):
    data = write_jsonl(tmp_path / "toy.jsonl", TWELVE_ROWS)
    code, _, err = run_cli(capsys, "evaluate", "--classifier", tiny_classifier_dir, "--data", data, "--explainers", "random,random", "--out", tmp_path / "r.json")
    assert_one_line_error(code, err, "twice")


def test_same_seed_same_numbers(capsys, tiny_classifier_dir, tmp_path):
    outputs = []
    for name in ("a", "b"):
        run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "random", "--format", "json", "--seed", "3", "--out", tmp_path / name, "good fun movie")
        outputs.append(json.loads((tmp_path / name).read_text())["explanations"][0]["scores"])
    assert outputs[0] == outputs[1]
    run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "random", "--format", "json", "--seed", "4", "--out", tmp_path / "c", "good fun movie")
    assert json.loads((tmp_path / "c").read_text())["explanations"][0]["scores"] != outputs[0]  # the seed is used


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ("{not json", "toy.jsonl:2"),
        ({"id": "x", "tokens": ["a"], "rationale": [1]}, "toy.jsonl:2"),
        ({"id": "x", "tokens": ["a", "b"], "label": 0, "rationale": [1]}, "toy.jsonl:2"),
    ],
)
def test_bad_jsonl_lines(capsys, tiny_classifier_dir, tmp_path, row, fragment):
    data = write_jsonl(tmp_path / "toy.jsonl", [GOOD_ROWS[0], row])
    code, _, err = run_cli(capsys, "evaluate", "--classifier", tiny_classifier_dir, "--data", data, "--explainers", "random", "--out", tmp_path / "r.json")
    assert_one_line_error(code, err, fragment)


def test_label_outside_classes(capsys, tiny_classifier_dir, tmp_path):
    data = write_jsonl(tmp_path / "toy.jsonl", [{**GOOD_ROWS[0], "label": 5}])
    code, _, err = run_cli(capsys, "evaluate", "--classifier", tiny_classifier_dir, "--data", data, "--explainers", "random", "--out", tmp_path / "r.json")
    assert_one_line_error(code, err, "label 5")
    code, _, err = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "random", "--target", "7", "good")
    assert_one_line_error(code, err, "outside")


def test_bad_inputs_get_one_line(capsys, tiny_classifier_dir, tiny_classifier_3heads_dir, tmp_path):
    explain = ["explain", "--explainer", "raw_attention"]
    code, _, err = run_cli(capsys, *explain, "--classifier", tiny_classifier_dir, "   ")
    assert_one_line_error(code, err, "empty")
    code, _, err = run_cli(capsys, *explain, "--classifier", tmp_path / "missing", "good")
    assert_one_line_error(code, err, f"no folder '{tmp_path / 'missing'}'")
    # Not a path and not a valid hub id: transformers' reason is kept, cut at a word.
    code, _, err = run_cli(capsys, *explain, "--classifier", "no such//model", "good")
    assert_one_line_error(code, err, "no model at 'no such//model'")
    backbone = tmp_path / "backbone"
    BertModel(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)).save_pretrained(backbone)
    capsys.readouterr()  # transformers' own save progress is not the CLI's output
    code, _, err = run_cli(capsys, *explain, "--classifier", backbone, "good")
    assert_one_line_error(code, err, "not a sequence classifier")
    code, _, err = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "no_such_method", "good")
    assert_one_line_error(code, err, "unknown explainer")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text("{")
    (corrupt / "model.safetensors").write_text("x")
    code, _, err = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", corrupt, "good")
    assert_one_line_error(code, err, "config.json is not valid JSON")
    # A classifier folder given as the explainer is named for what it is.
    code, _, err = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", tiny_classifier_dir, "good")
    assert_one_line_error(code, err, "is not an ExpNet folder (its config.json is a bert model's)")
    # An ExpNet trained for a 2x2 classifier refuses a 3-layer x 4-head one.
    data = write_jsonl(tmp_path / "toy.jsonl", TWELVE_ROWS)
    run_cli(capsys, "train", "--task", f"{data}={tiny_classifier_dir}", "--out", tmp_path / "e", "--include-wrong", "--recipe", "paper")  # per-head features: tied to 2 x 2
    code, _, err = run_cli(capsys, "explain", "--classifier", tiny_classifier_3heads_dir, "--explainer", tmp_path / "e", "good")
    assert_one_line_error(code, err, "heads")
    code, _, err = run_cli(capsys, "train", "--task", "cola=" + tiny_classifier_dir, "--out", tmp_path / "c")
    assert_one_line_error(code, err, "CoLA has no public word rationales")
    code, _, err = run_cli(capsys, "train", "--task", "nonsense", "--out", tmp_path / "c")
    assert_one_line_error(code, err, "TASK=CLASSIFIER_DIR")
    code, _, err = run_cli(capsys, "train", "--task", f"{data}={tiny_classifier_dir}", "--out", tmp_path / "w", "--word-properties", "stopword,capitals")
    assert_one_line_error(code, err, "unknown property 'capitals'")
    for layers in ("", " , ", "4,x"):  # an empty list once meant "last", silently
        code, _, err = run_cli(
            capsys, "train", "--task", f"{data}={tiny_classifier_dir}", "--out", tmp_path / "w", "--layers", layers
        )
        assert_one_line_error(code, err, "comma-separated 0-based layer indices")
    assert not (tmp_path / "w").exists()


def test_the_shipped_expnet_on_another_layout_says_its_scores_are_unmeasured(capsys, tiny_classifier_dir, tmp_path):
    code, out, err = run_cli(capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "expnet", "good fun movie")
    assert code == 0 and "good" in out
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [
        "expnet explain: warning: this ExpNet was trained and measured on bert 6-layer x 12-head classifiers only; its "
        "scores on this bert 2-layer x 2-head classifier are unmeasured: check them with 'expnet evaluate' on annotated "
        "texts of your task, or train one for it with 'expnet train'"
    ]
    # evaluate explains each text twice (an untimed warm-up first), from two lines of code: one line still.
    code, _, err = run_cli(capsys, "evaluate", "--classifier", tiny_classifier_dir, "--data", "sst2", "--split", "dev", "--max-examples", "4",
                           "--explainers", "expnet", "--out", tmp_path / "e.json")  # fmt: skip
    assert code == 0 and err.count("are unmeasured") == 1, err


def test_a_jsonl_file_the_classifier_was_fine_tuned_on_is_scored_on_its_held_out_part(capsys, tiny_classifier_dir, tmp_path):
    # evaluate once scored all of the file, 70% of it the classifier's training texts, and train
    # fitted ExpNet on all of it, the held-out 30% included.
    from expnet.data import JSONL_EVAL_FRACTION, jsonl_split

    data = write_jsonl(tmp_path / "toy.jsonl", [{**row, "id": f"{row['id']}-{i}"} for i in range(3) for row in TWELVE_ROWS])
    examples = load_examples(str(data))
    held_out, training = jsonl_split(examples, "toy", JSONL_EVAL_FRACTION, 0)
    clf = tmp_path / "clf"
    code, _, err = run_cli(capsys, "finetune", "--task", data, "--backbone", tiny_classifier_dir, "--out", clf, "--epochs", "1", "--max-length", "16")
    assert code == 0, err
    code, _, err = run_cli(capsys, "evaluate", "--classifier", clf, "--data", data, "--explainers", "random", "--out", tmp_path / "r.json")
    assert code == 0 and f"using its held-out part ({len(held_out)} examples)" in err, err
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["n_examples"] == len(held_out)
    code, _, err = run_cli(capsys, "train", "--task", f"{data}={clf}", "--out", tmp_path / "e", "--include-wrong")
    assert code == 0 and f"using its training part ({len(training)} examples)" in err, err
    # Another classifier (not fine-tuned on this file): the whole file, as given.
    code, _, err = run_cli(capsys, "evaluate", "--classifier", tiny_classifier_dir, "--data", data, "--explainers", "random", "--out", tmp_path / "r2.json")
    assert code == 0 and "note:" not in err and json.loads((tmp_path / "r2.json").read_text())["n_examples"] == len(examples)


def test_text_output_shows_small_scores_by_their_significant_digits():
    from expnet.cli.explain import render_text
    from expnet.explainers.base import Explanation

    explanation = Explanation(
        words=["a", "great", "film"], scores=np.array([1.28e-4, 1.96e-4, 0.5]), scored=np.ones(3, bool), target=1,
        prediction=1, probabilities=np.array([0.2, 0.8]), explainer="grad", label_names=("neg", "pos"),
    )
    assert render_text([explanation]).splitlines()[1] == "  a(0.000128) great(0.000196) film(0.5)"  # once all 0.000


def test_every_command_takes_a_seed():
    import argparse

    from expnet.cli.main import SUBCOMMANDS, build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) == set(SUBCOMMANDS)
    for name in SUBCOMMANDS:
        assert "--seed" in commands[name]._option_string_actions, f"expnet {name} has no --seed"


def test_evaluate_on_a_task_without_rationales_says_so_in_one_line(capsys, tiny_classifier_dir, tmp_path):
    code, _, err = run_cli(capsys, "evaluate", "--classifier", tiny_classifier_dir, "--data", "cola", "--explainers", "raw_attention",
                           "--max-examples", "3", "--out", tmp_path / "e.json")
    assert_one_line_error(code, err, "cola has no word rationales")


def test_a_benchmark_that_stops_early_leaves_a_folder_its_rerun_accepts(capsys, tmp_path):
    from expnet.benchmark.config import load_config
    from expnet.cli.common import PREVIOUS_OUTPUT

    out = tmp_path / "bench"
    code, _, err = run_cli(capsys, "benchmark", "--quick", "--out", out, "--data-dir", tmp_path / "no-data", "--quiet")
    assert_one_line_error(code, err, "data directory not found")
    assert not (out / "config.json").exists()
    out.mkdir(exist_ok=True)
    (out / "config.json").write_text(json.dumps(load_config(None, quick=True).to_dict()))
    assert PREVIOUS_OUTPUT["benchmark"](out)  # stopped after its first write: a rerun may go on
    (out / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert not PREVIOUS_OUTPUT["benchmark"](out)  # someone else's config.json


def test_evaluate_records_the_split_it_scored_by_name(capsys, tiny_classifier_dir, tmp_path):
    out = tmp_path / "e.json"
    code, _, err = run_cli(capsys, "evaluate", "--classifier", tiny_classifier_dir, "--data", "sst2", "--explainers", "raw_attention",
                           "--max-examples", "4", "--out", out)
    assert code == 0, err
    assert json.loads(out.read_text())["settings"]["split"] == "dev"  # SST-2's evaluation split


def test_explainer_settings_reach_the_explainer_and_the_record(capsys, tiny_classifier_dir, tmp_path):
    """--setting KEY=VALUE: the scores are those of the explainer built with it in Python, and
    evaluate records every explainer's settings."""
    texts = ["a good movie", "bad"]
    code, out, err = run_cli(
        capsys, "explain", "--classifier", tiny_classifier_dir, "--explainer", "lime", "--setting", "n_samples=12", "--format", "json", *texts
    )
    assert code == 0, err
    expected = get_explainer("lime", n_samples=12).explain(Classifier.load(tiny_classifier_dir, device="cpu"), [t.split() for t in texts])
    given = json.loads(out)
    assert given["settings"]["n_samples"] == 12
    for row, e in zip(given["explanations"], expected, strict=True):
        np.testing.assert_allclose(row["scores"], e.scores, rtol=1e-6)
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    command = ["--classifier", tiny_classifier_dir, "--explainer", "lime", "--setting", "n_samples=12"]
    code, _, err = run_cli(capsys, "explain", *command, "--input", tmp_path / "in.txt", "--output", tmp_path / "out.jsonl")
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    for row, e in zip(rows, expected, strict=True):  # corpus mode: the same explainer
        np.testing.assert_allclose(row["scores"], e.scores, rtol=1e-6)
    data = write_jsonl(tmp_path / "toy.jsonl", TWELVE_ROWS)
    out_file = tmp_path / "r.json"
    code, _, err = run_cli(
        capsys, "evaluate", "--classifier", tiny_classifier_dir, "--data", data, "--explainers", "integrated_gradients,lime,saliency",
        "--setting", "n_samples=12", "--setting", "integrated_gradients.n_steps=3", "--out", out_file,
    )  # fmt: skip
    assert code == 0, err
    recorded = json.loads(out_file.read_text())["settings"]["explainer_settings"]
    assert recorded["lime"]["n_samples"] == 12 and recorded["integrated_gradients"]["n_steps"] == 3
    assert recorded["integrated_gradients"]["baseline"] == "pad" and set(recorded["saliency"]) == {"batch_size", "seed"}


@pytest.mark.parametrize(
    ("explainers", "setting", "fragment"),
    [
        ("lime", "n_samples", "give KEY=VALUE"),
        ("lime", "n_samples=many", "n_samples is a whole number"),
        ("lime", "n_sample=5", "lime has no setting 'n_sample'; settings: n_samples, perturbations_per_eval"),
        ("saliency,random", "n_steps=5", "saliency and random have no setting 'n_steps'"),
        ("lime", "seed=3", "seed has its own option, --seed"),
        ("smoothgrad", "noise=inf", "noise must be a finite number"),
        ("globenc", "second_norm=maybe", "second_norm is true or false"),
        ("lime,kernel_shap", "lime.n_samples=5,kernel_shap.n_samples=6", "n_samples is a whole number"),
        ("no_such_method", "n_steps=5", "unknown explainer"),
        ("attention_shapley_max", "layers=--1", "layers must be a list of layer indices"),  # once int()'s traceback
    ],
)
def test_a_bad_explainer_setting_is_one_line(capsys, tiny_classifier_dir, tmp_path, explainers, setting, fragment):
    data = write_jsonl(tmp_path / "toy.jsonl", TWELVE_ROWS)
    command = ["--classifier", tiny_classifier_dir, "--setting", setting]
    code, _, err = run_cli(capsys, "evaluate", *command, "--data", data, "--explainers", explainers, "--out", tmp_path / "r.json")
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "r.json").exists()
    if "," not in explainers:
        code, _, err = run_cli(capsys, "explain", *command, "--explainer", explainers, "good")
        assert_one_line_error(code, err, fragment)


def test_benchmark_and_demo_recognise_their_output_only_when_it_holds_nothing_else(tiny_classifier_dir, tmp_path):
    """A folder they wrote (stopped at any point) is theirs to resume; a user's file anywhere in it,
    beside the results or inside a cached classifier, makes it someone else's."""
    import shutil

    from expnet.benchmark.config import load_config
    from expnet.cli.common import PREVIOUS_OUTPUT

    def folder(name, *entries):
        root = tmp_path / name
        for entry in entries:
            (root / entry).parent.mkdir(parents=True, exist_ok=True)
            (root / entry).write_text("{}")
        return root

    def with_classifier(root, task="sst2"):
        shutil.copytree(tiny_classifier_dir, root / "classifiers" / task)
        (root / "classifiers" / task / "metrics.json").write_text("{}")
        return root

    config = json.dumps(load_config(None, quick=True).to_dict())
    benchmark = PREVIOUS_OUTPUT["benchmark"]
    stopped = with_classifier(folder("b1"))  # killed after its first classifier, before the cache
    (stopped / "config.json").write_text(config)
    assert benchmark(stopped)
    (stopped / "classifiers" / ".hatexplain.staging-999999-x").mkdir()  # and while saving the next
    (stopped / "classifiers" / ".movies.finetune-checkpoint").mkdir()  # or while fine-tuning it
    (stopped / "classifiers" / ".movies.finetune-checkpoint" / "state.json").write_text("{}")
    assert benchmark(stopped)
    finished = with_classifier(folder("b2", "cache/explain/ab.json", "results.json", "results.csv", "plots/f1.png", "expnets/sst2/last/config.json"))
    (finished / "config.json").write_text(config)
    (finished / "expnets/sst2/last/config.json").write_text(json.dumps({"format": "expnet"}))
    assert benchmark(finished)
    for entry in ("notes.md", "classifiers/sst2/my_model.bin", "cache/mine.txt", "plots/mine.pdf", "results.csv/x"):
        root = tmp_path / f"copy-{entry.replace('/', '-')}"
        shutil.copytree(finished, root)
        if (root / entry).parent.is_file():
            (root / entry).parent.unlink()
        (root / entry).parent.mkdir(parents=True, exist_ok=True)
        (root / entry).write_text("mine")
        assert not benchmark(root), entry
    assert not benchmark(folder("b3", "cache/explain/ab.json"))  # a cache/ folder alone is no benchmark's
    demo = PREVIOUS_OUTPUT["demo"]
    assert demo(with_classifier(folder("d1", "results.json", "report.html")))
    assert not demo(with_classifier(folder("d2", "classifiers/movies/my_model.bin")))
    assert not demo(with_classifier(folder("d3", "results.csv")))
