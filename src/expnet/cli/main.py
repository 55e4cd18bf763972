"""Entry point: parse, run one subcommand, and turn user errors into one line and exit code 2."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from expnet import __version__
from expnet.errors import ExpnetError

SUBCOMMANDS = ("finetune", "train", "explain", "evaluate", "explainers", "demo", "diagnose", "concepts", "benchmark")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="expnet",
        description="Learned word-level explanations for transformer text classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"expnet {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"expnet.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    warnings.filterwarnings("ignore", category=FutureWarning)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ExpnetError as error:
        print(f"expnet {args.command}: error: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"expnet {args.command}: error: no such file: {error.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"expnet {args.command}: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
