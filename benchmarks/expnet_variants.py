"""Choose ExpNet's feature variant on validation data, in the leave-one-task-out setting.

For each task, the task's own classifier is run once over its explainer-training rationales and
its richest attention features are cached (all layers, both directions); every variant is a
column subset (or a per-text transform) of that cache, so a sweep costs one forward pass per
example. For each held-out task H and variant V, ExpNet is fitted on the other tasks' examples
(correct predictions only) and scored on H's explainer-training rationales: these are validation
data for H, never its evaluation (test) split.

    python benchmarks/expnet_variants.py --classifiers runs/full --data-dir DATA --out variants.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from expnet.data import load_examples
from expnet.explainers.learned import ExpNetExplainer
from expnet.metrics.plausibility import plausibility, top_k_mask
from expnet.models.classifier import Classifier
from expnet.network.features import FeatureSpec, word_features
from expnet.network.training import ExpNetSettings, WordDataset, fit_model
from expnet.seeding import seed_everything

TASKS = ("hatexplain", "sst2", "movies")


@torch.no_grad()
def cache_features(classifier: Classifier, task: str, data_dir: str, max_examples: int | None, batch_size: int = 32):
    """All-layer features, gold masks and correctness for a task's annotated training rationales."""
    examples = [e for e in load_examples(task, None, data_dir, purpose="explainer_train") if e.has_rationale]
    examples = examples[:max_examples] if max_examples else examples
    spec = FeatureSpec.for_model(classifier.num_layers, classifier.num_heads, "all")
    features, golds, correct = [], [], []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = classifier.encode([e.words for e in chunk])
        output = classifier.forward(batch, output_attentions=True)
        values = word_features(output.attentions, batch, spec).float().cpu()
        predictions = output.logits.argmax(-1).cpu().numpy()
        for i, example in enumerate(chunk):
            scored = batch.word_scored[i]
            features.append(values[i, : len(example.words)][torch.from_numpy(scored)])
            golds.append(example.gold_mask()[scored])
            correct.append(bool(predictions[i] == example.label))
    return {"spec": spec, "features": features, "golds": golds, "correct": correct}


def columns(spec: FeatureSpec, layers: str, directions: tuple[str, ...]) -> list[int]:
    chosen = spec.layers[-1:] if layers == "last" else spec.layers
    names = spec.names()
    keep = {f"L{layer}.h{h}.{d}" for layer in chosen for d in directions for h in range(spec.num_heads)}
    return [i for i, name in enumerate(names) if name in keep]


def transform(x: torch.Tensor, variant: dict) -> torch.Tensor:
    x = x[:, variant["columns"]]
    if variant.get("log"):
        x = torch.log(x.clamp(min=1e-6))
    if variant.get("in_text"):
        # Append each feature relative to its text: (x - text mean) / text std. Rankings inside a
        # text are what plausibility measures, and this removes per-task offsets.
        centred = (x - x.mean(0, keepdim=True)) / (x.std(0, keepdim=True, unbiased=False) + 1e-6)
        x = torch.cat([x, centred], dim=1)
    return x


def score(model, cache, variant, rate):
    golds, scores, own, topk = [], [], [], []
    with torch.no_grad():
        for x, gold in zip(cache["features"], cache["golds"], strict=True):
            if len(gold) == 0:
                continue
            p = torch.sigmoid(model(transform(x, variant))).numpy()
            selected = (p >= 0.5).astype(np.int8)
            if not selected.any():
                selected[int(p.argmax())] = 1
            golds.append(gold)
            scores.append(p)
            own.append(selected)
            topk.append(top_k_mask(p, rate))
    a, b = plausibility(golds, scores, own), plausibility(golds, scores, topk)
    return {"f1": a.f1, "f1_topk": b.f1, "auroc": a.auroc, "auprc": a.auprc}


