"""The Label tab: the gallery with its filters and pages, the detail view, and every way to correct a label
(class buttons, keys, bulk accept, multi-select, undo)."""

from __future__ import annotations

from dataclasses import replace

import gradio as gr

from app.feedback import fail
from app.header import header_markdown
from engine.errors import LabelloopError
from engine.workspace import NONE_OF_THESE, GalleryQuery, Workspace, page_actor
from storage.gallery import GALLERY_SORTS, GALLERY_STATUSES

ALL_CLASSES = "(all classes)"
SORT_LABELS = {"queue": "review queue", "confidence_up": "confidence ↑", "confidence_down": "confidence ↓",
               "name": "file name"}
HOTKEYS = ("1-9 assign a class · A accept the prediction · N none of these · ←/→ previous/next · U undo")


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

    def fetch(query: GalleryQuery):
        try:
            return workspace.gallery(query)
        except LabelloopError as error:
            fail(error)

    def render(result):
        ids = [item.image_id for item in result.items]
        tiles = [(str(item.tile), item.relpath) for item in result.items]
        text = f"page {result.page + 1} of {result.pages} · {result.total} images"
        choices = [(item.relpath, item.image_id) for item in result.items]
        return tiles, text, ids, gr.CheckboxGroup(choices=choices, value=[])

    def refresh(query: GalleryQuery):
        return render(fetch(query))

    tab.refresh = refresh
    tab.refresh_outputs = [gallery, page_text, page_ids, picked]

    def filtered(query, class_name, status, low, high, order, only_disagree, only_mistakes):
        query = replace(query, class_name=None if class_name in (None, ALL_CLASSES) else class_name,
                        status=status, min_confidence=min(low, high), max_confidence=max(low, high), sort=order,
                        disagree=only_disagree, mistakes=only_mistakes, page=0)
        return (query, *refresh(query))

    def turn_page(query, step):
        result = fetch(replace(query, page=max(0, query.page + step)))  # past the last page gives the last
        return (replace(query, page=result.page), *render(result), None)

    def show(ids: list[int], index: int | None, heatmap: bool = False, heatmap_for: str | None = None):
        if index is None or not ids:
            return None, "Click an image, or press → to start.", None, []
        try:
            detail = workspace.detail(ids[index])
            image = str(detail["path"])
            if heatmap and detail["status"] == "ok":
                image = str(workspace.heatmap(ids[index], heatmap_for or detail["predicted"]))
        except LabelloopError as error:
            fail(error)
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
        return (tiles, text, new_ids, choices, index, *shown, message, header_markdown(workspace.header()))

    def assign(query, ids, index, class_name, request: gr.Request):
        if index is None or not ids:
            raise gr.Error("select an image first (click it, or press →)")
        try:
            workspace.label([ids[index]], class_name, actor=page_actor(request.username))
        except LabelloopError as error:
            fail(error)
        relpath = workspace.detail(ids[index])["relpath"]
        return after_change(query, ids, index, f"{relpath} → **{class_name}** · U undoes")

    def assign_to(class_name):
        """A click handler that labels the selected image `class_name` (gradio passes the request to handlers
        that name it, which is why these are functions and not partials)."""
        def handler(query, ids, index, request: gr.Request):
            return assign(query, ids, index, class_name, request)
        return handler

    def assign_digit(digit):
        def handler(query, ids, index, request: gr.Request):
            names = workspace.class_names()
            if digit > len(names):
                raise gr.Error(f"there is no class {digit}; classes: {', '.join(names)}")
            return assign(query, ids, index, names[digit - 1], request)
        return handler

    def accept(query, ids, index, request: gr.Request):
        if index is None or not ids:
            raise gr.Error("select an image first (click it, or press →)")
        changed = workspace.accept([ids[index]], actor=page_actor(request.username))
        message = "accepted the prediction · U undoes" if changed else "already labeled by a person; kept"
        return after_change(query, ids, index, message)

    def bulk_accept(query, ids, threshold, request: gr.Request):
        changed = workspace.accept(ids, min_confidence=threshold, actor=page_actor(request.username))
        return after_change(query, ids, None, f"accepted {changed} predictions at or above {threshold:.0%} · "
                                              "U undoes them all")

    def assign_selected(query, ids, chosen, class_name, request: gr.Request):
        if not chosen or not class_name:
            raise gr.Error("tick images under 'select on this page' and choose a class")
        try:
            changed = workspace.label(list(chosen), class_name, actor=page_actor(request.username))
        except LabelloopError as error:
            fail(error)
        return after_change(query, ids, None, f"{changed} images → **{class_name}** · U undoes")

    def undo(query, ids, index, request: gr.Request):
        restored = workspace.undo(actor=page_actor(request.username))
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
        button.click(assign_digit(digit), [query_state, page_ids, selected], corrected_outputs,
                     show_progress="hidden")
    none_key.click(assign_to(NONE_OF_THESE), [query_state, page_ids, selected], corrected_outputs,
                   show_progress="hidden")
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
                        assign_to(name), [query_state, page_ids, selected], corrected_outputs,
                        show_progress="hidden")
                gr.Button(f"{NONE_OF_THESE} [N]", size="sm", elem_classes="class-button").click(
                    assign_to(NONE_OF_THESE), [query_state, page_ids, selected], corrected_outputs,
                    show_progress="hidden")

    page_load = (query_state, *tab.refresh_outputs)
    tab.load = (lambda query: (query, *refresh(query)), [query_state], list(page_load))
    return tab
