"""Do two benchmark outputs agree on every score? (timings and cache counters aside)

    python benchmarks/compare_runs.py OUT_A OUT_B [--json RESULT.json]

Walks both results.json files and compares every results.csv cell except the timing columns;
prints each difference and exits 1 when there is one. Used to check that a refactor keeps the
numbers: the same config and seed before and after must agree exactly.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

from expnet.cli.main import run_script

# Wall-clock figures and the time a run finished: two runs of the same config differ there only.
TIMING = {"seconds", "examples_per_second", "expnet_speedup", "forward_examples_per_second", "cache", "finished"}


def json_differences(a, b, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b)):
            if key in TIMING:
                continue
            if key not in a or key not in b:
                found.append(f"{path}/{key}: on one side only")
            else:
                found += json_differences(a[key], b[key], f"{path}/{key}")
        return found
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in json_differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return []
    return [] if a == b else [f"{path}: {str(a)[:60]} vs {str(b)[:60]}"]


def csv_cells(path: Path) -> tuple[list[str], list[dict]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--json", default=None, help="also write the counts here")
    args = parser.parse_args()
    first, second = Path(args.first), Path(args.second)
    differences = json_differences(json.loads((first / "results.json").read_text()), json.loads((second / "results.json").read_text()))
    (header_a, rows_a), (header_b, rows_b) = csv_cells(first / "results.csv"), csv_cells(second / "results.csv")
    compared = [k for k in header_a if k not in TIMING]
    if header_a != header_b or len(rows_a) != len(rows_b):
        differences.append(f"results.csv: {len(header_a)} x {len(rows_a)} vs {len(header_b)} x {len(rows_b)} (columns x rows)")
    else:
        differences += [f"results.csv row {i} {k}: {x[k]} vs {y[k]}" for i, (x, y) in enumerate(zip(rows_a, rows_b, strict=True)) for k in compared if x[k] != y[k]]
    summary = {"first": str(first), "second": str(second), "csv_rows": len(rows_a), "csv_cells_compared": len(rows_a) * len(compared), "differences": len(differences)}
    print(json.dumps(summary))
    for line in differences[:50]:
        print("  " + line)
    if args.json:
        Path(args.json).write_text(json.dumps({**summary, "first_differences": differences[:50]}, indent=1) + "\n")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(run_script(main))
