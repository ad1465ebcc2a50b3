"""The random audit: draws, the honest estimate it gives, and rounds it holds back (engine/project/audit.py over a
project with planted embeddings)."""

import json
import os

import numpy as np
import pytest

from app.cli import main
from engine.project.audit import audit_prior, draw_audit, judge_round, pending_audit, quality_report, show_round
from engine.errors import LabelloopError
from engine.dataset.export import export
from engine.learning.probabilities import prediction_stats
from engine.learning.selftrain.config import RoundConfig
from engine.session.round_runner import run_round
from tests.synthetic import MODEL_ID, file_bytes, planted_embeddings, synthetic_project

N = 600


@pytest.fixture
def planted(tmp_path, tiny_model):
    """A 600-image project over 4 classes whose zero-shot is right about 70 % of the time, and the truth."""
    x, y, text = planted_embeddings(N, 32, 4, seed=3, spread=0.5, text_noise=0.5)
    project = synthetic_project(tmp_path / "p", tmp_path / "images", tiny_model, x, text)
    yield project, y
    project.close()


def _label_truth(project, y, image_ids):
    """A person labels these images (ids are 1-based rows) with their true class."""
    class_ids = [c["id"] for c in project.store.classes()]
    project.store.set_labels(list(image_ids), [class_ids[y[i - 1]] for i in image_ids], source="human",
                             actor="tester")


def _finish_round(store, probs, crossfit_ids=None, crossfit_probs=None):
    """A finished round whose predictions are `probs` (N, C) for every image, and the cross-fitted probabilities
    of the person's labels `crossfit_ids`."""
    class_ids = [c["id"] for c in store.classes()]
    image_ids = np.arange(1, len(probs) + 1)
    round_id = store.start_round({})
    store.finish_round(round_id, model_id=MODEL_ID, image_ids=image_ids, class_ids=class_ids, probs=probs,
                       stats=prediction_stats(probs), pseudo_ids=np.zeros(0, int), pseudo_classes=np.zeros(0, int),
                       metrics={}, crossfit_ids=crossfit_ids, crossfit_probs=crossfit_probs)
    return round_id


def test_draws_follow_one_seeded_permutation_and_refuse_what_does_not_remain(planted):
    project, _ = planted
    store = project.store
    with pytest.raises(LabelloopError, match="at least 1"):
        draw_audit(store, 0)
    first = draw_audit(store, 10, seed=42)
    second = draw_audit(store, 15)
    ids = [item["image_id"] for item in first + second]
    assert len(set(ids)) == 25
    frame = np.arange(1, N + 1)
    assert ids == frame[np.random.default_rng(42).permutation(N)][:25].tolist()  # the draws are its prefix
    assert first[0]["path"] == f"img_{ids[0] - 1:07d}.jpg"
    assert pending_audit(store) == ids
    with pytest.raises(LabelloopError, match=f"only {N - 25} images"):
        draw_audit(store, N)
    assert pending_audit(store) == ids  # the refused draw wrote nothing


def test_an_image_a_person_labelled_before_its_draw_is_passed_and_counts_only_for_the_class_shares(planted):
    project, y = planted
    store = project.store
    order = np.arange(1, N + 1)[np.random.default_rng(7).permutation(N)]
    _label_truth(project, y, [int(order[1])])  # the queue had the second image of the permutation labelled
    drawn = [item["image_id"] for item in draw_audit(store, 3, seed=7)]
    assert drawn == [int(order[0]), int(order[2]), int(order[3])]
    _label_truth(project, y, drawn)
    quality = quality_report(store)
    assert quality["drawn"] == 4 and quality["audited"] == 3 and quality["pending"] == 0


def test_without_an_audit_the_accuracy_is_unknown_and_says_how_to_get_it(planted):
    quality = quality_report(planted[0].store)
    assert quality["accuracy"] is None and quality["audited"] == 0
    assert "accuracy unknown" in quality["message"] and "audit" in quality["message"]


def test_the_estimate_covers_the_true_accuracy_of_the_unlabelled_images(planted):
    project, y = planted
    store = project.store
    zero_shot = store.prediction_matrix(0)[2].argmax(1)
    drawn = [item["image_id"] for item in draw_audit(store, 200, seed=1)]
    _label_truth(project, y, drawn)
    quality = quality_report(store)
    unlabelled = np.setdiff1d(np.arange(N), np.array(drawn) - 1)
    truth = float((zero_shot[unlabelled] == y[unlabelled]).mean())
    assert 0.5 < truth < 0.9  # room to be wrong either way
    assert quality["audited"] == 200 and quality["low"] <= truth <= quality["high"]
    assert quality["high"] - quality["low"] < 0.16
    assert sum(sum(row) for row in quality["confusion"]["matrix"]) == 200
    assert set(quality["class_shares"]) == {"class00", "class01", "class02", "class03", "none of these"}
    shares = np.bincount(y, minlength=4) / N
    for column, name in enumerate(["class00", "class01", "class02", "class03"]):
        share = quality["class_shares"][name]
        assert share["low"] - 0.03 <= shares[column] <= share["high"] + 0.03
    prior = audit_prior(store, [c["id"] for c in store.classes()])
    assert prior is not None and abs(prior.sum() - 1) < 1e-9 and np.abs(prior - shares).sum() < 0.15


