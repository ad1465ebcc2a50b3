"""kill -9 at random points of an ingest, a head round and a finetune round; after each kill the database must
open, every human label must be unchanged, and a rerun must complete (a finetune rerun must also leave no model
folder of an unfinished round). Prints one JSON line per kill, then the totals:

    python -m benchmarks.bench_faults [--kills 2] [--images 120] [--seed 0]

`--kills` is per kind of work (three kinds). Each killed command is a fresh `labelloop` process, killed at a
uniformly random moment of its own work: after the time `labelloop status` takes (starting Python and importing
labelloop) and before the time an uninterrupted run of the same command took. The checks and reruns run in this
process through the engine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLASSES = "circle,square"


def _command(*args) -> list[str]:
    return [sys.executable, "-m", "app.cli", *map(str, args)]


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def _timed_run(args: list[str]) -> float:
    """Seconds an uninterrupted run of the command takes, start-up included."""
    started = time.monotonic()
    if _start(args).wait() != 0:
        raise SystemExit(f"{' '.join(args)} failed")
    return time.monotonic() - started


def _kill_at_random(args: list[str], window: tuple[float, float], rng: random.Random) -> tuple[float, float, bool]:
    """Start the command and kill -9 it a random number of seconds in `window` after; (that delay, the seconds
    it ran, whether it was still running at the kill)."""
    started, delay = time.monotonic(), rng.uniform(*window)
    process = _start(args)
    while process.poll() is None and time.monotonic() < started + delay:
        time.sleep(0.02)
    alive = process.poll() is None
    if alive:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return delay, time.monotonic() - started, alive


def _human_labels(root: Path) -> dict[str, str]:
    from engine.project import open_project

    with open_project(root) as project:
        rows = project.store.current_labels().to_pylist()
    return {row["path"]: row["label"] for row in rows if row["source"] == "human"}


def _leftover_models(root: Path) -> list[str]:
    """Model folders and checkpoints under models/ that no finished round names."""
    from engine.project import open_project

    with open_project(root) as project:
        finished = {entry["id"] for entry in project.store.rounds() if entry["status"] == "done"}
    leftovers = []
    for path in (root / "models").glob("round_*"):
        number = path.name.removeprefix("round_").removesuffix(".npz")
        if number.isdigit() and int(number) not in finished:
            leftovers.append(path.name)
    return leftovers


def _rerun(kind: str, root: Path, args: argparse.Namespace) -> None:
    from engine.ingest import ingest
    from engine.models import load_model
    from engine.project import open_project
    from engine.selftrain.config import RoundConfig
    from engine.selftrain.rounds import run_round

    with open_project(root) as project:
        if kind == "ingest":
            ingest(project, load_model(project.model_spec), workers=0)
        else:
            mode = "finetune" if kind == "finetune round" else "head"
            run_round(project, RoundConfig(mode=mode, finetune_steps=args.steps, finetune_batch_size=8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=2, help="kills per kind of work (ingest, head, finetune)")
    parser.add_argument("--images", type=int, default=60, help="images in the project, and added per ingest run")
    parser.add_argument("--steps", type=int, default=6, help="steps of a finetune round")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.imagegen import write_images
    from tests.tiny_model import make_tiny_model

    rng = random.Random(args.seed)
    made = survived = 0
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        images, root = scratch / "images", scratch / "project"
        relpaths = write_images(images, args.images, seed=args.seed)
        model = make_tiny_model(scratch / "tiny")
        subprocess.run(_command("init", root, "--images", images, "--classes", CLASSES, "--model", model),
                       cwd=REPO, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        start_up = _timed_run(_command("status", root))
        ingest_seconds = _timed_run(_command("ingest", root, "--workers", "1"))
        labels = scratch / "labels.csv"
        labels.write_text("path,label\n" + "".join(f"{path},{CLASSES.split(',')[i % 2]}\n"
                                                   for i, path in enumerate(relpaths[:30])))
        subprocess.run(_command("label", root, "--csv", labels), cwd=REPO, check=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
        head_seconds = _timed_run(_command("round", root))
        finetune_args = ["--mode", "finetune", "--steps", args.steps, "--batch-size", 8]
        finetune_seconds = _timed_run(_command("round", root, *finetune_args))
        work = [("ingest", ingest_seconds, ["ingest", root, "--workers", "1"]),
                ("head round", head_seconds, ["round", root]),
                ("finetune round", finetune_seconds, ["round", root, *finetune_args])]
        next_image = args.images
        for kind, seconds, command in work:
            for _ in range(args.kills):
                for _attempt in range(3):  # a run that ended before its kill moment is tried again, killed sooner
                    if kind == "ingest":  # new files, so the killed ingest has work to do
                        write_images(images, args.images, seed=args.seed + next_image, start=next_image)
                        next_image += args.images
                    before = _human_labels(root)
                    delay, ran, alive = _kill_at_random(_command(*command), (min(start_up, seconds), seconds), rng)
                    if alive:
                        break
                    seconds = ran
                result = {"kind": kind, "killed_after_s": round(delay, 2), "was_running": alive}
                try:
                    result["labels_unchanged"] = _human_labels(root) == before  # the database opens
                    _rerun(kind, root, args)
                    result["rerun_completed"] = True
                    result["leftover_models"] = _leftover_models(root) if kind == "finetune round" else []
                except Exception as error:  # a kill that broke the project: reported, and the run goes on
                    result["error"] = f"{type(error).__name__}: {error}"
                ok = (result.get("labels_unchanged") and result.get("rerun_completed")
                      and not result.get("leftover_models"))
                made += alive
                survived += bool(alive and ok)
                result["survived"] = bool(ok)
                print(json.dumps(result), flush=True)
    print(json.dumps({"kills_made": made, "kills_survived": survived, "seconds_per_run":
                      {"start-up": round(start_up, 2), "ingest": round(ingest_seconds, 2),
                       "head round": round(head_seconds, 2), "finetune round": round(finetune_seconds, 2)},
                      "config": vars(args)}))


if __name__ == "__main__":
    main()
