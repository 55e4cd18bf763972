"""Run the four attention diagnostics on one classifier and save them as one report.

``run_diagnostics`` runs correlation, permutation, adversarial and uniform attention on one layer's
attention and writes diagnostics.json, the PNG plots and report.html into a folder after each
diagnostic. A rerun into the same folder with the same settings keeps the finished ones, so an
interrupted run resumes and diagnostics run one at a time end up in one report.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from expnet.data import RationaleExample
from expnet.diagnostics import adversarial, correlation, permutation, uniform
from expnet.diagnostics.intervention import check_supported, resolve_layer
from expnet.diagnostics.report import html_page, interpret, make_plots
from expnet.errors import ExpnetError, require_whole
from expnet.explainers.learned import is_expnet_folder
from expnet.io import atomic_directory, atomic_write_json, atomic_write_text, folder_state, json_digest
from expnet.models.classifier import Classifier

DIAGNOSTICS = ("correlation", "permutation", "adversarial", "uniform")
RESULT_NAME = "diagnostics.json"
REPORT_NAME = "report.html"
# Sized for CPU; the protocol (Wiegreffe & Pinter) uses 500.
DEFAULT_STEPS = 100


@dataclass(frozen=True)
class DiagnosticsSettings:
    """What to run and how; every field is recorded in diagnostics.json."""

    diagnostics: tuple[str, ...] = DIAGNOSTICS
    layer: int = -1  # negative counts from the end
    permutations: int = 100
    adversarial_steps: int = DEFAULT_STEPS
    expnet: str | None = None  # a trained ExpNet folder to correlate with the references as well
    batch_size: int = 16

    def __post_init__(self) -> None:
        unknown = [name for name in self.diagnostics if name not in DIAGNOSTICS]
        if unknown or not self.diagnostics:
            raise ExpnetError(f"--diagnostics {','.join(self.diagnostics)!r}: choose from {', '.join(DIAGNOSTICS)}")
        for name in ("permutations", "adversarial_steps", "batch_size"):
            require_whole(name, getattr(self, name))
        if self.expnet and not is_expnet_folder(Path(self.expnet)):  # refused before the first diagnostic runs
            what = "holds no ExpNet (its config.json)" if Path(self.expnet).is_dir() else "is not a folder"
            raise ExpnetError(f"--expnet {self.expnet} {what}; give a folder made by 'expnet train'")
        # The canonical order, so that the same choice in another order is the same setting.
        object.__setattr__(self, "diagnostics", tuple(name for name in DIAGNOSTICS if name in self.diagnostics))


@dataclass
class DiagnosticsResult:
    """diagnostics.json's content (``results``), where it was written, and which diagnostics
    were kept from an earlier run into the same folder."""

    results: dict
    out: Path
    kept: tuple[str, ...]

    @property
    def report(self) -> Path:
        return self.out / REPORT_NAME

    @property
    def interpretation(self) -> dict[str, str]:
        """One sentence per diagnostic saying what its numbers mean for this classifier."""
        return self.results["interpretation"]


def run_diagnostics(
    classifier: Classifier,
    examples: Sequence[RationaleExample],
    out: str | Path,
    settings: DiagnosticsSettings | None = None,
    seed: int = 0,
    data: str = "examples",
    split: str = "as given",
    progress: bool = False,
    log: Callable[[str], object] | None = None,
) -> DiagnosticsResult:
    """Run the chosen diagnostics, saving ``out`` (replaced whole, atomically) after each one.

    ``data`` and ``split`` only describe the examples in the report. ``log`` receives a line as
    each diagnostic starts and ends (or is kept from an earlier run with the same settings).
    """
    settings = settings or DiagnosticsSettings()
    say = log or (lambda line: None)
    out = Path(out)
    check_supported(classifier)
    layer = resolve_layer(classifier, settings.layer)
    results: dict = {
        "settings": {
            "classifier": classifier.source,
            # A rerun keeps earlier sections only for the same model files, weights' precision and texts.
            "classifier_files": folder_state(classifier.source),
            "dtype": str(next(classifier.model.parameters()).dtype).removeprefix("torch."),
            "examples_digest": json_digest([[e.id, e.label, list(e.words)] for e in examples]),
            "data": data,
            "split": split,
            "examples": len(examples),
            "layer": layer,
            "num_layers": classifier.num_layers,
            "num_heads": classifier.num_heads,
            "max_length": classifier.max_length,
            "diagnostics": list(settings.diagnostics),
            "permutations": settings.permutations,
            "adversarial_steps": settings.adversarial_steps,
            "expnet": settings.expnet,
            "expnet_files": folder_state(settings.expnet) if settings.expnet else "",
            "batch_size": settings.batch_size,
            "device": str(classifier.device),
            "seed": seed,
        },
        "examples": [{"id": e.id, "label": e.label} for e in examples],
    }
    earlier = earlier_sections(out, results["settings"])
    results.update(earlier)
    for name in settings.diagnostics:
        if name in earlier:
            say(f"{name}: kept from the earlier run in {out} (same settings)")
            continue
        clock = time.perf_counter()
        say(f"{name}: {len(examples)} examples ...")
        section = _run_one(name, classifier, examples, layer, settings, seed, progress)
        section["seconds"] = time.perf_counter() - clock
        results[name] = section
        save(out, results)  # after every diagnostic: an interrupted run keeps (and reuses) what it finished
        say(f"{name}: done in {section['seconds']:.1f} s")
    if all(name in earlier for name in settings.diagnostics):
        save(out, results)  # nothing new, but the report now lists this run's choice
    return DiagnosticsResult(results, out, tuple(name for name in settings.diagnostics if name in earlier))


def _run_one(
    name: str,
    classifier: Classifier,
    examples: Sequence[RationaleExample],
    layer: int,
    settings: DiagnosticsSettings,
    seed: int,
    progress: bool,
) -> dict:
    """One diagnostic's section of diagnostics.json (JSON-ready: NaN becomes null)."""
    texts = [example.words for example in examples]
    if name == "correlation":
        explainers = correlation.attention_explainers(settings.expnet, settings.batch_size, seed)
        found = correlation.correlations(classifier, texts, explainers, settings.batch_size, seed, progress=progress)
        return {
            "summary": found.summary(),
            "tau": {k: _nullable(v) for k, v in found.tau.items()},
            "p_value": {k: _nullable(v) for k, v in found.p_value.items()},
        }
    if name == "permutation":
        shuffled = permutation.permutation_effects(classifier, texts, layer, settings.permutations, seed, progress=progress)
        return {"summary": shuffled.summary(), "per_example": shuffled.per_example()}
    if name == "adversarial":
        searched = adversarial.adversarial_attention(
            classifier, texts, layer, steps=settings.adversarial_steps, seed=seed, progress=progress
        )
        return {"summary": searched.summary(), "per_example": searched.per_example()}
    flattened = uniform.uniform_effects(
        classifier, texts, [e.label for e in examples], layer, settings.batch_size, progress=progress
    )
    return {"summary": flattened.summary(), "per_example_tvd": [float(t) for t in flattened.tvd(str(layer))]}


