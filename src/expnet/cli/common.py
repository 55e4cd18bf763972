"""Options and steps several subcommands share."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import expnet.data
from expnet.data import RationaleExample, load_examples, task_name
from expnet.data.registry import or_list, split_for
from expnet.data.splits import seeded_draw
from expnet.errors import ExpnetError
from expnet.explainers.learned import holds_only_expnet_files
from expnet.io import is_leftover, json_digest, recover_directory, write_target
from expnet.models.checkpoint import is_checkpoint
from expnet.models.classifier import DTYPES, Classifier, check_labels, default_backbone, read_metrics
from expnet.seeding import seed_everything


def task_help() -> str:
    """What a task option takes, from the data registry (read when the parser is built, so a task
    registered after import shows too)."""
    return expnet.data.describe_tasks()


def add_command(subparsers, name: str, run: Callable[[argparse.Namespace], int], help: str, description: str | None = None):
    """A subcommand's parser, dispatched to ``run``."""
    parser = subparsers.add_parser(name, help=help, description=description)
    parser.set_defaults(func=run)
    return parser


def add_classifier(parser: argparse.ArgumentParser, help: str = "classifier folder or Hugging Face name") -> None:
    parser.add_argument("--classifier", required=True, help=help)


def add_data(parser: argparse.ArgumentParser, required: bool = True, help: str | None = None) -> None:
    """--data (a task or a JSONL file), --data-dir and --split: where a command's examples come from."""
    parser.add_argument("--data", required=required, help=help or task_help())
    add_data_dir(parser)
    parser.add_argument("--split", default=None, help="split for --data (default: the task's evaluation split)")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--seed, --device and --trust-remote-code: how any command that loads a model runs it."""
    add_seed(parser)
    add_device(parser)
    add_trust_remote_code(parser)


def add_seed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=seed_value, default=0, help="random seed; the same seed gives the same numbers on CPU (default 0)")


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
    parser.add_argument(
        "--dtype", choices=DTYPES, default="float32", action=_DtypeAction,
        help="the classifier's weights in this precision (default float32; bfloat16/float16 halve memory on CUDA, "
        "scores are still computed in float32; auto: bfloat16 or float16 on CUDA, float32 elsewhere)",
    )


class _DtypeAction(argparse.Action):
    """--dtype; fine-tuning trains in float32 only, so finetune refuses half precision at once."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values != "float32" and parser.prog.split()[-1] == "finetune":
            parser.error(f"--dtype {values}: fine-tuning runs in float32 only; explain the result with --dtype {values}")
        setattr(namespace, self.dest, values)


def load_classifier(name_or_path: str, args: argparse.Namespace) -> Classifier:
    """The classifier a command names, on --device in --dtype, running model code only with --trust-remote-code."""
    return Classifier.load(
        name_or_path, device=args.device, trust_remote_code=args.trust_remote_code, dtype=getattr(args, "dtype", None)
    )


def _number(text: str, convert) -> int | float | None:
    """``convert(text)``, or None when it is not a number: the caller's own range error then names
    what the flag expects (a bare ValueError would print "invalid seed_value value: 'x'")."""
    try:
        return convert(text)
    except ValueError:
        return None


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(value)


def seed_value(text: str) -> int:
    """A seed every generator accepts (numpy's take 0 to 2**32 - 1)."""
    value = _number(text, int)
    if value is None or not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{text!r} is not a seed: give a whole number from 0 to {2**32 - 1}")
    return int(value)


def positive_float(text: str) -> float:
    value = _number(text, float)
    if value is None or not 0 < value < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return float(value)


def parse_layers(text: str, words: tuple[str, ...]) -> str | list[int]:
    """A ``--layers`` value: one of ``words`` (like "all") or comma-separated 0-based indices."""
    if text.strip() in words:
        return text.strip()
    layers = [_number(part, int) for part in text.split(",") if part.strip()]
    if not layers or None in layers:
        raise ExpnetError(
            f"--layers {text!r}: use {' or '.join(map(repr, words))}, or comma-separated 0-based layer indices like 2,5"
        )
    return layers  # type: ignore[return-value]  # no None left


