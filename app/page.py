"""The labeling page: layout and events only. Every handler is a small named function that calls the
`Workspace` (engine/workspace.py); the page holds no SQL and no torch.

Tabs: Label (gallery, detail, corrections), Rounds (start, progress, plots), Classes, Ingest, Export. A timer
polls the background job so the page never waits on one.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import gradio as gr
import pandas as pd

from engine.errors import LabelloopError
from engine.rounds import MODES, TEACHERS, RoundConfig
from engine.workspace import NONE_OF_THESE, GalleryQuery, Workspace
from storage.gallery import GALLERY_SORTS, GALLERY_STATUSES

ALL_CLASSES = "(all classes)"
FIRST_TICK = "first tick"
SORT_LABELS = {"queue": "review queue", "confidence_up": "confidence ↑", "confidence_down": "confidence ↓",
               "name": "file name"}
HOTKEYS = ("1-9 assign a class · A accept the prediction · N none of these · ←/→ previous/next · U undo")

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


def _fail(error: LabelloopError):
    """A refused action becomes one readable line in the page; nothing else changes."""
    raise gr.Error(str(error), duration=8)


def _header_markdown(header: dict) -> str:
    images, labels = header["images"], header["labels"]
    round_text = "zero-shot" if header["round"] == 0 else f"round {header['round']}"
    return (f"### {header['project']}  \n{images['ok']} images · {labels['human']} human-labeled · "
            f"{labels['pseudo']} pseudo-labeled · {images['error']} errors · predictions from **{round_text}**")


def _job_html(job: dict | None) -> str:
    if not job:
        return "<div>No background job yet.</div>"
    percent = round(100 * (job["progress"] or 0.0))
    eta = job["eta_seconds"]
    eta_text = f" · about {eta:.0f} s left" if job["status"] == "running" and eta is not None else ""
    message = job["error"] if job["status"] == "failed" else (job["message"] or "")
    return (f"<div id='job-status' data-status='{job['status']}'>{job['kind']} job {job['id']}: "
            f"<b>{job['status']}</b> {percent}%{eta_text} — {message}</div>"
            f"<div id='progress-bar'><div style='width:{percent}%'></div></div>")


def build_page(workspace: Workspace) -> gr.Blocks:
    with gr.Blocks(title=f"labelloop · {workspace.project.root.name}") as page:
        header = gr.Markdown(_header_markdown(workspace.header()), elem_id="header")
        job_status = gr.HTML(_job_html(workspace.header()["job"]), elem_id="job")
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
            outputs = [_header_markdown(info), _job_html(job), state, rounds_tab.job_log()]
            if ended:
                return outputs + list(label_tab.refresh(query)) + list(rounds_tab.plots())
            return outputs + [gr.skip()] * (len(label_tab.refresh_outputs) + len(rounds_tab.plot_outputs))

        for event in (label_tab.load, rounds_tab.load):
            page.load(*event, show_progress="hidden")
        gr.Timer(1.0).tick(poll, [seen_job, label_tab.query_state],
                           [header, job_status, seen_job, rounds_tab.log, *label_tab.refresh_outputs,
                            *rounds_tab.plot_outputs], show_progress="hidden", queue=False)
    return page


class LabelTab:
    """The components and handlers of the Label tab that other tabs and the timer need."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace


def build_label_tab(workspace: Workspace, header: gr.Markdown) -> LabelTab:
    tab = LabelTab(workspace)
    classes = workspace.class_names()
    query_state = gr.State(GalleryQuery())  # per browser session: filters, order and page
    tab.query_state = query_state
    page_ids = gr.State([])
    selected = gr.State(None)
    with gr.Row():
        class_filter = gr.Dropdown([ALL_CLASSES, *classes], value=ALL_CLASSES, label="shows class", scale=2)
        status_filter = gr.Dropdown(list(GALLERY_STATUSES), value="all", label="status", scale=1)
        min_conf = gr.Slider(0, 1, value=0, step=0.05, label="confidence ≥", scale=2)
        max_conf = gr.Slider(0, 1, value=1, step=0.05, label="confidence ≤", scale=2)
        sort = gr.Dropdown([(SORT_LABELS[s], s) for s in GALLERY_SORTS], value="queue", label="sort", scale=1)
    with gr.Row():
        disagree = gr.Checkbox(label="zero-shot and teacher disagree")
        mistakes = gr.Checkbox(label="possible label mistake")
        prev_page = gr.Button("◀ page", size="sm", elem_id="prev-page")
        page_text = gr.Markdown(elem_id="page-text")
        next_page = gr.Button("page ▶", size="sm", elem_id="next-page")
    with gr.Row():
        with gr.Column(scale=3):
            gallery = gr.Gallery(columns=8, height=620, allow_preview=False, object_fit="contain",
                                 show_label=False, elem_id="gallery", buttons=[])
            with gr.Row():
                accept_threshold = gr.Slider(0.5, 1, value=0.9, step=0.01, label="accept at or above", scale=3)
                accept_page = gr.Button("Accept page ≥ threshold", scale=2, elem_id="accept-page")
            with gr.Accordion("select several on this page", open=False):
                picked = gr.CheckboxGroup([], show_label=False, elem_id="multi-select")
                with gr.Row():
                    picked_class = gr.Dropdown([*classes, NONE_OF_THESE], label="assign selected to", scale=2)
                    assign_picked = gr.Button("Assign selected", scale=1, elem_id="assign-selected")
        with gr.Column(scale=2):
            detail_image = gr.Image(type="filepath", label="selected image", height=360, interactive=False,
                                    elem_id="detail-image", buttons=[])
            with gr.Row():
                show_heatmap = gr.Checkbox(label="Grad-CAM heatmap", elem_id="heatmap-toggle")
                heatmap_class = gr.Dropdown(classes, label="for class (default: predicted)", value=None)
            detail_text = gr.Markdown(elem_id="detail-text")
            top5 = gr.Label(num_top_classes=5, label="top-5 (teacher)", elem_id="top5")
            with gr.Accordion("label history", open=False):
                history = gr.Dataframe(headers=["when", "who", "from", "to"], interactive=False, elem_id="history")
            class_buttons = gr.State(classes)
            class_row = gr.Column()
            with gr.Row():
                accept_button = gr.Button("Accept [A]", variant="primary", elem_id="accept")
                undo_button = gr.Button("Undo [U]", elem_id="undo")
            last_action = gr.Markdown(elem_id="last-action")
            gr.Markdown(HOTKEYS, elem_classes="hotkeys")
    # keyboard targets: hidden buttons, clicked by KEYBOARD_JS
    with gr.Row(elem_id="keyboard-targets"):
        digit_keys = [gr.Button(str(n), elem_id=f"key-{n}") for n in range(1, 10)]
        accept_key = gr.Button("a", elem_id="key-accept")
        none_key = gr.Button("n", elem_id="key-none")
        undo_key = gr.Button("u", elem_id="key-undo")
        next_key = gr.Button("next", elem_id="key-next")
        prev_key = gr.Button("prev", elem_id="key-prev")

    # ---- handlers ----------------------------------------------------------------------------------------------

    def refresh(query: GalleryQuery):
        try:
            result = workspace.gallery(query)
        except LabelloopError as error:
            _fail(error)
        ids = [item.image_id for item in result.items]
        tiles = [(str(item.tile), item.relpath) for item in result.items]
        text = f"page {result.page + 1} of {result.pages} · {result.total} images"
        choices = [(item.relpath, item.image_id) for item in result.items]
        return tiles, text, ids, gr.CheckboxGroup(choices=choices, value=[])

    tab.refresh = refresh
    tab.refresh_outputs = [gallery, page_text, page_ids, picked]

    def filtered(query, class_name, status, low, high, order, only_disagree, only_mistakes):
        query = replace(query, class_name=None if class_name in (None, ALL_CLASSES) else class_name,
                        status=status, min_confidence=min(low, high), max_confidence=max(low, high), sort=order,
                        disagree=only_disagree, mistakes=only_mistakes, page=0)
        return (query, *refresh(query))

    def turn_page(query, step):
        result_pages = workspace.gallery(replace(query, page_size=1, page=0)).total
        pages = max(1, -(-result_pages // query.page_size))
        query = replace(query, page=min(max(0, query.page + step), pages - 1))
        return (query, *refresh(query), None)

    def show(ids: list[int], index: int | None, heatmap: bool = False, heatmap_for: str | None = None):
        if index is None or not ids:
            return None, "Click an image, or press → to start.", None, []
        try:
            detail = workspace.detail(ids[index])
            image = str(detail["path"])
            if heatmap and detail["status"] == "ok":
                image = str(workspace.heatmap(ids[index], heatmap_for or detail["predicted"]))
        except LabelloopError as error:
            _fail(error)
        teacher, zero_shot = detail["teacher"], detail["zero_shot"]
        lines = [f"**{detail['relpath']}** ({detail['size'][0]}×{detail['size'][1]})"
                 if detail["status"] == "ok" else f"**{detail['relpath']}**: {detail['error']}",
                 f"label: **{detail['label'] or 'none yet'}**"]
        if zero_shot:
            best_zero = next(iter(zero_shot))
            lines.append(f"zero-shot: {best_zero} {zero_shot[best_zero]:.0%}")
        if teacher:
            best = next(iter(teacher))
            agreement = "agrees" if zero_shot and best == next(iter(zero_shot)) else "disagrees"
            lines.append(f"teacher (round {detail['teacher_round']}): {best} {teacher[best]:.0%} — {agreement}")
        rows = [[h["when"], h["who"], h["from"], h["to"]] for h in detail["history"]]
        return image, "  \n".join(lines), teacher or zero_shot, rows

    def select(ids, heatmap, heatmap_for, event: gr.SelectData):
        return (event.index, *show(ids, event.index, heatmap, heatmap_for))

    def step(ids, index, heatmap, heatmap_for, delta):
        if not ids:
            return (None, *show(ids, None))
        index = 0 if index is None else min(max(0, index + delta), len(ids) - 1)
        return (index, *show(ids, index, heatmap, heatmap_for))

    def after_change(query, ids, index, message):
        """Refresh the page after a label change and move on to the next image."""
        tiles, text, new_ids, choices = refresh(query)
        if index is not None and new_ids:
            index = min(index + 1, len(new_ids) - 1) if new_ids == ids else min(index, len(new_ids) - 1)
        shown = show(new_ids, index)
        return (tiles, text, new_ids, choices, index, *shown, message, *_header_outputs())

    def _header_outputs():
        return [_header_markdown(workspace.header())]

    def assign(query, ids, index, class_name):
        if index is None or not ids:
            raise gr.Error("select an image first (click it, or press →)")
        try:
            workspace.label([ids[index]], class_name)
        except LabelloopError as error:
            _fail(error)
        relpath = workspace.detail(ids[index])["relpath"]
        return after_change(query, ids, index, f"{relpath} → **{class_name}** · U undoes")

    def assign_digit(query, ids, index, digit):
        names = workspace.class_names()
        if digit > len(names):
            raise gr.Error(f"there is no class {digit}; classes: {', '.join(names)}")
        return assign(query, ids, index, names[digit - 1])

    def accept(query, ids, index):
        if index is None or not ids:
            raise gr.Error("select an image first (click it, or press →)")
        changed = workspace.accept([ids[index]])
        message = "accepted the prediction · U undoes" if changed else "already labeled by a person; kept"
        return after_change(query, ids, index, message)

    def bulk_accept(query, ids, threshold):
        changed = workspace.accept(ids, min_confidence=threshold)
        return after_change(query, ids, None, f"accepted {changed} predictions at or above {threshold:.0%} · "
                                              "U undoes them all")

    def assign_selected(query, ids, chosen, class_name):
        if not chosen or not class_name:
            raise gr.Error("tick images under 'select on this page' and choose a class")
        try:
            changed = workspace.label(list(chosen), class_name)
        except LabelloopError as error:
            _fail(error)
        return after_change(query, ids, None, f"{changed} images → **{class_name}** · U undoes")

    def undo(query, ids, index):
        restored = workspace.undo()
        message = f"undid the last change ({restored} images restored)" if restored else "nothing to undo"
        return after_change(query, ids, index - 1 if index else index, message)

    # ---- events --------------------------------------------------------------------------------------------------

    filters = [class_filter, status_filter, min_conf, max_conf, sort, disagree, mistakes]
    for control in filters:
        control.change(filtered, [query_state, *filters], [query_state, *tab.refresh_outputs],
                       show_progress="hidden")
    detail_outputs = [detail_image, detail_text, top5, history]
    prev_page.click(lambda q: turn_page(q, -1), [query_state], [query_state, *tab.refresh_outputs, selected])
    next_page.click(lambda q: turn_page(q, +1), [query_state], [query_state, *tab.refresh_outputs, selected])
    gallery.select(select, [page_ids, show_heatmap, heatmap_class], [selected, *detail_outputs],
                   show_progress="hidden")
    for control in (show_heatmap, heatmap_class):
        control.change(show, [page_ids, selected, show_heatmap, heatmap_class], detail_outputs)
    next_key.click(lambda ids, i, h, c: step(ids, i, h, c, +1), [page_ids, selected, show_heatmap, heatmap_class],
                   [selected, *detail_outputs], show_progress="hidden")
    prev_key.click(lambda ids, i, h, c: step(ids, i, h, c, -1), [page_ids, selected, show_heatmap, heatmap_class],
                   [selected, *detail_outputs], show_progress="hidden")

    corrected_outputs = [gallery, page_text, page_ids, picked, selected, *detail_outputs, last_action, header]
    for digit, button in enumerate(digit_keys, start=1):
        button.click(lambda q, ids, i, d=digit: assign_digit(q, ids, i, d), [query_state, page_ids, selected],
                     corrected_outputs, show_progress="hidden")
    none_key.click(lambda q, ids, i: assign(q, ids, i, NONE_OF_THESE), [query_state, page_ids, selected],
                   corrected_outputs, show_progress="hidden")
    for button in (accept_key, accept_button):
        button.click(accept, [query_state, page_ids, selected], corrected_outputs, show_progress="hidden")
    for button in (undo_key, undo_button):
        button.click(undo, [query_state, page_ids, selected], corrected_outputs, show_progress="hidden")
    accept_page.click(bulk_accept, [query_state, page_ids, accept_threshold], corrected_outputs)
    assign_picked.click(assign_selected, [query_state, page_ids, picked, picked_class], corrected_outputs)

    tab.class_controls = (class_filter, heatmap_class, picked_class, class_buttons)
    with class_row:
        @gr.render(inputs=class_buttons)
        def render_class_buttons(names):
            with gr.Row():
                for index, name in enumerate(names):
                    hint = f" [{index + 1}]" if index < 9 else ""
                    gr.Button(f"{name}{hint}", size="sm", elem_classes="class-button").click(
                        lambda query, ids, sel, name=name: assign(query, ids, sel, name),
                        [query_state, page_ids, selected], corrected_outputs, show_progress="hidden")
                gr.Button(f"{NONE_OF_THESE} [N]", size="sm", elem_classes="class-button").click(
                    lambda query, ids, sel: assign(query, ids, sel, NONE_OF_THESE),
                    [query_state, page_ids, selected], corrected_outputs, show_progress="hidden")

    page_load = (query_state, *tab.refresh_outputs)
    tab.load = (lambda query: (query, *refresh(query)), [query_state], list(page_load))
    return tab


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
            _fail(error)
        return job_id, f"started job {job_id}: {int(rounds or 1)} {chosen_mode} round(s)"

    def cancel_rounds(job_id):
        if job_id is None or not workspace.cancel(job_id):
            return "no round is running"
        return f"asked job {job_id} to stop; the previous round stays as it was"

    start.click(start_rounds, [count, mode, teacher, human_weight, share_step], [running_job, round_message])
    cancel.click(cancel_rounds, [running_job], [round_message])
    tab.load = (tab.plots, [], tab.plot_outputs)
    return tab


def build_classes_tab(workspace: Workspace, label_tab: LabelTab) -> None:
    def table():
        return pd.DataFrame([{"#": i + 1, "class": c["name"], "prompts": " | ".join(c["prompts"] or ["(default)"])}
                             for i, c in enumerate(workspace.store.classes())])

    classes_table = gr.Dataframe(table(), interactive=False, elem_id="classes-table")
    names = workspace.class_names()
    with gr.Row():
        new_classes = gr.Textbox(label="add classes (comma-separated)", scale=3)
        add = gr.Button("Add", scale=1)
    with gr.Row():
        chosen = gr.Dropdown(names, label="class", scale=2)
        new_name = gr.Textbox(label="new name", scale=2)
        rename = gr.Button("Rename", scale=1)
        remove = gr.Button("Remove", variant="stop", scale=1)
    prompts = gr.Textbox(label="prompts for this class, one per line ({} = the class name; empty = the defaults)",
                         lines=3)
    save_prompts = gr.Button("Save prompts")
    message = gr.Markdown()
    gr.Markdown("Zero-shot reruns in the background after each change; human labels are kept. The teacher starts "
                "again from zero-shot at the next round when the set of classes changed.")
    class_filter, heatmap_class, picked_class, class_buttons = label_tab.class_controls

    def changed(action):
        try:
            job_id = action()
        except LabelloopError as error:
            _fail(error)
        names = workspace.class_names()
        return (table(), gr.Dropdown(choices=names, value=None), f"zero-shot is rerunning (job {job_id})",
                gr.Dropdown(choices=[ALL_CLASSES, *names]), gr.Dropdown(choices=names),
                gr.Dropdown(choices=[*names, NONE_OF_THESE]), names)

    outputs = [classes_table, chosen, message, class_filter, heatmap_class, picked_class, class_buttons]
    add.click(lambda text: changed(lambda: workspace.add_classes(text)), [new_classes], outputs)
    rename.click(lambda old, new: changed(lambda: workspace.rename_class(old, new)), [chosen, new_name], outputs)
    remove.click(lambda name: changed(lambda: workspace.remove_class(name)), [chosen], outputs)
    save_prompts.click(lambda name, text: changed(lambda: workspace.set_prompts(name, text)), [chosen, prompts],
                       outputs)
    chosen.change(lambda name: "\n".join(next((c["prompts"] or [] for c in workspace.store.classes()
                                               if c["name"] == name), [])), [chosen], [prompts])


def build_ingest_tab(workspace: Workspace) -> None:
    root = workspace.project.images_root
    gr.Markdown(f"Images folder: `{root}`. Put new images anywhere inside it and scan, or upload them here "
                f"(they are copied to `{root / 'uploads'}`).")
    with gr.Row():
        folder = gr.Textbox(label="folder inside the images folder (empty = all of it)", scale=3)
        scan = gr.Button("Scan and ingest", variant="primary", scale=1, elem_id="scan")
    uploads = gr.File(file_count="multiple", file_types=["image"], label="upload images")
    upload = gr.Button("Add uploaded images")
    message = gr.Markdown(elem_id="ingest-message")

    def start_scan(path):
        try:
            return f"ingest started (job {workspace.start_ingest(path or None)}); progress shows at the top"
        except LabelloopError as error:
            _fail(error)

    def add_uploads(files):
        try:
            return f"ingest started (job {workspace.add_uploads(list(files or []))}); progress shows at the top"
        except LabelloopError as error:
            _fail(error)

    scan.click(start_scan, [folder], [message])
    upload.click(add_uploads, [uploads], [message])


def build_export_tab(workspace: Workspace) -> None:
    from engine.export import EXPORT_FORMATS, FILE_FORMATS, FOLDER_FORMATS, LINK_MODES

    exports_dir = workspace.project.root / "exports"
    gr.Markdown(f"Exports are written to `{exports_dir}`; the one-file formats can be downloaded from here. "
                "Human labels always pass the confidence filter.")
    with gr.Row():
        fmt = gr.Dropdown(list(EXPORT_FORMATS), value="csv", label="format", elem_id="export-format")
        source = gr.Radio(["all", "human"], value="all", label="labels")
        min_confidence = gr.Slider(0, 1, value=0, step=0.05, label="leave out machine labels below")
        include_none = gr.Checkbox(label="include 'none of these'", value=True)
    with gr.Accordion(f"folder formats ({', '.join(FOLDER_FORMATS)})", open=False):
        with gr.Row():
            link = gr.Radio(list(LINK_MODES), value="copy", label="images are")
            split = gr.Textbox(label="train,val,test split (empty = no split)", placeholder="0.8,0.1,0.1")
            seed = gr.Number(0, precision=0, label="split seed")
    export = gr.Button("Export", variant="primary", elem_id="export")
    download = gr.File(label="download", interactive=False, elem_id="export-file")
    message = gr.Markdown(elem_id="export-message")

    def run_export(chosen_format, chosen_source, threshold, none, link_mode, split_text, split_seed):
        exports_dir.mkdir(exist_ok=True)
        suffix = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl", "label-studio": ".json"}
        out = exports_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{chosen_format}{suffix.get(chosen_format, '')}"
        folder = chosen_format in FOLDER_FORMATS
        try:
            report = workspace.export(fmt=chosen_format, out=out, source=chosen_source,
                                      min_confidence=threshold or None, include_none=none,
                                      link=link_mode if folder else "copy",
                                      split=(split_text or None) if folder else None, seed=int(split_seed or 0))
        except LabelloopError as error:
            _fail(error)
        path = Path(report.path)
        return (str(path) if chosen_format in FILE_FORMATS else None), f"wrote {report.rows} rows to {path}"

    export.click(run_export, [fmt, source, min_confidence, include_none, link, split, seed], [download, message])
