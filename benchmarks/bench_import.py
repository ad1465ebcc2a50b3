"""The time to import 100,000 human labels from a CSV (`labelloop label --csv`). Prints one JSON line.

    python -m benchmarks.bench_import [--rows 100000]

The project is synthetic (planted embeddings, as in tests/synthetic.py); every row names a known image and a class,
so the whole import runs: reading the file, validating every row, and writing the labels and their history.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from engine.labels.label_import import import_labels
from tests.synthetic import planted_embeddings, synthetic_project
from tests.tiny_model import make_tiny_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    x, y, text = planted_embeddings(args.rows, 32, 10, seed=5)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        project = synthetic_project(scratch / "p", scratch / "images", make_tiny_model(scratch / "m"), x, text)
        names = [entry["name"] for entry in project.store.classes()]
        labels = scratch / "labels.csv"
        labels.write_text("path,label\n" + "".join(f"img_{i:07d}.jpg,{names[y[i]]}\n" for i in range(args.rows)))
        started = time.perf_counter()
        result = import_labels(project, labels, fmt="csv", actor="bench")
        seconds = time.perf_counter() - started
        project.close()
    print(json.dumps({"rows": result.rows, "changed": result.changed, "seconds": round(seconds, 2)}))


if __name__ == "__main__":
    main()