def test_a_class_change_ends_the_audit_and_the_next_draw_starts_a_new_one(planted):
    project, y = planted
    store = project.store
    drawn = [item["image_id"] for item in draw_audit(store, 40, seed=2)]
    _label_truth(project, y, drawn)
    assert quality_report(store)["accuracy"] is not None
    store.add_classes(["class04"], [None])
    quality = quality_report(store)
    assert quality["accuracy"] is None and "another class list" in quality["message"]
    assert pending_audit(store) == [] and audit_prior(store, [c["id"] for c in store.classes()]) is None
    fresh = draw_audit(store, 5, seed=3)
    assert store.current_audit()["id"] == 2 and len(fresh) == 5
    _label_truth(project, y, [item["image_id"] for item in fresh if item["image_id"] not in drawn])
    assert quality_report(store)["audited"] <= 5  # the old audit's 40 labels are never mixed in


def test_removing_a_class_nobody_used_ends_the_audit_too(planted):
    project, y = planted
    store = project.store
    drawn = [item["image_id"] for item in draw_audit(store, 30, seed=9)]
    _label_truth(project, y, [i for i in drawn if y[i - 1] != 3])  # nobody labels anything class03
    assert quality_report(store)["accuracy"] is not None
    store.remove_class(store.classes()[3]["id"])
    assert quality_report(store)["accuracy"] is None and pending_audit(store) == []


def test_images_gone_missing_drop_out_of_the_audit(planted):
    project, y = planted
    store = project.store
    drawn = draw_audit(store, 20, seed=4)
    store.mark_missing([drawn[0]["path"]])
    assert drawn[0]["image_id"] not in pending_audit(store)
    _label_truth(project, y, [item["image_id"] for item in drawn[1:]])
    assert quality_report(store)["drawn"] == 19


def test_a_round_that_trained_on_a_label_is_not_judged_by_it(planted):
    project, y = planted
    store = project.store
    drawn = np.array([item["image_id"] for item in draw_audit(store, 60, seed=5)])
    _label_truth(project, y, drawn.tolist())
    # a round that learned 20 of the audit labels (cross-fitted them: labels from before this rule, say) and is
    # right only on those, wrong on every other image
    probs = np.full((N, 4), 0.1, np.float32)
    probs[np.arange(N), (y + 1) % 4] = 0.7
    learned = drawn[:20]
    probs[learned - 1] = 0.1
    probs[learned - 1, y[learned - 1]] = 0.7
    round_id = _finish_round(store, probs, learned, probs[learned - 1])
    quality = quality_report(store)
    assert quality["round"] == round_id and quality["audited"] == 60
    assert quality["rounds"][-1]["audited"] == 40 and quality["high"] < 0.15  # judged on the 40 it never saw


def test_rounds_hold_the_audit_labels_out_of_training_and_learn_from_its_prior(planted):
    project, y = planted
    store = project.store
    drawn = [item["image_id"] for item in draw_audit(store, 40, seed=10)]
    _label_truth(project, y, drawn)
    _label_truth(project, y, [i for i in range(1, 31) if i not in drawn])  # the person's other labels train
    metrics = run_round(project, RoundConfig())
    assert metrics.audit_labels_held_out == 40 and metrics.class_prior == "audit"
    assert metrics.human_labels == len([i for i in range(1, 31) if i not in drawn])
    assert metrics.pseudo_labels > 0  # with the audit's prior, quotas of confident predictions
    assert metrics.quality["measured"] and metrics.quality["audited"] == 40


def test_a_round_measured_worse_is_held_back_until_the_person_chooses_it(planted):
    project, y = planted
    store = project.store
    drawn = [item["image_id"] for item in draw_audit(store, 80, seed=6)]
    good = np.full((N, 4), 0.05, np.float32)
    good[np.arange(N), y] = 0.85
    bad = np.full((N, 4), 0.05, np.float32)
    bad[np.arange(N), (y + 1) % 4] = 0.85
    first = _finish_round(store, good)
    second = _finish_round(store, bad)
    _label_truth(project, y, drawn)  # labelled after both rounds started: their own predictions judge them
    assert judge_round(store, first, 0)["worse"] is False
    verdict = judge_round(store, second, first)
    assert verdict["worse"] and verdict["held"] and verdict["accuracy"] < verdict["previous_accuracy"]
    assert store.shown_round() == first and store.last_finished_round() == first
    assert quality_report(store)["round"] == first
    assert [r["round"] for r in quality_report(store)["rounds"]] == [0, first, second]
    show_round(store, second)
    assert store.shown_round() == second
    with pytest.raises(LabelloopError, match="not a finished round"):
        show_round(store, 99)


def test_rounds_without_an_audit_say_their_effect_is_unmeasured(planted):
    store = planted[0].store
    round_id = _finish_round(store, store.prediction_matrix(0)[2])
    verdict = judge_round(store, round_id, 0)
    assert verdict["measured"] is False and "unmeasured" in verdict["message"]


