"""expnet train: train ExpNet on the rationales of one or more tasks, each with its classifier."""

from __future__ import annotations

import json
from pathlib import Path

import expnet.data
from expnet.cli import common
from expnet.corpus.readers import Record, read_rows
from expnet.errors import ExpnetError
from expnet.explainers.distillation import TeacherSettings, train_with_unlabelled
from expnet.explainers.learned import ExpNetExplainer
from expnet.network.features import WORD_PROPERTIES
from expnet.network.training import RECIPES, recipe_settings


def parse_task_pairs(pairs: list[str], option: str = "--task") -> list[tuple[str, str]]:
    parsed: list[tuple[str, str]] = []
    seen: dict[str, str] = {}  # a task (a file by its resolved path) -> how it was first given
    for pair in pairs:
        task, sep, classifier = pair.partition("=")
        if not sep or not task or not classifier:
            raise ExpnetError(f"{option} {pair!r} must be TASK=CLASSIFIER_DIR, e.g. {option} sst2=runs/clf-sst2")
        # The same texts twice would be trained on twice, and copies of training texts would
        # land in the validation split that picks the epoch.
        identity = str(Path(task).resolve()) if common.data_file(task) else task
        if identity in seen:
            raise ExpnetError(f"{option} {pair!r} gives the task of {option} {seen[identity]!r} again; give each task once")
        seen[identity] = pair
        parsed.append((task, classifier))
    return parsed


def unlabelled_texts(source: str, data_dir) -> list[list[str]]:
    """A task's classifier-training texts, else a file of texts (txt, JSONL, CSV or Parquet with
    a ``text`` field, as corpus mode reads them), else a rationale JSONL file's words; labels and
    rationales, where there are any, are not used."""
    if source in expnet.data.TASKS:
        return [e.words for e in common.load_limited(source, None, data_dir, "classifier_train", None)]
    if not Path(source).is_file():
        raise ExpnetError(f"--unlabelled {source}: no such file and no task of that name ({expnet.data.describe_tasks()})")
    rows = list(read_rows(source, id_field=None))  # texts to learn from: no id needed
    texts = [row.words for row in rows if isinstance(row, Record)]
    bad = [row for row in rows if not isinstance(row, Record)]
    if texts and bad:  # a dropped row would change what ExpNet learns from, unseen
        raise ExpnetError(f"--unlabelled {source}: line {bad[0].line}: {bad[0].reason} ({len(bad)} such row(s)); fix or remove them")
    if texts:
        return texts
    why = f"line {bad[0].line}: {bad[0].reason}" if bad else "no rows"
    if source.endswith(".jsonl"):  # no 'text' field: a task file ("tokens", "label")?
        try:
            return [e.words for e in common.load_limited(source, None, data_dir, "classifier_train", None)]
        except ExpnetError as error:
            raise ExpnetError(f"--unlabelled {source}: neither texts ({why}) nor a task file ({error})") from None
    raise ExpnetError(f"--unlabelled {source}: no usable text in it ({why}); give one text per line, or a 'text' field")


def register(subparsers) -> None:
    parser = common.add_command(subparsers, "train", run, "train an ExpNet on human rationales")
    parser.add_argument(
        "--task",
        action="append",
        required=True,
        metavar="TASK=CLF_DIR",
        help=f"a rationale task ({common.task_help()}) and the classifier fine-tuned on it (repeatable)",
    )
    common.add_data_dir(parser)
    common.add_out_folder(parser, "folder to save the ExpNet to (config.json + safetensors)")
    parser.add_argument("--split", default=None, help="rationale split to train on (default: each task's explainer-training split)")
    parser.add_argument("--max-examples", type=common.positive_int, default=None, help="a seeded random draw of at most N examples per task")
    parser.add_argument("--recipe", choices=tuple(RECIPES), default="transfer", help="feature and learner settings: transfer (default: what carried best to unseen tasks; any architecture), transfer_norms (plus head norms; BERT, RoBERTa, ELECTRA) or paper")
    parser.add_argument("--layers", default=None, help="attention layers for features: last (the recipes' choice: it carries best to other tasks), all (better when training on the task you will explain: README), or indices like 4,5")
    parser.add_argument("--in-text", action="store_true", help="also give ExpNet each feature standardised within its text")
    parser.add_argument(
        "--word-properties", default="", metavar="LIST",
        help=f"also give ExpNet properties of the words themselves, comma-separated: {','.join(WORD_PROPERTIES)} (or all); English stop words",
    )
    parser.add_argument("--include-wrong", action="store_true", help="also train on examples the classifier gets wrong")
    parser.add_argument("--gold-rule", choices=("majority", "union"), default="majority", help="how annotator masks combine (default majority)")
    parser.add_argument("--batch-size", type=common.positive_int, default=32)
    adapt = parser.add_argument_group("adaptation to unlabelled texts of your task (no rationales)")
    adapt.add_argument(
        "--unlabelled",
        action="append",
        default=[],
        metavar="TEXTS=CLF_DIR",
        help="texts (a txt/JSONL/CSV/Parquet file, or a task's classifier-training texts) and the classifier they will be "
        "explained with; a teacher explainer labels them (repeatable; needs a listwise recipe such as transfer)",
    )
    adapt.add_argument("--teacher", default=None, help="teacher explainer(s), comma-separated (default saliency)")
    adapt.add_argument(
        "--max-unlabelled", type=common.positive_int, default=None,
        help=f"at most N texts of each --unlabelled, a seeded draw (default {TeacherSettings.max_texts})",
    )
    common.add_progress(parser)
    common.add_model_options(parser)


