"""The page header: what the project holds, and the background job with its progress bar."""

from __future__ import annotations


def header_markdown(header: dict) -> str:
    images, labels = header["images"], header["labels"]
    round_text = "zero-shot" if header["round"] == 0 else f"round {header['round']}"
    return (f"### {header['project']}  \n{images['ok']} images · {labels['human']} human-labeled · "
            f"{labels['pseudo']} pseudo-labeled · {images['error']} errors · predictions from **{round_text}**")


def job_html(job: dict | None) -> str:
    if not job:
        return "<div>No background job yet.</div>"
    percent = round(100 * (job["progress"] or 0.0))
    eta = job["eta_seconds"]
    eta_text = f" · about {eta:.0f} s left" if job["status"] == "running" and eta is not None else ""
    message = job["error"] if job["status"] == "failed" else (job["message"] or "")
    return (f"<div id='job-status' data-status='{job['status']}'>{job['kind']} job {job['id']}: "
            f"<b>{job['status']}</b> {percent}%{eta_text} — {message}</div>"
            f"<div id='progress-bar'><div style='width:{percent}%'></div></div>")
