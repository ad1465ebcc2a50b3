"""The Rounds tab: start and cancel rounds, the job log, metrics per round and the confidence histogram."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from app.feedback import fail
from engine.errors import LabelloopError
from engine.selftrain.config import MODES, TEACHERS, RoundConfig
from engine.workspace import Workspace


class RoundsTab:
    def __init__(self, workspace: Workspace):
        self.workspace = workspace

    def job_log(self) -> str:
        """The last background jobs, newest first, one line each."""
        lines = []
        for job in self.workspace.store.jobs(limit=8):
            when = str(job["created_at"])[11:19]
            detail = job["error"] if job["status"] == "failed" else job["message"] or ""
            lines.append(f"{when}  job {job['id']:>3} {job['kind']:<9} {job['status']:<11} "
                         f"{round(100 * (job['progress'] or 0)):>3}%  {detail}")
        return "\n".join(lines) or "no jobs yet"

    def plots(self):
        """The metrics per round (plot and table) and the confidence histogram."""
        history = self.workspace.round_history()
        long_rows = [{"round": row["round"], "metric": name, "value": row[key]}
                     for row in history
                     for key, name in (("coverage", "pseudo-label coverage"), ("flip_share", "share flipped"),
                                       ("human_accuracy", "accuracy on your labels (cross-fitted)"))
                     if row[key] is not None]
        edges, counts = self.workspace.confidence_histogram()
        histogram = pd.DataFrame({"confidence": [f"{edge:.2f}" for edge in edges], "images": counts})
        table = pd.DataFrame(history, columns=["round", "coverage", "flip_share", "human_accuracy", "ece",
                                               "seconds"])
        summary = "No finished round yet." if not history else (
            f"{len(history)} finished rounds; the last (round {history[-1]['round']}) took {history[-1]['seconds']} s")
        return (pd.DataFrame(long_rows, columns=["round", "metric", "value"]), summary, table, histogram)


def build_rounds_tab(workspace: Workspace) -> RoundsTab:
    tab = RoundsTab(workspace)
    defaults = RoundConfig()
    with gr.Row():
        mode = gr.Dropdown(list(MODES), value=defaults.mode, label="mode", scale=1,
                           info="head: fast, over cached embeddings · finetune: adapts the image encoder (GPU)")
        count = gr.Number(1, precision=0, minimum=1, maximum=20, label="number of rounds", scale=1)
        start = gr.Button("Start", variant="primary", elem_id="start-round", scale=1)
        cancel = gr.Button("Cancel", variant="stop", elem_id="cancel-round", scale=1)
    with gr.Accordion("advanced settings", open=False):
        with gr.Row():
            teacher = gr.Dropdown(list(TEACHERS), value=defaults.teacher, label="teacher")
            human_weight = gr.Slider(1, 20, value=defaults.human_weight, step=1, label="weight of a human label")
            share_step = gr.Slider(0.05, 0.5, value=defaults.share_step, step=0.05,
                                   label="pseudo-label share added per round")
    round_message = gr.Markdown(elem_id="round-message")
    tab.log = gr.Textbox(tab.job_log(), label="background jobs", lines=4, max_lines=8, interactive=False,
                         elem_id="job-log")
    running_job = gr.State(None)
    metrics_plot = gr.LinePlot(x="round", y="value", color="metric", label="metrics per round", height=320,
                               elem_id="metrics-plot", y_lim=[0, 1])
    rounds_summary = gr.Markdown(elem_id="rounds-summary")
    metrics_table = gr.Dataframe(label="finished rounds", interactive=False, elem_id="metrics-table")
    histogram = gr.BarPlot(x="confidence", y="images", label="confidence of the shown predictions", height=220,
                           elem_id="confidence-histogram")
    tab.plot_outputs = [metrics_plot, rounds_summary, metrics_table, histogram]

    def start_rounds(rounds, chosen_mode, chosen_teacher, weight, share):
        config = RoundConfig(mode=chosen_mode, teacher=chosen_teacher, human_weight=float(weight),
                             share_step=float(share))
        try:
            job_id = workspace.start_rounds(int(rounds or 1), config)
        except LabelloopError as error:
            fail(error)
        return job_id, f"started job {job_id}: {int(rounds or 1)} {chosen_mode} round(s)"

    def cancel_rounds(job_id):
        if job_id is None or not workspace.cancel(job_id):
            return "no round is running"
        return f"asked job {job_id} to stop; the previous round stays as it was"

    start.click(start_rounds, [count, mode, teacher, human_weight, share_step], [running_job, round_message])
    cancel.click(cancel_rounds, [running_job], [round_message])
    tab.load = (tab.plots, [], tab.plot_outputs)
    return tab
