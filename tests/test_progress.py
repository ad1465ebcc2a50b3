"""ETAs from measured step rates (engine.jobs.progress) and the job bar that shows them (app.header)."""

from datetime import datetime, timedelta

import numpy as np
import pytest

from app.header import job_html, job_state
from engine.jobs.runner import JobContext, run_job
from engine.jobs.progress import measured_rate, phase_spans, remaining_seconds, within
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
