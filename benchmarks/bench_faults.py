"""kill -9 at random points of an ingest, a head round, a finetune round and a folder export; after each kill the
database must open, every human label must be unchanged, and a rerun must complete (a finetune rerun must also leave
no model folder of an unfinished round, an export rerun no hidden `.partial` beside its target). Then a full disk:
a project on a small tmpfs (32 MB, root only; skipped with the reason elsewhere), filled to under 1 KB
short of full, runs ingest, label, round and export; each must fail with one line saying the disk is full (one that
finds room to finish makes no fault and is not counted), leave the human labels as they were, and, once space is freed, run again to the end with no half-written file left. Prints one
JSON line per fault, then the totals (`faults_made`, `faults_survived`: kills and full disks together):

    python -m benchmarks.bench_faults [--kills 2] [--images 120] [--seed 0]

`--kills` is per kind of work (four kinds). Each killed command is a fresh `labelloop` process, killed at a
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
    from engine.project.folder import open_project

    with open_project(root) as project:
        rows = project.store.current_labels().to_pylist()
    return {row["path"]: row["label"] for row in rows if row["source"] == "human"}


def _leftover_models(root: Path) -> list[str]:
    """Model folders and checkpoints under models/ that no finished round names."""
    from engine.project.folder import open_project

    with open_project(root) as project:
        finished = {entry["id"] for entry in project.store.rounds() if entry["status"] == "done"}
    leftovers = []
    for path in (root / "models").glob("round_*"):
        number = path.name.removeprefix("round_").removesuffix(".npz")
        if number.isdigit() and int(number) not in finished:
            leftovers.append(path.name)
    return leftovers


def _leftover_partials(root: Path, dataset: Path) -> list[str]:
    """Half-written files a killed or failed command left: hidden `.partial` exports beside `dataset`, and neighbour
    graphs in models/."""
    return sorted(path.name for path in [*dataset.parent.glob(f".{dataset.name}.*.partial"),
                                         *(root / "models").glob("knn_*.partial.npz")])


def _rerun(kind: str, root: Path, args: argparse.Namespace, dataset: Path) -> None:
    from engine.dataset.export import export
    from engine.dataset.ingest import ingest
    from engine.learning.models import load_model
    from engine.project.folder import open_project
    from engine.learning.selftrain.config import FinetuneConfig, RoundConfig
    from engine.session.round_runner import run_round

    with open_project(root) as project:
        if kind == "ingest":
            ingest(project, load_model(project.model_spec), workers=0)
        elif kind == "folder export":
            export(project, fmt="imagefolder", out=dataset, force=True)
        else:
            mode = "finetune" if kind == "finetune round" else "head"
            run_round(project, RoundConfig(mode=mode, finetune=FinetuneConfig(steps=args.steps, batch_size=8)))


def _mount_small_disk(folder: Path) -> str | None:
    """Mount a 32 MB tmpfs on `folder`; None, or why it cannot be done here."""
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(folder)], capture_output=True,
                          text=True)
    return None if done.returncode == 0 else f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})"


def _fill(folder: Path, leave: int) -> Path:
    """Fill the filesystem of `folder` to `leave` bytes short of full; returns the filler file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle:  # unbuffered: the write that finds the disk full raises here
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass
    with open(filler, "r+b") as handle:
        handle.truncate(max(0, filler.stat().st_size - leave))
    return filler


