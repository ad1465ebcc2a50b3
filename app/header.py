"""The page header: what the project holds, in words a newcomer reads at once, the background job and the audit's
estimate."""

from __future__ import annotations

from app.escaping import html_text, markdown_text

ENDED = ("done", "failed", "cancelled", "interrupted")


def header_markdown(header: dict) -> str:
    images, labels = header["images"], header["labels"]
    if header["round"] == 0:
        source = "zero-shot CLIP (no round yet, or the classes changed since the last one)"
        training = ""
    else:
        source = f"the teacher of round {header['round']}"
        trained_on = header["pseudo_trained_on"]  # recorded when the round ran: labelling since does not change it
        training = "" if trained_on is None else f" · {trained_on:,} pseudo-labels that round trained on"
    errors = f" · {images['error']:,} unreadable" if images["error"] else ""
    return (f"### {markdown_text(header['project'])}  \n{images['ok']:,} images · **{labels['human']:,} labeled by you** · "
            f"{header['predicted']:,} predicted by {source}{training}{errors}")


def duration(seconds: float) -> str:
    """'45 s', '5 min 41 s', '2 h 3 min': a time a person reads at a glance."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def job_state(job: dict) -> str:
    """What follows a job's status word, each fact once: while it runs its share done, the time left once there is
    a pace to base it on, and its current step; once ended, how long it took, its error, or where it stopped."""
    status, percent = job["status"], round(100 * (job["progress"] or 0.0))
    if status == "running":
        eta = job["eta_seconds"]
        eta_text = f" · about {duration(eta)} left" if eta is not None else ""
        step = job["message"] if job["message"] and job["message"] != "started" else ""
        return f" {percent}%{eta_text}" + (f" — {step}" if step else "")
    if status == "done":
        took = (job["finished_at"] - job["started_at"]).total_seconds() if job["started_at"] and job["finished_at"] \
            else None
        return f" in {duration(took)}" if took is not None else ""
    if status == "failed":
        return f" — {job['error']}" if job["error"] else ""
    if status in ENDED:
        return f" at {percent}%" if job["started_at"] else " before it started"
    return ""  # queued


def job_html(job: dict | None, quality: str) -> str:
    """The background job with its progress bar, and under it what the random audit says of the dataset
    (engine.project.audit's message: the estimate with its interval, or why the accuracy is unknown)."""
    line = f"<div id='quality-line'>{html_text(quality)}</div>"
    if not job:
        return "<div id='job-status' data-status='none'>No background job yet.</div>" + line
    percent = round(100 * (job["progress"] or 0.0))
    return (f"<div id='job-status' data-status='{job['status']}' data-kind='{job['kind']}'>"
            f"{job['kind']} job {job['id']}: <b>{job['status']}</b>{html_text(job_state(job))}</div>"
            f"<div id='progress-bar'><div style='width:{percent}%'></div></div>{line}")
