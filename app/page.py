"""The labeling page: a header with the running job, and five tabs, each built by its own module (app/label_tab.py,
app/rounds_tab.py, app/project_tabs.py). Handlers call the `Workspace` (engine/workspace.py); the page holds no
SQL and no torch. A timer polls the background job so the page never waits on one.
"""

from __future__ import annotations

import gradio as gr

from app.header import header_markdown, job_html
from app.label_tab import build_label_tab
from app.project_tabs import build_classes_tab, build_export_tab, build_ingest_tab
from app.rounds_tab import build_rounds_tab
from engine.workspace import Workspace

FIRST_TICK = "first tick"

# Keys click hidden buttons, so a keypress runs exactly the handler a click would; typing in a field is left alone.
KEYBOARD_JS = """
() => {
  if (window.labelloopKeys) return;
  window.labelloopKeys = true;
  const named = {a: 'key-accept', n: 'key-none', u: 'key-undo', ArrowRight: 'key-next', ArrowLeft: 'key-prev'};
  document.addEventListener('keydown', (event) => {
    const target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const typing = target && ((target.tagName === 'INPUT' && !['checkbox', 'radio', 'button'].includes(target.type))
                              || ['TEXTAREA', 'SELECT'].includes(target.tagName) || target.isContentEditable);
    if (typing) return;
    const id = /^[1-9]$/.test(event.key) ? 'key-' + event.key : named[event.key.length === 1 ? event.key.toLowerCase() : event.key];
    const button = id && document.getElementById(id);
    if (button) { event.preventDefault(); button.click(); }
  });
}
"""

CSS = """
#progress-bar { height: 10px; background: #e5e7eb; border-radius: 5px; overflow: hidden; }
#progress-bar > div { height: 100%; background: #2563eb; transition: width .4s; }
.hotkeys { color: #6b7280; font-size: 0.85em; }
#keyboard-targets { display: none !important; }
"""


def build_page(workspace: Workspace) -> gr.Blocks:
    with gr.Blocks(title=f"labelloop · {workspace.project.root.name}") as page:
        header = gr.Markdown(header_markdown(workspace.header()), elem_id="header")
        job_status = gr.HTML(job_html(workspace.header()["job"]), elem_id="job")
        seen_job = gr.State(FIRST_TICK)  # (job id, status) at the last tick
        with gr.Tabs():
            with gr.Tab("Label", id="label"):
                label_tab = build_label_tab(workspace, header)
            with gr.Tab("Rounds", id="rounds"):
                rounds_tab = build_rounds_tab(workspace)
            with gr.Tab("Classes", id="classes"):
                build_classes_tab(workspace, label_tab)
            with gr.Tab("Ingest", id="ingest"):
                build_ingest_tab(workspace)
            with gr.Tab("Export", id="export"):
                build_export_tab(workspace)

        def poll(seen, query):
            """Header, job bar and job log every tick; the gallery and plots only when a job has just ended."""
            info = workspace.header()
            job = info["job"]
            state = (job["id"], job["status"]) if job else None
            # the first tick of a page only records the job it found: the page loaded fresh anyway
            ended = seen != FIRST_TICK and state != seen and job["status"] not in ("queued", "running")
            outputs = [header_markdown(info), job_html(job), state, rounds_tab.job_log()]
            if ended:
                return outputs + list(label_tab.refresh(query)) + list(rounds_tab.plots())
            return outputs + [gr.skip()] * (len(label_tab.refresh_outputs) + len(rounds_tab.plot_outputs))

        for event in (label_tab.load, rounds_tab.load):
            page.load(*event, show_progress="hidden")
        gr.Timer(1.0).tick(poll, [seen_job, label_tab.query_state],
                           [header, job_status, seen_job, rounds_tab.log, *label_tab.refresh_outputs,
                            *rounds_tab.plot_outputs], show_progress="hidden", queue=False)
    return page
