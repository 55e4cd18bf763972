"""How fast `expnet explain --input/--output` explains a corpus: local engine, Ray with 1 and 2 workers.

The corpus is half HateXplain training posts (``post_tokens``) and half SST-2 training sentences,
written to one JSONL file; each configuration runs in a fresh child process (its Ray, when it
starts one, included) while this process samples the summed resident memory of the child and
all its descendants (/proc), so Ray's raylet and actors are counted. Each setup also runs on a corpus a fifth the size: the
difference of the two times gives the marginal rate, without startup. Prints a table and writes
``benchmarks/results/corpus_scale.json``.

    nice -n 15 python benchmarks/corpus_scale.py /work/shared/data --classifier runs/full/clf-hatexplain --n 10000

Measured here (``--n 10000``, started at load 1.7 on the 2-core machine, but another job's
benchmark shared the cores throughout (load ~3); nice 15; runs/full/clf-hatexplain, MiniLM-L6,
batch 32, one torch thread per process; raw_attention only, written before an ExpNet shipped:
the script now adds the shipped ExpNet's rows, as in corpus_scale_2k_with_expnet.json): local 50 ex/s
(200 s, 50.5 marginal), peak 1.0 GB; Ray 1 worker 42.5 ex/s (235 s, 44.5 marginal: ~10 s start
and the actor's own model load), peak 3.2 GB (raylet, GCS and idle workers included); Ray 2
workers 43.7 ex/s (229 s, 52 marginal), peak 3.8 GB: a second actor gains nothing when the other
core is busy. A first run at 1,000 texts under load 5-7 gave 36 / 22 / 20 ex/s, Ray's start-up
dominating. With a tiny classifier (forward pass nearly free) the rest of the pipeline
(tokenising, word alignment, Arrow rows) runs at 380-980 ex/s per core (batch 32-128), and the
driver reads, checks and stages 30,000 rows/s. On paper, 100 million texts: on CPUs at ~50 ex/s
per core that is ~560 core-hours (about $25 at $0.04 per vCPU-hour; ~1 h on 512 cores). On GPUs
the forward pass of MiniLM-L6 (~21 MFLOP a token, ~40 tokens a text: 8e16 FLOP) is minutes to
~2 GPU-hours (fp32, eager attention), a few dollars; the bottleneck moves first to the CPU side
of each actor (1-2.5 ms a text: ~20-50 cores per GPU to feed it) and then to the single driver,
whose 30,000 rows/s cap the job at ~1 h for 100 million rows however many GPUs it has. Beyond
that, reading (ray.data.read_json by shard, ids checked by a groupby) and writing
(write_parquet from the workers) would have to leave the driver. Explainers that cost more than
one forward pass (IG 50 steps, LIME 300 samples) multiply the GPU time by 50-300 and keep the
GPU the bottleneck.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from expnet.cli.common import positive_int
from expnet.cli.main import invocation, run_script

RESULTS = Path(__file__).parent / "results" / "corpus_scale.json"
ENGINES = (("local", 1), ("ray", 1), ("ray", 2))


def build_corpus(data_dir: Path, n: int, out: Path) -> None:
    """``n`` texts: the first n/2 HateXplain training posts, then SST-2 training sentences."""
    half = n // 2
    with out.open("w", encoding="utf-8") as sink:
        with (data_dir / "hatexplain" / "train_no_rationales.jsonl").open(encoding="utf-8") as posts:
            for count, line in enumerate(posts):
                if count == half:
                    break
                row = json.loads(line)
                sink.write(json.dumps({"id": f"hx-{row['post_id']}", "text": row["post_tokens"]}) + "\n")
        with (data_dir / "sst2" / "glue_train.tsv").open(encoding="utf-8", newline="") as sentences:
            reader = csv.DictReader(sentences, delimiter="\t", quoting=csv.QUOTE_NONE)
            for count, row in enumerate(reader):
                if count == n - half:
                    break
                sink.write(json.dumps({"id": f"sst-{count}", "text": row["sentence"]}) + "\n")


def run_one(config: dict) -> None:
    """Child side: one configuration, reported as one JSON line on stdout."""
    import torch

    from expnet.corpus import CorpusJob, explain_corpus

    torch.set_num_threads(1)  # Ray actors get one thread each (num_cpus=1); the local engine too
    job = CorpusJob(config["classifier"], config["explainer"], config["input"], config["output"], batch_size=config["batch_size"])
    summary = explain_corpus(job, config["engine"], num_workers=config["workers"])
    print(json.dumps({"rows": summary.rows, "seconds": summary.seconds,
                      "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and every process below it, in MB."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # the process ended while we looked
            children.setdefault(parent, []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total / 1024


def measure(config: dict) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    # stderr to a file, not a pipe: a pipe nobody reads while the child runs would fill and stall it.
    with tempfile.TemporaryFile(mode="w+") as errors:
        child = subprocess.Popen(
            [sys.executable, __file__, "--run", json.dumps(config)], env=env, stdout=subprocess.PIPE, stderr=errors, text=True,
            start_new_session=True,  # its own process group: Ray's processes go with it if this one stops
        )
        peak = 0.0
        try:
            while child.poll() is None:
                peak = max(peak, tree_rss_mb(child.pid))
                time.sleep(0.5)
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
                child.wait()
        out = child.stdout.read()
        if child.returncode:
            errors.seek(0)
            last = ([line for line in errors.read().splitlines() if line.strip()] or ["(no message)"])[-1]
            raise SystemExit(f"{config['engine']} x{config['workers']} failed (exit {child.returncode}): {last}")
    result = json.loads(out.strip().splitlines()[-1])
    return {
        "explainer": config["explainer"],
        "engine": config["engine"],
        "workers": config["workers"],
        "rows": result["rows"],
        "seconds": result["seconds"],
        "examples_per_second": result["rows"] / result["seconds"],
        "peak_tree_rss_mb": round(peak),
        "driver_maxrss_mb": round(result["self_maxrss_mb"]),
    }


def marginal_rate(rows: int, seconds: float, small_rows: int, small_seconds: float) -> float | None:
    """Examples/s of the rows the larger run adds (startup cancels out); None when the larger run
    was not slower, which says only that the corpus is too small to measure it."""
    extra = seconds - small_seconds
    return (rows - small_rows) / extra if extra > 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", nargs="?", type=Path, help="the datasets (hatexplain/, sst2/)")
    parser.add_argument("--classifier", default="runs/full/clf-hatexplain")
    parser.add_argument("--n", type=positive_int, default=10_000, help="texts in the corpus (default 10,000)")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--run", default=None, help=argparse.SUPPRESS)  # child side
    args = parser.parse_args()
    if args.run:
        run_one(json.loads(args.run))
        return
    if args.data_dir is None:
        parser.error("give the data folder")
    from expnet.explainers.registry import pretrained_folder
    from expnet.io import atomic_write_json

    load_at_start = os.getloadavg()[0]

    explainers = ["raw_attention"] + (["expnet"] if pretrained_folder("expnet").is_dir() else [])
    rows = []
    small = args.n // 5  # a second, smaller run of each setup: the difference is the marginal rate
    with tempfile.TemporaryDirectory() as scratch:
        corpora = {size: Path(scratch) / f"corpus-{size}.jsonl" for size in (small, args.n)}
        for size, path in corpora.items():
            build_corpus(args.data_dir, size, path)
        for explainer in explainers:
            for engine, workers in ENGINES:
                timings = {}
                for size, path in corpora.items():
                    config = {"classifier": args.classifier, "explainer": explainer, "input": str(path),
                              "output": str(Path(scratch) / f"{explainer}-{engine}-{workers}-{size}.parquet"),
                              "engine": engine, "workers": workers, "batch_size": args.batch_size}
                    timings[size] = measure(config)
                row = timings[args.n]
                row["marginal_examples_per_second"] = marginal_rate(row["rows"], row["seconds"], timings[small]["rows"], timings[small]["seconds"])
                row["seconds_small_run"] = timings[small]["seconds"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(f"\n{'explainer':<14} {'engine':<6} {'workers':>7} {'rows':>6} {'s':>7} {'ex/s':>7} {'marginal ex/s':>13} {'peak MB':>8}")
    for r in rows:
        marginal = "n/a" if r["marginal_examples_per_second"] is None else f"{r['marginal_examples_per_second']:.1f}"
        print(f"{r['explainer']:<14} {r['engine']:<6} {r['workers']:>7} {r['rows']:>6} {r['seconds']:>7.1f} "
              f"{r['examples_per_second']:>7.1f} {marginal:>13} {r['peak_tree_rss_mb']:>8}")
    machine = {"cpus": os.cpu_count(), "load_average_at_start": load_at_start, "python": platform.python_version()}
    report = {"command": invocation(), "n": args.n, "batch_size": args.batch_size, "classifier": args.classifier, "machine": machine, "runs": rows}
    atomic_write_json(args.out, report)


if __name__ == "__main__":
    sys.exit(run_script(main))
