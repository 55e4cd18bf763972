"""expnet explain: word-level explanations of texts, as text, JSON (an ``ExplanationRun``) or an HTML page."""

from __future__ import annotations

import json
import sys
from dataclasses import fields
from pathlib import Path

from expnet.cli import common
from expnet.cli.explainer_settings import add_settings, parse_settings
from expnet.corpus import CorpusJob, explain_corpus
from expnet.corpus.runner import ENGINES
from expnet.corpus.writers import sidecars
from expnet.errors import ExpnetError
from expnet.explainers import get_explainer
from expnet.explainers.base import Explainer, Explanation
from expnet.explanation_run import ExplanationRun
from expnet.io import atomic_write_text, strict_json
from expnet.models.classifier import Classifier
from expnet.report import html
from expnet.words import split_text

FORMATS = ("text", "json", "html")


def register(subparsers) -> None:
    parser = common.add_command(subparsers, "explain", run, "explain texts (arguments, or one per line on stdin)")
    common.add_classifier(parser)
    parser.add_argument("--explainer", required=True, help="an ExpNet folder or an explainer name (see 'expnet explainers')")
    parser.add_argument(
        "--format", choices=FORMATS, default=None, help="default: the --out file's suffix (.json, .html), else text"
    )
    parser.add_argument("--out", default=None, help="write here instead of stdout (written atomically)")
    parser.add_argument("--target", default=None, help="class to explain, index or name (default: the predicted class)")
    parser.add_argument("--batch-size", type=common.positive_int, default=16)
    add_settings(parser, several=False)
    common.add_progress(parser)
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to explain; none: read one per line from stdin")
    corpus = parser.add_argument_group("corpus mode (--input and --output: a whole file, streamed and resumable)")
    corpus.add_argument("--input", default=None, help="a .txt (one text a line), .jsonl, .csv or .parquet file")
    corpus.add_argument("--output", default=None, help="a .parquet or .jsonl file; rerun the same command to resume")
    corpus.add_argument("--text-field", default="text", help="the text's field or column (jsonl, csv, parquet; default text)")
    corpus.add_argument("--id-field", default="id", help="the id's field or column (jsonl, csv, parquet; default id)")
    corpus.add_argument("--max-examples", type=common.positive_int, default=None, help="explain only the first N good rows")
    corpus.add_argument("--engine", choices=ENGINES, default="local", help="local (this process) or ray (needs expnet[ray])")
    corpus.add_argument("--num-workers", type=common.positive_int, default=1, help="Ray actors, each with its own model copy")
    corpus.add_argument("--address", default=None, help="join this Ray cluster (default: start a local Ray)")
    corpus.add_argument("--gpus-per-worker", type=common.positive_float, default=None, help="GPUs each Ray actor reserves")
    common.add_overwrite_file(parser)
    common.add_model_options(parser)


def stdin_texts() -> list[str]:
    """stdin's lines as texts: a byte-order mark is not part of the first word, and blank lines
    (a trailing one, gaps between paragraphs) are no texts, as corpus mode skips them."""
    lines = [line.rstrip("\r\n") for line in sys.stdin]
    if lines:
        lines[0] = lines[0].removeprefix("\ufeff")
    return [line for line in lines if line.strip()]


def read_texts(args) -> list[list[str]]:
    texts = args.texts if args.texts else stdin_texts()
    if not texts:
        raise ExpnetError("no text to explain: give TEXT arguments or lines on stdin")
    words = []
    for number, text in enumerate(texts, 1):
        if not text.strip():
            raise ExpnetError(f"text {number} is empty or blank: give at least one word to explain")
        try:  # Python reads bytes that are not UTF-8 (stdin, arguments) as lone surrogates
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ExpnetError(f"text {number} is not UTF-8 text (character {error.start + 1}); save it as UTF-8") from None
        words.append(split_text(text))
    return words


def render_text(explanations: list[Explanation]) -> str:
    lines = []
    for explanation in explanations:
        lines.append(
            f"[{explanation.explainer}] predicted {explanation.prediction_name} "
            f"(p={explanation.probabilities[explanation.prediction]:.3f}), explaining {explanation.target_name}"
        )
        parts = []
        for i, word in enumerate(explanation.words):
            # Three significant digits, not decimals: gradient-weighted scores of 1e-4 read as 0.000.
            score = f"{explanation.scores[i]:.3g}" if explanation.scored[i] else "cut" if explanation.cut_words[i] else "no tokens"
            mark = "*" if explanation.rationale is not None and explanation.rationale[i] else ""
            parts.append(f"{word}{mark}({score})")
        lines.append("  " + " ".join(parts))
    return "\n".join(lines) + "\n"


