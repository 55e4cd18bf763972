"""expnet concepts: how sensitive a class is to human concepts, layer by layer (attention TCAV)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from expnet.cli import common
from expnet.concepts.cavs import read_texts, shipped_sets
from expnet.concepts.report import heat_page, plot_scores
from expnet.concepts.tcav import MIN_TOKENS, run_tcav
from expnet.errors import ExpnetError
from expnet.io import atomic_write_json, atomic_write_text

# The paper's 50: 3 concepts x 6 layers on a MiniLM classifier, 200 inputs, took 1.5 minutes on one
# (shared) CPU thread; 2 concepts with 30 CAVs took 1 minute.
DEFAULT_N_CAVS = 50


def register(subparsers) -> None:
    description = (
        "Train many CAVs per concept and layer, score how the target class's logit moves along them "
        "(attention-weighted token derivatives), and t-test the scores against 0.5 and against "
        f"random-vs-random CAVs. Shipped sets usable by name: {', '.join(shipped_sets()) or 'none'}."
    )
    parser = common.add_command(
        subparsers, "concepts", run, "concept sensitivity by layer (CAVs + attention-weighted derivatives, t-tested)", description
    )
    common.add_classifier(parser)
    parser.add_argument(
        "--concept", action="append", required=True, metavar="NAME=FILE",
        help="a concept: a text file with one example a line (repeatable); a shipped set's name alone also works",
    )
    parser.add_argument("--random", required=True, metavar="FILE", help="random texts, one a line (a few hundred), or a shipped random set's name")
    parser.add_argument("--target", required=True, help="class whose sensitivity is measured, index or name")
    parser.add_argument("--inputs", default=None, metavar="FILE", help="texts of the target class to score on, one a line")
    common.add_data(parser, required=False, help=f"or take the target-class inputs (gold label) from a task: {common.task_help()}")
    parser.add_argument("--max-inputs", type=common.positive_int, default=200, help="at most N inputs, a seeded random sample (default 200)")
    parser.add_argument("--layers", default="all", help="'all' (default) or comma-separated 0-based layer indices like 2,5")
    parser.add_argument(
        "--n-cavs", type=common.positive_int, default=DEFAULT_N_CAVS,
        help=f"CAVs per concept and layer, each on its own random sample (default {DEFAULT_N_CAVS} as in the paper: "
        "about 1.5 minutes on one CPU thread for 3 concepts on a MiniLM classifier)",
    )
    parser.add_argument("--texts-per-cav", type=common.positive_int, default=50, help="texts sampled per side for each CAV (default 50)")
    parser.add_argument("--max-tokens", type=common.positive_int, default=1000, help="token states per side for each CAV (default 1000)")
    parser.add_argument("--versus", choices=("random", "concepts"), default="random", help="negatives: the random texts (default) or the other concepts")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level before the Bonferroni correction (default 0.05)")
    parser.add_argument("--heat-examples", type=common.positive_int, default=5, help="inputs shown with per-word heat in the HTML page (default 5)")
    parser.add_argument("--batch-size", type=common.positive_int, default=16)
    common.add_out_folder(parser, "folder for tcav.json, scores_by_layer.png and heat.html")
    common.add_progress(parser)
    common.add_model_options(parser)


def parse_concepts(specs: list[str]) -> dict[str, list[list[str]]]:
    concepts: dict[str, list[list[str]]] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        name = name.strip()
        if not sep:
            path = name
        if not name or not path.strip():
            raise ExpnetError(f"--concept {spec!r} must be NAME=FILE (or a shipped set's name), e.g. --concept negation=neg.txt")
        if name in concepts:
            raise ExpnetError(f"concept {name!r} is given twice: give each concept a different name")
        texts = read_texts(path.strip(), f"concept {name!r}")
        if len(texts) < 2:
            raise ExpnetError(f"concept {name!r} has {len(texts)} text; give at least 2 (tens to hundreds is better)")
        concepts[name] = texts
    return concepts


def target_inputs(args, classifier, target: int) -> list[list[str]]:
    """The texts to score: --inputs, or a seeded sample of --data examples whose gold label is the target."""
    if (args.inputs is None) == (args.data is None):
        raise ExpnetError("give exactly one of --inputs FILE (texts of the target class) or --data TASK")
    if args.inputs is not None:
        texts = read_texts(args.inputs, "inputs")
    else:
        from expnet.data import load_examples

        examples = load_examples(args.data, args.split, args.data_dir, purpose="evaluation")
        common.check_labels(classifier, examples)  # a gold label means this classifier's class
        texts = [e.words for e in examples if e.label == target and e.words]
        if not texts:
            raise ExpnetError(f"no {args.data} example has gold label {args.target!r}; check --target and --split")
    if len(texts) > args.max_inputs:
        chosen = np.sort(np.random.default_rng(args.seed).choice(len(texts), args.max_inputs, replace=False))
        texts = [texts[i] for i in chosen]
    return texts


def print_summary(data: dict) -> None:
    print(f"target {data['target_name']}: {data['n_inputs']} inputs; * = significant (Bonferroni {data['significance']['bonferroni_level']:.1e})")
    print(f"{'concept':<24} {'layer':>5} {'score':>6} {'std':>6} {'p vs .5':>9} {'p vs rnd':>9} {'AUROC':>6}")
    for name, layers in data["concepts"].items():
        shown = name if len(name) <= 24 else name[:23] + "…"  # 74 columns in all
        for s in layers:
            mark = "*" if s["significant"] else ""
            print(
                f"{shown:<24} {s['layer']:>5} {s['mean']:>6.3f} {s['std']:>6.3f} {s['p_vs_half']:>9.1e} "
                f"{s['p_vs_random']:>9.1e} {s['cav_heldout_auroc']:>6.3f} {mark}"
            )


def run(args) -> int:
    common.start(args)
    if not 0 < args.alpha < 1:
        raise ExpnetError(f"--alpha {args.alpha} must be between 0 and 1")
    if args.n_cavs < 2:
        raise ExpnetError(f"--n-cavs {args.n_cavs}: the t-tests need at least 2 CAVs (50 in the paper)")
    if args.max_tokens < MIN_TOKENS:
        raise ExpnetError(f"--max-tokens {args.max_tokens}: a CAV needs at least {MIN_TOKENS} token states per side (default 1000)")
    concept_files = [spec.partition("=")[2] or spec for spec in args.concept]
    out = common.check_out_folder(
        args, [args.classifier, *concept_files, args.random, args.inputs, common.data_file(args.data), args.data_dir]
    )
    concepts = parse_concepts(args.concept)
    random_texts = read_texts(args.random, "random")
    if len(random_texts) < 4:
        raise ExpnetError(f"the random file has {len(random_texts)} texts; give at least 4 (a few hundred is better)")
    chosen = common.parse_layers(args.layers, ("all",))
    layers = None if isinstance(chosen, str) else chosen  # "all"
    classifier = common.load_classifier(args.classifier, args)
    target = classifier.label_id(args.target)
    inputs = target_inputs(args, classifier, target)
    started = time.perf_counter()
    result = run_tcav(
        classifier,
        concepts,
        random_texts,
        inputs,
        target,
        layers=layers,
        n_cavs=args.n_cavs,
        versus=args.versus,
        seed=args.seed,
        texts_per_cav=args.texts_per_cav,
        max_tokens=args.max_tokens,
        batch_size=args.batch_size,
        significance_level=args.alpha,
        progress=common.show_progress(args),
    )
    result.settings.update(
        {
            "classifier": str(args.classifier),
            "concept_files": list(args.concept),
            "random_file": args.random,
            "inputs": args.inputs if args.inputs else f"{args.data} ({args.split or 'evaluation split'}), gold label {result.target_name}",
            "device": str(classifier.device),
            "max_length": classifier.max_length,
            "seconds": round(time.perf_counter() - started, 1),
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    data = result.to_dict()
    atomic_write_json(out / "tcav.json", data)
    png = plot_scores(result, out / "scores_by_layer.png")
    atomic_write_text(out / "heat.html", heat_page(result, args.heat_examples, png))
    print_summary(data)
    print(Path(out))
    return 0
