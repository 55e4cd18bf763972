"""expnet evaluate: plausibility and speed of explainers against human rationales."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from expnet import __version__
from expnet.cli import common
from expnet.cli.explainer_settings import add_settings, parse_settings
from expnet.data import load_examples, rationale_rate, resolve_data_dir
from expnet.data.errors import DataError
from expnet.errors import ExpnetError
from expnet.evaluation import UNITS, evaluate
from expnet.explainers import explainer_names, get_explainer
from expnet.explainers.learned import ExpNetExplainer
from expnet.explainers.registry import PRETRAINED
from expnet.io import atomic_write_json, atomic_write_text
from expnet.report.pages import evaluation_page
from expnet.report.tables import print_results


def register(subparsers) -> None:
    parser = common.add_command(subparsers, "evaluate", run, "score explainers against human rationales (F1, IOU-F1, AUROC, AP, AUPRC, speed)")
    common.add_classifier(parser)
    common.add_data(parser)
    parser.add_argument("--explainers", required=True, help="comma-separated explainer names and/or ExpNet folders")
    parser.add_argument("--out", required=True, help="results JSON file")
    parser.add_argument("--max-examples", type=common.positive_int, default=None, help="score a seeded random draw of N examples (in file order)")
    parser.add_argument("--batch-size", type=common.positive_int, default=16)
    add_settings(parser, several=True)
    parser.add_argument("--gold-rule", choices=("majority", "union"), default="majority")
    selection = parser.add_mutually_exclusive_group()  # both given, one would be recorded but unused
    selection.add_argument(
        "--rationale-rate",
        type=float,
        default=None,
        help="share of words the top-k binarisation selects (default: the rationale rate of the task's explainer-training split)",
    )
    selection.add_argument(
        "--top-k",
        type=common.positive_int,
        default=None,
        help="select this many words (or pieces) for F1@k instead of --rationale-rate of them (HateXplain 5, ferret 7)",
    )
    parser.add_argument(
        "--unit",
        choices=UNITS,
        default="word",
        help="score words, or subword tokens as HateXplain and ferret do (each piece carries its word's gold label and score)",
    )
    parser.add_argument("--html", default=None, help="also write an HTML page with highlighted examples here")
    parser.add_argument("--html-examples", type=common.positive_int, default=None, help="examples shown in the HTML page (default 8)")
    common.add_overwrite_file(parser)
    common.add_progress(parser)
    common.add_model_options(parser)


def default_rate(task: str, data_dir, gold_rule: str, evaluated) -> tuple[float, str]:
    """The top-k rate: the task's explainer-training rationales, else the evaluated data's own
    (a JSONL file's explainer-training examples are the file itself: no other split)."""
    if common.data_file(task) is not None:
        return rationale_rate(evaluated, gold_rule), "evaluated data"
    try:
        return rationale_rate(load_examples(task, None, data_dir, purpose="explainer_train"), gold_rule), "explainer-training split"
    except DataError:
        return rationale_rate(evaluated, gold_rule), "evaluated data"


def requested_names(spec: str) -> list[str]:
    names = [name.strip() for name in spec.split(",") if name.strip()]
    if not names:
        raise ExpnetError("--explainers is empty: give names like expnet_dir,raw_attention,random")
    # A folder spelled two ways (runs/x, ./runs//x) is one explainer too.
    keys = [str(Path(name).resolve()) if Path(name).exists() else name for name in names]
    for i, key in enumerate(keys):
        if key in keys[:i]:
            first = names[keys.index(key)]
            also = "" if first == names[i] else f" (as {first!r} too)"
            raise ExpnetError(f"--explainers names {names[i]!r} twice{also}; give each once")
    return names


def display_names(names: list[str]) -> dict[str, str]:
    """A short label for each explainer: its name, or for an ExpNet folder as few trailing path
    parts as keep the labels unique (a full path would wrap every 80-column table row) and keep a
    folder from reading as a registered explainer (``runs/x/expnet`` is not the shipped ExpNet)."""
    registered = set(explainer_names()) | set(PRETRAINED)
    labels = {}
    for name in names:
        parts = Path(name).parts
        depth = 1
        while depth < len(parts) and (
            (name not in registered and "/".join(parts[-depth:]) in registered)
            or any(other != name and Path(other).parts[-depth:] == parts[-depth:] for other in names)
        ):
            depth += 1
        labels[name] = "/".join(parts[-depth:]) if parts else name
    # Two spellings of one path ("a/b", "./a/b") get the same tail: keep them as given.
    return labels if len(set(labels.values())) == len(labels) else {name: name for name in names}


def build_explainers(spec: str, batch_size: int, seed: int, setting_pairs: Sequence[str] = ()) -> tuple[dict, dict[str, str]]:
    """Explainers keyed by their display labels, and each label's source (name or folder)."""
    names = requested_names(spec)
    labels = display_names(names)
    settings = parse_settings(setting_pairs, names)
    explainers = {labels[name]: get_explainer(name, batch_size=batch_size, seed=seed, **settings[name]) for name in names}
    return explainers, {labels[name]: name for name in names}


def warn_top_k_covers_all(top_k: int | None, unit: str, examples) -> None:
    """A --top-k at least every text's length selects every word: F1@k then ranks nothing."""
    if top_k is None or unit != "word":
        return
    longest = max(len(e.words) for e in examples)
    if top_k >= longest:
        print(
            f"expnet evaluate: warning: --top-k {top_k} is at least every text's length (the longest has {longest} words): "
            "F1@k selects every word and compares no ranking; give a smaller --top-k or --rationale-rate",
            file=sys.stderr,
        )


def run(args) -> int:
    common.start(args)
    if args.html_examples is not None and args.html is None:
        raise ExpnetError("--html-examples sets the examples of the --html page; give --html FILE too, or leave it out")
    inputs = [args.classifier, common.data_file(args.data), args.data_dir, *args.explainers.split(",")]
    out = common.check_out_file(args.out, "--out", inputs, args.overwrite)
    page = common.check_out_file(args.html, "--html", inputs, args.overwrite)
    if page is not None and page.resolve() == out.resolve():
        raise ExpnetError(f"--html {args.html} is the --out file; give the page its own path")
    classifier = common.load_classifier(args.classifier, args)
    explainers, sources = build_explainers(args.explainers, args.batch_size, args.seed, args.setting)
    examples = common.evaluation_examples(args, classifier, need_rationales=True)
    if args.rationale_rate is not None:
        if not 0 < args.rationale_rate <= 1:
            raise ExpnetError(f"--rationale-rate {args.rationale_rate} must be in (0, 1]")
        rate, source = args.rationale_rate, "--rationale-rate"
    else:
        rate, source = default_rate(args.data, args.data_dir, args.gold_rule, examples)
    warn_top_k_covers_all(args.top_k, args.unit, examples)
    result = evaluate(classifier, examples, explainers, rate, args.gold_rule, args.batch_size, progress=common.show_progress(args), top_k=args.top_k, unit=args.unit)
    data, split = common.data_description(args)
    result.settings = {
        "expnet_version": __version__,
        "classifier": common.classifier_record(args.classifier),
        "dtype": classifier.dtype_name,
        "data": data,
        # Which file or data folder: "movies" from the samples and from the full data differ.
        "data_source": str(Path(common.data_file(args.data) or resolve_data_dir(args.data_dir)).resolve()),
        "split": split,
        "gold_rule": args.gold_rule,
        "rationale_rate_source": source,
        "top_k": args.top_k,
        "unit": args.unit,
        "batch_size": args.batch_size,
        "device": str(classifier.device),
        "max_length": classifier.max_length,
        "seed": args.seed,
        "expnet_rationale": {n: e.rationale_rule for n, e in explainers.items() if isinstance(e, ExpNetExplainer)},
        "explainer_sources": sources,
        # Each explainer's settings (budgets included), as saved explanation runs record them.
        "explainer_settings": {n: json.loads(json.dumps(e.settings(), default=repr)) for n, e in explainers.items()},
    }
    results = result.to_dict()
    atomic_write_json(out, results)
    print_results(results, f"{data}: {len(examples)} examples")
    if page:
        atomic_write_text(page, evaluation_page(result, examples, args.gold_rule, f"expnet evaluation: {data}", args.html_examples or 8))
    print(out)
    return 0
