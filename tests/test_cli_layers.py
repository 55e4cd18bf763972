"""The command line is a thin layer: what a command does is a library call (reachable from Python
without argparse), and the library never reaches back into expnet.cli."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import expnet
import expnet.data
from expnet.cli.main import build_parser
from expnet.data import load_examples
from expnet.demo import DemoProtocol, run_demo
from expnet.diagnostics.suite import DiagnosticsSettings, run_diagnostics
from expnet.errors import ExpnetError
from expnet.models.finetune import FinetuneSettings

PACKAGE = Path(expnet.__file__).parent
CLI = PACKAGE / "cli"
MAX_FUNCTION_LINES = 60


def test_diagnostics_run_from_python_and_resume(tiny_classifier, tmp_path):
    examples = load_examples("sst2", None, None, purpose="evaluation")[:4]
    out, lines = tmp_path / "diagnostics", []
    settings = DiagnosticsSettings(diagnostics=("uniform", "permutation"), permutations=3)
    result = run_diagnostics(tiny_classifier, examples, out, settings, seed=1, data="sst2", log=lines.append)
    saved = json.loads((out / "diagnostics.json").read_text())
    assert saved == result.results and result.kept == ()
    assert saved["settings"]["diagnostics"] == ["permutation", "uniform"] and saved["settings"]["data"] == "sst2"
    assert len(saved["permutation"]["per_example"]) == 4 and result.report.is_file()
    assert set(result.interpretation) >= {"permutation", "uniform"}
    # Same settings into the same folder: the finished diagnostic is kept, not computed again.
    again = run_diagnostics(
        tiny_classifier, examples, out, DiagnosticsSettings(diagnostics=("uniform",), permutations=3), seed=1, data="sst2",
        log=lines.append,
    )
    assert again.kept == ("uniform",) and again.results["uniform"] == saved["uniform"]
    assert any("kept from the earlier run" in line for line in lines)


def test_diagnostics_settings_refuse_unknown_names():
    with pytest.raises(ExpnetError, match="choose from"):
        DiagnosticsSettings(diagnostics=("permutation", "bogus"))
    assert DiagnosticsSettings(diagnostics=("uniform", "correlation")).diagnostics == ("correlation", "uniform")


def _first_lines_of_samples(tasks: tuple[str, ...], folder: Path, lines: int) -> Path:
    """A data folder holding the first lines of each shipped sample file of ``tasks``."""
    samples = Path(expnet.data.samples_dir())
    for task in tasks:
        for source in (samples / task).rglob("*"):
            if source.is_file():
                target = folder / source.relative_to(samples)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text("".join(source.read_text(encoding="utf-8").splitlines(keepends=True)[:lines]), encoding="utf-8")
    return folder


# Cut samples: SST-2's first dev sentences and first dev trees are not the same sentences.
@pytest.mark.filterwarnings("ignore:.*match no tree")
def test_demo_protocol_runs_from_python(tiny_classifier_dir, tmp_path):
    data_dir = _first_lines_of_samples(("sst2", "hatexplain"), tmp_path / "data", 60)
    tiny = FinetuneSettings(epochs=1, max_length=32)
    protocol = DemoProtocol(
        classifiers={"sst2": tiny, "hatexplain": tiny},
        train_tasks=("sst2",),
        held_out="hatexplain",
        explainers=("random", "raw_attention", "occlusion", "shapley_sampling"),
        slow_examples=2,
    )
    lines: list[str] = []
    result = run_demo(tmp_path / "demo", protocol, data_dir, backbone=tiny_classifier_dir, log=lines.append)
    saved = json.loads(result.results_path.read_text())
    assert saved.keys() == result.results.keys() == {"all", "slow"} and result.report_path.is_file()
    # occlusion is of the perturbation family: only in the table of the first slow_examples texts.
    assert set(saved["all"]["explainers"]) == {"expnet", "random", "raw_attention"}
    assert set(saved["slow"]["explainers"]) == {"expnet", "random", "raw_attention", "occlusion", "shapley_sampling"}
    # What each explainer ran at: shapley_sampling its own 3 permutations, the others no budget.
    assert saved["slow"]["settings"]["budgets"] == {"shapley_sampling": {"n_samples": 3}}
    assert saved["slow"]["n_examples"] == 2 and saved["all"]["n_examples"] == len(result.examples)
    assert saved["all"]["settings"]["trained_on"] == ["sst2"] and (tmp_path / "demo" / "expnet").is_dir()
    assert any(line.startswith("classifier sst2: dev accuracy") for line in lines)
    assert not any(metrics["cached"] for metrics in result.classifier_metrics.values())


def test_the_demo_records_the_budget_each_explainer_ran_at():
    # results.json once recorded the shared budgets only: shapley_sampling read as 50 samples, not 3.
    protocol = DemoProtocol()
    assert protocol.budgets_for("shapley_sampling") == {"n_samples": 3}
    assert protocol.budgets_for("lime") == {"n_samples": 50} and protocol.budgets_for("integrated_gradients") == {}
    assert protocol.budgets_for("raw_attention") == {}
    assert protocol.explainer("shapley_sampling", seed=0).settings()["n_samples"] == 3


def test_demo_protocol_checks_its_tasks():
    with pytest.raises(ExpnetError, match="must be among"):
        DemoProtocol(classifiers={"nope": FinetuneSettings()}, train_tasks=("nope",), held_out="nope")
    with pytest.raises(ExpnetError, match="must not be one ExpNet trains on"):
        DemoProtocol(train_tasks=("sst2", "hatexplain"))
    assert set(DemoProtocol().classifiers) <= set(expnet.data.TASKS)


@pytest.mark.parametrize("command", ["diagnose", "evaluate", "finetune", "train", "concepts"])
def test_task_help_lists_the_registered_tasks(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps help at the terminal width
    assert ", ".join(expnet.data.TASKS) in text


def _modules(folder: Path):
    for path in sorted(folder.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def test_no_library_module_imports_the_cli():
    offenders = []
    for path, tree in _modules(PACKAGE):
        if CLI in path.parents:
            continue
        for node in ast.walk(tree):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            if any(name == "expnet.cli" or name.startswith("expnet.cli.") for name in names):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == []


def test_cli_functions_stay_short():
    """A command parses, calls the library and renders: no function there grows into a workflow."""
    long = [
        f"{path.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path, tree in _modules(CLI)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_the_demo_draws_bars_only_on_a_terminal_or_with_progress(monkeypatch, tmp_path, capsys):
    # Its fine-tune bars once filled a log file with carriage returns.
    import expnet.cli.demo as demo_command
    from expnet.cli.main import main

    asked = []

    def fake_demo(out, protocol, data_dir, seed, device, progress, log):
        asked.append(progress)
        raise KeyboardInterrupt  # stop before any work; main reports it in one line

    monkeypatch.setattr(demo_command, "run_demo", fake_demo)
    for extra in ([], ["--progress"]):
        main(["demo", "--out", str(tmp_path / "demo"), *extra])
    assert asked == [False, True]  # pytest's stderr is not a terminal
