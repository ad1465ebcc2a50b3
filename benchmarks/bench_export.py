"""The time to export a 100,000-image project as each one-file format. Prints one JSON line per format, then one
JSON object with all of them.

    python -m benchmarks.bench_export [--rows 100000] [--repeat 3]

The project is synthetic (planted embeddings and their zero-shot predictions, as in tests/synthetic.py), with a
person's label on 1% of the images, so every row goes through the same query, filters and writer as a real one.
Seconds are the best of `--repeat` runs of `engine.dataset.export.export`, which includes reading the labels from DuckDB
and recording the export.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from engine.dataset.export import FILE_FORMATS, export
from tests.synthetic import planted_embeddings, synthetic_project
from tests.tiny_model import make_tiny_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    x, y, text = planted_embeddings(args.rows, 32, 10, seed=5)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        project = synthetic_project(scratch / "p", scratch / "images", make_tiny_model(scratch / "m"), x, text)
        labeled = np.arange(0, args.rows, 100)
        project.store.set_labels((labeled + 1).tolist(), y[labeled].tolist(), source="human", actor="bench")
        started = time.perf_counter()
        project.store.current_labels()
        query = time.perf_counter() - started
        for fmt in FILE_FORMATS:
            out = scratch / f"export.{fmt}"
            seconds = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                report = export(project, fmt=fmt, out=out, force=True)
                seconds.append(time.perf_counter() - started)
            best = min(seconds)
            result = {"format": fmt, "rows": report.rows, "seconds": round(best, 3),
                      "rows_per_second": round(report.rows / best), "megabytes": round(out.stat().st_size / 1e6, 1)}
            results.append(result)
            print(json.dumps(result), flush=True)
        project.close()
    print(json.dumps({"benchmark": "export", "rows": args.rows, "query_seconds": round(query, 3),
                      "formats": results}))


if __name__ == "__main__":
    main()