def _nullable(values) -> list[float | None]:
    """NaN -> None, so the JSON stays standard."""
    return [None if math.isnan(v) else float(v) for v in values]


def earlier_sections(out: Path, settings: dict) -> dict:
    """The finished diagnostics of an earlier (or interrupted) run into ``out`` with the same
    settings, the choice of diagnostics aside: they are kept rather than computed again."""
    path = out / RESULT_NAME
    try:
        earlier = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}

    def comparable(values):
        return {k: v for k, v in (values or {}).items() if k != "diagnostics"}

    if not earlier or comparable(earlier.get("settings")) != comparable(settings):
        return {}
    return {name: earlier[name] for name in DIAGNOSTICS if name in earlier}


def save(out: Path, results: dict) -> None:
    """diagnostics.json, the plots and report.html for the diagnostics finished so far, replacing
    the folder whole (atomically)."""
    done = [name for name in DIAGNOSTICS if name in results]
    results["settings"]["diagnostics"] = done
    results["seconds_total"] = sum(results[name]["seconds"] for name in done)
    results["interpretation"] = interpret(results)
    plots = make_plots(results)
    with atomic_directory(out) as staging:
        atomic_write_json(staging / RESULT_NAME, results)
        for filename, png in plots.items():
            (staging / filename).write_bytes(png)
        atomic_write_text(staging / REPORT_NAME, html_page(results, plots))
