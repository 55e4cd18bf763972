"""The benchmark's presets: the defaults (the full run, spelled out in benchmarks/full.toml) and
``--quick`` (CI-sized), and the ExpNet variants they train."""

from __future__ import annotations

from typing import Any

from expnet.network.features import DIRECTIONS, WORD_PROPERTIES

_TRANSFER_FEATURES = {"directions": ["cls_to_token"], "values": ["attention", "head_norm"], "head_pooling": "quantiles"}
_SIGNALS = ["value_zeroing", "decompx", "attention_norm"]
DEFAULT_VARIANTS = {
    # The paper: last layer, both attention directions; and its direction ablation (the one
    # direction that transferred best in earlier benchmark runs, where token->CLS, all layers and
    # attention x gradient transferred worse).
    "last": {"layers": "last", "directions": list(DIRECTIONS), "values": ["attention"]},
    "last_cls_to_token": {"layers": "last", "directions": ["cls_to_token"], "values": ["attention"]},
    # Past the paper, built to transfer: readout-row attention and head norms as order statistics
    # over heads, absolute and within-text views, a listwise (within-text ranking) loss...
    "q_attn_list": {**_TRANSFER_FEATURES, "views": ["absolute", "zscore", "rank"], "loss": "listwise"},
    # ... the same from attention alone (no head norms: every architecture, SDPA-speed readout rows) ...
    "q_attn_only_list": {**_TRANSFER_FEATURES, "values": ["attention"], "views": ["absolute", "zscore", "rank"], "loss": "listwise"},
    # ... plus the classifier-aware signals (value zeroing, DecompX, attention norm) ...
    "q_sig_list": {**_TRANSFER_FEATURES, "signals": _SIGNALS, "views": ["absolute", "zscore", "rank"], "loss": "listwise"},
    # ... the same with the paper's focal loss, with within-text views only, and anchored on value zeroing.
    "q_sig_focal": {**_TRANSFER_FEATURES, "signals": _SIGNALS, "views": ["absolute", "zscore", "rank"]},
    "rank_sig_list": {**_TRANSFER_FEATURES, "signals": _SIGNALS, "views": ["zscore", "rank"], "loss": "listwise"},
    "anchor_vz": {
        **_TRANSFER_FEATURES, "signals": _SIGNALS, "views": ["absolute", "zscore", "rank"], "loss": "listwise",
        "anchor": "value_zeroing.in_text",
    },
    # q_attn_list and q_attn_only_list plus properties of the words themselves (stop word,
    # punctuation, length, place in the text): people's rationales avoid stop words and commas on
    # every task while a classifier's attention often rests on them, and that prior does not
    # depend on the classifier.
    "q_attn_list_words": {**_TRANSFER_FEATURES, "views": ["absolute", "zscore", "rank"], "word_properties": list(WORD_PROPERTIES), "loss": "listwise"},
    "q_attn_only_list_words": {
        **_TRANSFER_FEATURES, "values": ["attention"], "views": ["absolute", "zscore", "rank"],
        "word_properties": list(WORD_PROPERTIES), "loss": "listwise",
    },
}
# Every variant competes: the selection is by transfer between the training tasks (runner.py).
DEFAULT_CANDIDATES = list(DEFAULT_VARIANTS)


# --- presets ------------------------------------------------------------------------------
# The defaults are the full run; benchmarks/full.toml spells the same settings out (a test keeps
# the two equal).
DEFAULTS: dict[str, Any] = {
    "tasks": {
        "hatexplain": {"max_examples": 200, "slow_max_examples": 40, "expnet_train_max_examples": 1141},
        "sst2": {"max_examples": 200, "slow_max_examples": 40, "expnet_train_max_examples": 1500},
        "movies": {"max_examples": 12, "slow_max_examples": 5, "expnet_train_max_examples": 400},
    },
    "explainer_settings": {
        "integrated_gradients": {"n_steps": 20},
        "smoothgrad": {"n_samples": 10},
        "lime": {"n_samples": 200},
        "kernel_shap": {"n_samples": 200},
        "partition_shap": {"max_evals": 200},
        "shapley_sampling": {"n_samples": 3},
    },
    "faithfulness": {"all_variants": False},
    "variants": DEFAULT_VARIANTS,
    "unlabelled": {"teachers": ["saliency"], "max_texts": 1000},
}

# --quick: CI-sized. Two short-text tasks x 16 examples (6 for slow explainers), tiny fine-tunes on the shipped samples
# (cached in OUT/classifiers), cheap explainers with tiny budgets.
QUICK: dict[str, Any] = {
    "preset": "quick",
    "tasks": {
        "hatexplain": {
            "max_examples": 16,
            "slow_max_examples": 6,
            "expnet_train_max_examples": 64,
            "finetune": {"epochs": 1, "max_length": 48, "batch_size": 16, "learning_rate": 1e-4, "max_examples": 192},
        },
        "sst2": {
            "max_examples": 16,
            "slow_max_examples": 6,
            "expnet_train_max_examples": 64,
            "finetune": {"epochs": 1, "max_length": 40, "batch_size": 16, "learning_rate": 1e-4, "max_examples": 192},
        },
    },
    "explainers": ["random", "raw_attention", "rollout", "saliency", "integrated_gradients", "gae", "occlusion", "lime"],
    "explainer_settings": {
        "integrated_gradients": {"n_steps": 4},
        "lime": {"n_samples": 16},
    },
    "faithfulness": {"removals": ["mask"], "shown": "mask", "kendall_removals": ["mask"], "all_variants": False},
    # CI-sized classifiers are barely better than chance, so the paper's "correctly classified
    # examples only" rule would leave ExpNet (almost) nothing to learn from.
    "expnet": {"max_epochs": 40, "patience": 5, "only_correct": False},
    "variants": {name: DEFAULT_VARIANTS[name] for name in ("last", "last_cls_to_token", "q_attn_list", "q_sig_list")},
    "candidates": ["last", "q_attn_list", "q_sig_list"],
    "report_examples": 2,
    # One thread: on a small shared CI machine extra OpenMP threads only oversubscribe the cores.
    "threads": 1,
}