def parse_word_properties(value: str) -> tuple[str, ...]:
    chosen = WORD_PROPERTIES if value == "all" else tuple(p.strip() for p in value.split(",") if p.strip())
    unknown = [p for p in chosen if p not in WORD_PROPERTIES]
    if unknown:
        raise ExpnetError(f"--word-properties: unknown property {unknown[0]!r}; use some of {','.join(WORD_PROPERTIES)} or all")
    return chosen


def run(args) -> int:
    common.start(args)
    if not args.unlabelled and (args.teacher is not None or args.max_unlabelled is not None):
        raise ExpnetError("--teacher and --max-unlabelled label --unlabelled texts; add --unlabelled TEXTS=CLASSIFIER or leave them out")
    pairs = parse_task_pairs(args.task)
    extra = parse_task_pairs(args.unlabelled, "--unlabelled")
    inputs = [path for task, clf in pairs for path in (common.data_file(task), clf)] + [p for texts, clf in extra for p in (common.data_file(texts), clf)]
    out = common.check_out_folder(args, [args.data_dir, *inputs])
    chosen = {"layers": common.parse_layers(args.layers, ("last", "all"))} if args.layers is not None else {}
    if args.in_text:
        if RECIPES[args.recipe].get("views"):  # its views win: --in-text would be recorded, not used
            raise ExpnetError(
                f"--in-text adds within-text z-scores, which the {args.recipe} recipe's views ({', '.join(RECIPES[args.recipe]['views'])}) "
                "already give; leave it out, or use --recipe paper"
            )
        chosen["in_text"] = True
    if args.word_properties:
        chosen["word_properties"] = parse_word_properties(args.word_properties)
    settings = recipe_settings(
        args.recipe, only_correct=not args.include_wrong, gold_rule=args.gold_rule, feature_batch_size=args.batch_size, **chosen
    )
    sources = []
    for task, classifier_dir in pairs:
        classifier = common.load_classifier(classifier_dir, args)
        examples = common.load_limited(task, args.split, args.data_dir, "explainer_train", args.max_examples, classifier_dir, args.seed)
        common.require_rationales(examples, task, args.split)
        common.check_labels(classifier, examples)
        sources.append((classifier, examples))
    if args.unlabelled:
        given = {"teachers": tuple(t for t in args.teacher.split(",") if t)} if args.teacher is not None else {}
        if args.max_unlabelled is not None:
            given["max_texts"] = args.max_unlabelled
        teacher = TeacherSettings(**given)  # what is not given: TeacherSettings' defaults
        unlabelled = [
            (common.load_classifier(clf, args), unlabelled_texts(texts, args.data_dir))
            for texts, clf in extra
        ]
        explainer = train_with_unlabelled(sources, unlabelled, settings, teacher, seed=args.seed, progress=common.show_progress(args))
    else:
        explainer = ExpNetExplainer.train(sources, settings, seed=args.seed, progress=common.show_progress(args))
    explainer.save_pretrained(out, overwrite=True)  # --out was checked above (check_out_folder)
    print(json.dumps({"out": str(out), **explainer.history}))
    return 0