def test_exports_carry_the_estimate_or_say_it_is_unknown(planted, tmp_path):
    project, y = planted
    for relpath in project.store.relpaths().values():  # files as the planted rows describe them
        path = project.images_root / relpath
        path.write_bytes(file_bytes(relpath))
        os.utime(path, ns=(0, 0))
    export(project, fmt="csv", out=tmp_path / "labels.csv")
    unknown = json.loads((tmp_path / "labels.csv.quality.json").read_text())
    assert unknown["accuracy_of_machine_labels"]["accuracy"] is None and "unknown" in unknown["message"]
    drawn = [item["image_id"] for item in draw_audit(project.store, 100, seed=8)]
    _label_truth(project, y, drawn)
    export(project, fmt="hf", out=tmp_path / "hf")
    quality = json.loads((tmp_path / "hf" / "quality.json").read_text())
    accuracy = quality["accuracy_of_machine_labels"]
    assert accuracy["audited"] == 100 and accuracy["low"] <= accuracy["accuracy"] <= accuracy["high"]
    card = (tmp_path / "hf" / "README.md").read_text()
    assert "class00" in card and f"{accuracy['accuracy']:.1%}" in card and "100 randomly drawn" in card


def test_the_cli_draws_audits_and_reports_quality(planted, capsys):
    project, y = planted
    root = str(project.root)
    project.close()
    with pytest.raises(SystemExit) as refused:
        main(["audit", root, "--k", "0"])
    assert refused.value.code == 2
    assert main(["audit", root, "--k", "5", "--json"]) == 0
    drawn = json.loads(capsys.readouterr().out)
    assert len(drawn) == 5 and set(drawn[0]) == {"path", "image_id"}
    assert main(["audit", root, "--k", "10000"]) == 1
    assert "remain to be drawn" in capsys.readouterr().err
    assert main(["status", root, "--json"]) == 0
    quality = json.loads(capsys.readouterr().out)["quality"]
    assert {"audited", "accuracy", "low", "high", "per_class", "class_shares"} <= set(quality)
    assert quality["accuracy"] is None and quality["drawn"] == 5


def test_an_image_waiting_in_the_audit_shows_no_prediction_anywhere(planted):
    from engine.views.gallery import AUDIT_CAPTION, GalleryQuery, GalleryView
    from engine.labels.labeling_session import LabelingSession
    from engine.project.review_queue import review_queue

    project, y = planted
    store = project.store
    view = GalleryView(project, lambda: None)
    labeling = LabelingSession(store, view)
    drawn = [item["image_id"] for item in draw_audit(store, 5, seed=11)]
    items = {item.image_id: item for item in view.items(drawn)}
    assert all(items[i].caption == AUDIT_CAPTION and items[i].shown == "" and items[i].confidence is None
               for i in drawn)
    detail = view.detail(drawn[0])
    assert detail.audit and detail.teacher == {} and detail.zero_shot == {} and detail.predicted is None
    queue = review_queue(store, 8)
    assert [item["reason"] for item in queue[:5]] == ["random audit"] * 5 and queue[0]["predicted"] is None
    with pytest.raises(LabelloopError, match="random audit"):
        labeling.accept([drawn[0]])
    accepted = labeling.accept([item.image_id for item in view.gallery(GalleryQuery(sort="name")).items])
    assert not set(accepted.image_ids) & set(drawn)  # a bulk accept passes them by
    labeling.label([drawn[0]], "class01")
    assert view.items([drawn[0]])[0].caption == "class01 (you)" and not view.detail(drawn[0]).audit


def test_a_round_written_held_is_shown_only_once_judged(planted):
    project, y = planted
    store = project.store
    drawn = [item["image_id"] for item in draw_audit(store, 40, seed=12)]
    _label_truth(project, y, drawn)
    probs = np.full((N, 4), 0.05, np.float32)
    probs[np.arange(N), y] = 0.85
    round_id = store.start_round({})
    store.finish_round(round_id, model_id=MODEL_ID, image_ids=np.arange(1, N + 1),
                       class_ids=[c["id"] for c in store.classes()], probs=probs, stats=prediction_stats(probs),
                       pseudo_ids=np.zeros(0, int), pseudo_classes=np.zeros(0, int), metrics={}, held=True)
    assert store.shown_round() == 0  # a process killed here would leave zero-shot shown, never an unjudged round
    assert judge_round(store, round_id, 0)["held"] is False and store.shown_round() == round_id


def test_a_round_that_trained_on_every_audit_label_says_so_instead_of_guessing(planted):
    project, y = planted
    store = project.store
    drawn = np.array([item["image_id"] for item in draw_audit(store, 30, seed=13)])
    _label_truth(project, y, drawn.tolist())
    probs = store.prediction_matrix(0)[2]
    _finish_round(store, probs, drawn, probs[drawn - 1])  # cross-fitted every audit label: it trained on them
    quality = quality_report(store)
    assert quality["accuracy"] is None and "trained on all 30 audited labels" in quality["message"]
