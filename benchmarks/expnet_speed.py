"""ExpNet's cost against the plain inference a user would run anyway.

Three sections, written to benchmarks/results/expnet_speed.json and printed:

1. **Speed.** Examples/s of ExpNet divided by examples/s of plain inference on the same HateXplain
   test posts (``post_tokens`` of the first ``--examples`` lines of DATA/hatexplain/test.jsonl),
   in one process, modes interleaved (their order rotated every repeat), the median of the
   repeats, by wall clock and by the process's CPU time (the steadier one on a shared CPU). Plain inference: the same classifier loaded with its default attention (SDPA),
   texts tokenised by the HF tokenizer in length-sorted batches, logits only. ExpNet runs over the
   same length-sorted texts with the same batch size, tokenisation and word alignment included.
   Modes: ``transfer`` (readout rows only: one SDPA pass,
   ``expnet.models.attention.readout_attention``), ``transfer_norms`` (head norms and contribution
   signals: the eager pass with the hooks of ``expnet.models.decomposition``), and for reference
   the plain eager pass with ``output_attentions=True`` (how attention was read before) and
   ``saliency`` (the benchmark's strongest plausibility baseline: one forward+backward). ExpNets
   are untrained (random MLP weights): the features and the MLP cost the same as a trained one's.
2. **Peak memory of the feature pass** at ``--memory-length`` tokens and ``--memory-batch`` texts:
   on CUDA ``torch.cuda.max_memory_allocated`` above the memory held before the pass; on CPU two
   measures: the bytes of the attention tensors the pass returns (what stays held), and the growth
   of the process's peak RSS (``ru_maxrss``; passes run in increasing order of expected peak, so
   each growth is that pass's own peak over everything before it).
3. **On paper** (``on_paper``; no model is run) for a Llama-3-8B-shaped decoder classifier,
   L = 32 layers, H = 32 heads, hidden d = 4096, at T = 4096 tokens, per text:

   - every layer's attention (``output_attentions=True``): L * H * T^2 * b bytes (b = 2 in bf16)
     = 32 GiB; eager attention also moves those matrices through memory about k = 4 times
     (scores written, softmax read and written, read again for the value product), which SDPA's
     fused kernels never do: k * L * H * T^2 * b bytes of memory traffic;
   - ExpNet's readout rows of the layers read (R; the recipes read the last one) in float32:
     R * H * T * 4 bytes (512 KiB for R = 1, 16 MiB for every layer); their compute is one query
     row per head, R * (2 * T * d + 5 * H * T) FLOPs, against the forward pass's
     2 * N * T + 4 * L * T^2 * d FLOPs (N = 8e9 parameters): a few parts in 10^7.

Usage (a shared 2-core machine: run it niced and single-threaded, ratios measured side by side in
one process stay valid)::

    nice -n 15 env OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/expnet_speed.py \\
        --data-dir /work/shared/data --classifier runs/full/clf-hatexplain
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from expnet.cli.common import positive_int
from expnet.cli.main import invocation, run_script
from expnet.explainers import get_explainer
from expnet.explainers.learned import ExpNetExplainer
from expnet.io import atomic_write_json
from expnet.models.attention import forward_with_attentions, readout_attention
from expnet.models.classifier import Classifier, default_backbone
from expnet.network.gradient_features import batch_features
from expnet.network.model import ExpNetModel
from expnet.network.training import recipe_settings, settings_spec
from expnet.seeding import seed_everything

RESULTS = Path(__file__).parent / "results" / "expnet_speed.json"
RECIPES = ("transfer", "transfer_norms")
GIB = 1 << 30


def load_posts(data_dir: str | Path, count: int) -> list[list[str]]:
    posts = []
    with open(Path(data_dir) / "hatexplain" / "test.jsonl", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                posts.append(json.loads(line)["post_tokens"])
            if len(posts) == count:
                break
    return posts


def load_classifier(folder: str | None, device: str | None, max_length: int | None = None) -> Classifier:
    """The fine-tuned classifier when it exists, else the default backbone with a fresh head."""
    if folder and Path(folder).is_dir():
        return Classifier.load(folder, device=device, max_length=max_length)
    return Classifier.load(default_backbone(), device=device, max_length=max_length, require_classifier=False)


def untrained_expnet(classifier: Classifier, recipe: str, batch_size: int) -> ExpNetExplainer:
    settings = recipe_settings(recipe)
    spec = settings_spec(settings, classifier)
    model = ExpNetModel(spec.dim, settings.hidden_size, settings.dropout).eval()
    return ExpNetExplainer(model, spec, settings, batch_size=batch_size)


def by_length(classifier: Classifier, posts: list[list[str]]) -> list[list[str]]:
    """Posts sorted by their token count, so every batch pads to nearly its own length."""
    lengths = [len(ids) for ids in classifier.tokenizer([" ".join(words) for words in posts])["input_ids"]]
    return [posts[i] for i in sorted(range(len(posts)), key=lengths.__getitem__)]


@torch.no_grad()
def plain_inference(classifier: Classifier, texts: list[str], batch_size: int, **forward) -> None:
    """What a user runs to classify: tokenizer, model, logits (``forward`` e.g. output_attentions)."""
    for start in range(0, len(texts), batch_size):
        inputs = classifier.tokenizer(
            texts[start : start + batch_size], truncation=True, max_length=classifier.max_length,
            padding=True, return_tensors="pt",
        ).to(classifier.device)
        classifier.model(**inputs, **forward).logits.cpu()


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_seconds(modes: dict[str, Callable[[], None]], repeats: int, device: torch.device) -> tuple[dict, dict]:
    """Wall-clock and CPU seconds per mode per repeat; the modes' order rotates each repeat. On a
    shared CPU the process's CPU time is the steadier measure (one thread: it excludes the time
    other processes hold the core)."""
    names = list(modes)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            synchronise(device)
            started, started_cpu = time.perf_counter(), time.process_time()
            modes[name]()
            synchronise(device)
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - started_cpu)
        print(f"  repeat {repeat + 1}/{repeats}: " + ", ".join(f"{n} {wall[n][-1]:.2f}s ({cpu[n][-1]:.2f}s cpu)" for n in names), flush=True)
    return wall, cpu


def speed(args, device: torch.device) -> dict:
    classifier = load_classifier(args.classifier, args.device)
    plain = load_classifier(args.classifier, args.device)
    plain.model.set_attn_implementation("sdpa")  # the default a user's own load would get
    posts = by_length(classifier, load_posts(args.data_dir, args.examples))
    texts = [" ".join(words) for words in posts]
    expnets = {recipe: untrained_expnet(classifier, recipe, args.batch_size) for recipe in RECIPES}
    saliency = get_explainer("saliency", batch_size=args.batch_size)
    modes = {
        "plain_sdpa": lambda: plain_inference(plain, texts, args.batch_size),
        **{f"expnet_{recipe}": (lambda e=e: e.explain(classifier, posts)) for recipe, e in expnets.items()},
        "eager_output_attentions": lambda: plain_inference(classifier, texts, args.batch_size, output_attentions=True),
        "saliency": lambda: saliency.explain(classifier, posts),
    }
    for mode in modes.values():  # untimed warm-up of every mode
        mode()
    wall, cpu = interleaved_seconds(modes, args.repeats, device)
    result = {
        "classifier": classifier.source,
        "examples": len(posts),
        "batch_size": args.batch_size,
        "max_length": classifier.max_length,
        "repeats": args.repeats,
    }
    for clock, seconds in (("wall", wall), ("cpu", cpu)):
        per_second = {name: len(posts) / statistics.median(values) for name, values in seconds.items()}
        result[clock] = {
            "seconds": seconds,
            "examples_per_second": per_second,
            "ratio_to_plain_sdpa": {name: rate / per_second["plain_sdpa"] for name, rate in per_second.items()},
        }
    return result


def long_texts(posts: list[list[str]], count: int, words: int) -> list[list[str]]:
    """``count`` texts of ``words`` words, made of consecutive posts (enough to fill the length)."""
    stream = [word for post in posts for word in post]
    return [[stream[(i * words + j) % len(stream)] for j in range(words)] for i in range(count)]


def held_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def memory(args, device: torch.device) -> dict:
    classifier = load_classifier(args.classifier, args.device, max_length=args.memory_length)
    spec = untrained_expnet(classifier, "transfer", args.memory_batch).spec
    batch = classifier.encode(long_texts(load_posts(args.data_dir, args.examples), args.memory_batch, args.memory_length))
    layers = spec.layers

    def sdpa_pass():
        readout_attention(classifier, batch, ())  # no layer asked: the SDPA pass alone
        return 0

    def expnet_pass():
        batch_features(classifier, batch, spec)
        _, found = readout_attention(classifier, batch, layers)  # what batch_features reads
        return held_bytes([a.rows for a in found.values()] + [a.columns for a in found.values()])

    def eager_pass():
        _, attentions = forward_with_attentions(classifier, batch)
        return held_bytes(attentions)

    result = {
        "tokens": int(batch.input_ids.shape[1]),
        "batch": batch.batch_size,
        "layers_read_by_expnet": list(layers),
        "device": str(device),
    }
    # Increasing expected peak, so each pass's RSS growth is its own peak (CPU).
    for name, run in (("sdpa_logits_only", sdpa_pass), ("expnet_transfer", expnet_pass), ("eager_output_attentions", eager_pass)):
        if device.type == "cuda":
            torch.cuda.empty_cache()
            before = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            held = run()
            entry = {"cuda_peak_allocated_bytes": torch.cuda.max_memory_allocated(device) - before}
        else:
            before = peak_rss_bytes()
            held = run()
            entry = {"peak_rss_growth_bytes": peak_rss_bytes() - before}
        result[name] = {"attention_bytes_held": held, **entry}
        print(f"  {name}: {json.dumps(result[name])}", flush=True)
    return result


def on_paper(
    layers: int = 32, heads: int = 32, hidden: int = 4096, tokens: int = 4096, parameters: float = 8e9,
    dtype_bytes: int = 2, layers_read: int = 1, eager_passes: int = 4,
) -> dict:
    """Per text, from the formulas in the module doc (Llama-3-8B shape by default)."""
    full = layers * heads * tokens**2 * dtype_bytes
    rows = layers_read * heads * tokens * 4
    forward_flops = 2 * parameters * tokens + 4 * layers * tokens**2 * hidden
    row_flops = layers_read * (2 * tokens * hidden + 5 * heads * tokens)
    return {
        "shape": {"layers": layers, "heads": heads, "hidden": hidden, "tokens": tokens, "parameters": parameters},
        "every_layer_attention_bytes": full,
        "every_layer_attention_gib": full / GIB,
        "eager_attention_memory_traffic_bytes": eager_passes * full,
        "expnet_rows_bytes": rows,
        "expnet_rows_all_layers_bytes": layers * heads * tokens * 4,
        "memory_ratio_rows_to_every_layer": rows / full,
        "forward_flops": forward_flops,
        "expnet_row_flops": row_flops,
        "time_ratio_expnet_rows_to_forward": row_flops / forward_flops,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder holding hatexplain/test.jsonl")
    parser.add_argument("--classifier", default="runs/full/clf-hatexplain", help="classifier folder (default backbone if missing)")
    parser.add_argument("--examples", type=positive_int, default=500)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--memory-length", type=positive_int, default=512)
    parser.add_argument("--memory-batch", type=positive_int, default=32)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="seeds the untrained ExpNets' weights")
    args = parser.parse_args()
    seed_everything(args.seed)
    device = load_classifier(args.classifier, args.device).device
    print(f"speed ({args.examples} HateXplain test posts, batch {args.batch_size}, {args.repeats} interleaved repeats):", flush=True)
    results = {
        "command": invocation(),
        "machine": {
            "device": str(device),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "note": "shared machine (another benchmark running); ratios are measured side by side in one process",
        },
        "speed": speed(args, device),
    }
    for clock in ("wall", "cpu"):
        measured = results["speed"][clock]
        for name, ratio in measured["ratio_to_plain_sdpa"].items():
            print(f"  {clock:4s} {name}: {measured['examples_per_second'][name]:.1f} examples/s, {ratio:.3f} x plain SDPA")
    if not args.skip_memory:
        print(f"memory (feature pass, {args.memory_length} tokens, batch {args.memory_batch}):", flush=True)
        results["memory"] = memory(args, device)
    results["on_paper"] = on_paper()
    paper = results["on_paper"]
    print(
        f"on paper (Llama-3-8B shape, 4096 tokens, per text): every layer's attention {paper['every_layer_attention_gib']:.0f} GiB "
        f"(bf16), ExpNet's last-layer readout rows {paper['expnet_rows_bytes'] / 1024:.0f} KiB (float32); "
        f"row compute {paper['time_ratio_expnet_rows_to_forward']:.1e} of the forward pass"
    )
    atomic_write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(run_script(main))
