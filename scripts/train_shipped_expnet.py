"""Train the ExpNet that ships inside the package (src/expnet/pretrained/expnet-minilm-transfer).

    python scripts/train_shipped_expnet.py --data-dir DATA --classifiers runs/full --recipe transfer --out FOLDER

Sources: the three rationale tasks' explainer-training splits (HateXplain validation posts, SST-2
treebank training sentences, ERASER movie-review training reviews; at most the benchmark's
``expnet_train_max_examples`` of each, drawn with the benchmark's seed), each explained by its own
classifier fine-tuned from the bundled MiniLM with the benchmark's fine-tune settings
(CLASSIFIERS/clf-<task>). The same as ``expnet train --recipe RECIPE --task hatexplain=... --task
sst2=... --task movies=...`` on those examples. The word features of every task are computed once
(``--bank``, a safetensors file) so another recipe can be fitted from them in seconds.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from expnet.benchmark.presets import DEFAULTS
from expnet.data import load_examples
from expnet.explainers.learned import ExpNetExplainer
from expnet.models.classifier import Classifier
from expnet.network.features import FeatureSpec
from expnet.network.training import (
    RECIPES,
    WordDataset,
    collect_features,
    recipe_settings,
    select_dataset,
    settings_spec,
)

TASKS = ("hatexplain", "sst2", "movies")


def examples_of(task: str, data_dir: str, seed: int) -> list:
    annotated = [e for e in load_examples(task, None, data_dir, purpose="explainer_train") if e.has_rationale]
    random.Random(f"{seed}:{task}:shipped").shuffle(annotated)
    return annotated[: DEFAULTS["tasks"][task]["expnet_train_max_examples"]]


def wide_spec(classifier: Classifier) -> FeatureSpec:
    """Raw columns for every transfer recipe: readout-row attention and head norms of the last
    layer, and every contribution signal."""
    spec = settings_spec(recipe_settings("transfer"), classifier).raw()
    return spec.union(FeatureSpec.for_model(classifier.num_layers, classifier.num_heads, directions=["cls_to_token"], signals=["decompx"]))


def bank(task: str, classifier: Classifier, data_dir: str, seed: int, path: Path) -> tuple[WordDataset, FeatureSpec]:
    spec = wide_spec(classifier)
    if path.is_file():
        tensors = load_file(str(path))
        n = len([k for k in tensors if k.startswith("features.")])
        dataset = WordDataset([tensors[f"features.{i}"] for i in range(n)], [tensors[f"labels.{i}"] for i in range(n)], [task] * n)
        return dataset, spec
    dataset = collect_features(classifier, examples_of(task, data_dir, seed), spec, recipe_settings("transfer"))
    tensors = {f"features.{i}": f.contiguous() for i, f in enumerate(dataset.features)}
    tensors.update({f"labels.{i}": y.contiguous() for i, y in enumerate(dataset.labels)})
    save_file(tensors, str(path))
    return dataset, spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--classifiers", required=True, help="folder with clf-hatexplain, clf-sst2, clf-movies")
    parser.add_argument("--recipe", default="transfer", choices=tuple(RECIPES))
    parser.add_argument("--bank", default="runs/shipped-bank", help="folder for the cached word features")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    Path(args.bank).mkdir(parents=True, exist_ok=True)
    settings = recipe_settings(args.recipe)
    dataset, classifiers = WordDataset(), []
    for task in TASKS:
        classifier = Classifier.load(Path(args.classifiers) / f"clf-{task}")
        classifiers.append(classifier)
        source, source_spec = bank(task, classifier, args.data_dir, args.seed, Path(args.bank) / f"{task}.safetensors")
        spec = settings_spec(settings, classifier)
        dataset.extend(select_dataset(source, source_spec, spec))
        print(f"{task}: {len(source)} texts")
    expnet = ExpNetExplainer.fit(dataset, spec, settings, seed=args.seed).trained_on(classifiers)
    expnet.save_pretrained(args.out)
    print(f"saved {args.out}: {expnet.history}")


if __name__ == "__main__":
    main()
