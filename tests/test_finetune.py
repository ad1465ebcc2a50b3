"""`finetune` rounds: the pieces on tiny tensors, then whole rounds on a small demo project (CPU, few steps)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.learning.selftrain import finetune
from engine.demo.dataset import RECIPE, write_demo_dataset
from engine.demo.render import SHAPES
from engine.errors import LabelloopError
from engine.learning.selftrain.finetune import ema_update, halve_on_oom, self_training_loss, trainable_parameters
from engine.dataset.ingest import ingest
from engine.jobs.runner import Cancelled, run_job
from engine.learning.models import DEMO_SPEC, load_model, parse_model_spec
from engine.project.folder import create_project, open_project
from engine.learning.selftrain.config import FinetuneConfig, RoundConfig
from engine.session.round_runner import run_round

QUICK = RoundConfig(mode="finetune", finetune=FinetuneConfig(steps=3, batch_size=8))


def test_trainable_parameters_keep_the_stem_and_early_blocks_frozen(tiny_model):
    resnet = load_model(parse_model_spec(DEMO_SPEC), torch.device("cpu")).model.visual
    trainable = {id(p) for p in trainable_parameters(resnet, 1)}
    assert id(resnet.layer4[0].conv1.weight) in trainable and id(resnet.attnpool.q_proj.weight) in trainable
    assert id(resnet.layer3[0].bn1.weight) in trainable  # norms everywhere
    assert id(resnet.layer3[0].conv1.weight) not in trainable and id(resnet.conv1.weight) not in trainable
    assert not resnet.layer3[0].conv1.weight.requires_grad
    vit = load_model(parse_model_spec(str(tiny_model)), torch.device("cpu")).model.visual
    trainable = {id(p) for p in trainable_parameters(vit, 0)}
    block = vit.transformer.resblocks[-1]
    assert id(vit.proj) in trainable and id(block.ln_1.weight) in trainable
    assert id(block.mlp.c_fc.weight) not in trainable and id(vit.conv1.weight) not in trainable


def test_self_training_loss_uses_labels_and_only_confident_teacher_targets():
    student = torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 0.0], [0.0, 0.0]])
    teacher = torch.tensor([[0.0, 0.0], [0.0, 0.0], [9.0, 0.0], [0.1, 0.0]])  # rows 2 sure, row 3 unsure
    labels = torch.tensor([0, 0, -1, -1])
    loss, used = self_training_loss(student, teacher, labels, torch.tensor([1.0, 3.0, 1.0, 1.0]),
                                    threshold=0.9, unlabeled_weight=1.0)
    ce = torch.nn.functional.cross_entropy
    labeled = (ce(student[:1], labels[:1]) + 3 * ce(student[1:2], labels[1:2])) / 4
    expected = labeled + ce(student[2:3], torch.tensor([0])) / 2
    assert used == 0.5 and loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_ema_update_moves_the_teacher_a_step_towards_the_student():
    teacher, student = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    before = teacher.weight.detach().clone()
    ema_update(teacher, student, 0.9)
    torch.testing.assert_close(teacher.weight, 0.9 * before + 0.1 * student.weight.detach())


def test_out_of_memory_halves_the_batch_and_carries_on():
    tried = []

    def work(batch_size):
        tried.append(batch_size)
        if batch_size > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")

    assert halve_on_oom(work, 32) == 8 and tried == [32, 16, 8]

    def never_fits(batch_size):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")

    with pytest.raises(LabelloopError, match="even with a batch of 1"):
        halve_on_oom(never_fits, 4)


@pytest.fixture
def demo_project(tmp_path):
    """40 demo sketches, ingested with the embedded demo model."""
    images, _ = write_demo_dataset(tmp_path / "demo", {**RECIPE, "images": 40})
    project = create_project(tmp_path / "project", images=images, classes=",".join(SHAPES), model=DEMO_SPEC)
    ingest(project, load_model(project.model_spec), workers=0)
    yield project
    project.close()


def test_a_finetune_round_writes_predictions_and_a_reloadable_model(demo_project, monkeypatch):
    store = demo_project.store
    base_id, base_spec = store.get_meta("model_id"), store.get_meta("model")
    zero_shot = store.prediction_matrix(0)
    real_loss = finetune.self_training_loss

    def out_of_memory_above_4(student_logits, *args, **kwargs):  # a GPU that fits 4 images, not 8
        if len(student_logits) > 4:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (fake)")
        return real_loss(student_logits, *args, **kwargs)

    monkeypatch.setattr(finetune, "self_training_loss", out_of_memory_above_4)
    messages = []
    metrics = run_round(demo_project, QUICK, progress=lambda fraction, message: messages.append(message))
    assert metrics.finetune["batch_size"] == 4 and metrics.finetune["steps"] == 3
    assert any(message.startswith("epoch 1/") for message in messages)

    model_id, folder = store.get_meta("model_id"), store.get_meta("model")
    assert model_id != base_id and folder == metrics.finetune["model"]
    assert folder == "models/round_0001"  # relative, so the project folder can move
    assert demo_project.model_spec.path == demo_project.models_dir / "round_0001"
    predictions = store.prediction_matrix(1)
    assert predictions[2].shape == (40, len(SHAPES)) and store.counts()["labels"]["pseudo"] > 0
    np.testing.assert_array_equal(store.prediction_matrix(0)[2], zero_shot[2])  # round 0 stays the base model's

    reloaded = load_model(parse_model_spec(str(demo_project.root / folder)), torch.device("cpu"))  # --model FOLDER
    assert reloaded.model_id == model_id
    image_ids, stored = store.embeddings(model_id)
    relpaths = store.relpaths()
    again = finetune.embed_images(reloaded, [demo_project.images_root / relpaths[i] for i in image_ids.tolist()],
                                  QUICK.finetune, report=lambda fraction, message: None)
    np.testing.assert_allclose(again, stored, atol=1e-5)
    assert not np.allclose(store.embeddings(base_id)[1], stored, atol=1e-3)  # the encoder did change
    assert store.get_meta("model") != base_spec

    assert run_round(demo_project, RoundConfig()).images == 40  # a head round over the adapted embeddings
    assert ingest(demo_project, reloaded, workers=0).embedded == 0  # nothing new: ingest keeps everything
    np.testing.assert_array_equal(store.prediction_matrix(0)[2], zero_shot[2])


def test_cancel_stops_a_finetune_round_and_keeps_the_previous_one(demo_project):
    store = demo_project.store
    run_round(demo_project, RoundConfig())
    before = (store.get_meta("model"), store.get_meta("model_id"), store.prediction_matrix(1)[2])
    context = {}

    def stop_at_the_second_step(fraction, message):
        if message.startswith("epoch") and "step 2/" in message:
            context["job"].cancel_event.set()

    def work(job):
        context["job"] = job
        return run_round(demo_project, QUICK, progress=job.progress)

    with pytest.raises(Cancelled):
        run_job(store, "round", {}, work, on_progress=stop_at_the_second_step)
    assert [r["status"] for r in store.rounds()] == ["done", "cancelled"]
    assert store.jobs()[0]["status"] == "cancelled"
    assert (store.get_meta("model"), store.get_meta("model_id")) == before[:2]
    np.testing.assert_array_equal(store.prediction_matrix(1)[2], before[2])
    assert store.prediction_matrix(2) is None and not (demo_project.models_dir / "round_0002").exists()


def test_round_cli_runs_finetune_on_a_vit_model(project, cli):
    code, out, err = cli("round", project, "--mode", "finetune", "--steps", "2", "--batch-size", "4", "--json")
    assert code == 0, err
    metrics = json.loads(out)[0]
    assert metrics["finetune"]["steps"] == 2 and metrics["images"] == 12
    with open_project(project) as opened:
        assert opened.store.get_meta("model") == metrics["finetune"]["model"]
        assert opened.model_spec.kind == "local-dir"
    code, out, err = cli("round", project, "--mode", "finetune", "--steps", "1", "--batch-size", "4")
    assert code == 0, err
    assert f"adapted model saved to {Path(project).resolve() / 'models' / 'round_0002'};" in out
    code, _, err = cli("round", project, "--mode", "finetune", "--steps", "0")
    assert code != 0 and "FinetuneConfig.steps must be between 1" in err
