"""expnet demo: the whole story on the shipped samples, offline, in a few minutes (``expnet.demo``)."""

from __future__ import annotations

import argparse

from rich.console import Console

from expnet.cli import common
from expnet.demo import DemoProtocol, run_demo
from expnet.report.tables import print_results

PROTOCOL = DemoProtocol()


def register(subparsers) -> None:
    parser = common.add_command(
        subparsers,
        "demo",
        run,
        f"fine-tune, train ExpNet on {' and '.join(PROTOCOL.train_tasks)} and compare it with every explainer "
        f"on {PROTOCOL.held_out}, a task it never saw (shipped samples)",
    )
    common.add_out_folder(parser, "output folder (classifiers are cached here; default runs/demo)", default="runs/demo")
    common.add_data_dir(parser)
    common.add_progress(parser)
    common.add_seed(parser)
    common.add_device(parser)


def run(args: argparse.Namespace) -> int:
    common.start(args)
    console = Console(stderr=True)
    out = common.check_out_folder(args, [args.data_dir])
    result = run_demo(out, PROTOCOL, args.data_dir, args.seed, args.device, progress=common.show_progress(args), log=console.print)
    held_out, shown = PROTOCOL.held_out, len(result.examples)
    print_results(result.results["all"], f"{held_out} (unseen by ExpNet): {shown} annotated posts, fast explainers", console)
    print_results(
        result.results["slow"],
        f"{held_out}: the first {PROTOCOL.slow_examples} posts, every explainer (slow ones at demo budgets)",
        console,
    )
    console.print(f"wrote {result.results_path} and {result.report_path} in {result.seconds:.0f} s")
    return 0
