"""ETAs from measured step rates (engine.jobs.progress) and the job bar that shows them (app.header)."""

from datetime import datetime, timedelta

import numpy as np
import pytest

from app.header import job_html, job_state
from engine.jobs.runner import JobContext, run_job
from engine.jobs.progress import measured_rate, phase_spans, remaining_seconds, stage_of, within
from engine.learning.map_layout import FIT_COST_PER_PLACED
from storage import Store


def test_a_steady_pace_gives_the_remaining_work_over_the_rate():
    samples = [(2.0 * step, 0.01 * step) for step in range(20)]  # 1 % every 2 s
    assert measured_rate(samples) == pytest.approx(0.005)
    assert remaining_seconds(samples) == pytest.approx((1 - 0.19) / 0.005)


def test_no_eta_before_there_are_steps_to_measure():
    assert remaining_seconds([]) is None
    assert remaining_seconds([(0.0, 0.0)]) is None
    assert remaining_seconds([(0.0, 0.0), (33.0, 0.05)]) is None  # a map job at 5 % after its first report
    assert remaining_seconds([(0.0, 0.2), (1.0, 0.2), (2.0, 0.2), (3.0, 0.2)]) is None  # not advancing


def _finetune_like_job():
    """(time, done) reports of a job like the finetune round of issue 24: loading the model took 1 s and was given
    5 % of the bar, 150 training steps of 2 s cover 75 %, then embedding runs twice as fast per share of the bar."""
    samples, now, done = [(0.0, 0.0), (1.0, 0.05)], 1.0, 0.05
    for _ in range(150):
        now, done = now + 2.0, done + 0.75 / 150
        samples.append((now, done))
    for _ in range(20):
        now, done = now + 2.0, done + 0.2 / 20
        samples.append((now, done))
    return samples, now


def test_a_phase_change_does_not_make_the_eta_jump():
    """On this job the old ETA (elapsed x left / done) said 19 s after the first phase, then up to 245 s."""
    samples, end = _finetune_like_job()
    etas = [(samples[i][0], remaining_seconds(samples[:i + 1])) for i in range(len(samples))]
    shown = [(time, eta) for time, eta in etas if eta is not None]
    assert etas[1][1] is None  # after the cheap first phase alone: no rate yet, so no ETA
    first_time, first_eta = shown[0]
    assert first_eta == pytest.approx(end - first_time, rel=0.25)  # right but for the faster last phase
    ratios = [later / earlier for (_, earlier), (_, later) in zip(shown, shown[1:]) if later > 0 and earlier > 0]
    assert max(ratios) < 1.5 and min(ratios) > 1 / 10  # never jumps up; a 10x drop never
    truth = np.array([end - time for time, _ in shown])
    assert np.all(np.array([eta for _, eta in shown]) <= 2.2 * truth + 1)


def test_phases_share_the_bar_by_their_cost():
    spans = phase_spans([0.0, 300.0, 60.0, 40.0])
    assert spans == [(0.0, 0.0), (0.0, 0.75), (0.75, 0.9), (0.9, 1.0)]
    seen = []
    within(lambda fraction, message: seen.append(fraction), spans[2])(0.5, "embedding")
    assert seen == [pytest.approx(0.825)]
    with pytest.raises(ValueError, match="positive sum"):
        phase_spans([0.0, 0.0])


def test_a_job_records_no_eta_until_its_steps_give_a_rate_then_the_measured_one():
    store = Store.memory()
    clock = iter([0.0, 1.0, 3.0, 5.0, 7.0, 9.0]).__next__
    context = JobContext(store.create_job("round", {}), store, clock=clock)
    etas = []
    for fraction in (0.0, 0.05, 0.06, 0.07, 0.08, 0.09):
        context.progress(fraction, "step")
        etas.append(store.jobs()[0]["eta_seconds"])
    assert etas[:3] == [None, None, None]
    assert etas[-1] == pytest.approx((1 - 0.09) / 0.005, rel=1e-3)


def _job(status, **fields):
    job = {"id": 7, "kind": "round", "status": status, "progress": 0.0, "eta_seconds": None, "message": None,
           "error": None, "started_at": datetime(2025, 1, 1, 12, 0, 0), "finished_at": None}
    return {**job, **fields}


def test_the_job_bar_says_each_thing_once():
    started = datetime(2025, 1, 1, 12, 0, 0)
    done = _job("done", progress=1.0, message="done", finished_at=started + timedelta(seconds=341))
    assert job_state(done) == " in 5 min 41 s"
    assert "round job 7: <b>done</b> in 5 min 41 s</div>" in job_html(done, "quality")
    running = _job("running", progress=0.42, eta_seconds=95.4, message="round 1/1: epoch 2/3, step 40/150")
    assert job_state(running) == " 42% · about 1 min 35 s left — round 1/1: epoch 2/3, step 40/150"
    assert job_state(_job("running", progress=0.05, message="loading the model")) == " 5% — loading the model"
    assert job_state(_job("cancelled", progress=0.3, message="cancelled")) == " at 30%"
    assert job_state(_job("cancelled", message="cancelled before start", started_at=None)) == " before it started"
    assert job_state(_job("failed", error="out of memory", message="step 3")) == " — out of memory"
    for job in (done, running, _job("cancelled", progress=0.3, message="cancelled")):
        words = f"{job['status']}{job_state(job)}".replace("—", " ").split()
        assert len(words) == len(set(words)), words


