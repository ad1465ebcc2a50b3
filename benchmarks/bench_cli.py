"""CLI start-up: wall time of each model-free command run as a fresh process, as a script looping over the CLI
runs it. Target: each ≤ 1 s. Prints one JSON line per command (median of --repeats runs).

    python -m benchmarks.bench_cli [--project DIR] [--repeats 5]

Without --project it prepares the demo project (embedded model, offline) in a scratch folder first. To see what
a command still imports: python -X importtime -m app.cli status PROJECT 2>&1 | sort -t'|' -k2 -n | tail
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 1.0


def _commands(project: Path, scratch: Path) -> dict[str, list[str]]:
    import csv

    with open(project.parent / "ground_truth.csv", newline="") as handle:
        first = next(csv.DictReader(handle))
    labels = scratch / "labels.csv"
    labels.write_text(f"path,label\n{first['path']},{first['label']}\n")
    return {
        "status": ["status", str(project)],
        "status --json": ["status", str(project), "--json"],
        "queue": ["queue", str(project), "--k", "20"],
        "label": ["label", str(project), "--csv", str(labels)],
        "export csv": ["export", str(project), "--format", "csv", "--out", str(scratch / "x.csv"), "--force"],
        "export parquet": ["export", str(project), "--format", "parquet", "--out", str(scratch / "x.parquet"),
                           "--force"],
    }


def _wall(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "app.cli", *args], check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--project", type=Path, help="a demo project (its folder's ground_truth.csv is read)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        project = args.project
        if project is None:
            from engine.demo.setup import prepare_demo

            project, _ = prepare_demo(scratch / "demo")
        for name, command in _commands(project.resolve(), scratch).items():
            times = [_wall(command) for _ in range(args.repeats)]
            median = statistics.median(times)
            print(json.dumps({"benchmark": "cli", "command": name, "median_s": round(median, 3),
                              "max_s": round(max(times), 3), "target_s": TARGET_SECONDS,
                              "meets_target": median <= TARGET_SECONDS}), flush=True)


if __name__ == "__main__":
    main()