def start(args: argparse.Namespace) -> None:
    """Seed every generator before a command does any work."""
    seed_everything(getattr(args, "seed", 0))


def load_limited(task: str, split: str | None, data_dir, purpose: str, max_examples: int | None, classifier_dir=None, seed: int = 0):
    """A seeded draw of ``max_examples`` of ``task``'s ``split`` (default: its ``purpose``'s), in
    file order. For a JSONL file that ``classifier_dir`` was fine-tuned on, only the part that
    suits ``purpose`` (``finetuned_part``)."""
    examples = load_examples(task, split, data_dir, purpose=purpose)
    if not examples:
        raise ExpnetError(f"no examples in {task} (split {split or 'default'}); check --data-dir and --split")
    if classifier_dir is not None:
        examples = finetuned_part(task, examples, classifier_dir, purpose)
    return seeded_draw(examples, max_examples, f"{seed}:{task_name(task)}:{split}:{purpose}")


def jsonl_split_record(path: str, examples: list[RationaleExample], seed: int) -> dict:
    """What ``expnet finetune`` saves in metrics.json of a JSONL file it split (``finetuned_part``)."""
    return {"file": str(Path(path).resolve()), "seed": seed, "eval_fraction": expnet.data.JSONL_EVAL_FRACTION, "examples": json_digest([e.id for e in examples])}


def finetuned_part(task: str, examples: list[RationaleExample], classifier_dir, purpose: str) -> list[RationaleExample]:
    """A JSONL file the classifier was fine-tuned on (its metrics.json says so, for these very
    examples): its held-out part for evaluation, the part it trained on for ExpNet's training
    (as the benchmark does); otherwise the examples as they are. Scoring the whole file would
    score the classifier on texts it trained on, and an ExpNet trained on it on texts it saw."""
    folder = Path(classifier_dir)
    record = read_metrics(folder).get("jsonl_split") if data_file(task) is not None and folder.is_dir() else None
    if not isinstance(record, dict) or record != jsonl_split_record(task, examples, record.get("seed")):
        return examples
    evaluation, training = expnet.data.jsonl_split(examples, task_name(task), record["eval_fraction"], record["seed"])
    chosen, what = (evaluation, "held-out") if purpose == "evaluation" else (training, "training")
    print(
        f"expnet: note: {classifier_dir} was fine-tuned on {len(training)} of the {len(examples)} examples of {task}; "
        f"using its {what} part ({len(chosen)} examples)",
        file=sys.stderr,
    )
    return chosen


def require_rationales(examples: list[RationaleExample], task: str, split: str | None) -> None:
    """Refuse data in which no example carries a word rationale (training or scoring on it
    would have nothing to learn from or compare with), naming where the rationales are."""
    if any(any(mask) for example in examples for mask in example.rationales):
        return
    if any(example.has_rationale for example in examples):
        raise ExpnetError(f"no example of {task} marks any word in its rationales (every mask is all 0); check the data's masks")
    if data_file(task) is not None:
        raise ExpnetError(f"{task} has no word rationales; give a file whose lines carry 'rationale' or 'rationales'")
    with_rationales = expnet.data.get_task_spec(task).rationale_splits
    if not with_rationales:
        raise ExpnetError(
            f"{task} has no word rationales, so there is no agreement with people to score; use a task that has "
            "them, or a JSONL file whose lines carry 'rationale'"
        )
    raise ExpnetError(f"{task} split {split!r} carries no word rationales; use --split {or_list(with_rationales)}")


