"""Options and steps several subcommands share."""

from __future__ import annotations

import argparse
from pathlib import Path

from expnet.data import load_examples
from expnet.errors import ExpnetError
from expnet.models.classifier import Classifier
from expnet.seeding import seed_everything


def add_seed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same numbers on CPU (default 0)")


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder with the datasets in their original layout (default: $EXPNET_DATA, else the shipped samples)",
    )


def add_trust_remote_code(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run Python code shipped in a model folder (auto_map); only for models you trust (default: refuse such models)",
    )


def load_classifier(name_or_path: str, args: argparse.Namespace) -> Classifier:
    """The classifier a command names, on --device, running model code only with --trust-remote-code."""
    return Classifier.load(name_or_path, device=args.device, trust_remote_code=args.trust_remote_code)


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive whole number")
    return value


def start(args: argparse.Namespace) -> None:
    """Seed every generator before a command does any work."""
    seed_everything(getattr(args, "seed", 0))


def load_limited(task: str, split: str | None, data_dir, purpose: str, max_examples: int | None):
    examples = load_examples(task, split, data_dir, purpose=purpose)
    if not examples:
        raise ExpnetError(f"no examples in {task} (split {split or 'default'}); check --data-dir and --split")
    return examples[:max_examples] if max_examples else examples


def require_new_or_dir(path: str) -> Path:
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ExpnetError(f"--out {path} is a file; give a folder path")
    return out
