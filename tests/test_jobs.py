import threading

import pytest

from engine.errors import LabelloopError
from engine.jobs.runner import Cancelled, JobRunner, run_job
from storage import Store


def test_run_job_records_progress_and_result():
    store = Store.memory()
    seen = []

    def work(context):
        context.progress(0.5, "half way")
        return {"answer": 42}

    assert run_job(store, "demo", {"x": 1}, work, on_progress=lambda f, m: seen.append((f, m))) == {"answer": 42}
    job = store.jobs()[0]
    assert (job["kind"], job["status"], job["progress"]) == ("demo", "done", 1.0)
    assert seen == [(0.5, "half way")]


def test_a_failing_job_is_recorded_with_its_error():
    store = Store.memory()
    with pytest.raises(ValueError):
        run_job(store, "demo", {}, lambda context: (_ for _ in ()).throw(ValueError("bad input")))
    assert (store.jobs()[0]["status"], store.jobs()[0]["error"]) == ("failed", "bad input")


def test_runner_runs_in_the_background_one_per_kind_and_cancels():
    store = Store.memory()
    runner = JobRunner(store)
    release = threading.Event()

    def slow(context):
        while not release.wait(0.01):
            context.check_cancel()
        return {}

    first = runner.submit("round", {}, slow)
    with pytest.raises(LabelloopError, match="already queued or running"):
        runner.submit("round", {}, slow)
    assert runner.cancel(first)
    runner.wait(timeout=10)
    assert store.jobs()[0]["status"] == "cancelled"

    second = runner.submit("round", {}, lambda context: {})
    runner.wait(timeout=10)
    assert {job["id"]: job["status"] for job in store.jobs()}[second] == "done"
    release.set()
    runner.close()


def test_jobs_left_running_by_a_dead_process_are_marked_interrupted():
    store = Store.memory()
    job = store.create_job("round", {})
    store.update_job(job, status="running")
    assert store.mark_interrupted() == 1
    assert store.jobs()[0]["status"] == "interrupted"


def test_cancelled_is_raised_at_the_next_check():
    store = Store.memory()

    def work(context):
        context.cancel_event.set()
        context.progress(0.1, "step")
        return {}

    with pytest.raises(Cancelled):
        run_job(store, "demo", {}, work)
    assert store.jobs()[0]["status"] == "cancelled"