def render(explanations: list[Explanation], fmt: str, explainer: Explainer, classifier: Classifier) -> str:
    """``explainer``'s explanations as ``fmt``. JSON is the saved ``ExplanationRun`` (what
    ``ExplanationRun.load`` reads; the benchmark caches runs the same way), so it also says what
    made them: the classifier (a local folder by its whole path) and its precision, the explainer's
    name and settings, the seed and version."""
    if fmt == "json":
        saved = ExplanationRun.of(explainer, explanations, common.classifier_record(classifier.source), dtype=classifier.dtype_name)
        return json.dumps(strict_json(saved.to_dict()), indent=2, allow_nan=False) + "\n"
    if fmt == "html":
        body = "".join(html.explanation_block(e) for e in explanations)
        return html.page("expnet explanations", body)
    return render_text(explanations)


def warn_unscored(explanations: list[Explanation], max_length: int) -> None:
    """One warning per text with words left unscored, saying why: truncation, or words the
    tokenizer makes no piece of (only zero-width or control characters)."""
    for number, explanation in enumerate(explanations, 1):
        if explanation.truncated:
            print(
                f"expnet explain: warning: text {number} is longer than the classifier's {max_length}-token limit: "
                f"explained after truncation, {int(explanation.cut_words.sum())} word(s) not scored",
                file=sys.stderr,
            )
        tokenless = [word for word, empty in zip(explanation.words, explanation.tokenless, strict=True) if empty]
        if tokenless:
            print(
                f"expnet explain: warning: text {number}: {len(tokenless)} word(s) made only of characters the tokenizer "
                f"drops (zero-width or control characters, e.g. {tokenless[0]!r}) have no subword token: not scored",
                file=sys.stderr,
            )


# Corpus-mode options and their defaults: given without --input they would be ignored, silently.
CORPUS_OPTIONS = {"text_field": "text", "id_field": "id", "max_examples": None, "engine": "local"}
RAY_OPTIONS = {"num_workers": 1, "address": None, "gpus_per_worker": None}


def _given(args, defaults: dict) -> list[str]:
    return ["--" + name.replace("_", "-") for name, default in defaults.items() if getattr(args, name) != default]


def output_format(given: str | None, out: Path | None) -> str:
    """--format, else the --out file's suffix (a page saved as o.html is HTML), else text."""
    if given is not None:
        return given
    suffix = out.suffix.lower().lstrip(".") if out is not None else ""
    return suffix if suffix in FORMATS else "text"


def run(args) -> int:
    common.start(args)
    if args.input or args.output:
        return run_corpus(args)
    ignored = _given(args, CORPUS_OPTIONS | RAY_OPTIONS)
    if ignored:
        raise ExpnetError(f"{', '.join(ignored)} belong to corpus mode; give --input FILE and --output FILE, or leave them out")
    out = common.check_out_file(args.out, "--out", [args.classifier, args.explainer], args.overwrite)
    words = read_texts(args)
    classifier = common.load_classifier(args.classifier, args)
    settings = parse_settings(args.setting, [args.explainer])[args.explainer]
    explainer = get_explainer(args.explainer, batch_size=args.batch_size, seed=args.seed, **settings)
    targets = None if args.target is None else [classifier.label_id(args.target)] * len(words)
    explanations = explainer.explain(classifier, words, targets, progress=common.show_progress(args))
    warn_unscored(explanations, classifier.max_length)
    output = render(explanations, output_format(args.format, out), explainer, classifier)
    if out:
        atomic_write_text(out, output)
    else:
        sys.stdout.write(output)
    return 0


def run_corpus(args) -> int:
    if not (args.input and args.output):
        raise ExpnetError("corpus mode needs both --input FILE and --output FILE")
    if args.texts or args.out or args.target is not None or args.format is not None:
        raise ExpnetError("TEXT, --out, --target and --format are for texts on the command line; with --input, use --output")
    ignored = _given(args, RAY_OPTIONS)
    if ignored and args.engine != "ray":
        raise ExpnetError(f"{', '.join(ignored)} set up Ray workers; add --engine ray, or leave them out")
    inputs = [args.classifier, args.explainer, args.input]
    output = common.check_out_file(args.output, "--output", inputs, args.overwrite)
    for sidecar in sidecars(Path(args.output)):  # replaced at the end of the job: refused before its start
        common.check_out_file(sidecar, "--output's companion file", inputs, args.overwrite)
    # The options are named after the job's fields; those without an option keep their defaults.
    options = {f.name: getattr(args, f.name) for f in fields(CorpusJob) if f.name != "output" and hasattr(args, f.name)}
    settings = parse_settings(args.setting, [args.explainer])[args.explainer]
    job = CorpusJob(**options, output=output, explainer_settings=settings)
    progress = common.show_progress(args)
    summary = explain_corpus(job, args.engine, args.num_workers, args.address, args.gpus_per_worker, progress=progress)
    resumed = f" ({summary.resumed_rows} from an earlier run)" if summary.resumed_rows else ""
    print(
        f"expnet explain: {summary.rows} texts{resumed} -> {summary.output}; {summary.bad_rows} bad rows -> {summary.errors}; "
        f"{summary.seconds:.1f} s",
        file=sys.stderr,
    )
    return 0
