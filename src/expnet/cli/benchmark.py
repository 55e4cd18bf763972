"""expnet benchmark: leave-one-task-out comparison of ExpNet with every registered explainer.

Writes OUT/results.json, OUT/results.csv, OUT/leaderboard.md, OUT/plots/*.png and
OUT/report.html; classifiers, trained ExpNets and every intermediate result are cached under OUT,
so an interrupted run resumes and a rerun only computes what changed.
"""

from __future__ import annotations

import time

from rich.console import Console

from expnet.cli.common import (
    add_data_dir,
    add_device,
    add_out_folder,
    add_progress,
    check_out_folder,
    positive_int,
    seed_value,
    show_progress,
)
from expnet.errors import ExpnetError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        help="leave-one-task-out benchmark of ExpNet against every explainer (plausibility, faithfulness, speed)",
        description=(
            "Per held-out task: fine-tune or reuse its classifier, train ExpNet on the other tasks, and evaluate ExpNet, "
            "its variants, an in-domain ExpNet and every explainer on the same examples. Results are cached in OUT."
        ),
    )
    parser.add_argument("--config", default=None, help="TOML or YAML config (see benchmarks/full.toml); defaults apply to what it leaves out")
    parser.add_argument("--quick", action="store_true", help="CI-sized preset: 2 short tasks x 16 examples, cheap explainers, tiny fine-tunes (a --config file goes on top)")
    add_data_dir(parser)
    add_out_folder(parser, "output folder (results, plots, report, and the cache a rerun resumes from)")
    parser.add_argument("--explainers", default=None, help="comma-separated explainer names, or 'all' (overrides the config)")
    parser.add_argument("--max-examples", type=positive_int, default=None, help="at most this many evaluation examples per task (also caps the slow subset)")
    parser.add_argument("--seed", type=seed_value, default=None, help="random seed (default: the config's, else 0)")
    parser.add_argument("--no-plots", action="store_true", help="skip the matplotlib plots")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    add_progress(parser)
    add_device(parser)
    parser.set_defaults(func=run)


def apply_overrides(config, args) -> None:
    """Command-line flags win over the config file."""
    if args.seed is not None:
        config.seed = args.seed
    if args.explainers is not None:
        names = [n.strip() for n in args.explainers.split(",") if n.strip()]
        if not names:
            raise ExpnetError("--explainers is empty: give names like raw_attention,lime or 'all'")
        config.explainers = "all" if names == ["all"] else names
    if args.max_examples is not None:
        for task in config.tasks:
            task.max_examples = min(task.max_examples or args.max_examples, args.max_examples)
            if task.slow_max_examples is not None:
                task.slow_max_examples = min(task.slow_max_examples, args.max_examples)


def run(args) -> int:
    from expnet.benchmark.config import load_config
    from expnet.benchmark.report import write_outputs
    from expnet.benchmark.runner import BenchmarkRunner

    started = time.perf_counter()
    console = Console(stderr=True)
    config = load_config(args.config, quick=args.quick)
    out = check_out_folder(args, [args.data_dir, args.config, *(task.classifier for task in config.tasks)])
    apply_overrides(config, args)
    runner = BenchmarkRunner(
        config, out, data_dir=args.data_dir, device=args.device, progress=not args.quiet, console=console,
        bars=not args.quiet and show_progress(args),
    )
    outcome = runner.run()
    paths = write_outputs(outcome, out, plots=not args.no_plots)
    if not args.quiet:
        from expnet.benchmark.report import leaderboard_rows
        from expnet.report.tables import rows_table

        for name, task in outcome.results.tasks.items():
            table = task.tables.get("common", task.tables["main"])
            headers, rows = leaderboard_rows(table.to_dict())
            keep = [headers.index(h) for h in ("Explainer", "F1 by", "F1", "AUROC", "AP", "Comp.", "Suff.", "ex/s") if h in headers]
            title = f"{name} (held out): {table.n_examples} examples, selected variant {task.expnet['selected']}"
            console.print(rows_table(title, [headers[i] for i in keep], [[row[i] for i in keep] for row in rows]))
        counters = outcome.results.cache
        console.print(
            f"cache: {counters['total_hits']} results reused, {counters['total_computed']} computed "
            f"({', '.join(f'{k} {v}' for k, v in counters['computed'].items()) or 'nothing new'})"
        )
        console.print(f"wrote {', '.join(sorted(paths))} into {out} in {time.perf_counter() - started:.0f} s")
    print(out / "results.json")
    return 0
