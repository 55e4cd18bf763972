"""expnet demo: the whole story on the shipped samples, offline, in a few minutes.

Fine-tunes small classifiers (cached in OUT/classifiers), trains ExpNet on SST-2 and movie-review
rationales, evaluates it on HateXplain, a task it never saw, against raw attention and random,
prints the table and writes OUT/results.json and OUT/report.html.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from expnet.cli.common import add_data_dir, add_device, add_seed, start
from expnet.data import load_examples
from expnet.evaluation import evaluate
from expnet.explainers import get_explainer
from expnet.io import atomic_write_json, atomic_write_text
from expnet.models.finetune import FinetuneSettings
from expnet.network.training import ExpNetSettings, train_expnet
from expnet.pipeline import ensure_classifier
from expnet.report.pages import evaluation_page
from expnet.report.tables import print_results

# Small budgets: the demo must finish in minutes on two CPU cores.
DEMO_CLASSIFIERS = {
    "hatexplain": FinetuneSettings(epochs=2, max_length=96, batch_size=16, learning_rate=8e-5),
    "sst2": FinetuneSettings(epochs=2, max_length=64, batch_size=16, learning_rate=8e-5),
    "movies": FinetuneSettings(epochs=3, max_length=256, batch_size=8, learning_rate=8e-5),
}
TRAIN_TASKS = ("sst2", "movies")
HELD_OUT = "hatexplain"


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="fine-tune, train ExpNet and evaluate it on an unseen task (shipped samples)")
    parser.add_argument("--out", default="runs/demo", help="output folder (classifiers are cached here)")
    add_data_dir(parser)
    add_seed(parser)
    add_device(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    start(args)
    console = Console(stderr=True)
    out = Path(args.out)
    started = time.perf_counter()
    classifiers = {}
    for task, settings in DEMO_CLASSIFIERS.items():
        classifier, metrics = ensure_classifier(task, out / "classifiers" / task, settings, args.data_dir, seed=args.seed, device=args.device)
        classifiers[task] = classifier
        console.print(f"classifier {task}: dev accuracy {metrics['dev_accuracy']:.3f}" + (" (cached)" if metrics["cached"] else ""))
    sources = [(classifiers[t], load_examples(t, None, args.data_dir, purpose="explainer_train")) for t in TRAIN_TASKS]
    expnet = train_expnet(sources, ExpNetSettings(), seed=args.seed)
    expnet.save_pretrained(out / "expnet")
    console.print(f"ExpNet trained on {', '.join(TRAIN_TASKS)}: {expnet.history['train_examples']} examples")
    examples = load_examples(HELD_OUT, None, args.data_dir, purpose="evaluation")
    explainers = {"expnet": expnet, "raw_attention": get_explainer("raw_attention"), "random": get_explainer("random", seed=args.seed)}
    # Baselines get top-k at the rate ExpNet's training rationales had: the same information.
    result = evaluate(classifiers[HELD_OUT], examples, explainers, expnet.rationale_rate, batch_size=16)
    result.settings = {"held_out": HELD_OUT, "trained_on": list(TRAIN_TASKS), "seed": args.seed, "rationale_rate_source": "ExpNet training rationales"}
    data = result.to_dict()
    atomic_write_json(out / "results.json", data)
    atomic_write_text(out / "report.html", evaluation_page(result, examples, "majority", f"expnet demo: ExpNet trained on {' + '.join(TRAIN_TASKS)}, explaining {HELD_OUT}", 10))
    print_results(data, f"{HELD_OUT} (unseen by ExpNet): {len(examples)} examples", console)
    console.print(f"wrote {out / 'results.json'} and {out / 'report.html'} in {time.perf_counter() - started:.0f} s")
    return 0
