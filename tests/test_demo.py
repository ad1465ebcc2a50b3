"""The embedded demo model and the demo dataset, through the same code paths a real CLIP takes."""

import csv
import hashlib
import json

import numpy as np
import pytest

from engine.demo.dataset import RECIPE, read_ground_truth, write_demo_dataset
from engine.demo.render import SHAPES
from engine.demo.train import caption_mentions, match_matrix, multi_positive_clip_loss
from engine.errors import LabelloopError
from engine.learning.models import DEMO_MODEL_DIR, load_model, parse_model_spec

SMALL = {**RECIPE, "images": 48}


def _digest(folder):
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted((folder / "images").iterdir()))).hexdigest()


def test_demo_dataset_is_deterministic_balanced_and_reused(tmp_path):
    images, truth = write_demo_dataset(tmp_path / "a", SMALL)
    write_demo_dataset(tmp_path / "b", SMALL)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    labels = read_ground_truth(truth)
    assert len(labels) == 48 and sorted(set(labels.values())) == sorted(SHAPES)
    assert all(list(labels.values()).count(shape) == 6 for shape in SHAPES)
    stamp = (images / "sketch_0000.jpg").stat().st_mtime_ns
    write_demo_dataset(tmp_path / "a", SMALL)
    assert (images / "sketch_0000.jpg").stat().st_mtime_ns == stamp  # reused, not rewritten


def test_demo_dataset_refuses_a_folder_of_other_images(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "mine.jpg").write_bytes(b"x")
    with pytest.raises(LabelloopError, match="not a labelloop demo"):
        write_demo_dataset(tmp_path, SMALL)


def test_caption_mentions_and_matches():
    assert caption_mentions("a red star on a striped background") == (0, 3, 0)
    assert caption_mentions("a hollow star") == (-1, -1, 1)
    import torch

    # image i's own caption is caption i: "a star", "a hollow star", "a red circle"
    name = torch.tensor([3, 3, 0])  # star, star, circle
    color = torch.tensor([0, 2, 0])  # red, blue, red
    outlined = torch.tensor([False, True, False])
    background = torch.tensor([0, 0, 0])
    matches = match_matrix(name, color, background, outlined, torch.tensor([-1, -1, 0]),
                           torch.tensor([-1, -1, -1]), torch.tensor([0, 1, 0]))
    assert matches.tolist() == [[True, True, False], [False, True, False], [False, False, True]]


def test_multi_positive_loss_is_lowest_when_all_true_pairs_align():
    import torch

    matches = torch.tensor([[True, True], [True, True]])
    same = torch.nn.functional.normalize(torch.ones(2, 4), dim=1)
    apart = torch.eye(2, 4)
    assert multi_positive_clip_loss(same, same, torch.tensor(10.0), matches) < \
        multi_positive_clip_loss(apart, apart, torch.tensor(10.0), matches)


def test_embedded_model_is_small_half_precision_and_loads_offline():
    weights = DEMO_MODEL_DIR / "open_clip_model.safetensors"
    assert weights.stat().st_size <= 25 * 2**20
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as handle:
        assert {str(handle.get_tensor(k).dtype) for k in handle.keys() if handle.get_tensor(k).is_floating_point()} \
            == {"torch.float16"}
    model = load_model(parse_model_spec("demo"))
    assert model.spec.kind == "demo" and model.encode_texts(["a star"]).shape == (1, model.dim)


def test_init_ingest_zero_shot_export_with_the_demo_model(tmp_path, cli, cli_json):
    images, truth = write_demo_dataset(tmp_path / "demo", SMALL)
    root = tmp_path / "project"
    assert cli("init", root, "--images", images, "--classes", ",".join(SHAPES), "--model", "demo")[0] == 0
    report = cli_json("ingest", root)
    assert (report["embedded"], report["predicted"], report["errors"]) == (48, 48, 0)
    out = tmp_path / "out.csv"
    assert cli("export", root, "--format", "csv", "--out", out)[0] == 0
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 48 and {r["label"] for r in rows} <= set(SHAPES)
    accuracy = np.mean([read_ground_truth(truth)[r["path"]] == r["label"] for r in rows])
    assert accuracy > 1 / len(SHAPES)  # better than chance on a domain it never saw


def test_demo_command_prepares_everything_and_reuses_it(tmp_path, cli):
    code, out, err = cli("demo", "--dir", tmp_path, "--no-serve")
    assert code == 0, err
    assert (tmp_path / "images").is_dir() and (tmp_path / "ground_truth.csv").is_file()
    assert json.loads((tmp_path / "demo.json").read_text()) == RECIPE
    assert f"{RECIPE['images']} images, {RECIPE['images']} embedded now" in out
    code, out, _ = cli("demo", "--dir", tmp_path, "--no-serve")
    assert code == 0 and "0 embedded now" in out
