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
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save

from expnet.benchmark.cache import classifier_fingerprint, examples_digest
from expnet.benchmark.presets import DEFAULTS
from expnet.cli.main import run_script
from expnet.data import load_examples
from expnet.explainers.learned import ExpNetExplainer, check_save_folder
from expnet.io import atomic_write_bytes, json_digest
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
    """The task's word features, from ``path`` when it holds those of this classifier, these
    examples and this spec (its key, in the file's metadata), else computed and saved there."""
    spec = wide_spec(classifier)
    examples = examples_of(task, data_dir, seed)
    key = json_digest({
        "classifier": classifier_fingerprint(classifier.source), "examples": examples_digest(examples),
        "spec": spec.to_dict(), "settings": recipe_settings("transfer").to_dict(),
    })
    if path.is_file():
        with safe_open(str(path), framework="pt") as stored:
            if (stored.metadata() or {}).get("key") == key:
                tensors = {name: stored.get_tensor(name) for name in stored.keys()}  # noqa: SIM118 (not a dict)
                n = len([k for k in tensors if k.startswith("features.")])
                features, labels = [tensors[f"features.{i}"] for i in range(n)], [tensors[f"labels.{i}"] for i in range(n)]
                return WordDataset(features, labels, [task] * n), spec
        print(f"{task}: {path} holds the features of another classifier, draw or spec; computing them again")
    dataset = collect_features(classifier, examples, spec, recipe_settings("transfer"))
    tensors = {f"features.{i}": f.contiguous() for i, f in enumerate(dataset.features)}
    tensors.update({f"labels.{i}": y.contiguous() for i, y in enumerate(dataset.labels)})
    atomic_write_bytes(path, save(tensors, metadata={"key": key}))  # a kill never leaves half a bank
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
    check_save_folder(Path(args.out))
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
    sys.exit(run_script(main))
