"""Local ingest with decode worker processes gives what in-process decoding gives, and hands the cores back; its
batched preprocessing gives the model's own numbers."""

import threading

import numpy as np
import torch

from engine.files.images import model_picture, read_image
from engine.dataset.ingest import IngestTimings, ingest
from engine.learning.models import load_model, parse_model_spec
from engine.project.folder import create_project, open_project
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


def test_the_pictures_ingest_batches_get_the_numbers_of_the_models_own_preprocessing(tiny_model):
    """Ingest crops in the decode worker and normalises a whole uint8 batch at once; the model sees the same
    tensor as its per-image PIL preprocessing makes, for pictures wider, taller, square and smaller than its input."""
    model = load_model(parse_model_spec(str(tiny_model)))
    rng = np.random.default_rng(0)
    shapes = [(120, 160, 3), (161, 90, 3), (40, 40, 3), (20, 70, 3)]
    pictures = [model_picture(rng.integers(0, 256, shape, dtype=np.uint8), model.image_size) for shape in shapes]
    batched = model.preprocess_pictures(np.stack([np.asarray(model.picture_transform(p)) for p in pictures]))
    one_by_one = torch.stack([model.preprocess(p) for p in pictures])
    torch.testing.assert_close(batched, one_by_one, rtol=0, atol=1e-6)


def test_decode_workers_start_only_where_decoding_is_the_slower_side_and_enough_files_are_left():
    unmeasured = IngestTimings()
    assert not unmeasured.workers_pay_off(10**6)  # until the model has encoded a batch, decoding stays here
    big_model = IngestTimings()
    big_model.decoded(64, 0.3)
    big_model.encoded(64, 6.0)  # ViT-B-32 on CPU: decoding (5 ms an image) hides behind the model (94 ms)
    assert not big_model.workers_pay_off(10**6)
    small_model = IngestTimings()
    small_model.decoded(64, 0.3)
    small_model.encoded(64, 0.01)
    assert small_model.workers_pay_off(10_000)
    assert not small_model.workers_pay_off(600)  # 3 s of decoding left: a worker's start would not pay


def test_an_open_clip_architecture_from_a_weights_file_ingests_beside_its_model(tmp_path, cli, cli_json):
    """`--model ViT-S-32:FILE` (random weights made here) end to end: every image embedded in-process beside the
    model (slower than decoding, so no decode worker starts), each stored vector the one open_clip's own
    preprocessing gives."""
    import open_clip

    weights = tmp_path / "vit-s-32.pt"
    torch.save(open_clip.create_model("ViT-S-32", pretrained=None).state_dict(), weights)
    write_images(tmp_path / "images", 6, size=(120, 160))
    root = tmp_path / "project"
    assert cli("init", root, "--images", tmp_path / "images", "--classes", "circle,square",
               "--model", f"ViT-S-32:{weights}")[0] == 0
    report = cli_json("ingest", root, "--batch-size", "4")
    assert (report["embedded"], report["errors"], report["decode_workers"]) == (6, 0, 0)
    model = load_model(parse_model_spec(f"ViT-S-32:{weights}"))
    with open_project(root) as project:
        ids, vectors = project.store.embeddings(model.model_id)
        paths = project.store.relpaths()
    for image_id, vector in zip(ids, vectors):
        picture = model_picture(read_image(tmp_path / "images" / paths[int(image_id)]).pixels, model.image_size)
        np.testing.assert_allclose(vector, model.encode_images(model.preprocess(picture)[None])[0], atol=1e-5)


def test_an_ingest_outside_the_main_thread_decodes_in_worker_processes(tmp_path, tiny_model):
    """A job of the server ingests in a thread, where the per-file time limit (an alarm) cannot hold a file read in
    the process: there every file goes to decode workers, whose stall guard also catches a stuck decoder."""
    write_images(tmp_path / "images", 6, size=(120, 160))
    project = create_project(tmp_path / "project", images=tmp_path / "images", classes="circle,square",
                             model=str(tiny_model))
    reports = []
    with project:
        job = threading.Thread(target=lambda: reports.append(ingest(project, load_model(project.model_spec))))
        job.start()
        job.join(300)
    assert reports[0].embedded == 6 and reports[0].decode_workers >= 1