def evaluation_examples(args: argparse.Namespace, classifier: Classifier, need_rationales: bool) -> list[RationaleExample]:
    """A seeded draw of --max-examples of --data's --split (default: its evaluation split), checked
    against the classifier's labels (and to carry rationales, where the command scores them)."""
    examples = load_limited(args.data, args.split, args.data_dir, "evaluation", args.max_examples, args.classifier, args.seed)
    if need_rationales:
        require_rationales(examples, args.data, args.split)
    check_labels(classifier, examples)
    return examples


def classifier_record(name: str | Path) -> str:
    """A classifier as results record it: a local folder by its whole path (a relative one says
    nothing once the file is elsewhere), a hub name as given."""
    return str(Path(name).resolve()) if Path(name).is_dir() else str(name)


def data_description(args: argparse.Namespace) -> tuple[str, str]:
    """(task or file, split) as results record them: the split by its name, the default one too."""
    if args.split:
        return task_name(args.data), args.split
    if data_file(args.data) is not None:
        return task_name(args.data), "the whole file (or its held-out part for a classifier fine-tuned on it)"
    return task_name(args.data), split_for(expnet.data.get_task_spec(args.data), "evaluation")


# What 'expnet finetune' writes: save_pretrained's model and tokenizer files (sharded or not, of
# any tokenizer family), and metrics.json.
_FINETUNE_FILES = re.compile(
    r"(config|generation_config|metrics|tokenizer|tokenizer_config|special_tokens_map|added_tokens|vocab"
    r"|model\.safetensors\.index)\.json|model(-\d+-of-\d+)?\.safetensors|vocab\.txt|merges\.txt"
    r"|(spiece|tokenizer|sentencepiece\.bpe)\.model|chat_template\.(jinja|json)"
)
_DIAGNOSE_FILES = re.compile(r"diagnostics\.json|report\.html|(permutation|adversarial|correlation|uniform)\.png")


def _holds_only(folder: Path, marker: str, names: re.Pattern) -> bool:
    """``folder`` has ``marker`` and nothing a command writing ``names`` would not have written:
    the folder is replaced whole, so a file of the user's beside them would be lost."""
    return (folder / marker).is_file() and all(names.fullmatch(p.name) for p in folder.iterdir())


def _finetune_output(folder: Path) -> bool:
    return (folder / "config.json").is_file() and _holds_only(folder, "metrics.json", _FINETUNE_FILES)


def _tree_of(root: Path, written: Callable[[Path], bool]) -> bool:
    """Every folder under ``root`` that holds files is one ``written`` recognises (what interrupted
    writes leave aside): a file of the user's anywhere in it would be replaced or deleted."""
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if not (is_leftover(name) or is_checkpoint(name))]
        if any(not is_leftover(name) for name in files) and not written(Path(folder)):
            return False
    return True


def _only_suffix(suffix: str) -> Callable[[Path], bool]:
    return lambda folder: all(p.name.endswith(suffix) or is_leftover(p.name) for p in folder.iterdir() if not p.is_dir())


def _expnet_store(folder: Path) -> bool:
    """A benchmark's trained ExpNet, or the folder of them with each one's ``NAME.key.json``."""
    return holds_only_expnet_files(folder) or _only_suffix(".key.json")(folder)


# What 'expnet benchmark' and 'expnet demo' write at the top of --out, and what each subfolder holds.
_BENCHMARK_TREE: dict[str, Callable[[Path], bool] | None] = {
    "config.json": None, "results.json": None, "results.csv": None, "leaderboard.md": None, "report.html": None,
    "cache": _only_suffix(".json"), "classifiers": _finetune_output, "expnets": _expnet_store,
    "plots": _only_suffix(".png"),
}  # fmt: skip
_DEMO_TREE: dict[str, Callable[[Path], bool] | None] = {
    "results.json": None, "report.html": None, "classifiers": _finetune_output, "expnet": holds_only_expnet_files,
}  # fmt: skip


