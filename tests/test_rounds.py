"""Self-training rounds: the algorithm on planted data, and the project around it (snapshot, one transaction,
cancel, kill)."""

import subprocess
import sys
import time

import numpy as np
import pytest

from engine.learning.selftrain.head import fit_head, zero_shot_head
from engine.project.folder import open_project
from engine.learning.selftrain.adapt import adapt
from engine.learning.selftrain.config import RoundConfig
from engine.session.round_runner import GRAPH_JOB, run_round
from engine.jobs.runner import Cancelled
from engine.learning.probabilities import cosine_probs
from tests.synthetic import planted_embeddings, synthetic_project


def test_an_untrained_head_is_zero_shot():
    x, _, text = planted_embeddings(50, 16, 3)
    head = zero_shot_head(text, 40.0)
    np.testing.assert_allclose(head.logits(x), 40.0 * x @ text.T, rtol=1e-5)


def test_fit_head_learns_labels_the_text_weights_get_wrong():
    x, y, text = planted_embeddings(600, 16, 3, spread=0.2, text_noise=1.5, seed=1)
    start = zero_shot_head(text, 40.0)
    fitted = fit_head(start, x, y, np.ones(len(y)), l2_to_init=1e-3)
    assert (fitted.logits(x).argmax(1) == y).mean() > (start.logits(x).argmax(1) == y).mean() + 0.1


def _rounds(x, text, rounds, config, human_index=np.zeros(0, int), human_label=np.zeros(0, int), class_prior=None):
    zero_shot = zero_shot_head(text, 50.0)
    teacher, probs = zero_shot, cosine_probs(x, text, 50.0)
    excluded = np.zeros(len(x), bool)
    excluded[human_index] = True
    outputs = []
    for number in range(1, rounds + 1):
        output = adapt(x, zero_shot, teacher, probs, human_index, human_label, excluded, number, config,
                       class_prior=class_prior)
        teacher, probs = output.teacher, output.probs
        outputs.append(output)
    return outputs


def test_unsupervised_rounds_with_an_audited_prior_beat_a_biased_zero_shot():
    x, y, text = planted_embeddings(3000, 32, 5, spread=0.1, text_noise=0.8, seed=2)
    zero_shot_accuracy = (cosine_probs(x, text, 50.0).argmax(1) == y).mean()
    prior = np.bincount(y, minlength=5) / len(y)
    outputs = _rounds(x, text, 3, RoundConfig(), class_prior=prior)
    assert (outputs[-1].probs.argmax(1) == y).mean() >= zero_shot_accuracy + 0.05
    assert [o.metrics.pseudo_labels for o in outputs] == sorted(o.metrics.pseudo_labels for o in outputs)


def test_rounds_without_a_prior_take_no_pseudo_labels_and_never_lose_to_zero_shot():
    x, y, text = planted_embeddings(3000, 32, 5, spread=0.1, text_noise=0.8, seed=2)
    zero_shot_accuracy = (cosine_probs(x, text, 50.0).argmax(1) == y).mean()
    outputs = _rounds(x, text, 2, RoundConfig())
    assert [o.metrics.pseudo_labels for o in outputs] == [0, 0]
    assert (outputs[-1].probs.argmax(1) == y).mean() >= zero_shot_accuracy - 0.01


def test_human_labels_train_are_never_pseudo_labeled_and_are_cross_fitted():
    x, y, text = planted_embeddings(2000, 32, 4, seed=3)
    human_index = np.arange(0, 2000, 40)
    output = _rounds(x, text, 1, RoundConfig(), human_index, y[human_index])[0]
    assert not set(output.pseudo_index.tolist()) & set(human_index.tolist())
    assert output.metrics.human_labels == 50
    assert 0.0 <= output.metrics.human_accuracy_crossfit <= 1.0 and output.metrics.temperature > 0


def test_cache_teacher_runs_without_training():
    x, y, text = planted_embeddings(1000, 16, 3, seed=4)
    output = _rounds(x, text, 2, RoundConfig(teacher="cache"))[-1]
    assert output.probs.shape == (1000, 3)
    np.testing.assert_allclose(output.probs.sum(1), 1.0, rtol=1e-5)


