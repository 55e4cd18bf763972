"""How far could any learned mix of the baselines go? An in-domain ceiling for issue 11's goal.

    python benchmarks/fusion_ceiling.py --bench runs/full-bench --data-dir DATA --out benchmarks/results/fusion_ceiling.json

Reads the baselines' cached explanations of each held-out task's evaluation draw (the benchmark's
``--out`` folder, ``cache/explanations``; each explainer's entry for its current source code) and
fits a logistic regression on every baseline's scores at once - ExpNet's within-text rank and
z-score views of each, the ranks of the two neighbouring words, and ExpNet's word properties
(``expnet.network.features``) - **on the
evaluation texts themselves** (5 folds by text, each text scored by the model that did not see it).
That is far more than a transferred ExpNet may use (the held-out task's own rationales, gradient
explainers at any cost), so its F1@k bounds what a learned mapping of these signals can reach.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from expnet.benchmark.cache import canonical, classifier_fingerprint, examples_digest, source_digest
from expnet.cli.main import invocation, run_script
from expnet.data import load_examples
from expnet.explainers import get_explainer
from expnet.io import atomic_write_json
from expnet.metrics.plausibility import plausibility, top_k_mask
from expnet.network.features import WORD_PROPERTIES, rank_within_text, within_text, word_property_values

NOT_BASELINES = ("expnet", "random")


def cached_scores(bench: Path, task: str, run: dict, examples: list) -> dict[str, list[np.ndarray]]:
    """Each baseline's word scores of the run's evaluation draw, from the cache entry of its
    current source code, this classifier and these examples (the one the leaderboard shows; a
    cache also holds the entries of older code, other classifiers and other draws)."""
    wanted = {
        "task": task, "split": run["evaluation_split"], "n": len(examples), "examples": examples_digest(examples),
        "classifier": canonical(classifier_fingerprint(run["classifier"]["folder"])),
    }
    runs: dict[str, list[np.ndarray]] = {}
    for path in sorted((bench / "cache" / "explanations").glob("*.json")):
        entry = json.loads(path.read_text())
        key = entry["key"]
        name = key["explainer"]["name"]
        if name in NOT_BASELINES or any(key.get(field) != value for field, value in wanted.items()):
            continue
        if key["explainer"].get("code") != source_digest(get_explainer(name)):
            continue
        if name in runs:
            raise SystemExit(f"two cached runs of {name} on {task} in {bench} (other settings): give a benchmark folder of one run")
        runs[name] = [
            np.array([np.nan if s is None else s for s in e["scores"]], dtype=np.float64) for e in entry["payload"]["explanations"]
        ]
    return runs


def word_matrix(words: list[str], scores: list[np.ndarray]) -> np.ndarray:
    """[W, F]: per baseline its rank and z-score within the text (ExpNet's views; unscored words
    0) and its neighbours' ranks; then the word properties."""
    values = torch.from_numpy(np.stack(scores, axis=-1)).unsqueeze(0)  # [1, W, baselines]
    valid = ~torch.isnan(values).any(-1)
    values = torch.nan_to_num(values)
    rank = rank_within_text(values, valid)[0].numpy()
    zscore = within_text(values, valid)[0].numpy()
    before = np.vstack([np.zeros((1, rank.shape[1])), rank[:-1]])
    after = np.vstack([rank[1:], np.zeros((1, rank.shape[1]))])
    properties = word_property_values([words], WORD_PROPERTIES)[0].numpy()
    return np.hstack([rank, zscore, before, after, properties])


def ceiling(task: str, run: dict, bench: Path, data_dir: str, seed: int, folds: int = 5) -> dict:
    """``run``: the task's entry of the benchmark's results.json (its examples and top-k rate)."""
    by_id = {e.id: e for e in load_examples(task, None, data_dir, purpose="evaluation")}
    examples = [by_id[i] for i in run["example_ids"]]
    golds = [np.asarray(e.gold_mask("majority")) for e in examples]
    runs = {
        name: scores for name, scores in cached_scores(bench, task, run, examples).items()
        if all(len(s) == len(g) for s, g in zip(scores, golds, strict=True))
    }
    if not runs:
        raise SystemExit(
            f"no cached baseline explanations of {task} in {bench} for this classifier and draw: run expnet benchmark first"
        )
    rate = run["rationale_rate"]

    def scored(scores: list[np.ndarray]) -> dict:
        result = plausibility(golds, scores, [top_k_mask(s, rate) for s in scores])
        return {"f1_topk": result.f1, "auroc": result.auroc}

    names = sorted(runs)
    matrices = [word_matrix(e.words, [runs[n][i] for n in names]) for i, e in enumerate(examples)]
    fold_of = np.arange(len(examples)) % folds
    predicted: list[np.ndarray] = [np.empty(0)] * len(examples)
    for fold in range(folds):
        train = [i for i in range(len(examples)) if fold_of[i] != fold]
        model = LogisticRegression(C=0.1, max_iter=3000, random_state=seed)
        model.fit(np.vstack([matrices[i] for i in train]), np.concatenate([golds[i] for i in train]))
        for i in np.flatnonzero(fold_of == fold):
            # Words the classifier never saw (cut by truncation) stay unscored, as for every explainer.
            predicted[i] = np.where(np.isnan(runs[names[0]][i]), np.nan, model.predict_proba(matrices[i])[:, 1])
    baselines = {name: scored(runs[name]) for name in names}
    best_f1 = max(baselines, key=lambda n: baselines[n]["f1_topk"])
    best_auroc = max(baselines, key=lambda n: baselines[n]["auroc"])
    fusion = scored(predicted)
    return {
        "task": task, "n_examples": len(examples), "top_k_rate": rate, "baselines": baselines,
        "best_f1_topk": {"explainer": best_f1, **baselines[best_f1]},
        "best_auroc": {"explainer": best_auroc, **baselines[best_auroc]},
        "in_domain_fusion": fusion,
        "fusion_f1_topk_ratio": fusion["f1_topk"] / baselines[best_f1]["f1_topk"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", required=True, help="the benchmark's --out folder (results.json and cache/)")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tasks = json.loads((Path(args.bench) / "results.json").read_text())["tasks"]
    results = [ceiling(task, run, Path(args.bench), args.data_dir, args.seed) for task, run in tasks.items()]
    for r in results:
        print(
            f"{r['task']:10s} {len(r['baselines'])} baselines | best F1@k {r['best_f1_topk']['explainer']} "
            f"{r['best_f1_topk']['f1_topk']:.3f}, best AUROC {r['best_auroc']['explainer']} {r['best_auroc']['auroc']:.3f} | "
            f"in-domain fusion F1@k {r['in_domain_fusion']['f1_topk']:.3f} ({r['fusion_f1_topk_ratio']:.3f}x), "
            f"AUROC {r['in_domain_fusion']['auroc']:.3f}"
        )
    atomic_write_json(args.out, {"command": invocation(), "seed": args.seed, "tasks": results})


if __name__ == "__main__":
    sys.exit(run_script(main))
