"""Does fine-tuning change what each layer's readout attends to? Why every layer's features do not transfer.

    python benchmarks/layer_agreement.py --classifiers runs/full --data-dir DATA \
        --out benchmarks/results/layer_agreement.json

ExpNet trained with every layer's readout row (``--layers all``) beats the best baseline on the
task it was trained on and transfers worse than the last layer alone (docs/transfer-research.md,
"Every layer's readout row"). This measures why. On each task's evaluation draw
(``benchmarks/full.toml``), for every layer: the readout row's attention to each word (the mean
over heads, the words the classifier read), read by the task's own classifier
(``CLASSIFIERS/clf-TASK``), by the two classifiers fine-tuned on the other tasks and by the
backbone before any fine-tuning. Per layer it reports the mean per-text Spearman correlation of
the own classifier's attention with the others' and with the backbone's, and each text's AUROC
of that attention against people's marks.

High agreement means the layer attends as the backbone does, whatever the task: its features are
a property of the pretrained model, and the weights a learner gives them can only encode which
of the backbone's favourite words people mark in the source tasks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from expnet.benchmark.config import load_config
from expnet.benchmark.tasks import prepare_task
from expnet.cli.common import positive_int
from expnet.cli.main import invocation, run_script
from expnet.io import atomic_write_json
from expnet.metrics.plausibility import plausibility
from expnet.models.classifier import Classifier, default_backbone
from expnet.network.gradient_features import batch_features
from expnet.network.training import recipe_settings, settings_spec


@torch.no_grad()
def layer_attention(classifier: Classifier, texts: list[list[str]], batch_size: int = 16) -> list[np.ndarray]:
    """Per text: [words, layers] readout-row attention, the mean over heads (NaN: not read)."""
    spec = settings_spec(recipe_settings("transfer", layers="all", views=("absolute",)), classifier)
    columns = [spec.names().index(f"L{layer}.mean.cls_to_token") for layer in range(classifier.num_layers)]
    out = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        batch = classifier.encode(chunk)
        features, _ = batch_features(classifier, batch, spec)
        for i, words in enumerate(chunk):
            attention = features[i, : len(words)][:, columns].float().numpy()
            attention[~batch.word_scored[i][: len(words)]] = np.nan
            out.append(attention)
    return out


def mean_spearman(own: list[np.ndarray], other: list[np.ndarray], layer: int) -> float:
    """Over texts with 3+ words read by both (classifiers cut texts at their own lengths)."""
    values = []
    for a, b in zip(own, other, strict=True):
        both = ~np.isnan(a[:, layer]) & ~np.isnan(b[:, layer])
        if both.sum() > 2:
            values.append(spearmanr(a[both, layer], b[both, layer])[0])
    return float(np.nanmean(values))


def mean_auroc(gold: list[np.ndarray], attention: list[np.ndarray], layer: int) -> float:
    """expnet's per-text AUROC over each text's read words, averaged over the texts with both
    classes there (the rationale argument is for F1, unused here)."""
    read = [~np.isnan(a[:, layer]) for a in attention]
    kept = [i for i, words in enumerate(read) if words.any()]
    return plausibility(
        [gold[i][read[i]] for i in kept],
        [attention[i][read[i], layer] for i in kept],
        [np.zeros(int(read[i].sum())) for i in kept],
    ).auroc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifiers", required=True, help="folder with clf-hatexplain, clf-sst2, clf-movies")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--config", default="benchmarks/full.toml")
    parser.add_argument(
        "--backbone", default=None, help="the classifiers' backbone before fine-tuning (default: the bundled MiniLM)"
    )
    parser.add_argument("--max-examples", type=positive_int, default=None, help="at most N texts a task (a dry run)")
    parser.add_argument("--seed", type=int, default=0, help="accepted for the house rule: nothing here is random")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    config = load_config(args.config)
    names = [task.name for task in config.tasks]
    readers = {name: Classifier.load(Path(args.classifiers) / f"clf-{name}", device="cpu") for name in names}
    # The pretrained encoder with an untrained head: its attention does not depend on the head.
    backbone = Classifier.load(args.backbone or default_backbone(), device="cpu", require_classifier=False)
    result: dict = {"command": invocation(), "tasks": {}}
    print(f"{'task':10s} layer  rho other clf  rho backbone  AUROC own  AUROC backbone")
    for task in config.tasks:
        examples = prepare_task(task, config, args.data_dir).evaluation[slice(args.max_examples)]
        texts = [e.words for e in examples]
        own_reader = readers[task.name]
        own = layer_attention(own_reader, texts)
        others = {name: layer_attention(c, texts) for name, c in readers.items() if name != task.name}
        before = layer_attention(
            Classifier.from_parts(backbone.model, backbone.tokenizer, own_reader.max_length), texts
        )
        gold = [e.gold_mask("majority") for e in examples]
        rows = []
        for layer in range(own_reader.num_layers):
            row = {
                "layer": layer,
                "spearman_other_classifiers": float(np.mean([mean_spearman(own, o, layer) for o in others.values()])),
                "spearman_backbone": mean_spearman(own, before, layer),
                "auroc_own": mean_auroc(gold, own, layer),
                "auroc_backbone": mean_auroc(gold, before, layer),
            }
            rows.append(row)
            print(
                f"{task.name:10s} L{layer:<4d} {row['spearman_other_classifiers']:13.3f}  {row['spearman_backbone']:12.3f}"
                f"  {row['auroc_own']:9.3f}  {row['auroc_backbone']:14.3f}",
                flush=True,
            )
        result["tasks"][task.name] = {"examples": len(examples), "layers": rows}
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    sys.exit(run_script(main))
