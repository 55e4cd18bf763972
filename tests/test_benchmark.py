"""The benchmark end to end on tiny models: outputs, caching, resuming, config errors.

Two JSONL tasks (the generic task path) share a tiny random classifier given in the config, so
nothing is fine-tuned; the --quick preset itself (real backbone, shipped samples) is the
integration test at the end.
"""

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

import expnet
import expnet.cli.main
from expnet.benchmark.cache import ResultCache
from expnet.benchmark.config import load_config
from expnet.benchmark.presets import QUICK
from expnet.benchmark.tasks import prepare_task
from expnet.cli.main import main
from expnet.data import resolve_data_dir
from expnet.errors import ExpnetError
from expnet.explainers import get_explainer
from expnet.explainers.learned import ExpNetExplainer
from expnet.metrics.plausibility import plausibility, top_k_mask
from expnet.models.classifier import Classifier
from expnet.network.training import ExpNetSettings

POSITIVE, NEGATIVE = ["good", "great", "love", "fun"], ["bad", "awful", "hate", "boring"]
FILLER = ["the", "movie", "film", "was", "is", "this", "that", "and", "i", "very", "people", "a"]


def write_task(path, n: int, seed: int) -> str:
    rng = random.Random(seed)
    with open(path, "w") as handle:
        for i in range(n):
            label = i % 2
            cue = rng.choice(POSITIVE if label else NEGATIVE)
            words = [rng.choice(FILLER) for _ in range(rng.randint(3, 8))]
            position = rng.randrange(len(words) + 1)
            words.insert(position, cue)
            mask = [int(j == position) for j in range(len(words))]
            handle.write(json.dumps({"id": f"{path.stem}-{i}", "tokens": words, "label": label, "rationale": mask, "label_names": ["neg", "pos"]}) + "\n")
    return str(path)


def tiny_config(tmp_path, classifier: str, explainers=("random", "raw_attention", "occlusion"), third_task: bool = False) -> str:
    first = write_task(tmp_path / "alpha.jsonl", 40, 1)
    second = write_task(tmp_path / "beta.jsonl", 40, 2)
    third = f"""
[tasks."{write_task(tmp_path / "gamma.jsonl", 40, 3)}"]
classifier = "{classifier}"
max_examples = 8
""" if third_task else ""
    text = f"""
seed = 3
explainers = {json.dumps(list(explainers))}
batch_size = 4
candidates = ["last", "attn_x_grad"]
report_examples = 1

[tasks."{first}"]
classifier = "{classifier}"
max_examples = 8
slow_max_examples = 4
eval_fraction = 0.3

[tasks."{second}"]
classifier = "{classifier}"
max_examples = 8
{third}
[explainer_settings.occlusion]
perturbations_per_eval = 8

[expnet]
only_correct = false
max_epochs = 5
patience = 2
hidden_size = 8

[variants.last]
layers = "last"
[variants.last_cls_to_token]
directions = ["cls_to_token"]
[variants.attn_x_grad]
layers = "all"
values = ["attention", "attention_x_gradient"]

[faithfulness]
removals = ["mask", "delete"]
shown = "delete"
kendall_removals = ["mask"]
batch_size = 16
"""
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return str(path)


