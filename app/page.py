"""The labeling page: a header with the running job and the audit's estimate, and eight tabs, each built by its own
module (app/label_tab.py, app/map_tab.py, app/rounds_tab.py, app/quality_tab.py, app/team_tab.py,
app/project_tabs.py). Handlers call the `Workspace` (engine/session/workspace.py); the page holds no SQL and no torch.
A timer polls the background job and the classes, so every open tab shows the truth.
"""

from __future__ import annotations

import gradio as gr

from app.header import header_markdown, job_html
from app.feedback import on
from app.label_controller import in_order
from app.label_tab import ORDERED_CHECK, build_label_tab
from app.map_tab import build_map_tab
from app.project_tabs import build_classes_tab, build_export_tab, build_ingest_tab
from app.quality_tab import build_quality_tab
from app.rounds_tab import build_rounds_tab
from app.static_files import static_text
from app.team_tab import build_team_tab
from engine.session.workspace import Workspace

FIRST_TICK = "first tick"
LABELS_TICK = 0.5  # seconds between two checks for labels changed elsewhere

KEYBOARD_JS = static_text("keys.js")  # the page's keys
CSS = static_text("page.css", "gallery.css", "map.css")


def build_page(workspace: Workspace) -> gr.Blocks:
    view = workspace.view
    with gr.Blocks(title=f"labelloop · {workspace.project.root.name}") as page:
        with gr.Row(equal_height=False):
            header = gr.Markdown(header_markdown(view.header()), elem_id="header")
            job_status = gr.HTML(job_html(view.header()["job"], view.header()["quality"]), elem_id="job",
                                 padding=False)
        seen_job = gr.State(FIRST_TICK)  # (job id, status) at the last tick
        with gr.Tabs() as tabs:
            with gr.Tab("Label", id="label"):
                label_tab = build_label_tab(workspace, header)
            with gr.Tab("Map", id="map") as map_item:
                build_map_tab(workspace, label_tab, tabs, map_item)
            with gr.Tab("Rounds", id="rounds"):
                rounds_tab = build_rounds_tab(workspace)
            with gr.Tab("Quality", id="quality") as quality_item:
                quality_tab = build_quality_tab(workspace)
            with gr.Tab("Team", id="team") as team_item:
                build_team_tab(workspace, team_item)
            with gr.Tab("Classes", id="classes"):
                classes_tab = build_classes_tab(workspace)
            with gr.Tab("Ingest", id="ingest"):
                build_ingest_tab(workspace)
            with gr.Tab("Export", id="export"):
                build_export_tab(workspace)
        class_outputs = [*label_tab.class_controls, *classes_tab.outputs]

        def poll(seen, stale, shown_keys, query, filter_value):
            """Header, job bar and job log every tick; the plots when a job has just ended; every class control
            (and the query, which may name a class no longer there) when the classes or their keys changed (in this
            tab or another); in both cases a new `gallery_stale`, which redraws the gallery and the detail view in the
            label tab's order."""
            info = view.header()
            job = info["job"]
            state = (job["id"], job["status"]) if job else None
            # the first tick of a page only records the job it found: the page loaded fresh anyway
            ended = seen != FIRST_TICK and state != seen and job["status"] not in ("queued", "running")
            keys = view.class_keys()
            classes, new_query = None, gr.skip()
            if keys != shown_keys:
                shown = label_tab.class_controls_shown(keys, query, filter_value)
                new_query = shown.pop(label_tab.query_state)
                classes = [*in_order(shown, label_tab.class_controls), *classes_tab.shown()]
            outputs = [header_markdown(info), job_html(job, info["quality"]), state, rounds_tab.job_log(),
                       stale + 1 if ended or classes else gr.skip(), new_query]
            outputs += list(rounds_tab.plots()) if ended else [gr.skip()] * len(rounds_tab.plot_outputs)
            outputs += list(quality_tab.shown()) if ended else [gr.skip()] * len(quality_tab.outputs)
            outputs += classes if classes else [gr.skip()] * len(class_outputs)
            return outputs

        def header_shown():
            """The header as the project stands when a page loads (its first value was drawn when the server
            started: a tab opened later would show old counts until the first tick)."""
            info = view.header()
            return header_markdown(info), job_html(info["job"], info["quality"])

        page.load(header_shown, [], [header, job_status], show_progress="hidden", api_name="header_loaded")
        page.load(*label_tab.load, show_progress="hidden", api_name="page_loaded")
        page.load(*rounds_tab.load, show_progress="hidden", api_name="plots_loaded")
        page.load(classes_tab.shown, [], classes_tab.outputs, show_progress="hidden", api_name="classes_loaded")
        quality_item.select(quality_tab.shown, [], quality_tab.outputs, show_progress="hidden", api_name="quality_shown")
        gr.Timer(1.0).tick(poll, [seen_job, label_tab.gallery_stale, label_tab.class_keys, label_tab.query_state,
                                  label_tab.class_controls[0]],
                           [header, job_status, seen_job, rounds_tab.log, label_tab.gallery_stale,
                            label_tab.query_state, *rounds_tab.plot_outputs, *quality_tab.outputs, *class_outputs],
                           show_progress="hidden", api_name="poll")
        # Labels changed by another tab or person: the label tab's own check redraws what it shows in the tick's
        # answer. Its own timer: one cheap query when nothing changed, twice as often as the header's.
        on(gr.Timer(LABELS_TICK).tick, *label_tab.labels_check, **ORDERED_CHECK)
    return page
