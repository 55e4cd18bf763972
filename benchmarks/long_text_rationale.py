"""ExpNet's own rationale on texts longer than any it was calibrated on.

A listwise ExpNet's rationale takes k words per text, k the perplexity of the softmax of its word
logits at a temperature fitted on held-back training texts. Trained on HateXplain + SST-2 (texts
of at most a few dozen words) and run on movie reviews (about 230 words read), one softmax over a
whole review is peakier than any it was fitted on, and k falls far short of the gold count. Since
2026-12-03 a text longer than the longest fitted one (``perplexity_window``) is counted window by
window (``expnet.network.training.perplexity_counts``). This script measures both rules on the
same explanations, next to top-k at the training rate for ExpNet, saliency and raw attention.

The ExpNet is the benchmark's transfer recipe trained on the fit parts of HateXplain and SST-2
(full.toml's draws), each explained by its own classifier; it explains a seeded draw of
``--examples`` movie test reviews (in file order; not the first N: the file lists every negative
review first) with the movies classifier. F1 is per review over the words the classifier
read (reviews with a gold word among them), with paired bootstrap 95% intervals::

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/long_text_rationale.py \\
        --data-dir /work/shared/data --classifiers runs/full --examples 60
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from expnet.benchmark.config import load_config
from expnet.benchmark.tasks import prepare_task
from expnet.cli.common import positive_int
from expnet.cli.main import invocation, run_script
from expnet.data import load_examples
from expnet.data.splits import seeded_draw
from expnet.explainers import get_explainer
from expnet.explainers.learned import ExpNetExplainer
from expnet.io import atomic_write_json
from expnet.metrics.bootstrap import paired_bootstrap, verdict
from expnet.metrics.plausibility import plausibility, top_k_mask
from expnet.models.classifier import Classifier
from expnet.network.training import recipe_settings
from expnet.report.format import interval

RESULTS = Path(__file__).parent / "results" / "long_text_rationale.json"
SOURCES = ("hatexplain", "sst2")
BASELINES = ("saliency", "raw_attention")


def per_text_f1(golds, selections) -> np.ndarray:
    """Per-text F1 of binary ``selections`` against ``golds`` (0/1 arrays of one text each)."""
    chosen = [np.asarray(c, dtype=np.int8) for c in selections]
    return plausibility([np.asarray(g, dtype=np.int8) for g in golds], [c.astype(np.float64) for c in chosen], chosen).per_example["f1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--classifiers", required=True, help="folder with clf-hatexplain, clf-sst2, clf-movies")
    parser.add_argument("--config", default=str(Path(__file__).parent / "full.toml"))
    parser.add_argument("--examples", type=positive_int, default=60, help="how many movie test reviews (a seeded draw)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    config = load_config(args.config)
    classifier = {t: Classifier.load(Path(args.classifiers) / f"clf-{t}", device="cpu") for t in (*SOURCES, "movies")}
    sources = [(classifier[t.name], prepare_task(t, config, args.data_dir).fit) for t in config.tasks if t.name in SOURCES]
    windowed = ExpNetExplainer.train(sources, recipe_settings("transfer"), seed=args.seed, progress=False)
    # The same network and temperature, every text counted in one softmax (the rule before).
    whole = ExpNetExplainer(windowed.model, windowed.spec, windowed.settings_used, {**windowed.history, "perplexity_window": None})
    drawn = seeded_draw(load_examples("movies", data_dir=args.data_dir), args.examples, f"{args.seed}:movies:test:long_text")
    reviews = [e for e in drawn if e.has_rationale]
    words = [e.words for e in reviews]
    runs = {"expnet": windowed.explain(classifier["movies"], words), "expnet_whole": whole.explain(classifier["movies"], words)}
    runs.update({name: get_explainer(name).explain(classifier["movies"], words) for name in BASELINES})
    # Everything over the words read: the same words for every explainer (one tokenizer).
    seen = [x.scored for x in runs["expnet"]]
    golds = [e.gold_mask("majority")[s] for e, s in zip(reviews, seen, strict=True)]
    keep = [i for i, g in enumerate(golds) if g.any()]
    rate = windowed.rationale_rate
    selections = {
        "expnet own rule (windowed)": [runs["expnet"][i].rationale[seen[i]] for i in keep],
        "expnet own rule (one softmax)": [runs["expnet_whole"][i].rationale[seen[i]] for i in keep],
        **{f"{name} top-k": [top_k_mask(runs[name][i].scores[seen[i]], rate) for i in keep] for name in ("expnet", *BASELINES)},
    }
    golds = [golds[i] for i in keep]
    f1 = {rule: per_text_f1(golds, chosen) for rule, chosen in selections.items()}
    share = {rule: float(np.mean([np.mean(c) for c in chosen])) for rule, chosen in selections.items()}
    comparisons = []
    for other in ("expnet own rule (one softmax)", *(f"{name} top-k" for name in BASELINES)):
        mean, low, high = paired_bootstrap(f1["expnet own rule (windowed)"], f1[other], seed=args.seed)
        comparisons.append({"against": other, "difference": mean, "low": low, "high": high, "verdict": verdict(low, high)})
    result = {
        "command": invocation(),
        "reviews": len(keep),
        "perplexity_window": windowed.history["perplexity_window"],
        "perplexity_temperature": windowed.history["perplexity_temperature"],
        "training_rate": rate,
        "gold_share_of_words_read": float(np.mean([g.mean() for g in golds])),
        "f1": {rule: float(values.mean()) for rule, values in f1.items()},
        "selected_share": share,
        "windowed_minus": comparisons,
    }
    atomic_write_json(args.out, result)
    print(f"{len(keep)} reviews, window {result['perplexity_window']} words, gold share {result['gold_share_of_words_read']:.3f}")
    for rule in f1:
        print(f"  {rule:32s} F1 {result['f1'][rule]:.3f}  selects {share[rule]:.3f}")
    for c in comparisons:
        print(f"  windowed - {c['against']}: {c['difference']:+.3f} {interval(c['low'], c['high'])} {c['verdict']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(run_script(main))
