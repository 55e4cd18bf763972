"""expnet demo: the whole story on the shipped samples, offline, in a few minutes.

Fine-tunes small classifiers (cached in OUT/classifiers), trains ExpNet (the transfer recipe) on
SST-2 and movie-review rationales, and compares it on HateXplain, a task it never saw, with every
registered explainer: the fast ones on every annotated post, the slow ones (perturbation family,
integrated gradients, SmoothGrad, attention flow, layer-wise value zeroing) on the first
``SLOW_EXAMPLES`` posts, where a second table compares everyone. Each table carries the paired
bootstrap interval of ExpNet minus the best other explainer. Writes OUT/results.json and
OUT/report.html.
"""

from __future__ import annotations

import time

from rich.console import Console

from expnet.cli.common import add_data_dir, add_device, add_out_folder, add_seed, check_out_folder, start
from expnet.data import load_examples
from expnet.evaluation import evaluate
from expnet.explainers import explainer_names, get_explainer
from expnet.explainers.registry import accepted_settings
from expnet.io import atomic_write_json, atomic_write_text
from expnet.models.finetune import FinetuneSettings
from expnet.network.training import recipe_settings, train_expnet
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
SLOW = {"integrated_gradients", "smoothgrad", "attention_flow", "value_zeroing_rollout"}
SLOW_FAMILIES = {"perturbation"}
SLOW_EXAMPLES = 20
DEMO_BUDGETS = {"n_samples": 50, "max_evals": 50, "n_steps": 10}
# Shapley sampling's samples are permutations, each one pass per word: 3, as in the benchmark.
DEMO_EXPLAINER_BUDGETS = {"shapley_sampling": {"n_samples": 3}}


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="fine-tune, train ExpNet and compare it with every explainer on an unseen task (shipped samples)")
    add_out_folder(parser, "output folder (classifiers are cached here; default runs/demo)", default="runs/demo")
    add_data_dir(parser)
    add_seed(parser)
    add_device(parser)
    parser.set_defaults(func=run)


def _explainer(name: str, seed: int):
    accepted = accepted_settings(name)
    budgets = {**DEMO_BUDGETS, **DEMO_EXPLAINER_BUDGETS.get(name, {})}
    return get_explainer(name, seed=seed, **{k: v for k, v in budgets.items() if k in accepted})


def run(args) -> int:
    start(args)
    console = Console(stderr=True)
    out = check_out_folder(args, [args.data_dir])
    started = time.perf_counter()
    classifiers = {}
    for task, settings in DEMO_CLASSIFIERS.items():
        classifier, metrics = ensure_classifier(task, out / "classifiers" / task, settings, args.data_dir, seed=args.seed, device=args.device)
        classifiers[task] = classifier
        console.print(f"classifier {task}: dev accuracy {metrics['dev_accuracy']:.3f}" + (" (cached)" if metrics["cached"] else ""))
    sources = [(classifiers[t], load_examples(t, None, args.data_dir, purpose="explainer_train")) for t in TRAIN_TASKS]
    expnet = train_expnet(sources, recipe_settings("transfer"), seed=args.seed)
    expnet.save_pretrained(out / "expnet")
    console.print(f"ExpNet (transfer recipe) trained on {', '.join(TRAIN_TASKS)}: {expnet.history['train_examples']} examples")
    examples = [e for e in load_examples(HELD_OUT, None, args.data_dir, purpose="evaluation") if e.has_rationale]
    infos = {name: get_explainer(name).info() for name in explainer_names()}
    slow = {n for n, info in infos.items() if n in SLOW or info.family in SLOW_FAMILIES}
    fast = {"expnet": expnet, **{n: _explainer(n, args.seed) for n in infos if n not in slow}}
    everyone = {**fast, **{n: _explainer(n, args.seed) for n in sorted(slow)}}
    # Baselines get top-k at the rate ExpNet's training rationales had: the same information.
    tables = {
        "all": (evaluate(classifiers[HELD_OUT], examples, fast, expnet.rationale_rate, batch_size=16, progress=True), examples),
        "slow": (evaluate(classifiers[HELD_OUT], examples[:SLOW_EXAMPLES], everyone, expnet.rationale_rate, batch_size=16, progress=True), examples[:SLOW_EXAMPLES]),
    }
    settings = {"held_out": HELD_OUT, "trained_on": list(TRAIN_TASKS), "seed": args.seed, "recipe": "transfer", "rationale_rate_source": "ExpNet training rationales", "budgets": DEMO_BUDGETS}
    data = {}
    for key, (result, _shown) in tables.items():
        result.settings = settings
        data[key] = result.to_dict()
    atomic_write_json(out / "results.json", data)
    title = f"expnet demo: ExpNet trained on {' + '.join(TRAIN_TASKS)}, explaining {HELD_OUT}"
    atomic_write_text(out / "report.html", evaluation_page(tables["all"][0], examples, "majority", title, 10))
    print_results(data["all"], f"{HELD_OUT} (unseen by ExpNet): {len(examples)} annotated posts, fast explainers", console)
    print_results(data["slow"], f"{HELD_OUT}: the first {SLOW_EXAMPLES} posts, every explainer (slow ones at demo budgets)", console)
    console.print(f"wrote {out / 'results.json'} and {out / 'report.html'} in {time.perf_counter() - started:.0f} s")
    return 0
