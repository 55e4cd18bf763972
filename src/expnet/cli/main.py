"""Entry point: parse, run one subcommand, and turn user errors into one line and exit code 2."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from expnet import __version__
from expnet.errors import ExpnetError, ExpnetWarning

SUBCOMMANDS = ("finetune", "train", "explain", "evaluate", "explainers", "demo", "diagnose", "concepts", "benchmark")


class StoreOnce(argparse._StoreAction):
    """A single-value option given twice is an error, not the last one silently kept
    (``explain --explainer a --explainer b`` explained with b only)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(self, "given", False):
            parser.error(f"{'/'.join(self.option_strings)} was given twice; give it once")
        self.given = True  # a fresh parser per parse (``build_parser``), so per command line
        super().__call__(parser, namespace, values, option_string)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line naming the fix, as every other mistake is (the
    stock parser prints its whole usage block first, burying the error), and a single-value
    option given twice is one (``StoreOnce``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", None, StoreOnce)
        self.register("action", "store", StoreOnce)

    def error(self, message: str):  # type: ignore[override]  # never returns
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = OneLineParser(
        prog="expnet",
        description="Learned word-level explanations for transformer text classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"expnet {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"expnet.cli.{name}").register(subparsers)
    return parser


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The arguments; an unknown option is reported by its subcommand's parser, so the line
    points at that command's --help (argparse would name the top-level one)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
        commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


class Terminated(KeyboardInterrupt):
    """SIGTERM (a plain ``kill``, a job scheduler's stop), unwound like Ctrl-C."""


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While a command runs, SIGTERM raises ``Terminated`` so that atomic writes remove their
    temporaries instead of the process vanishing mid-write; the old handler is restored after."""

    def terminate(signum, frame):
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread (main() embedded somewhere): keep the default
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def user_error(error: Exception) -> str | None:
    """The one line a user mistake deserves, or None for an error that is not one (keep its traceback)."""
    if isinstance(error, ExpnetError):
        return str(error)
    if isinstance(error, FileNotFoundError):
        return f"no such file: {error.filename}"
    if isinstance(error, OSError):
        # Not about a path the user gave: a bug or a system failure.
        return None if error.filename is None else f"{error.filename}: {error.strerror}; check the path and its permissions"
    if isinstance(error, UnicodeDecodeError):
        return f"the input is not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8"
    return None


def one_line_warnings(name: str, fallback):
    """expnet's own warnings as one line ('expnet explain: warning: ...'), each once whichever
    line of code gave it (evaluate explains from two places); others as Python shows them."""
    shown: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, ExpnetWarning):
            if str(message) not in shown:
                shown.add(str(message))
                print(f"{name}: warning: {message}", file=sys.stderr)
        else:
            fallback(message, category, filename, lineno, file, line)

    return show


def main(argv: list[str] | None = None) -> int:
    # Everything, the parser included, runs inside the try: building the parser imports every
    # subcommand and torch with them, seconds in which a Ctrl-C is likely.
    name, args = "expnet", None
    try:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
        warnings.filterwarnings("ignore", category=FutureWarning)
        args = parse(argv)
        name = f"expnet {args.command}"
        with sigterm_unwinds(), warnings.catch_warnings():
            warnings.simplefilter("default", ExpnetWarning)  # shown once, whatever filters the caller set
            warnings.showwarning = one_line_warnings(name, warnings.showwarning)
            return int(args.func(args) or 0)
    except (ExpnetError, OSError, UnicodeDecodeError, KeyboardInterrupt) as error:
        return exit_status(name, error, args is not None and resumes(args))


# Commands that keep their finished steps (a cache, cached classifiers, finished parts, a
# fine-tune's checkpoint) and go on from them when rerun; explain only in corpus mode.
RESUMING = frozenset({"benchmark", "diagnose", "demo"})


def resumes(args) -> bool:
    if args.command == "finetune":  # only once it has written a checkpoint (every few minutes)
        from expnet.models.checkpoint import checkpoint_folder  # local: torch loads inside main's try

        return bool(getattr(args, "out", None)) and checkpoint_folder(args.out).is_dir()
    return args.command in RESUMING or (args.command == "explain" and bool(getattr(args, "input", None)))


def exit_status(name: str, error: BaseException, resumable: bool = False) -> int:
    """Say what stopped command ``name`` in one line and give its exit status; an error that is
    not the user's (a bug) is raised again, traceback and all."""
    if isinstance(error, KeyboardInterrupt):
        how = "terminated" if isinstance(error, Terminated) else "interrupted"
        kept = "finished steps were kept: rerun the same command to go on from them" if resumable else "nothing half-written was kept"
        print(f"{name}: {how}; {kept}", file=sys.stderr)
        return 143 if isinstance(error, Terminated) else 130
    message = user_error(error) if isinstance(error, Exception) else None
    if message is None:
        raise error
    print(f"{name}: error: {message}", file=sys.stderr)
    return 2


def run_script(main_function: Callable[[], int | None]) -> int:
    """The entry of a script in benchmarks/ or scripts/: the command's handling of user errors,
    Ctrl-C and SIGTERM around ``main_function``."""
    name = Path(sys.argv[0]).name
    try:
        with sigterm_unwinds():
            return int(main_function() or 0)
    except (ExpnetError, OSError, UnicodeDecodeError, KeyboardInterrupt) as error:
        return exit_status(name, error)


def invocation() -> str:
    """This process's command line, as a results file records what produced it."""
    return shlex.join(["python", *sys.argv])


if __name__ == "__main__":
    sys.exit(main())