def test_round_cli_writes_predictions_metrics_and_jobs(project, tmp_path, cli, cli_json):
    code, out, err = cli("round", project, "--rounds", "2", "--json")
    assert code == 0, err
    import json

    metrics = json.loads(out)
    assert [m["round"] for m in metrics] == [1, 2]
    assert metrics[0]["graph_cached"] is True  # ingest built the neighbour graph at its end
    status = cli_json("status", project)
    # no audit, no class prior: a round takes no pseudo-labels (RoundConfig.share_step_without_prior)
    assert status["last_round"]["id"] == 2 and status["labels"]["pseudo"] == 0
    assert status["predictions"]["teacher"] == 12
    out_csv = tmp_path / "after.csv"
    assert cli("export", project, "--format", "csv", "--out", out_csv)[0] == 0
    assert {line.split(",")[2] for line in out_csv.read_text().splitlines()[1:]} == {"teacher"}
    with open_project(project) as opened:
        assert [(job["kind"], job["status"]) for job in opened.store.jobs()] == [
            ("round", "done"), ("round", "done"), (GRAPH_JOB, "done")]  # newest first: ingest's graph, then rounds
    code, out, _ = cli("queue", project, "--k", "3", "--json")
    queue = json.loads(out)
    assert code == 0 and len(queue) == 3 and {"path", "predicted", "confidence", "reason"} <= set(queue[0])


@pytest.fixture
def planted_project(tmp_path, tiny_model):
    x, _, text = planted_embeddings(3000, 32, 4, seed=5)
    project = synthetic_project(tmp_path / "p", tmp_path / "images", tiny_model, x, text)
    yield project
    project.close()


def test_a_human_label_written_during_a_round_is_kept(planted_project):
    store = planted_project.store
    target = 1
    wrote = []

    def person_labels_while_it_runs(fraction, message):
        if fraction > 0 and not wrote:  # after the snapshot was taken
            store.set_labels([target], [3], source="human", actor="person")
            wrote.append(True)

    metrics = run_round(planted_project, RoundConfig(), progress=person_labels_while_it_runs)
    assert metrics.human_labels == 0  # the round trained on the labels as they were when it started
    snapshot = store.label_snapshot()
    row = snapshot["image_id"].tolist().index(target)
    assert snapshot["human"][row] and snapshot["class_id"][row] == 3


def test_cancel_leaves_the_previous_round_intact(planted_project):
    store = planted_project.store
    run_round(planted_project, RoundConfig())
    calls = []
    with pytest.raises(Cancelled):
        run_round(planted_project, RoundConfig(), cancel=lambda: calls.append(1) or len(calls) > 2)
    assert [r["status"] for r in store.rounds()] == ["done", "cancelled"]
    assert store.last_finished_round() == 1 and store.prediction_matrix(2) is None
    assert store.prediction_matrix(1)[2].shape == (3000, 4)


def test_a_killed_round_process_loses_nothing(tmp_path, tiny_model):
    x, y, text = planted_embeddings(100_000, 128, 10, seed=6)
    with synthetic_project(tmp_path / "p", tmp_path / "images", tiny_model, x, text) as project:
        labeled = np.arange(1, 100_001, 50)
        project.store.set_labels(labeled.tolist(), y[labeled - 1].tolist(), source="human", actor="test")
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "round", str(tmp_path / "p"), "--rounds", "50"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout.readline().startswith("round 1:")
        time.sleep(1.0)  # well inside round 2, which takes seconds
    finally:
        process.kill()
        process.wait()
    with open_project(tmp_path / "p") as project:
        store = project.store
        statuses = {r["id"]: r["status"] for r in store.rounds()}
        assert "running" not in statuses.values() and statuses[1] == "done"
        assert "interrupted" in [job["status"] for job in store.jobs()]
        for round_id, status in statuses.items():
            stored = store.prediction_matrix(round_id)
            if status == "done":
                assert stored[2].shape == (100_000, 10)
            else:
                assert status == "interrupted" and stored is None
        assert store.counts()["labels"]["human"] == len(labeled)