def test_a_finished_job_in_the_store_reads_done_once():
    store = Store.memory()
    run_job(store, "round", {}, lambda context: {})
    text = f"{store.jobs()[0]['status']}{job_state(store.jobs()[0])}"
    assert text.startswith("done in ") and text.count("done") == 1 and "100%" not in text


def test_the_map_jobs_eta_at_its_first_steps_of_placing_is_the_time_left():
    """The map job's bar as umap_layout splits it (FIT_COST_PER_PLACED), replayed on a fake clock at the pace
    bench_map measured at 100,000 images (load 3.6): PCA 3.3 s, fitting 10,000 landmarks 9.5 s with no report
    inside, placing 90,000 images 5.5 s in chunks of 8192. Before, this job said "639 s left" at 5 % and ended
    25 s later."""
    fit_span, place_span = phase_spans([FIT_COST_PER_PLACED * 10_000, 90_000])
    chunks = range(0, 90_000, 8192)
    times = [0.0, 3.3] + [3.3 + 9.5 + 5.5 * start / 90_000 for start in chunks]
    fractions = [0.0, fit_span[0]] + [place_span[0] + (place_span[1] - place_span[0]) * start / 90_000
                                      for start in chunks]
    end = 3.3 + 9.5 + 5.5
    store = Store.memory()
    context = JobContext(store.create_job("map", {}), store, clock=iter(times).__next__)
    etas = []
    for fraction in fractions:
        context.progress(fraction, "step")
        etas.append(store.jobs()[0]["eta_seconds"])
    assert etas[:3] == [None, None, None]  # PCA and the fit give one step with progress: no rate yet
    for now, eta in zip(times[3:], etas[3:]):
        assert eta == pytest.approx(end - now, rel=0.3, abs=1.0)


def test_a_stage_is_what_its_message_names_numbers_aside():
    assert stage_of("epoch 2/3, step 40/150, loss 0.613, teacher sure of 80%") == "epoch #/#"
    assert stage_of("epoch 1/3, step 1/150") == stage_of("epoch 3/3, step 150/150, loss 0.2")
    assert stage_of("round 1/2: nearest neighbours of 8,192/90,000 images") == "round #/#: nearest neighbours of #/# images"
    assert stage_of("12/300 images") == stage_of("299/300 images") != stage_of("loading the model")


# A round-like job replayed on a fake clock: (message, steps, seconds a step, seconds per share of the bar relative to
# the job's): steps from 0.15 s to 9 s apart, and bar shares off by up to 25 % from what each stage costs (shares are
# measured on another machine, load or size), as a job's measured stage weights are.
_STAGES = [("loading the model", 1, 8.0, 2.0), ("epoch {i}/2, step {i}/60, loss 0.{i}", 60, 2.0, 1.0),
           ("embedding {i}/1,372", 30, 0.15, 0.85), ("nearest neighbours of {i},000/90,000 images", 4, 9.0, 1.25),
           ("cross-fitting fold {i}/5", 5, 3.0, 1.0), ("predicting every image", 1, 2.0, 1.0),
           ("writing {i}", 3, 1.0, 1.0)]


def _replay(stages):
    """(time, seconds left in truth, ETA the job's record shows, steps of its stage so far, stage, done) after each
    report of a job made of `stages` (see _STAGES), reported through a JobContext on a fake clock."""
    costs = np.array([steps * seconds / pace for _, steps, seconds, pace in stages])
    reports, now, done = [], 0.0, 0.0
    for (message, steps, seconds, _), share in zip(stages, costs / costs.sum()):
        for step in range(steps):
            reports.append((now, done, message.format(i=step + 1), step))
            now, done = now + seconds, done + share / steps
    store = Store.memory()
    context = JobContext(store.create_job("round", {}), store, clock=iter([report[0] for report in reports]).__next__)
    shown = []
    for time, fraction, message, step in reports:
        context.progress(fraction, message)
        shown.append((time, now - time, store.jobs()[0]["eta_seconds"], step, stage_of(message), fraction))
    return shown


def test_once_a_stage_has_three_steps_the_eta_is_within_30_percent_of_the_time_left():
    shown = [(truth, eta) for _, truth, eta, steps, _, _ in _replay(_STAGES) if steps >= 3]
    assert len(shown) == 87 and all(eta is not None for _, eta in shown)
    for truth, eta in shown:
        assert eta == pytest.approx(truth, rel=0.3)


def test_a_new_stage_is_measured_on_its_own_steps_and_until_then_at_the_earlier_stages_pace():
    """Stages 2 s, 0.5 s and 4 s a step, each with its own seconds per share of the bar: from its third step each
    stage's ETA is the work left at its own pace, none of the stage before mixed in; before that, at the pace of
    the job's earlier stages (none in the first stage)."""
    stages = [("step {i} of the first stage", 20, 2.0, 1.0), ("step {i} of the second", 20, 0.5, 0.5),
              ("step {i} of the third", 20, 4.0, 1.5)]
    costs = np.array([steps * seconds / pace for _, steps, seconds, pace in stages])
    step_shares = costs / costs.sum() / 20
    starts = {}
    for time, _, eta, steps, stage, done in _replay(stages):
        starts.setdefault(stage, (time, done))
        number = list(starts).index(stage)
        if steps >= 3:
            assert eta == pytest.approx((1 - done) * stages[number][2] / step_shares[number], rel=1e-6)
        elif number == 0:
            assert eta is None
        else:
            stage_time, stage_done = starts[stage]
            assert eta == pytest.approx((1 - done) * stage_time / stage_done, rel=1e-6)
