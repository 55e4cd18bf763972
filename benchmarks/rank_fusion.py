"""Does ExpNet plus a gradient explainer beat every baseline, at a gradient explainer's cost?

    python benchmarks/rank_fusion.py --classifier runs/full/clf-hatexplain --task hatexplain \
        --expnet EXPNET_TRAINED_ON_THE_OTHER_TASKS --data-dir DATA --max-examples 300 \
        --out benchmarks/results/rank_fusion_hatexplain.json

A fixed rule, so nothing task-specific has to transfer: each word's score is the weighted mean of
its percentile ranks within the text (``expnet.network.features.rank_within_text``) under the
fused explainers. Compared on a seeded draw of the task's evaluation split, with the strongest
baselines, by ``expnet.evaluation.evaluate`` (paired bootstrap intervals of each fusion and of
ExpNet against the best baseline). Per-example values are left out of the saved JSON.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from expnet.cli.common import positive_int
from expnet.cli.main import run_script
from expnet.data import load_examples, rationale_rate
from expnet.evaluation import compare_explainers, evaluate
from expnet.explainers import get_explainer
from expnet.explainers.base import BatchAttribution, Explainer
from expnet.io import atomic_write_json
from expnet.models.classifier import Classifier
from expnet.network.features import rank_within_text, valid_words
from expnet.report.format import interval

BASELINES = ("saliency", "smoothgrad", "raw_attention", "alti", "globenc", "attention_norm", "attention_shapley_mutual_grad", "grad_sam")


class RankFusion(Explainer):
    """The weighted mean of the parts' within-text percentile ranks."""

    name = "rank_fusion"
    family = "learned"

    def __init__(self, parts: list[Explainer], weights: list[float], batch_size: int = 16, seed: int = 0) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        self.parts = parts
        self.weights = weights

    def explain_batch(self, classifier, batch, targets) -> BatchAttribution:
        fused, logits = None, None
        for part, weight in zip(self.parts, self.weights, strict=True):
            attribution = part.explain_batch(classifier, batch, targets)
            scores = attribution.word_scores.detach().float().cpu()
            valid = valid_words(batch)[:, : scores.shape[1]]
            ranks = rank_within_text(torch.nan_to_num(scores).unsqueeze(-1), valid)[..., 0] * weight
            fused = ranks if fused is None else fused + ranks
            logits = attribution.logits
        return BatchAttribution(word_scores=fused, logits=logits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--expnet", required=True, help="an ExpNet trained on the other tasks (transfer)")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--max-examples", type=positive_int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    classifier = Classifier.load(args.classifier, device="cpu")
    examples = load_examples(args.task, data_dir=args.data_dir)
    drawn = sorted(np.random.default_rng(args.seed).permutation(len(examples))[: args.max_examples])
    examples = [examples[i] for i in drawn if examples[i].has_rationale]
    expnet, saliency = get_explainer(args.expnet), get_explainer("saliency")
    explainers = {"expnet": expnet, **{name: get_explainer(name) for name in BASELINES}}
    explainers["smoothgrad"] = get_explainer("smoothgrad", n_samples=10)  # the benchmark's budget
    fusions = {
        "expnet+saliency": RankFusion([expnet, saliency], [0.5, 0.5]),
        "expnet+saliency+grad_sam": RankFusion([expnet, saliency, get_explainer("grad_sam")], [1 / 3] * 3),
        "saliency+raw_attention": RankFusion([saliency, get_explainer("raw_attention")], [0.5, 0.5]),
    }
    result = evaluate(classifier, examples, {**explainers, **fusions}, rationale_rate(examples), batch_size=16).to_dict()
    comparisons = compare_explainers(result["explainers"], ["expnet", *fusions])
    for scores in result["explainers"].values():
        scores.pop("per_example", None)
    result["comparisons"] = comparisons
    command = (
        f"python benchmarks/rank_fusion.py --classifier {args.classifier} --task {args.task} --expnet {args.expnet} "
        f"--data-dir DATA --max-examples {args.max_examples} --seed {args.seed}"
    )
    atomic_write_json(args.out, {"command": command, **result})
    for name, scores in result["explainers"].items():
        print(f"{name:30s} F1@k {scores['f1_topk']:.3f}  AUROC {scores['auroc']:.3f}  {scores['examples_per_second']:7.1f} ex/s")
    for c in comparisons:
        if c["metric"] in ("f1_topk", "auroc"):
            print(f"{c['explainer']:26s} {c['metric']:8s} vs {c['baseline']:14s} {c['difference']:+.3f} {interval(c['low'], c['high'])} {c['verdict']}")


if __name__ == "__main__":
    sys.exit(run_script(main))
