"""Local ingest with decode worker processes gives what in-process decoding gives, and hands the cores back."""

import numpy as np
import torch

from engine.dataset.ingest import ingest
from engine.learning.models import load_model
from engine.project.folder import create_project
from tests.imagegen import write_bad_files, write_images


def _ingested(tmp_path, name, images, tiny_model, workers):
    project = create_project(tmp_path / name, images=images, classes="circle,square", model=str(tiny_model))
    with project:
        report = ingest(project, load_model(project.model_spec), batch_size=8, workers=workers)
        store = project.store
        ids, vectors = store.embeddings(store.get_meta("model_id"))
        paths = store.relpaths()
        by_path = {paths[int(i)]: vector for i, vector in zip(ids, vectors)}
        thumbs = {path.relative_to(project.thumbs_dir).as_posix(): path.read_bytes()
                  for path in project.thumbs_dir.rglob("*.jpg")}
    return report, by_path, thumbs


def test_decode_workers_give_the_vectors_and_thumbnails_of_in_process_decoding(tmp_path, tiny_model):
    images = tmp_path / "images"
    write_images(images, 20, size=(120, 160))
    write_images(images / "copies", 2, size=(120, 160))  # duplicates: one thumbnail, one embedding each
    bad = write_bad_files(images)
    threads = torch.get_num_threads()
    in_process, vectors, thumbs = _ingested(tmp_path, "in-process", images, tiny_model, workers=0)
    in_workers, worker_vectors, worker_thumbs = _ingested(tmp_path, "workers", images, tiny_model, workers=1)

    assert torch.get_num_threads() == threads  # the model's threads are the caller's again
    assert (in_workers.embedded, in_workers.reused, in_workers.errors) == (20, 2, len(bad))
    assert (in_process.embedded, in_process.reused, in_process.errors) == (20, 2, len(bad))
    assert set(worker_vectors) == set(vectors) and len(vectors) == 22
    for path, vector in vectors.items():
        np.testing.assert_allclose(worker_vectors[path], vector, atol=1e-5)
    assert worker_thumbs == thumbs and len(thumbs) == 20
