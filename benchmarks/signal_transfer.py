"""Which inputs carry between tasks when ExpNet's learner reads them? Leave one task out.

    python benchmarks/signal_transfer.py --classifiers runs/full --data-dir DATA \
        --out benchmarks/results/signal_transfer.json

The benchmark's draws (``benchmarks/full.toml``: ExpNet's training rationales and each task's
evaluation draw) and classifiers (``CLASSIFIERS/clf-TASK``, fine-tuned with full.toml's
settings). For every word, from its own task's classifier: the shipped recipe's attention
features (recipe ``transfer``), its embedding-layer hidden state (the mean over its pieces: a
lexical input, what the word is rather than what the classifier does with it), and the scores
of saliency, ALTI, GlobEnc and raw attention, each in ExpNet's three views (absolute times the
text's length, z-score and rank within the text). One learner, ExpNet's (``fit_model`` with the
``transfer`` recipe's listwise loss), is trained for each input set on the two other tasks'
rationales (correctly classified texts only) and explains the held-out task's evaluation draw.

Each row gives F1@k (k at the training texts' mean rationale rate) and AUROC over the words the
classifier read, and the paired bootstrap 95% interval of the row minus the best of the four
baseline explainers used as they are (SmoothGrad, within 0.003 of saliency in the benchmark at 8x
its cost, is left out). Per-example values are left out of the saved JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from expnet.benchmark.config import load_config
from expnet.benchmark.tasks import prepare_task
from expnet.cli.common import positive_int
from expnet.cli.main import invocation, run_script
from expnet.explainers import get_explainer
from expnet.io import atomic_write_json
from expnet.metrics.bootstrap import paired_bootstrap, verdict
from expnet.metrics.plausibility import plausibility, top_k_mask
from expnet.models.classifier import Classifier
from expnet.network.features import rank_within_text, within_text
from expnet.network.gradient_features import batch_features
from expnet.network.training import WordDataset, fit_model, recipe_settings, settings_spec
from expnet.words import pool_to_words

BASELINES = ("saliency", "alti", "globenc", "raw_attention")
INPUT_SETS = {
    "attention (the shipped recipe)": ("attention",),
    "embedding hidden state": ("hidden",),
    "attention + hidden state": ("attention", "hidden"),
    "saliency": ("saliency",),
    "alti": ("alti",),
    "attention + alti": ("attention", "alti"),
    "attention + saliency": ("attention", "saliency"),
    "attention + alti + globenc + saliency": ("attention", "alti", "globenc", "saliency"),
}


def scalar_views(scores: torch.Tensor) -> torch.Tensor:
    """[W] scores of one text's read words -> [W, 3]: absolute x length, z-score, rank."""
    column = scores.view(1, -1, 1)
    valid = torch.ones(1, scores.numel(), dtype=torch.bool)
    return torch.cat([column[0] * scores.numel(), within_text(column, valid)[0], rank_within_text(column, valid)[0]], -1)


def collect(classifier: Classifier, examples, batch_size: int = 16) -> list[dict]:
    """Per example: every input of its read words, their gold mask and whether it is classified right."""
    spec = settings_spec(recipe_settings("transfer"), classifier)
    explainers = {name: get_explainer(name) for name in BASELINES}
    rows = []
    for start in tqdm(range(0, len(examples), batch_size), desc="inputs", leave=False):
        chunk = examples[start : start + batch_size]
        batch = classifier.encode([e.words for e in chunk])
        with torch.no_grad():
            attention, logits = batch_features(classifier, batch, spec)
            # A second pass: the features' SDPA pass reads only the readout rows, no hidden states.
            embedded = classifier.forward(batch, output_hidden_states=True).hidden_states[0]
            hidden = pool_to_words(embedded.float(), batch, "mean")
        scores = {name: explainer.explain_batch(classifier, batch, None).word_scores.detach().float().cpu() for name, explainer in explainers.items()}
        for i, example in enumerate(chunk):
            read = torch.from_numpy(batch.word_scored[i])
            n = len(example.words)
            row = {
                "attention": attention[i, :n][read].float(),
                "hidden": hidden[i, :n][read].float(),
                "gold": torch.from_numpy(example.gold_mask("majority").astype(np.float32))[read],
                "correct": int(logits[i].argmax()) == example.label,
            }
            for name, values in scores.items():
                row[name] = torch.nan_to_num(values[i, :n])[read]
            rows.append(row)
    return rows