def run_benchmark(capsys, config, out, *extra):
    code = main(["benchmark", "--config", config, "--out", str(out), "--quiet", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads((out / "results.json").read_text())


def test_end_to_end_then_rerun_computes_nothing(capsys, tmp_path, tiny_classifier_dir):
    config = tiny_config(tmp_path, tiny_classifier_dir)
    out = tmp_path / "run"
    results = run_benchmark(capsys, config, out)
    for name in ("results.json", "results.csv", "leaderboard.md", "report.html", "plots/f1_per_task.png", "plots/f1_vs_speed.png", "plots/deletion_curves.png"):
        assert (out / name).is_file(), name
    assert set(results["tasks"]) == {"alpha", "beta"}
    # What made the numbers, beyond the config: once only the config, so a run on another
    # --data-dir could not be told from one on the samples.
    provenance = results["provenance"]
    assert provenance["expnet_version"] == expnet.__version__ and provenance["device"] == "cpu"
    assert provenance["data_dir"] == str(resolve_data_dir(None).resolve()) and provenance["threads"] >= 1
    alpha = results["tasks"]["alpha"]
    assert alpha["trained_on"] == ["beta"] and alpha["n_examples"] == 8 and alpha["n_slow_examples"] == 4
    # occlusion is slow (perturbation family): main table without it, common table with everyone.
    main_rows = {r["explainer"]: r for r in alpha["tables"]["main"]["rows"]}
    for row in main_rows.values():  # each row's F1 is the mean of its per-example F1s (expnet@k's once the own rule's)
        assert row["f1"] == pytest.approx(np.mean(row["per_example"]["f1"])), row["explainer"]
    common_rows = {r["explainer"]: r for r in alpha["tables"]["common"]["rows"]}
    assert "occlusion" not in main_rows and "occlusion" in common_rows
    assert {"expnet", "expnet@k", "expnet_in_domain", "random", "raw_attention"} <= set(main_rows)
    assert all(r["n_examples"] == 4 for r in common_rows.values())
    for row in main_rows.values():
        for key in ("f1", "precision", "recall", "auroc", "comprehensiveness_mask", "sufficiency_delete", "examples_per_second", "expnet_speedup"):
            assert key in row, key
        assert row["comprehensiveness"] == row["comprehensiveness_delete"]  # the shown removal
    # The ExpNet row is binarised by the selected variant's own rule (focal: 0.5; listwise: perplexity).
    ablation = {r["variant"]: r for r in alpha["ablation"] if r["kind"] == "variant"}
    rules = {v: r["binarisation"] for v, r in ablation.items()}
    assert set(rules.values()) <= {"own rule (threshold 0.5)", "own rule (perplexity)"}
    assert main_rows["expnet"]["binarisation"] == rules[alpha["expnet"]["selected"]] and main_rows["expnet@k"]["binarisation"].startswith("top-k")
    assert main_rows["expnet"]["auroc"] == main_rows["expnet@k"]["auroc"]
    assert main_rows["expnet"]["expnet_speedup"] == pytest.approx(1.0)
    assert main_rows["raw_attention"]["kendall_mask"] is not None
    # Beta has no slow subset: one table, with occlusion in it.
    beta_rows = {r["explainer"] for r in results["tasks"]["beta"]["tables"]["main"]["rows"]}
    assert "occlusion" in beta_rows and "common" not in results["tasks"]["beta"]["tables"]
    # The ablation reports every variant, the selected one among the candidates.
    ablation = {r["variant"]: r for r in alpha["ablation"]}
    assert {"last", "last_cls_to_token", "attn_x_grad"} <= set(ablation)
    assert alpha["expnet"]["selected"] in ("last", "attn_x_grad")
    assert sum(bool(r["selected"]) for r in alpha["ablation"]) == 1
    # Same examples for everyone: the rate is ExpNet's training rate; every row has all examples.
    assert alpha["rationale_rate"] > 0
    # The leaderboard's figures are the library's: raw attention recomputed on alpha's evaluation draw.
    loaded = load_config(config)
    draw = prepare_task(next(t for t in loaded.tasks if t.name.endswith("alpha.jsonl")), loaded).evaluation
    assert len(draw) == 8
    explanations = get_explainer("raw_attention").explain(Classifier.load(tiny_classifier_dir), [e.words for e in draw])
    direct = plausibility(
        [e.gold_mask() for e in draw], [x.scores for x in explanations], [top_k_mask(x.scores, alpha["rationale_rate"]) for x in explanations]
    )
    assert main_rows["raw_attention"]["auroc"] == pytest.approx(direct.auroc, abs=1e-9)
    assert main_rows["raw_attention"]["f1"] == pytest.approx(direct.f1, abs=1e-9)
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["table"] for r in rows} == {"main", "common", "ablation"}
    board = (out / "leaderboard.md").read_text()
    assert "## alpha" in board and "expnet (own rule)" in board and "Comp." in board
    # ExpNet minus the best baseline of each table: raw_attention is the only candidate of the main
    # table (random is a floor, occlusion is slow); results.json has no bare NaN.
    json.loads((out / "results.json").read_text(), parse_constant=lambda name: pytest.fail(f"bare {name} in results.json"))
    # And ExpNet's own-rule F1 against selecting every word, the floor of token F1.
    main = alpha["tables"]["main"]
    floor = [c for c in main["comparisons"] if c["baseline"] == "every word"]
    assert [(c["explainer"], c["metric"]) for c in floor] == [("expnet", "f1"), ("expnet+unlabelled", "f1")]
    assert f"selecting every word gives F1 {main['every_word']['f1']:.3f}" in main["note"]
    comparisons = {c["metric"]: c for c in main["comparisons"] if c["baseline"] != "every word"}
    assert set(comparisons) == {"f1", "f1_topk", "auroc"}
    assert {c["baseline"] for c in comparisons.values()} == {"raw_attention"}
    assert all(c["verdict"] in ("win", "loss", "tie", "n/a") for c in comparisons.values())
    assert len(main_rows["raw_attention"]["per_example"]["ids"]) == main_rows["raw_attention"]["n_annotated"]
    assert "ExpNet minus the best baseline" in board and "95% interval" in board
    page = (out / "report.html").read_text()
    assert "data:image/png;base64" in page and "side by side" in page
    assert results["cache"]["total_computed"] > 0

    again = run_benchmark(capsys, config, out, "--no-plots")
    assert not list((out / "plots").glob("*.png"))  # the first run's plots would show other results
    assert again["cache"]["total_computed"] == 0, again["cache"]
    assert again["cache"]["total_hits"] >= results["cache"]["total_computed"]
    assert again["tasks"]["alpha"]["tables"] == results["tasks"]["alpha"]["tables"] or _same_scores(again, results)

    # Changing one explainer's budget recomputes only that explainer's results.
    path = Path(config)
    path.write_text(path.read_text().replace("perturbations_per_eval = 8", "perturbations_per_eval = 5"))
    # Not quiet and not a terminal (a log file): the step lines, no carriage-return bars.
    assert expnet.cli.main.main(["benchmark", "--config", config, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "held out: alpha" in err and "\r" not in err
    third = json.loads((out / "results.json").read_text())
    computed = third["cache"]["computed"]
    assert set(computed) <= {"explanations", "faithfulness"}, computed
    assert computed["explanations"] == 2  # occlusion on alpha and on beta


def test_three_tasks_select_by_transfer_with_one_feature_pass_per_task(capsys, tmp_path, tiny_classifier_dir, monkeypatch):
    from expnet.benchmark import expnet_step

    passes = []
    collect = expnet_step.collect_features
    monkeypatch.setattr(expnet_step, "collect_features", lambda classifier, examples, *a, **k: passes.append(examples[0].task) or collect(classifier, examples, *a, **k))
    config = tiny_config(tmp_path, tiny_classifier_dir, explainers=("random",), third_task=True)
    results = run_benchmark(capsys, config, tmp_path / "run")
    # Every variant of every ExpNet came from one feature pass per training task.
    assert sorted(passes) == ["alpha", "beta", "gamma"]
    alpha = results["tasks"]["alpha"]
    assert alpha["trained_on"] == ["beta", "gamma"]
    for scores in alpha["expnet"]["validation"].values():
        assert set(scores) == {"beta->gamma", "gamma->beta", "mean"}
        assert scores["mean"] == pytest.approx((scores["beta->gamma"] + scores["gamma->beta"]) / 2)
    single = tmp_path / "run" / "expnets" / "single"
    assert {p.name for p in single.iterdir() if p.is_dir()} == {"alpha", "beta", "gamma"}
    # Single-task ExpNets serve every held-out task (and the in-domain reference): some are reused.
    assert results["cache"]["hits"]["expnet"] > 0


def test_expnet_with_unlabelled_texts_is_a_row_of_its_own(capsys, tmp_path, tiny_classifier_dir):
    config = Path(tiny_config(tmp_path, tiny_classifier_dir, explainers=("random", "raw_attention")))
    text = config.read_text().replace("seed = 3\n", 'seed = 3\nunlabelled = { teachers = ["raw_attention"], max_texts = 20 }\n')
    config.write_text(text + '\n[variants.ranked]\ndirections = ["cls_to_token"]\nviews = ["absolute", "rank"]\nloss = "listwise"\n')
    out = tmp_path / "run"
    results = run_benchmark(capsys, str(config), out)
    alpha = results["tasks"]["alpha"]
    rows = {r["explainer"]: r for r in alpha["tables"]["main"]["rows"]}
    assert rows["expnet+unlabelled"]["kind"] == "adapted" and rows["expnet+unlabelled"]["n_examples"] == 8
    assert {c["explainer"] for c in alpha["tables"]["main"]["comparisons"]} == {"expnet", "expnet+unlabelled"}
    # The best-validated listwise variant learns 20 of alpha's 28 classifier-training texts too (eval_fraction 0.3).
    [folder] = (out / "expnets" / "alpha").glob("*+unlabelled")
    history = json.loads((folder / "config.json").read_text())["history"]
    assert history["unlabelled"]["teachers"] == ["raw_attention"] and history["unlabelled"]["texts"] == [20]
    assert "listwise" in json.loads((folder / "config.json").read_text())["training"]["loss"]
    assert "expnet+unlabelled (own row)" in (out / "leaderboard.md").read_text()
    # enabled = false: no such row.
    config.write_text(text.replace("max_texts = 20 }", "max_texts = 20, enabled = false }"))
    plain = run_benchmark(capsys, str(config), tmp_path / "plain")
    assert "expnet+unlabelled" not in {r["explainer"] for r in plain["tasks"]["alpha"]["tables"]["main"]["rows"]}


def _same_scores(a, b) -> bool:
    """Equal apart from timings (which are cached too, so this is only a fallback)."""
    def strip(t):
        return [{k: v for k, v in r.items() if k not in ("examples_per_second", "seconds", "expnet_speedup")} for r in t["rows"]]

    return all(strip(a["tasks"]["alpha"]["tables"][n]) == strip(b["tasks"]["alpha"]["tables"][n]) for n in a["tasks"]["alpha"]["tables"])


def test_interrupted_run_resumes(capsys, tmp_path, tiny_classifier_dir, monkeypatch):
    config = tiny_config(tmp_path, tiny_classifier_dir)
    out = tmp_path / "run"
    from expnet.benchmark import explain_step

    calls = {"n": 0}
    real = explain_step.run_explainer

    def interrupt_later(classifier, explainer, words, progress=False):
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        return real(classifier, explainer, words, progress)

    monkeypatch.setattr(explain_step, "run_explainer", interrupt_later)
    code = main(["benchmark", "--config", config, "--out", str(out), "--quiet"])
    assert code == 130 and "interrupted" in capsys.readouterr().err
    assert not (out / "results.json").exists()
    done = len(list((out / "cache" / "explanations").glob("*.json")))
    assert done == 5  # everything finished before the interrupt was kept
    assert not list((out / "cache").rglob("*.tmp"))

    monkeypatch.setattr(explain_step, "run_explainer", real)
    results = run_benchmark(capsys, config, out)
    assert results["cache"]["hits"]["explanations"] == 5
    assert results["cache"]["hits"]["expnet"] >= 1  # trained ExpNets were kept too
    assert (out / "report.html").is_file()


def test_cache_counts_and_rejects_other_keys(tmp_path):
    cache = ResultCache(tmp_path)
    key = {"classifier": {"path": "x"}, "explainer": {"name": "random", "settings": {"seed": (1, 2)}}}
    assert cache.get("explanations", key) is None
    cache.put("explanations", key, {"value": 1})
    assert cache.get("explanations", key) == {"value": 1}
    assert cache.get("explanations", {**key, "task": "other"}) is None
    cache.path("explanations", key).write_text("{ broken")
    assert cache.get("explanations", key) is None
    assert cache.counters()["hits"] == {"explanations": 1} and cache.counters()["computed"] == {"explanations": 1}


def effective(config) -> dict:
    """The settings a config really runs with (per-task fine-tunes and ExpNet fields resolved)."""
    from dataclasses import asdict

    data = config.to_dict()
    data["expnet"] = config.expnet_settings("last").to_dict()
    for task, raw in zip(config.tasks, data["tasks"], strict=True):
        raw["finetune"] = asdict(task.finetune_settings())
    return data


def test_quick_preset_and_config_errors(tmp_path):
    quick = load_config(None, quick=True)
    assert [t.name for t in quick.tasks] == ["hatexplain", "sst2"]
    assert all(t.max_examples == 16 for t in quick.tasks)
    assert "lime" in quick.explainers and quick.explainer_settings["lime"]["n_samples"] <= 32
    assert quick.tasks[0].finetune_settings().max_examples == QUICK["tasks"]["hatexplain"]["finetune"]["max_examples"]
    default = load_config(None)
    assert [t.name for t in default.tasks] == ["hatexplain", "sst2", "movies"]
    # benchmarks/full.toml spells out the defaults: the two stay equal.
    full = load_config(Path(__file__).resolve().parent.parent / "benchmarks" / "full.toml")
    assert effective(full) == effective(default)
    assert default.explainers == "all" and set(default.candidates) <= set(default.variants)
    # A file only overrides what it names; a task keeps the preset's other settings.
    path = tmp_path / "c.toml"
    path.write_text("[tasks.hatexplain]\nmax_examples = 5\n[tasks.sst2]\n")
    merged = load_config(path, quick=True)
    assert merged.tasks[0].max_examples == 5 and merged.tasks[0].slow_max_examples == 6
    path.write_text("[tasks.hatexplain]\nmax_examples = ''\n[tasks.sst2]\n")  # TOML has no null: "" is no limit
    assert load_config(path, quick=True).tasks[0].max_examples is None
    yaml_path = tmp_path / "c.yaml"
    yaml_path.write_text("tasks:\n  hatexplain: {max_examples: 7}\n  sst2: {}\nseed: 4\n")
    pytest.importorskip("yaml")
    assert load_config(yaml_path).seed == 4 and load_config(yaml_path).tasks[0].max_examples == 7
    for text, fragment in [
        ("sed = 1\n", "unknown config key 'sed'"),
        ("tasks = ['sst2']\n", "at least two tasks"),
        # Under a preset, naming one task replaced the preset's list: the message says so.
        ("[tasks.sst2]\n", r"\(the config names sst2; a config's tasks replace the preset's, so name every task"),
        ("[faithfulness]\nshown = 'zero'\n", "removal 'zero'"),
        ("candidates = ['nope']\n", "candidate variant 'nope'"),
        ("[tasks.sst2]\nfinetune = { epoch = 1 }\n[tasks.movies]\n", "fine-tuning setting 'epoch'"),
        ("[variants.x]\nvalues = ['gradient']\n", r"\[variants.x\]: unknown feature value"),
        ("[variants.x]\nhead_pooling = 'sorted'\n", r"\[variants.x\]: unknown head pooling"),
        ("[variants.x]\nloss = 'hinge'\n", r"\[variants.x\]: unknown ExpNet loss"),
        ("this is not toml", "not valid TOML"),
        # Wrong types were misread, not refused: a string list a substring test, "no" true, 1.5 a traceback.
        ("exclude_explainers = 'value_zeroing_rollout'\n", "exclude_explainers = 'value_zeroing_rollout': give a list of strings"),
        ("in_domain = 'no'\n", "in_domain = 'no': give true or false"),
        ("threads = 1.5\n", "threads = 1.5: give a whole number"),
        ("seed = true\n", "seed = True: give a whole number"),
        ("seed = -3\n", "seed = -3: give a whole number from 0"),
        ("report_examples = -1\n", "report_examples = -1: give 0 or more"),
        ("[faithfulness]\nbins = [0.5, 0.1]\n", "bins must be increasing"),
        ("[tasks.sst2]\nmax_examples = '5'\n[tasks.movies]\n", r"\[tasks.sst2\] max_examples must be a positive whole number, got '5'"),
        # Checked only when used, once: after every classifier was fine-tuned, or as a TypeError.
        ("[expnet]\nmax_epochs = 'x'\n", r"\[expnet\] with \[variants.last\]: max_epochs must be a whole number"),
        ("[tasks.sst2]\neval_fraction = '0.3'\n[tasks.movies]\n", r"\[tasks.sst2\] eval_fraction = '0.3': give a number"),
    ]:
        path.write_text(text)
        with pytest.raises(ExpnetError, match=fragment):
            load_config(path)
    with pytest.raises(ExpnetError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_bad_explainer_names_get_one_line(capsys, tmp_path, tiny_classifier_dir):
    config = tiny_config(tmp_path, tiny_classifier_dir)
    code = main(["benchmark", "--config", config, "--out", str(tmp_path / "o"), "--explainers", "no_such", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown explainer 'no_such'" in err and "Traceback" not in err
    bad = tmp_path / "bad.toml"
    bad.write_text(Path(config).read_text().replace("perturbations_per_eval = 8", "n_sample = 8"))
    code = main(["benchmark", "--config", str(bad), "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2 and "no setting 'n_sample'" in capsys.readouterr().err
    # Every other place that names an explainer or its settings, and layers the classifier lacks:
    # once accepted silently, or refused mid-run (the explainer skipped) or after the fine-tunes.
    text = Path(config).read_text()
    for change, fragment in [
        (("explainers = [", "exclude_explainers = [\"no_such\"]\nexplainers = ["), "unknown explainer 'no_such' in the benchmark config's exclude_explainers"),
        (("[faithfulness]", "[explainer_settings.no_such]\nn_samples = 1\n[faithfulness]"), "unknown explainer 'no_such' in the benchmark config's [explainer_settings]"),
        (("perturbations_per_eval = 8", "perturbations_per_eval = -8"), "[explainer_settings.occlusion] in the benchmark config: perturbations_per_eval must be"),
        (("layers = \"last\"", "layers = [99]"), "[variants.last] layers [99] do not exist in the "),
    ]:
        assert change[0] in text, change
        bad.write_text(text.replace(*change, 1))
        code = main(["benchmark", "--config", str(bad), "--out", str(tmp_path / "o"), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_attention_x_gradient_expnet_saves_and_loads(tmp_path, tiny_classifier_dir):
    from expnet.data import load_examples

    data = write_task(tmp_path / "t.jsonl", 16, 5)
    classifier = Classifier.load(tiny_classifier_dir, device="cpu")
    examples = load_examples(data)
    settings = ExpNetSettings(layers="all", feature_values=("attention", "attention_x_gradient"), only_correct=False, max_epochs=3, hidden_size=8)
    expnet = ExpNetExplainer.train([(classifier, examples)], settings, seed=0, progress=False)
    assert expnet.spec.dim == 2 * 2 * 2 * 2  # layers x heads x directions x values
    assert any(name.endswith(".xgrad") for name in expnet.spec.names())
    expnet.save_pretrained(tmp_path / "e")
    config = json.loads((tmp_path / "e" / "config.json").read_text())
    assert config["features"]["values"] == ["attention", "attention_x_gradient"]
    assert config["training"]["feature_values"] == ["attention", "attention_x_gradient"]
    loaded = ExpNetExplainer.from_pretrained(tmp_path / "e")
    words = [e.words for e in examples[:3]]
    np.testing.assert_allclose(
        loaded.explain(classifier, words)[0].scores, expnet.explain(classifier, words)[0].scores, rtol=1e-5
    )
    # A config saved before "values" existed still loads, as attention-only features.
    del config["features"]["values"]
    from expnet.network.features import FeatureSpec

    assert FeatureSpec.from_dict(config["features"]).values == ("attention",)


@pytest.mark.integration
def test_quick_preset_end_to_end(capsys, tmp_path):
    out = tmp_path / "quick"
    code = main(["benchmark", "--quick", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    results = json.loads((out / "results.json").read_text())
    assert set(results["tasks"]) == {"hatexplain", "sst2"}
    for name in ("results.csv", "leaderboard.md", "report.html", "plots/f1_vs_speed.png"):
        assert (out / name).is_file()


EIGHT_IDS = list("abcdefgh")


def _row(name: str, kind: str, f1_topk: list, auroc: list, binarisation: str = "top-k (rate 0.200)", f1: list | None = None) -> dict:
    """A leaderboard row of eight examples: the four values given, twice (a paired interval needs
    at least six pairs; the means are the four values')."""
    f1 = f1_topk if f1 is None else f1  # a top-k row's own binary rationale is its top-k
    return {
        "explainer": name, "kind": kind, "binarisation": binarisation,
        "f1": float(np.mean(f1)), "f1_topk": float(np.mean(f1_topk)), "auroc": float(np.nanmean(np.array(auroc, dtype=float))),
        "per_example": {"ids": EIGHT_IDS, "f1": f1 * 2, "f1_topk": f1_topk * 2, "auroc": auroc * 2},
    }


def test_comparisons_take_the_best_real_baseline_per_metric():
    from expnet.benchmark.report import comparison_rows, table_comparisons

    expnet = [0.6, 0.7, 0.8, 0.9]
    table = {
        "rows": [
            _row("expnet", "expnet", expnet, [0.9, 0.9, 0.9, None], "own rule (perplexity)", f1=[0.4, 0.5, 0.6, 0.7]),
            _row("expnet@k", "expnet", expnet, [0.9, 0.9, 0.9, None]),
            _row("in_domain", "reference", [1.0] * 4, [1.0] * 4, "own rule (threshold 0.5)"),
            _row("random", "baseline", [0.95] * 4, [0.99] * 4),
            _row("weak", "baseline", [0.1] * 4, [0.95, 0.95, 0.95, 0.95]),
            _row("strong", "baseline", [0.5, 0.6, 0.7, 0.8], [0.5, 0.6, 0.7, 0.8]),
        ]
    }
    found = {c["metric"]: c for c in table_comparisons(table)}
    # F1@k: strong (0.65) beats weak; the difference is 0.1 on every example -> a win at exactly 0.1.
    assert found["f1_topk"]["baseline"] == "strong"
    assert (found["f1_topk"]["difference"], found["f1_topk"]["low"], found["f1_topk"]["high"]) == pytest.approx((0.1, 0.1, 0.1))
    assert found["f1_topk"]["verdict"] == "win"
    # F1 of each one's own binary rationale: ExpNet's rule against strong's top-k, 0.1 lower each time.
    assert found["f1"]["baseline"] == "strong" and found["f1"]["difference"] == pytest.approx(-0.1)
    assert found["f1"]["verdict"] == "loss"
    # AUROC: weak (0.95) is best; ExpNet's undefined last example is dropped: -0.05 on 3 pairs.
    assert found["auroc"]["baseline"] == "weak" and found["auroc"]["n_pairs"] == 6
    assert found["auroc"]["difference"] == pytest.approx(-0.05) and found["auroc"]["verdict"] == "loss"
    headers, rows = comparison_rows({"comparisons": list(found.values())})
    assert headers[-1] == "Verdict" and rows[0][:3] == ["F1 (own rule vs top-k)", "strong", "-0.100"]
    assert rows[1][:3] == ["F1@k", "strong", "+0.100"]


def test_the_own_rule_is_also_compared_with_selecting_every_word():
    from expnet.benchmark.report import EVERY_WORD, comparison_rows, table_comparisons

    expnet = _row("expnet", "expnet", [0.5] * 4, [0.9] * 4, "own rule (perplexity)", f1=[0.4, 0.5, 0.6, 0.7])
    table = {"rows": [expnet, _row("strong", "baseline", [0.3] * 4, [0.5] * 4)]}
    assert all(c["baseline"] != EVERY_WORD for c in table_comparisons(table))  # results saved before: none
    table["every_word"] = {"f1": 0.575, "per_example": {"ids": EIGHT_IDS, "f1": [0.6, 0.6, 0.6, 0.5] * 2}}
    floor = [c for c in table_comparisons(table) if c["baseline"] == EVERY_WORD]
    # Against strong's top-k ExpNet's F1 wins by 0.25; against every word: -0.2, -0.1, 0, +0.2 -> -0.025.
    assert len(floor) == 1 and floor[0]["metric"] == "f1" and floor[0]["difference"] == pytest.approx(-0.025)
    assert floor[0]["verdict"] == "tie"
    _, rows = comparison_rows({"comparisons": floor})
    assert rows[0][:2] == ["F1 (own rule vs every word)", EVERY_WORD]


def test_every_word_f1_is_the_floor_of_token_f1():
    from expnet.benchmark.config import BenchmarkConfig
    from expnet.benchmark.leaderboards import Leaderboards
    from expnet.data.records import RationaleExample

    examples = [
        RationaleExample("a", "t", ["w"] * 4, 0, ("n", "p"), rationales=[[1, 0, 0, 0]]),  # P 1/4, R 1: F1 0.4
        RationaleExample("b", "t", ["w"] * 2, 0, ("n", "p"), rationales=[[1, 1]]),  # F1 1
        RationaleExample("c", "t", ["w"] * 3, 0, ("n", "p")),  # no rationale: not scored
    ]
    boards = Leaderboards(BenchmarkConfig(), {}, examples, {}, {}, "v", 0.2)
    floor = boards.every_word(3)
    assert floor["per_example"] == {"ids": ["a", "b"], "f1": [pytest.approx(0.4), pytest.approx(1.0)]}
    assert floor["f1"] == pytest.approx(0.7)
    assert boards.every_word(1)["f1"] == pytest.approx(0.4)


def test_a_top_k_rows_per_example_f1_is_f1_at_k_not_its_own_rules():
    from expnet.benchmark.config import BenchmarkConfig, VariantConfig
    from expnet.benchmark.leaderboards import Leaderboards, variant_run
    from expnet.data.records import RationaleExample
    from expnet.evaluation import ExplainerRun
    from expnet.explainers.base import Explanation

    example = RationaleExample("a", "t", ["w"] * 4, 0, ("n", "p"), rationales=[[1, 0, 0, 0]])
    # Its own rationale marks every word (F1 0.4); its top-1 word is the gold one (F1@k 1).
    explanation = Explanation(
        ["w"] * 4, np.array([0.9, 0.1, 0.1, 0.1]), np.ones(4, bool), 0, 0, np.array([0.6, 0.4]), "expnet", rationale=np.ones(4, bool)
    )
    config = BenchmarkConfig(variants={"v": VariantConfig()})
    boards = Leaderboards(config, {}, [example], {variant_run("v"): ExplainerRun("expnet", [explanation], 1.0)}, {variant_run("v"): {}}, "v", 0.25)
    own, top_k = boards.row("expnet", "expnet", variant_run("v"), 1, "own"), boards.row("expnet@k", "expnet", variant_run("v"), 1, "topk")
    assert own.f1 == pytest.approx(0.4) and own.per_example["f1"] == [pytest.approx(0.4)]
    assert top_k.f1 == pytest.approx(1.0) and top_k.per_example["f1"] == [pytest.approx(1.0)]


def test_truncated_texts_add_comparisons_over_the_words_read():
    from expnet.benchmark.report import table_comparisons

    # On the whole text the baseline ties ExpNet (both miss the gold words beyond the cut alike);
    # over the words read, ExpNet is 0.2 higher on the three texts kept (the fourth is NaN: its
    # gold words all lay beyond the cut).
    expnet, baseline = _row("expnet", "expnet", [0.5] * 4, [0.5] * 4, "own rule (perplexity)"), _row("strong", "baseline", [0.5] * 4, [0.5] * 4)
    for row, seen in ((expnet, [0.8, 0.8, 0.8, np.nan] * 2), (baseline, [0.6, 0.6, 0.6, np.nan] * 2)):
        row.update(f1_topk_seen=0.8 if row is expnet else 0.6, auroc_seen=0.8 if row is expnet else 0.6, n_truncated=2)
        row["per_example"].update(f1_topk_seen=seen, auroc_seen=seen)
    found = {c["metric"]: c for c in table_comparisons({"rows": [expnet, baseline]})}
    assert found["auroc"]["verdict"] == "tie"
    for metric in ("f1_topk_seen", "auroc_seen"):
        assert found[metric]["n_pairs"] == 6 and found[metric]["difference"] == pytest.approx(0.2)
        assert found[metric]["verdict"] == "win"
    # Texts read whole: the seen view equals the main one, so it is not compared twice.
    for row in (expnet, baseline):
        row["n_truncated"] = 0
    assert {c["metric"] for c in table_comparisons({"rows": [expnet, baseline]})} == {"f1", "f1_topk", "auroc"}


def test_evaluation_tables_fit_80_columns_without_ellipses():
    import io

    from rich.console import Console

    from expnet.evaluation import compare_explainers
    from expnet.report.tables import print_results

    ids = [f"e{i}" for i in range(6)]
    scores = {}
    for i, name in enumerate(("runs/hatexplain/expnet_last_cls_to_token_folder", "integrated_gradients", "random")):
        values = [0.1 * i + 0.01 * j for j in range(6)]
        scores[name] = {
            "f1": 0.412, "f1_topk": float(np.mean(values)), "iou_f1": 0.2, "auroc": float(np.mean(values)),
            "average_precision": 0.5, "auprc": 0.49, "examples_per_second": 12345.6, "n_truncated": 2,
            "f1_topk_seen": 0.4, "auroc_seen": 0.8, "per_example": {"ids": ids, "f1_topk": values, "auroc": values},
        }
    expnet = "runs/hatexplain/expnet_last_cls_to_token_folder"
    comparisons = compare_explainers(scores, [expnet])
    assert [c["baseline"] for c in comparisons] == ["integrated_gradients"] * 2  # random is no competitor
    results = {
        "explainers": scores, "comparisons": comparisons, "forward_examples_per_second": 300.0, "accuracy": 0.9,
        "n_examples": 6, "n_annotated": 6, "rationale_rate": 0.2, "settings": {"top_k": 5, "unit": "subword"},
    }
    buffer = io.StringIO()
    print_results(results, "hatexplain: 6 examples", Console(file=buffer, width=80))
    text = buffer.getvalue()
    assert "\u2026" not in text and "..." not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "12346" in text and "integrated_gr" in text and "AUPRC" in text and "top-5" in text


def test_every_registered_name_stays_on_one_line_in_the_widest_evaluation_table():
    import io

    from rich.console import Console

    from expnet.explainers import explainer_names
    from expnet.report.tables import results_table

    # With the 'seen' columns (texts were cut), at full three-decimal and five-digit widths.
    row = {"f1": 0.412, "f1_topk": 0.413, "iou_f1": 0.2, "auroc": 0.9, "auprc": 0.49, "f1_topk_seen": 0.4,
           "auroc_seen": 0.8, "examples_per_second": 12345.6, "n_truncated": 2}
    names = explainer_names()
    buffer = io.StringIO()
    Console(file=buffer, width=80).print(results_table({"explainers": {name: row for name in names}}, "t"))
    lines = buffer.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "seen" in buffer.getvalue()
    firsts = {line.split()[0] for line in lines if line.split()}
    assert set(names) <= firsts, sorted(set(names) - firsts)


def test_a_decoder_classifier_benchmarks_with_the_variants_it_can_compute(capsys, tmp_path):
    from architectures import build_gpt2

    decoder = build_gpt2(tmp_path / "gpt2")
    config = tiny_config(tmp_path, decoder, explainers=("random", "raw_attention"))
    results = run_benchmark(capsys, config, tmp_path / "run", "--no-plots")
    skipped = results["skipped"]["alpha"]
    # token->readout features do not exist under a causal mask; head norms need a BERT-family model
    assert "decoder" in skipped["expnet:last"] and "expnet:last_cls_to_token" not in skipped
    assert "BERT, RoBERTa and ELECTRA" in skipped["expnet:q_attn_list"]
    task = results["tasks"]["alpha"]
    assert task["expnet"]["selected"] not in {name.split(":")[1] for name in skipped}
    assert {row["variant"] for row in task["ablation"] if row["kind"] == "variant"} >= {"last_cls_to_token", "q_attn_only_list"}


def test_the_selection_progress_lines_fit_80_columns_and_mark_the_candidates():
    # The line once ran past 300 columns and did not say which variants could be selected.
    from expnet.benchmark.expnet_step import Selection

    names = ["last", "last_cls_to_token", "q_attn_list", "q_attn_only_list", "q_sig_list", "q_attn_only_list_words"]
    validation = {name: {"mean": 0.5 + i / 100} for i, name in enumerate(names)}
    selection = Selection(names, ["q_attn_list", "q_attn_only_list"], {}, {}, validation, "q_attn_only_list")
    lines = selection.summary_lines("auroc_seen", 0.376)
    assert all(len(f"[ 2146s] {line}") <= 80 for line in lines) and len(lines) > 3
    body = " ".join(lines[1:-1])
    assert "q_attn_list* 0.520" in body and "last 0.500" in body and "last_cls_to_token 0.510," in body
    assert lines[0].endswith("(* may be selected):") and lines[-1] == "  -> selected q_attn_only_list; top-k rate 0.376"
    everyone = Selection(names, names, {}, {}, validation, "last").summary_lines("auroc_seen", 0.4)
    assert "*" not in " ".join(everyone)