def fit_variant(caches, spec, variant, held_out, settings, seed):
    """ExpNet fitted on every task but ``held_out`` (correct predictions only), and its rate."""
    train = WordDataset()
    for task in TASKS:
        if task == held_out:
            continue
        cache = caches[task]
        for x, gold, ok in zip(cache["features"], cache["golds"], cache["correct"], strict=True):
            if ok and len(gold):
                train.features.append(transform(x, variant))
                train.labels.append(torch.from_numpy(gold.astype(np.float32)))
                train.tasks.append(task)
    layout = replace(spec, layers=(0,), num_heads=train.features[0].shape[1], directions=("cls_to_token",))
    model, history = fit_model(train, layout, settings, seed)
    history["tasks"] = sorted(set(train.tasks))
    history["rationale_rate"] = float(np.mean([float(y.mean()) for y in train.labels]))
    model.history = history
    return model, history["rationale_rate"]


def save_models(caches, spec, variant, settings, args) -> None:
    """Save the chosen variant's three leave-one-task-out ExpNets as loadable folders."""
    if variant.get("log"):
        raise SystemExit("the log transform is a sweep-only variant; choose one FeatureSpec can express")
    names = [spec.names()[i] for i in variant["columns"]]
    layers = sorted({int(name.split(".")[0][1:]) for name in names})
    directions = tuple(d for d in ("cls_to_token", "token_to_cls") if any(name.endswith(d) for name in names))
    real = FeatureSpec.for_model(spec.num_layers, spec.num_heads, layers, directions, in_text=bool(variant.get("in_text")))
    for held_out in TASKS:
        if (Path(args.save_dir) / f"expnet-no-{held_out}" / "config.json").is_file():
            continue  # already saved: keep it (a rerun resumes)
        model, _ = fit_variant(caches, spec, variant, held_out, settings, args.seed)
        explainer = ExpNetExplainer(model, real, settings, model.history)
        folder = explainer.save_pretrained(Path(args.save_dir) / f"expnet-no-{held_out}")
        print(f"saved {folder} ({model.history['train_examples']} examples from {model.history['tasks']})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifiers", required=True, help="folder with clf-hatexplain, clf-sst2, clf-movies")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-examples", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", default=None, help="fit this variant (a name printed by the sweep) and save its ExpNets")
    parser.add_argument("--save-dir", default=".", help="where --save writes expnet-no-TASK folders")
    args = parser.parse_args()
    seed_everything(args.seed)
    started = time.perf_counter()
    caches = {}
    for task in TASKS:
        stored = Path(args.out).with_name(f"features-{task}-{args.max_examples or 'all'}.pt")
        if stored.is_file():  # tensors only, written by this script: safe to reload
            caches[task] = torch.load(stored, weights_only=False)
        else:
            classifier = Classifier.load(Path(args.classifiers) / f"clf-{task}")
            caches[task] = cache_features(classifier, task, args.data_dir, args.max_examples)
            torch.save(caches[task], stored)
        print(f"cached {task}: {len(caches[task]['features'])} examples, {time.perf_counter() - started:.0f} s", flush=True)
    spec = caches[TASKS[0]]["spec"]
    both = ("cls_to_token", "token_to_cls")
    variants = {
        "paper (last layer, both directions)": {"columns": columns(spec, "last", both)},
        "last layer, CLS->token only": {"columns": columns(spec, "last", ("cls_to_token",))},
        "last layer, token->CLS only": {"columns": columns(spec, "last", ("token_to_cls",))},
        "all layers": {"columns": columns(spec, "all", both)},
        "last layer + in-text": {"columns": columns(spec, "last", both), "in_text": True},
        "all layers + in-text": {"columns": columns(spec, "all", both), "in_text": True},
        "all layers + log + in-text": {"columns": columns(spec, "all", both), "log": True, "in_text": True},
    }
    settings = ExpNetSettings()
    if args.save:
        save_models(caches, spec, variants[args.save], settings, args)
        return
    results = {}
    for name, variant in variants.items():
        results[name] = {}
        for held_out in TASKS:
            model, rate = fit_variant(caches, spec, variant, held_out, settings, args.seed)
            results[name][held_out] = score(model, caches[held_out], variant, rate)
        mean = {k: float(np.mean([results[name][t][k] for t in TASKS])) for k in ("f1", "f1_topk", "auroc", "auprc")}
        results[name]["mean"] = mean
        cells = "  ".join(f"{t}: F1 {results[name][t]['f1']:.3f} AUROC {results[name][t]['auroc']:.3f}" for t in TASKS)
        print(f"{name:40s} {cells}  | mean F1 {mean['f1']:.3f} AUROC {mean['auroc']:.3f}", flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
