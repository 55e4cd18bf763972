"""expnet finetune: fine-tune a sequence classifier on a task's labels."""

from __future__ import annotations

import json
from pathlib import Path

from expnet.cli import common
from expnet.data import JSONL_EVAL_FRACTION, jsonl_split, load_examples, task_name
from expnet.io import atomic_write_json
from expnet.models.classifier import default_backbone, load_config, usable_positions
from expnet.models.finetune import FinetuneSettings, finetune

DEFAULT_MAX_LENGTH = 128


def register(subparsers) -> None:
    parser = common.add_command(subparsers, "finetune", run, "fine-tune a classifier and save it as a Hugging Face folder")
    parser.add_argument("--task", required=True, help=common.task_help())
    common.add_data_dir(parser)
    common.add_out_folder(parser, "folder to write the classifier to")
    parser.add_argument("--backbone", default=None, help="model name or folder (default: the bundled all-MiniLM-L6-v2)")
    parser.add_argument("--max-examples", type=common.positive_int, default=None, help="train on a seeded random draw of N examples")
    parser.add_argument("--epochs", type=common.positive_int, default=1)
    parser.add_argument(
        "--max-length", type=common.positive_int, default=None,
        help=f"tokens per text (default {DEFAULT_MAX_LENGTH}, or fewer if the backbone takes fewer)",
    )
    parser.add_argument("--batch-size", type=common.positive_int, default=16)
    parser.add_argument("--learning-rate", type=common.positive_float, default=5e-5)
    common.add_progress(parser)
    common.add_model_options(parser)


def run(args) -> int:
    common.start(args)
    backbone = args.backbone or default_backbone()
    out = common.check_out_folder(args, [args.backbone, common.data_file(args.task), args.data_dir])
    # Only a length the user asks for is checked against the backbone; the default adapts to it.
    max_length = args.max_length or min(
        DEFAULT_MAX_LENGTH, usable_positions(load_config(backbone, args.trust_remote_code))
    )
    if common.data_file(args.task):
        # A JSONL file has no dev split: its seeded evaluation part (the benchmark's) is held out,
        # so dev accuracy is measured on texts the classifier never trained on.
        everything = common.load_limited(args.task, None, args.data_dir, "classifier_train", None)
        dev, train = jsonl_split(everything, task_name(args.task), JSONL_EVAL_FRACTION, args.seed)  # finetune cuts to --max-examples
    else:
        train = common.load_limited(args.task, None, args.data_dir, "classifier_train", args.max_examples, seed=args.seed)
        dev = load_examples(args.task, None, args.data_dir, purpose="classifier_dev")
    settings = FinetuneSettings(
        epochs=args.epochs,
        max_length=max_length,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        max_examples=args.max_examples,
    )
    metrics = finetune(
        backbone,
        train,
        dev,
        train[0].label_names,
        out,
        settings,
        seed=args.seed,
        device=args.device,
        trust_remote_code=args.trust_remote_code,
        progress=common.show_progress(args),
    )
    if common.data_file(args.task):
        # evaluate, diagnose and train then take the part of the file that suits them.
        metrics["jsonl_split"] = common.jsonl_split_record(args.task, everything, args.seed)
        atomic_write_json(Path(out) / "metrics.json", {k: v for k, v in metrics.items() if k != "cached"})
    metrics["task"] = task_name(args.task)
    shown = ("task", "dev_accuracy", "dev_accuracy_interval", "dev_majority_accuracy", "dev_examples", "train_examples", "train_seconds")
    print(json.dumps({k: metrics[k] for k in shown if k in metrics}))
    return 0