def _disk_full_cases(scratch: Path, images: Path, model: Path, rng: random.Random, args) -> list[dict]:
    """Each command on a project whose disk fills during it; one result per command (see the module's doc)."""
    from tests.imagegen import write_images

    disk = scratch / "small_disk"
    reason = _mount_small_disk(disk)
    if reason:
        return [{"kind": "disk full", "skipped": reason}]
    results = []
    try:
        root, dataset, labels = disk / "project", disk / "dataset", scratch / "small_labels.csv"
        relpaths = write_images(images, args.images, seed=args.seed + 500)
        subprocess.run(_command("init", root, "--images", images, "--classes", CLASSES, "--model", model), cwd=REPO,
                       check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        subprocess.run(_command("ingest", root, "--workers", "0"), cwd=REPO, check=True, capture_output=True,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
        labels.write_text("path,label\n" + "".join(f"{path},{CLASSES.split(',')[i % 2]}\n"
                                                   for i, path in enumerate(relpaths[:20])))
        commands = {"ingest": ["ingest", root, "--workers", "0"], "label": ["label", root, "--csv", labels],
                    "round": ["round", root], "export": ["export", root, "--format", "imagefolder", "--out", dataset,
                                                         "--force"]}
        for kind, command in commands.items():
            if kind == "ingest":  # new files, so the ingest has work to write
                write_images(images, args.images, seed=args.seed + 1000, start=1000)
            before = _human_labels(root)
            filler = _fill(disk, rng.randrange(0, 1024))
            done = subprocess.run(_command(*command), cwd=REPO, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(REPO)})
            lines = [line for line in done.stderr.splitlines() if line and not line.startswith("loading model")]
            result = {"kind": f"disk full during {kind}", "exit_code": done.returncode,
                      "said": lines[-1][:200] if lines else ""}
            filler.unlink()
            try:
                result["labels_unchanged"] = _human_labels(root) == before
                if kind == "label":
                    subprocess.run(_command(*command), cwd=REPO, check=True, capture_output=True,
                                   env={**os.environ, "PYTHONPATH": str(REPO)})
                else:
                    _rerun({"round": "head round", "export": "folder export"}.get(kind, kind), root, args, dataset)
                result["rerun_completed"] = True
                result["leftovers"] = _leftover_partials(root, dataset)
            except Exception as error:  # reported, and the run goes on
                result["error"] = f"{type(error).__name__}: {error}"
            # a command that found room to finish made no fault; one that failed must have said why in one line
            one_line = done.returncode == 0 or (len(lines) == 1 and "disk full at" in lines[0]
                                                 and "Traceback" not in done.stderr)
            result["fault_made"] = done.returncode != 0
            result["survived"] = bool(one_line and (result.get("labels_unchanged") or not result["fault_made"])
                                      and result.get("rerun_completed") and not result.get("leftovers"))
            results.append(result)
            print(json.dumps(result), flush=True)
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    return results



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=2,
                        help="kills per kind of work (ingest, head round, finetune round, folder export)")
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
        dataset = scratch / "dataset"
        export_args = ["export", root, "--format", "imagefolder", "--out", dataset, "--force"]
        export_seconds = _timed_run(_command(*export_args))
        work = [("ingest", ingest_seconds, ["ingest", root, "--workers", "1"]),
                ("head round", head_seconds, ["round", root]),
                ("finetune round", finetune_seconds, ["round", root, *finetune_args]),
                ("folder export", export_seconds, export_args)]
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
                    _rerun(kind, root, args, dataset)
                    result["rerun_completed"] = True
                    result["leftover_models"] = _leftover_models(root) if kind == "finetune round" else []
                    result["leftovers"] = _leftover_partials(root, dataset)
                except Exception as error:  # a kill that broke the project: reported, and the run goes on
                    result["error"] = f"{type(error).__name__}: {error}"
                ok = (result.get("labels_unchanged") and result.get("rerun_completed")
                      and not result.get("leftover_models") and not result.get("leftovers"))
                made += alive
                survived += bool(alive and ok)
                result["survived"] = bool(ok)
                print(json.dumps(result), flush=True)
        full = _disk_full_cases(scratch, scratch / "small_images", model, rng, args)
    made_full = [case for case in full if case.get("fault_made")]
    print(json.dumps({"faults_made": made + len(made_full),
                      "faults_survived": survived + sum(case["survived"] for case in made_full),
                      "kills_made": made, "kills_survived": survived,
                      "disk_full_made": len(made_full), "disk_full_survived": sum(c["survived"] for c in made_full),
                      "disk_full_skipped": full[0].get("skipped"),
                      "seconds_per_run": {"start-up": round(start_up, 2), "ingest": round(ingest_seconds, 2),
                                          "head round": round(head_seconds, 2),
                                          "finetune round": round(finetune_seconds, 2),
                                          "folder export": round(export_seconds, 2)},
                      "config": vars(args)}))


if __name__ == "__main__":
    main()
