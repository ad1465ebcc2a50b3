"""The page header: what the project holds, in words a newcomer reads at once, the background job and the audit's
estimate."""

from __future__ import annotations

import html


def header_markdown(header: dict) -> str:
    images, labels = header["images"], header["labels"]
    if header["round"] == 0:
        source = "zero-shot CLIP (no round yet, or the classes changed since the last one)"
        training = ""
    else:
        source = f"the teacher of round {header['round']}"
        training = f" · {labels['pseudo']:,} of them were pseudo-labels that round trained on"
    errors = f" · {images['error']:,} unreadable" if images["error"] else ""
    return (f"### {header['project']}  \n{images['ok']:,} images · **{labels['human']:,} labeled by you** · "
            f"{header['predicted']:,} predicted by {source}{training}{errors}")


def job_html(job: dict | None, quality: str) -> str:
    """The background job with its progress bar, and under it what the random audit says of the dataset
    (engine.audit's message: the estimate with its interval, or why the accuracy is unknown)."""
    line = f"<div id='quality-line'>{html.escape(quality)}</div>"
    if not job:
        return "<div id='job-status' data-status='none'>No background job yet.</div>" + line
    percent = round(100 * (job["progress"] or 0.0))
    eta = job["eta_seconds"]
    eta_text = f" · about {eta:.0f} s left" if job["status"] == "running" and eta is not None else ""
    message = html.escape(job["error"] if job["status"] == "failed" else (job["message"] or ""))
    return (f"<div id='job-status' data-status='{job['status']}'>{job['kind']} job {job['id']}: "
            f"<b>{job['status']}</b> {percent}%{eta_text} — {message}</div>"
            f"<div id='progress-bar'><div style='width:{percent}%'></div></div>{line}")