def _written_tree(folder: Path, tree: dict[str, Callable[[Path], bool] | None]) -> bool:
    """``folder`` holds only the files and subfolders of ``tree`` (and leftovers of interrupted
    writes), each subfolder only what its check recognises."""
    for entry in folder.iterdir():
        if is_leftover(entry.name) or is_checkpoint(entry.name):
            continue
        if entry.name not in tree or (tree[entry.name] is None) == entry.is_dir():
            return False
        check = tree[entry.name]
        if check is not None and not _tree_of(entry, check):
            return False
    return True


def _benchmark_output(folder: Path) -> bool:
    """A benchmark's --out: its config.json (written before any work) and only what it writes."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    started = isinstance(config, dict) and {"tasks", "explainers", "candidates"} <= set(config)
    return started and _written_tree(folder, _BENCHMARK_TREE)


# How each command recognises a folder it wrote before, which it may replace without --overwrite.
PREVIOUS_OUTPUT: dict[str, Callable[[Path], bool]] = {
    "train": holds_only_expnet_files,
    "finetune": _finetune_output,
    "diagnose": lambda folder: _holds_only(folder, "diagnostics.json", _DIAGNOSE_FILES),
    "concepts": lambda folder: (folder / "tcav.json").is_file(),
    # These two resume from what they left in --out (a cache, cached classifiers).
    "benchmark": _benchmark_output,
    "demo": lambda folder: (folder / "classifiers").is_dir() and _written_tree(folder, _DEMO_TREE),
}


def add_out_folder(parser: argparse.ArgumentParser, help: str, default: str | None = None) -> None:
    parser.add_argument("--out", required=default is None, default=default, help=help)
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --out even if it holds files this command did not write (never an input, never the current folder)",
    )


def check_out_folder(args: argparse.Namespace, inputs: Iterable[str | Path | None]) -> Path:
    """The --out folder, refused before any work starts if writing it could destroy something.

    Outputs are replaced whole, so --out must not be a file, an input (or hold one, or sit inside
    an input folder), the current folder or one holding it, or a folder of unrelated files
    (unless --overwrite). A folder this command wrote before is replaced without asking.
    """
    out = Path(args.out)
    recover_directory(out)  # a killed earlier run's output is put back, so it is recognised below
    write_target(out)  # a symbolic link to nothing is refused now, not after the work
    if out.exists() and not out.is_dir():
        raise ExpnetError(f"--out {args.out} is a file; give a folder path")
    here = Path.cwd().resolve()
    if out.resolve() == here or out.resolve() in here.parents:
        raise ExpnetError(f"--out {args.out} is the current folder or holds it; it would be replaced whole: give a new folder")
    _refuse_inputs(out, f"--out {args.out}", inputs)
    _require_writable(out, f"--out {args.out}")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite and not PREVIOUS_OUTPUT[args.command](out):
        raise ExpnetError(
            f"--out {args.out} holds other files (not written by 'expnet {args.command}'), which writing there could "
            "replace or delete: give a new or empty folder, or pass --overwrite to write there anyway"
        )
    return out


def data_file(task: str | None) -> str | None:
    """The path a --task/--data value reads, or None for a built-in task (a name, not a path)."""
    return None if task in expnet.data.TASKS else task


def add_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action="store_true",
        help="show a progress bar on stderr even when it is not a terminal (default: only on a terminal; never for one batch)",
    )


def show_progress(args: argparse.Namespace) -> bool:
    """A bar on a terminal, or when asked: a log file or pipe would fill with carriage returns."""
    return args.progress or sys.stderr.isatty()


def add_overwrite_file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--overwrite", action="store_true", help="replace output files even if expnet did not write them (never an input)"
    )


def check_out_file(
    path: str | Path | None, flag: str, inputs: Iterable[str | Path | None] = (), overwrite: bool = False
) -> Path | None:
    """A file output (None when not asked for), refused before any work starts if it is a folder,
    sits under a file, is one of the inputs, cannot be written, or is a file expnet did not write
    (unless ``overwrite``): an explanation never replaces someone's notes."""
    if path is None:
        return None
    out, label = Path(path), f"{flag} {path}"
    if out.is_dir():
        raise ExpnetError(f"{label} is a folder; give a file path")
    write_target(out)  # a symbolic link to nothing is refused now, not after the work
    _refuse_inputs(out, label, inputs, nested=False)
    _require_writable(out, label)
    if out.is_file() and not overwrite and not _is_expnet_file(out):
        raise ExpnetError(f"{label} is a file expnet did not write; give a new path, or pass --overwrite to replace it")
    return out


