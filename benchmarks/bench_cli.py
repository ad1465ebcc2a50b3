"""CLI start-up: wall time of each model-free command run as a fresh process, as a script looping over the CLI
runs it. Target: each ≤ 1 s. Prints one JSON line per command: median and max wall of --repeats runs, the median
CPU seconds of the process (less sensitive than wall to other work on a shared machine), the load average before
the runs, and the modules its start-up spends most on (one more run under `python -X importtime`).

    python -m benchmarks.bench_cli [--project DIR] [--repeats 5]

Without --project it prepares the demo project (embedded model, offline) in a scratch folder first. To see what
a command still imports: python -X importtime -m app.cli status PROJECT 2>&1 | sort -t'|' -k2 -n | tail
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 1.0


def _commands(project: Path, scratch: Path) -> dict[str, list[str]]:
    import csv

    from app.cli import build_parser

    with open(project.parent / "ground_truth.csv", newline="") as handle:
        first = next(csv.DictReader(handle))
    labels = scratch / "labels.csv"
    labels.write_text(f"path,label\n{first['path']},{first['label']}\n")
    # commands other branches add: timed once this checkout's parser takes them
    optional = {
        "search --like": ["search", str(project), "--like", str(project.parent / "images" / first["path"]), "--k",
                          "10", "--json"],
        "classes": ["classes", str(project)],
    }
    return {**{name: command for name, command in optional.items() if _parses(build_parser(), command)},
        "status": ["status", str(project)],
        "status --json": ["status", str(project), "--json"],
        "queue": ["queue", str(project), "--k", "20"],
        "label": ["label", str(project), "--csv", str(labels)],
        "export csv": ["export", str(project), "--format", "csv", "--out", str(scratch / "x.csv"), "--force"],
        "export parquet": ["export", str(project), "--format", "parquet", "--out", str(scratch / "x.parquet"),
                           "--force"],
    }


def _parses(parser, args: list[str]) -> bool:
    """Whether `parser` takes `args` (a command line it does not know exits, its message hidden)."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            parser.parse_args(args)
    except SystemExit:
        return False
    return True


def _timed(args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one fresh `labelloop` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "app.cli", *args], check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


# The libraries a command's start-up could spend most on; the model and page ones should never appear.
WATCHED = ("numpy", "duckdb", "pyarrow", "pyarrow.compute", "pyarrow.parquet", "tqdm", "PIL", "cv2", "pandas",
           "torch", "open_clip", "gradio")


def _import_seconds(args: list[str]) -> dict[str, float]:
    """One more run under `python -X importtime`: seconds of all imports, and of each WATCHED library it loaded
    (with what it imports in turn)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "app.cli", *args], check=True,
                          capture_output=True, text=True)
    total, libraries = 0, {}
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            if not cumulative.strip().isdigit():
                continue  # the header line
            if not name.startswith("  "):  # one space: imported at top level, not inside another import
                total += int(cumulative)
            if name.strip() in WATCHED and int(cumulative) >= 1000:  # not a refused import (pandas)
                libraries[name.strip()] = int(cumulative) / 1e6
    return {"all": round(total / 1e6, 3), **{name: round(seconds, 3) for name, seconds in
                                             sorted(libraries.items(), key=lambda item: -item[1])}}


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
            load = os.getloadavg()[0]
            walls, cpus = zip(*(_timed(command) for _ in range(args.repeats)))
            median = statistics.median(walls)
            print(json.dumps({"benchmark": "cli", "command": name, "median_s": round(median, 3),
                              "max_s": round(max(walls), 3), "cpu_s": round(statistics.median(cpus), 3),
                              "load_1min": round(load, 2), "target_s": TARGET_SECONDS,
                              "meets_target": median <= TARGET_SECONDS, "imports_s": _import_seconds(command)}),
                  flush=True)


if __name__ == "__main__":
    main()
