"""The Rounds tab: start and cancel rounds, the job log, metrics per round and the confidence histogram."""

from __future__ import annotations

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from app.feedback import on
from app.header import job_state
from engine.learning.selftrain.config import MODES, TEACHERS, RoundConfig
from engine.session.workspace import Workspace


METRICS = (("coverage", "pseudo-label coverage"), ("flip_share", "share of predictions that flipped"),
           ("human_accuracy", "accuracy on your labels (cross-fitted)"))
# The rounds table: (key of engine's round_history, column name); the shares among them shown as percentages.
TABLE = (("round", "round"), ("mode", "mode"), ("status", "status"), ("audit_estimate", "audit estimate of accuracy"),
         ("pseudo_labels", "pseudo-labels trained on"), *METRICS,
         ("ece", "calibration error on your labels (cross-fitted)"), ("seconds", "seconds"))
SHARES = {"coverage", "flip_share", "human_accuracy", "ece"}


def metrics_figure(history: list[dict]) -> go.Figure:
    """One line per metric over rounds: integer rounds on x, shares from 0 to 1 on y, each metric named in words
    in a legend under the plot."""
    figure = go.Figure()
    history = [row for row in history if row["finished"]]
    for key, name in METRICS:
        points = [(row["round"], row[key]) for row in history if row[key] is not None]
        if history and not points:  # e.g. no accuracy on your labels before you label anything
            continue
        figure.add_trace(go.Scatter(x=[int(r) for r, _ in points], y=[float(v) for _, v in points], name=name,
                                    mode="lines+markers"))
    figure.update_layout(height=340, margin=dict(l=50, r=20, t=30, b=10), title="metrics per round",
                         legend=dict(orientation="h", yanchor="top", y=-0.18, x=0),
                         xaxis=dict(title="round", type="linear", tickmode="linear", dtick=1, tickformat="d"),
                         yaxis=dict(title="share", type="linear", range=[0, 1.02]))
    if not history:
        figure.add_annotation(text="no finished round yet: start one above", showarrow=False, x=0.5, y=0.5,
                              xref="paper", yref="paper")
    return figure


def rounds_table(history: list[dict]) -> pd.DataFrame:
    """Every round in order, finished or not (a cancelled round says so and keeps its number), its columns named
    in words, shares as percentages, and nothing where a round measured nothing."""
    def cell(key, value):
        if value is None:
            return ""
        return f"{value:.1%}" if key in SHARES else value

    return pd.DataFrame([[cell(key, row[key]) for key, _ in TABLE] for row in history],
                        columns=[name for _, name in TABLE])


def histogram_figure(edges, counts) -> go.Figure:
    figure = go.Figure(go.Bar(x=[float(edge) + 0.025 for edge in edges], y=[int(c) for c in counts], width=0.045,
                              name="images"))
    figure.update_layout(height=240, margin=dict(l=50, r=20, t=30, b=40),
                         title="confidence of the shown predictions",
                         xaxis=dict(title="confidence", range=[0, 1], tickformat=".0%"), yaxis=dict(title="images"))
    return figure


class RoundsTab:
    def __init__(self, workspace: Workspace):
        self.view = workspace.view

    def job_log(self) -> str:
        """The last background jobs, newest first, one line each."""
        lines = []
        for job in self.view.jobs(limit=8):
            when = str(job["created_at"])[11:19]
            lines.append(f"{when}  job {job['id']:>3} {job['kind']:<9} {job['status']}{job_state(job)}")
        return "\n".join(lines) or "no jobs yet"

    def plots(self):
        """The metrics per round (plot and table) and the confidence histogram."""
        history = self.view.round_history()
        finished = [row for row in history if row["finished"]]
        unfinished = len(history) - len(finished)
        summary = "No finished round yet." if not finished else (
            f"{len(finished)} finished rounds{f' ({unfinished} more did not finish)' if unfinished else ''}; the last "
            f"(round {finished[-1]['round']}) took {finished[-1]['seconds']} s")
        table = rounds_table(history)
        return metrics_figure(history), summary, table, histogram_figure(*self.view.confidence_histogram())


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
                                   label="pseudo-label share added per round (of each class's audited share)")
    round_message = gr.Markdown(elem_id="round-message")
    tab.log = gr.Textbox(tab.job_log(), label="background jobs", lines=4, max_lines=8, interactive=False,
                         elem_id="job-log")
    running_job = gr.State(None)
    metrics_plot = gr.Plot(show_label=False, elem_id="metrics-plot")
    rounds_summary = gr.Markdown(elem_id="rounds-summary")
    metrics_table = gr.Dataframe(label="rounds", interactive=False, elem_id="metrics-table")
    histogram = gr.Plot(show_label=False, elem_id="confidence-histogram")
    tab.plot_outputs = [metrics_plot, rounds_summary, metrics_table, histogram]

    def start_rounds(rounds, chosen_mode, chosen_teacher, weight, share):
        config = RoundConfig(mode=chosen_mode, teacher=chosen_teacher, human_weight=float(weight),
                             share_step=float(share))
        job_id = workspace.start_rounds(int(rounds or 1), config)
        return job_id, f"started job {job_id}: {int(rounds or 1)} {chosen_mode} round(s)"

    def cancel_rounds(job_id):
        job = workspace.view.header()["job"]
        if job and job["status"] in ("queued", "running"):
            job_id = job["id"]  # the job the header shows, whoever started it
        if job_id is None or not workspace.cancel(job_id):
            return "no job is running"
        return f"asked job {job_id} to stop; the previous round stays as it was"

    on(start.click, start_rounds, [count, mode, teacher, human_weight, share_step], [running_job, round_message])
    on(cancel.click, cancel_rounds, [running_job], [round_message])
    tab.load = (tab.plots, [], tab.plot_outputs)
    return tab