# The first line of a text explanation, and the keys of the first row of each JSON Lines output.
_TEXT_OUTPUT = re.compile(r"\[[^\]\n]+\] predicted ")
_JSONL_KEYS = ({"id", "words", "scores", "explainer"}, {"line", "id", "reason"})


def _is_expnet_file(path: Path) -> bool:
    """Whether ``path`` looks like an output of an expnet command (explanations as text, JSON,
    HTML, Parquet or JSON Lines; evaluation results; corpus sidecars), so it may be replaced."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return b"expnet" in (pq.read_schema(path).metadata or {})
        if path.stat().st_size == 0:
            return True  # nothing to lose
        with path.open(encoding="utf-8", errors="replace") as handle:
            head = handle.read(1 << 16)
        if head.startswith("<!DOCTYPE html>"):
            return '<meta name="generator" content="expnet">' in head
        if _TEXT_OUTPUT.match(head):
            return True
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            return isinstance(data, dict) and ("expnet_version" in data or {"explainers", "settings", "comparisons"} <= set(data))
        first = json.loads(head.split("\n", 1)[0])
        return isinstance(first, dict) and any(keys <= set(first) for keys in _JSONL_KEYS)
    except Exception:  # noqa: BLE001 (unreadable or not ours in any way: not expnet's)
        return False


def _local_paths(inputs: Iterable[str | Path | None]) -> Iterator[tuple[str | Path, Path]]:
    """``(as given, resolved)`` for the inputs that are local paths (not hub or task names)."""
    for source in inputs:
        # "" is no path ("a,,b" has an empty name): Path("") would be the current folder.
        if source is not None and str(source) != "" and Path(source).exists():
            yield source, Path(source).resolve()


def _shipped() -> list[Path]:
    """What ships with the install, an input of every command whether named or not: the default
    backbone's package and expnet's own (its samples and pretrained ExpNet)."""
    return [Path(default_backbone()).parent, Path(__file__).resolve().parents[1]]


def _refuse_inputs(out: Path, label: str, inputs: Iterable[str | Path | None], nested: bool = True) -> None:
    """An output equal to an input would destroy it; so would a folder output (``nested``,
    replaced whole) holding an input or inside an input folder, and a file output replacing a
    file of an input folder (a new file beside a classifier harms nothing)."""
    resolved = out.resolve()
    for source, path in _local_paths([*inputs, *_shipped()]):
        in_input_folder = path.is_dir() and path in resolved.parents
        if nested:
            overlaps = resolved in path.parents or in_input_folder
        else:
            overlaps = in_input_folder and out.exists()
        if resolved == path or overlaps:
            raise ExpnetError(f"{label} overlaps the input {source}; writing there would destroy it: give a path of its own")


def _require_writable(out: Path, label: str) -> None:
    """Outputs are staged beside their path, so the nearest existing folder above it must be writable."""
    parent = out.resolve().parent
    anchor = next(folder for folder in (parent, *parent.parents) if folder.exists())
    if not anchor.is_dir():
        raise ExpnetError(f"{label}: {anchor} is a file, not a folder; give a path under a folder")
    if not os.access(anchor, os.W_OK):
        raise ExpnetError(f"{label}: no permission to write in {anchor}; choose a folder you can write to")


