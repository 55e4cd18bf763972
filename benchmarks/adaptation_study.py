"""ExpNet + unlabelled target texts, side by side with plain transfer, on one held-out task.

    python benchmarks/adaptation_study.py --data-dir DATA --classifiers runs/full --held-out hatexplain

Leave one task out, as the benchmark does: ExpNet (the transfer recipe) learns the other tasks'
explainer-training rationales, each with its own classifier (CLASSIFIERS/clf-<task>, fine-tuned
with benchmarks/full.toml's settings). The adapted ExpNet also learns teacher targets on the
held-out task's classifier-training texts (no rationales; a seeded draw of --max-unlabelled),
explained by the held-out classifier. Both are scored on the benchmark's evaluation draw of the
held-out task (same seed, same examples), next to the strongest fast baselines, with paired
bootstrap 95% intervals of each ExpNet minus the best baseline. Top-k uses the human rationale
rate of the training tasks, as in the benchmark. Writes benchmarks/results/adaptation/<task>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from expnet.benchmark.presets import DEFAULTS
from expnet.benchmark.tasks import sample
from expnet.cli.common import positive_int
from expnet.cli.main import invocation, run_script
from expnet.data import load_examples
from expnet.evaluation import run_explainer, score_run
from expnet.explainers import get_explainer
from expnet.explainers.distillation import TeacherSettings, train_with_unlabelled
from expnet.io import atomic_write_json
from expnet.metrics.bootstrap import compare_with_best
from expnet.models.classifier import Classifier
from expnet.network.training import recipe_settings
from expnet.report.format import interval

TASKS = ("hatexplain", "sst2", "movies")
BASELINES = ("saliency", "smoothgrad", "raw_attention", "alti", "globenc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--classifiers", required=True, help="folder with clf-hatexplain, clf-sst2, clf-movies")
    parser.add_argument("--held-out", choices=TASKS, required=True)
    parser.add_argument("--teachers", default="saliency,alti", help="comma-separated teacher explainers")
    parser.add_argument("--max-unlabelled", type=positive_int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/adaptation")
    args = parser.parse_args()
    torch.set_num_threads(1)
    held, seed = args.held_out, args.seed
    classifiers = {t: Classifier.load(Path(args.classifiers) / f"clf-{t}") for t in TASKS}
    sources = []
    for task in TASKS:
        if task != held:
            annotated = [e for e in load_examples(task, None, args.data_dir, purpose="explainer_train") if e.has_rationale]
            sources.append((classifiers[task], sample(annotated, DEFAULTS["tasks"][task]["expnet_train_max_examples"], f"{seed}:{task}:explainer-train")))
    unlabelled = [e.words for e in load_examples(held, None, args.data_dir, purpose="classifier_train") if e.words]
    annotated = [e for e in load_examples(held, None, args.data_dir, purpose="evaluation") if e.has_rationale]
    evaluation = sample(annotated, DEFAULTS["tasks"][held]["max_examples"], f"{seed}:{held}:evaluation")
    classifier, words = classifiers[held], [e.words for e in evaluation]
    settings = recipe_settings("transfer")
    teacher = TeacherSettings(tuple(args.teachers.split(",")), max_texts=args.max_unlabelled)

    started = time.perf_counter()
    expnets = {
        "expnet (transfer)": train_with_unlabelled(sources, [], settings, teacher, seed=seed),
        "expnet + unlabelled target texts": train_with_unlabelled(sources, [(classifier, unlabelled)], settings, teacher, seed=seed),
    }
    rate = expnets["expnet (transfer)"].rationale_rate
    rows = {}
    for name in BASELINES:
        budget = {"n_samples": 10} if name == "smoothgrad" else {}
        rows[name] = score_run(run_explainer(classifier, get_explainer(name, seed=seed, **budget), words), evaluation, rate, "majority")
    baselines = {name: (row["f1_topk"], row["per_example"]) for name, row in rows.items()}
    auroc_baselines = {name: (row["auroc"], row["per_example"]) for name, row in rows.items()}
    results = {"command": invocation(), "seed": seed, "held_out": held, "n_examples": len(evaluation), "rate": rate, "teacher": teacher.to_dict(), "baselines": {}, "expnet": {}}
    for name, row in rows.items():
        results["baselines"][name] = {"f1_topk": row["f1_topk"], "auroc": row["auroc"], "examples_per_second": row["examples_per_second"]}
    for name, expnet in expnets.items():
        row = score_run(run_explainer(classifier, expnet, words), evaluation, rate, "majority")
        f1 = compare_with_best("f1_topk", name, row["per_example"], baselines)
        auroc = compare_with_best("auroc", name, row["per_example"], auroc_baselines)
        results["expnet"][name] = {
            "f1_topk": row["f1_topk"], "auroc": row["auroc"], "examples_per_second": row["examples_per_second"],
            "history": expnet.history.get("unlabelled"), "vs_best_f1_topk": f1.to_dict(), "vs_best_auroc": auroc.to_dict(),
        }
    results["seconds"] = time.perf_counter() - started
    Path(args.out).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(args.out) / f"{held}.json", results)
    print(f"{held}: {len(evaluation)} examples, top-k rate {rate:.3f}")
    for name, row in {**results["baselines"], **results["expnet"]}.items():
        line = f"  {name:34s} F1@k {row['f1_topk']:.3f}  AUROC {row['auroc']:.3f}"
        if "vs_best_f1_topk" in row:
            c1, c2 = row["vs_best_f1_topk"], row["vs_best_auroc"]
            line += f"  vs {c1['baseline']} {c1['difference']:+.3f} {interval(c1['low'], c1['high'])} {c1['verdict']}"
            line += f"; vs {c2['baseline']} {c2['difference']:+.3f} {interval(c2['low'], c2['high'])} {c2['verdict']}"
        print(line)
    print(json.dumps({"seconds": round(results["seconds"])}))


if __name__ == "__main__":
    sys.exit(run_script(main))
