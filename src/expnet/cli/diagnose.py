"""expnet diagnose: is this classifier's attention an explanation? (Jain & Wallace; Wiegreffe & Pinter)

Four diagnostics on one layer's attention (default: the final layer, all heads): correlation with
gradient x input and leave-one-out, random permutation, adversarial attention and uniform
attention. Writes diagnostics.json, PNG plots and report.html into the --out folder after each
diagnostic; a rerun into the same folder with the same settings keeps the finished ones, so an
interrupted run resumes and diagnostics run one at a time end up in one report.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from expnet.cli.common import (
    add_data_dir,
    add_device,
    add_out_folder,
    add_seed,
    add_trust_remote_code,
    check_out_folder,
    data_file,
    load_classifier,
    load_limited,
    positive_int,
    start,
)
from expnet.cli.evaluate import check_labels
from expnet.data import task_name
from expnet.errors import ExpnetError
from expnet.io import atomic_directory, atomic_write_json, atomic_write_text

DIAGNOSTICS = ("correlation", "permutation", "adversarial", "uniform")
RESULT_NAME = "diagnostics.json"
DEFAULT_STEPS = 100


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "diagnose",
        help="attention diagnostics: correlation, permutation, adversarial and uniform attention",
        description=__doc__,
    )
    parser.add_argument("--classifier", required=True, help="classifier folder or Hugging Face name (BERT family)")
    parser.add_argument("--data", required=True, help="hatexplain, sst2, movies, cola or a JSONL file")
    add_data_dir(parser)
    parser.add_argument("--split", default=None, help="split to use (default: the task's evaluation split)")
    parser.add_argument("--max-examples", type=positive_int, default=200, help="first N examples (default 200)")
    parser.add_argument(
        "--layer",
        type=int,
        default=-1,
        help="layer to intervene on; negative counts from the end (default -1, the final layer)",
    )
    add_out_folder(parser, "output folder (diagnostics.json, *.png, report.html)")
    parser.add_argument(
        "--diagnostics",
        default=",".join(DIAGNOSTICS),
        help=f"comma-separated subset of {', '.join(DIAGNOSTICS)} (default: all)",
    )
    parser.add_argument("--permutations", type=positive_int, default=100, help="permutations per example (default 100)")
    parser.add_argument(
        "--adversarial-steps",
        type=positive_int,
        default=DEFAULT_STEPS,
        help=f"Adam steps per adversarial search (default {DEFAULT_STEPS}, sized for CPU; the protocol uses 500)",
    )
    parser.add_argument("--expnet", default=None, metavar="DIR", help="a trained ExpNet folder to correlate as well")
    parser.add_argument("--batch-size", type=positive_int, default=16, help="texts per batch (default 16)")
    add_seed(parser)
    add_device(parser)
    add_trust_remote_code(parser)
    parser.set_defaults(func=run)


def parse_diagnostics(spec: str) -> list[str]:
    chosen = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in DIAGNOSTICS]
    if unknown or not chosen:
        raise ExpnetError(f"--diagnostics {spec!r}: choose from {', '.join(DIAGNOSTICS)}")
    return [name for name in DIAGNOSTICS if name in chosen]


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
    from expnet.diagnostics.report import html_page, interpret, make_plots

    done = [name for name in DIAGNOSTICS if name in results]
    results["settings"]["diagnostics"] = done
    results["seconds_total"] = sum(results[name]["seconds"] for name in done)
    results["interpretation"] = interpret(results)
    plots = make_plots(results)
    with atomic_directory(out) as staging:
        atomic_write_json(staging / RESULT_NAME, results)
        for filename, png in plots.items():
            (staging / filename).write_bytes(png)
        atomic_write_text(staging / "report.html", html_page(results, plots))


def run(args: argparse.Namespace) -> int:
    from expnet.diagnostics import adversarial, correlation, permutation, uniform
    from expnet.diagnostics.intervention import check_supported, resolve_layer

    start(args)
    chosen = parse_diagnostics(args.diagnostics)
    out = check_out_folder(args, [args.classifier, data_file(args.data), args.expnet, args.data_dir])
    if args.expnet and not Path(args.expnet).is_dir():
        raise ExpnetError(f"--expnet {args.expnet} is not a folder; give a folder made by 'expnet train'")
    classifier = load_classifier(args.classifier, args)
    check_supported(classifier)
    layer = resolve_layer(classifier, args.layer)
    examples = load_limited(args.data, args.split, args.data_dir, "evaluation", args.max_examples)
    check_labels(classifier, examples)
    texts = [example.words for example in examples]
    explainers = (
        correlation.attention_explainers(args.expnet, args.batch_size, args.seed) if "correlation" in chosen else {}
    )

    results: dict = {
        "settings": {
            "classifier": str(args.classifier),
            "data": task_name(args.data),
            "split": args.split or "default evaluation split",
            "examples": len(examples),
            "layer": layer,
            "num_layers": classifier.num_layers,
            "num_heads": classifier.num_heads,
            "max_length": classifier.max_length,
            "diagnostics": chosen,
            "permutations": args.permutations,
            "adversarial_steps": args.adversarial_steps,
            "expnet": args.expnet,
            "batch_size": args.batch_size,
            "device": str(classifier.device),
            "seed": args.seed,
        },
        "examples": [{"id": e.id, "label": e.label} for e in examples],
    }
    earlier = earlier_sections(out, results["settings"])
    results.update(earlier)
    for name in chosen:
        if name in earlier:
            print(f"{name}: kept from the earlier run in {out} (same settings)", flush=True)
            continue
        clock = time.perf_counter()
        print(f"{name}: {len(texts)} examples ...", flush=True)
        if name == "correlation":
            found = correlation.correlations(classifier, texts, explainers, args.batch_size, args.seed, progress=True)
            section = {
                "summary": found.summary(),
                "tau": {k: _nullable(v) for k, v in found.tau.items()},
                "p_value": {k: _nullable(v) for k, v in found.p_value.items()},
            }
        elif name == "permutation":
            found = permutation.permutation_effects(
                classifier, texts, layer, args.permutations, args.seed, progress=True
            )
            section = {"summary": found.summary(), "per_example": found.per_example()}
        elif name == "adversarial":
            found = adversarial.adversarial_attention(
                classifier, texts, layer, steps=args.adversarial_steps, seed=args.seed, progress=True
            )
            section = {"summary": found.summary(), "per_example": found.per_example()}
        else:
            found = uniform.uniform_effects(
                classifier, texts, [e.label for e in examples], layer, args.batch_size, progress=True
            )
            section = {"summary": found.summary(), "per_example_tvd": [float(t) for t in found.tvd(str(layer))]}
        section["seconds"] = time.perf_counter() - clock
        results[name] = section
        save(out, results)  # after every diagnostic: an interrupted run keeps (and reuses) what it finished
        print(f"{name}: done in {section['seconds']:.1f} s", flush=True)
    if not any(name not in earlier for name in chosen):
        save(out, results)
    for name in chosen:
        print(f"- {results['interpretation'].get(name, '')}")
    print(out / "report.html")
    return 0
