"""expnet diagnose: is this classifier's attention an explanation? (Jain & Wallace; Wiegreffe & Pinter)

Four diagnostics on one layer's attention (default: the final layer, all heads): correlation with
gradient x input and leave-one-out, random permutation, adversarial attention and uniform
attention. Writes diagnostics.json, PNG plots and report.html into the --out folder after each
diagnostic; a rerun into the same folder with the same settings keeps the finished ones, so an
interrupted run resumes and diagnostics run one at a time end up in one report.
"""

from __future__ import annotations

import argparse
import functools

from expnet.cli import common
from expnet.diagnostics.suite import DEFAULT_STEPS, DIAGNOSTICS, DiagnosticsSettings, run_diagnostics


def register(subparsers) -> None:
    parser = common.add_command(
        subparsers, "diagnose", run, "attention diagnostics: correlation, permutation, adversarial and uniform attention", __doc__
    )
    common.add_classifier(parser, "classifier folder or Hugging Face name (BERT family)")
    common.add_data(parser)
    parser.add_argument("--max-examples", type=common.positive_int, default=200, help="a seeded random draw of N examples, in file order (default 200)")
    parser.add_argument(
        "--layer", type=int, default=-1, help="layer to intervene on; negative counts from the end (default -1, the final layer)"
    )
    common.add_out_folder(parser, "output folder (diagnostics.json, *.png, report.html)")
    common.add_progress(parser)
    parser.add_argument(
        "--diagnostics", default=",".join(DIAGNOSTICS), help=f"comma-separated subset of {', '.join(DIAGNOSTICS)} (default: all)"
    )
    parser.add_argument("--permutations", type=common.positive_int, default=100, help="permutations per example (default 100)")
    parser.add_argument(
        "--adversarial-steps",
        type=common.positive_int,
        default=DEFAULT_STEPS,
        help=f"Adam steps per adversarial search (default {DEFAULT_STEPS}, sized for CPU; the protocol uses 500)",
    )
    parser.add_argument("--expnet", default=None, metavar="DIR", help="a trained ExpNet folder to correlate as well")
    parser.add_argument("--batch-size", type=common.positive_int, default=16, help="texts per batch (default 16)")
    common.add_model_options(parser)


def run(args: argparse.Namespace) -> int:
    common.start(args)
    settings = DiagnosticsSettings(
        diagnostics=tuple(name.strip() for name in args.diagnostics.split(",") if name.strip()),
        layer=args.layer,
        permutations=args.permutations,
        adversarial_steps=args.adversarial_steps,
        expnet=args.expnet,
        batch_size=args.batch_size,
    )
    out = common.check_out_folder(args, [args.classifier, common.data_file(args.data), args.expnet, args.data_dir])
    classifier = common.load_classifier(args.classifier, args)
    examples = common.evaluation_examples(args, classifier, need_rationales=False)
    data, split = common.data_description(args)
    result = run_diagnostics(
        classifier, examples, out, settings, seed=args.seed, data=data, split=split, progress=common.show_progress(args),
        log=functools.partial(print, flush=True),
    )
    for name in settings.diagnostics:
        print(f"- {result.interpretation.get(name, '')}")
    print(result.report)
    return 0
