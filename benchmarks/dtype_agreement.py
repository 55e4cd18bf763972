"""How much half precision changes explanations: bf16 and fp16 against fp32, on real posts.

The HateXplain classifier fine-tuned on the default backbone (all-MiniLM-L6-v2; ``--classifier``)
is loaded three times, in float32, bfloat16 and float16 (``Classifier.load(dtype=...)``: the same
float32 weights rounded), and each explainer explains the first ``--examples`` HateXplain test
posts (``expnet.data.load_examples``) with each. Per text, over its scored words:

- ``spearman``: Spearman's rank correlation of the half-precision scores with the float32 ones
  (texts whose scores are constant in either are left out and counted);
- ``top5_overlap``: the share of the float32 top-5 words (fewer for shorter texts) that are also
  in the half-precision top 5;
- ``max_abs_diff``: the largest score difference;

each averaged over the texts; ``prediction_agreement`` is the share of texts whose predicted
class is the same. Without the fine-tuned classifier, the default backbone with a seeded fresh
head stands in (cast from one float32 copy) and the output says so.

Usage (a shared 2-core machine: niced, one thread)::

    OMP_NUM_THREADS=1 nice -n 15 env HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/dtype_agreement.py \\
        --data-dir /work/shared/data --classifier runs/full/clf-hatexplain
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import transformers
from scipy.stats import spearmanr

from expnet.cli.common import positive_int
from expnet.cli.main import invocation, run_script
from expnet.data import load_examples
from expnet.explainers import get_explainer
from expnet.io import atomic_write_json
from expnet.models.classifier import Classifier, default_backbone

RESULTS = Path(__file__).parent / "results" / "dtype_agreement.json"
EXPLAINERS = ("raw_attention", "saliency", "expnet")
HALF = ("bfloat16", "float16")
TOP_K = 5


def load_classifiers(folder: str | None, device: str | None, seed: int) -> tuple[dict[str, Classifier], str]:
    """float32, bfloat16 and float16 copies of the same weights, and what they are."""
    if folder and Path(folder).is_dir():
        loaded = {dtype: Classifier.load(folder, device=device, dtype=dtype) for dtype in ("float32", *HALF)}
        return loaded, str(folder)
    torch.manual_seed(seed)
    base = Classifier.load(default_backbone(), device=device, require_classifier=False)
    casts = {dtype: replace(base, model=copy.deepcopy(base.model).to(getattr(torch, dtype))) for dtype in HALF}
    return {"float32": base, **casts}, "default backbone, seeded fresh head (no fine-tuned classifier given)"


def top_overlap(reference: np.ndarray, other: np.ndarray, k: int = TOP_K) -> float:
    k = min(k, len(reference))
    return len(set(np.argsort(-reference)[:k]) & set(np.argsort(-other)[:k])) / k


def agreement(reference, other) -> dict:
    """Per-text agreement of ``other`` explanations with the float32 ``reference`` ones."""
    rhos, overlaps, diffs, same, constant = [], [], [], 0, 0
    for ref, half in zip(reference, other, strict=True):
        a, b = ref.scores[ref.scored], half.scores[ref.scored]
        assert np.isfinite(b).all(), "non-finite half-precision scores"
        same += int(ref.prediction == half.prediction)
        overlaps.append(top_overlap(a, b))
        diffs.append(float(np.abs(a - b).max()))
        if np.ptp(a) > 0 and np.ptp(b) > 0:
            rhos.append(float(spearmanr(a, b).statistic))
        else:
            constant += 1
    return {
        # Spearman is undefined on a text whose scores are all equal (counted in constant_texts).
        "spearman": float(np.mean(rhos)) if rhos else None,
        "spearman_min": float(np.min(rhos)) if rhos else None,
        "top5_overlap": float(np.mean(overlaps)),
        "max_abs_diff": float(np.mean(diffs)),
        "prediction_agreement": same / len(reference),
        "texts": len(reference),
        "constant_texts": constant,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/work/shared/data", help="folder holding hatexplain/test.jsonl")
    parser.add_argument("--classifier", default="runs/full/clf-hatexplain", help="fine-tuned HateXplain classifier folder")
    parser.add_argument("--examples", type=positive_int, default=100, help="HateXplain test posts (the first N)")
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--seed", type=int, default=0, help="seeds the fresh head (no classifier given)")
    args = parser.parse_args()

    texts = [example.words for example in load_examples("hatexplain", "test", args.data_dir)[: args.examples]]
    classifiers, source = load_classifiers(args.classifier, args.device, args.seed)
    results: dict[str, dict] = {}
    seconds: dict[str, dict] = {}
    for name in EXPLAINERS:
        explanations, seconds[name] = {}, {}
        for dtype, classifier in classifiers.items():
            start = time.perf_counter()
            explanations[dtype] = get_explainer(name, batch_size=args.batch_size).explain(classifier, texts)
            seconds[name][dtype] = round(time.perf_counter() - start, 2)
        results[name] = {dtype: agreement(explanations["float32"], explanations[dtype]) for dtype in HALF}

    print(f"{len(texts)} HateXplain test posts, {source}, on {args.device}; half precision against float32")
    print(f"{'explainer':<14} {'dtype':<9} {'Spearman':>8} {'min':>6} {'top-5':>6} {'max|d|':>7} {'pred':>5}")
    for name, by_dtype in results.items():
        for dtype, row in by_dtype.items():
            rho, rho_min = ("n/a" if row[key] is None else f"{row[key]:.3f}" for key in ("spearman", "spearman_min"))
            print(
                f"{name:<14} {dtype:<9} {rho:>8} {rho_min:>6} {row['top5_overlap']:>6.3f} "
                f"{row['max_abs_diff']:>7.4f} {row['prediction_agreement']:>5.2f}"
            )
    atomic_write_json(
        args.out,
        {
            "what": "per-text agreement of bf16/fp16 explanations with fp32 ones (benchmarks/dtype_agreement.py)",
            "command": invocation(),
            "classifier": source,
            "texts": len(texts),
            "data": "hatexplain test.jsonl, first posts",
            "device": args.device,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "machine": platform.machine(),
            "results": results,
            "seconds": seconds,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(run_script(main))
