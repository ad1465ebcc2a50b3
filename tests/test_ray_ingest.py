"""`ingest --engine ray` on a local Ray with 2 CPUs: the same rows, reasons and vectors as local ingest; a run
killed half-way resumes from its shards; without Ray, one line. Ray starts once for the module (seconds)."""

import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from engine.project.folder import open_project
from tests.imagegen import write_bad_files, write_images

try:
    import ray
    import ray.data  # noqa: F401
except ImportError:  # pragma: no cover - CI installs the extra
    ray = None

needs_ray = pytest.mark.skipif(ray is None, reason='Ray is not installed (pip install -e ".[ray]")')


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    write_images(images, 40)
    write_images(images / "copies", 3)  # the same pictures as three of the above: duplicates share a vector
    bad = write_bad_files(images)
    return images, bad


def _init(cli, root, images, model):
    assert cli("init", root, "--images", images, "--classes", "circle,square", "--model", model)[0] == 0


def _rows(root):
    """relpath -> image row, reason and vector of every image of a project."""
    with open_project(root) as project:
        store = project.store
        model_id = store.get_meta("model_id")
        ids, vectors = store.embeddings(model_id)
        by_id = dict(zip(ids.tolist(), vectors))
        index = store.image_index()
        errors = {e["path"]: e["reason"] for e in store.image_errors()}
    return {relpath: {"sha256": row[1], "size": row[2], "status": row[4], "reason": errors.get(relpath),
                      "vector": by_id.get(row[0])} for relpath, row in index.items()}


@needs_ray
def test_ray_ingest_matches_local_ingest(local_ray, tmp_path, folder, tiny_model, cli, cli_json):
    images, bad = folder
    _init(cli, tmp_path / "local", images, tiny_model)
    _init(cli, tmp_path / "ray", images, tiny_model)
    local = cli_json("ingest", tmp_path / "local", "--workers", "0")
    remote = cli_json("ingest", tmp_path / "ray", "--engine", "ray", "--workers", "1", "--batch-size", "16")
    for key in ("found", "new", "errors", "embedded", "reused", "predicted", "error_paths"):
        assert remote[key] == local[key], key
    assert local["errors"] == len(bad) and local["reused"] == 3

    local_rows, ray_rows = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert local_rows.keys() == ray_rows.keys()
    for relpath, expected in local_rows.items():
        got = ray_rows[relpath]
        assert {k: got[k] for k in ("sha256", "size", "status", "reason")} == \
               {k: expected[k] for k in ("sha256", "size", "status", "reason")}, relpath
        if expected["vector"] is None:
            assert got["vector"] is None, relpath
        else:  # shards carry fp16 vectors
            np.testing.assert_allclose(got["vector"], expected["vector"], atol=2e-3)
    for name in ("local", "ray"):
        assert cli("export", tmp_path / name, "--format", "csv", "--out", tmp_path / f"{name}.csv")[0] == 0
    local_labels = [line.split(",")[:2] for line in (tmp_path / "local.csv").read_text().splitlines()]
    assert [line.split(",")[:2] for line in (tmp_path / "ray.csv").read_text().splitlines()] == local_labels
    thumbs = {path.name for path in (tmp_path / "ray" / "thumbs").rglob("*.jpg")}
    assert thumbs == {f"{row['sha256']}.jpg" for row in local_rows.values() if row["status"] == "ok"}
    assert not list((tmp_path / "ray").glob("ingest-shards/*/*.parquet"))  # imported, then removed


@needs_ray
def test_a_killed_ray_ingest_resumes_from_its_shards(local_ray, tmp_path, folder, tiny_model, cli):
    from engine.learning.models import load_model
    from engine.dataset.ray_ingest import ray_ingest

    images, bad = folder
    root = tmp_path / "project"
    _init(cli, root, images, tiny_model)

    class Killed(Exception):
        pass

    def kill_after_two_shards(done, total):
        if done >= 32:
            raise Killed

    with open_project(root) as project:
        model = load_model(project.model_spec)
        with pytest.raises(Killed):
            ray_ingest(project, model, batch_size=16, progress=kill_after_two_shards)
        assert project.store.counts()["images"]["ok"] == 0  # nothing imported yet: shards only
    shards = sorted(root.glob("ingest-shards/*/*.parquet"))
    assert len(shards) >= 2
    deleted = pq.read_table(shards[0], columns=["relpath", "status"]).to_pylist()
    deleted = next(row["relpath"] for row in deleted if row["status"] == "ok")
    (images / deleted).unlink()  # written to a shard, then deleted before the run resumes

    with open_project(root) as project:
        report = ray_ingest(project, model, batch_size=16)
        counts = project.store.counts()["images"]
        relpaths = list(project.store.relpaths().values())
        vectors = project.store.embedding_count(model.model_id)
    files = 40 + 3 - 1 + len(bad)
    assert deleted not in relpaths
    assert sorted(relpaths) == sorted(set(relpaths)) and len(relpaths) == files  # each image exactly once
    assert counts == {"ok": 42, "error": len(bad), "missing": 0} and vectors == 42
    assert (report.found, report.errors, report.embedded + report.reused) == (files, len(bad), 42)
    assert not list(root.glob("ingest-shards/*/*.parquet"))


def test_ray_engine_without_ray_is_one_line(project, cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    code, out, err = cli("ingest", project, "--engine", "ray")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code != 0 and len(lines) == 1 and 'pip install -e ".[ray]"' in lines[0], err