def inputs(row: dict, parts: tuple[str, ...]) -> torch.Tensor:
    return torch.cat([row[p] if p in ("attention", "hidden") else scalar_views(row[p]) for p in parts], -1)


class _Columns:
    """What ``fit_model`` reads of a feature spec: the width (no anchor feature here)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def names(self) -> list[str]:
        return [str(i) for i in range(self.dim)]


def per_example(rows: list[dict], scores: list[np.ndarray], rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Each evaluation text's F1@k and AUROC (NaN for a single-class text)."""
    f1, auroc = [], []
    for row, score in zip(rows, scores, strict=True):
        gold = row["gold"].numpy().astype(np.int8)
        result = plausibility([gold], [score], [top_k_mask(score, rate)])
        f1.append(result.f1)
        auroc.append(result.auroc)
    return np.array(f1), np.array(auroc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifiers", required=True, help="folder with clf-hatexplain, clf-sst2, clf-movies")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--config", default="benchmarks/full.toml")
    parser.add_argument("--max-examples", type=positive_int, default=None, help="at most N texts of each part (a dry run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    config = load_config(args.config)
    data = {}
    for task in config.tasks:
        prepared = prepare_task(task, config, args.data_dir)
        classifier = Classifier.load(Path(args.classifiers) / f"clf-{task.name}", device="cpu")
        cap = slice(args.max_examples)
        data[task.name] = {
            "train": collect(classifier, (prepared.fit + prepared.validation)[cap]),
            "evaluation": collect(classifier, prepared.evaluation[cap]),
        }
    settings = recipe_settings("transfer")
    result: dict = {"command": invocation(), "tasks": {}}
    for held_out in data:
        training = [r for t in data if t != held_out for r in data[t]["train"] if r["correct"] and r["gold"].numel()]
        rate = float(np.mean([float(r["gold"].mean()) for r in training]))
        evaluation = [r for r in data[held_out]["evaluation"] if r["gold"].numel() and r["gold"].sum() > 0]
        baselines = {name: per_example(evaluation, [r[name].numpy().astype(np.float64) for r in evaluation], rate) for name in BASELINES}
        best = {m: max(BASELINES, key=lambda name: np.nanmean(baselines[name][m])) for m in (0, 1)}
        rows = {}
        for label, parts in INPUT_SETS.items():
            dataset = WordDataset(features=[inputs(r, parts) for r in training], labels=[r["gold"] for r in training], tasks=["source"] * len(training))
            model, _ = fit_model(dataset, _Columns(dataset.features[0].shape[1]), settings, args.seed)
            with torch.no_grad():
                scores = [model(inputs(r, parts)).numpy().astype(np.float64) for r in evaluation]
            f1, auroc = per_example(evaluation, scores, rate)
            row = {"f1_topk": float(np.mean(f1)), "auroc": float(np.nanmean(auroc))}
            for m, metric, values in ((0, "f1_topk", f1), (1, "auroc", auroc)):
                mean, low, high = paired_bootstrap(values, baselines[best[m]][m], seed=args.seed)
                row[f"{metric}_minus_best"] = {"best": best[m], "mean": mean, "interval": [low, high], "verdict": verdict(low, high)}
            rows[label] = row
            said = "  ".join(
                f"{metric} {row[metric]:.3f} ({row[metric + '_minus_best']['mean']:+.3f} {row[metric + '_minus_best']['verdict']})"
                for metric in ("f1_topk", "auroc")
            )
            print(f"{held_out:10s} {label:38s} {said}", flush=True)
        result["tasks"][held_out] = {
            "examples": len(evaluation),
            "training_texts": len(training),
            "rate": rate,
            "baselines": {name: {"f1_topk": float(np.mean(v[0])), "auroc": float(np.nanmean(v[1]))} for name, v in baselines.items()},
            "learned": rows,
        }
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    sys.exit(run_script(main))
