"""The Label tab's layout: its components, built in `with` blocks and named in one `LabelLayout`, and the groups of
them that the tab's events read and write. What the components do is the controller's (app/label_controller.py);
which event calls what, the tab's (app/label_tab.py)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from app.escaping import markdown_text
from app.find import SEARCH_PLACEHOLDER
from app.gallery_html import DETAIL_JS, GALLERY_JS, GALLERY_PROPS, ShownPage, detail_html, gallery_html
from engine.views import palette
from engine.project.discovery import DUPLICATE_THRESHOLD
from engine.views.gallery import NONE_OF_THESE, GalleryQuery
from engine.views.gallery import GALLERY_SORTS, GALLERY_STATUSES, TAG_FILTERS

ALL_CLASSES = "(all classes)"
SORT_LABELS = {"queue": "review queue", "confidence_up": "confidence ↑", "confidence_down": "confidence ↓",
               "name": "file name", "match": "best match"}
PAGE_HOTKEYS = ("**A** accept · **N** none of these · **←/→** previous/next · **[ / ]** page · **U** undo · "
                "**S** more like this")


def legend_html() -> str:
    """The tile colours' legend, from the palette: a swatch at each stop of the confidence scale (the first covers
    every confidence under it too), then a person's label."""
    swatches = [(palette.css(rgb), ("≤ " if i == 0 else "") + f"{round(at * 100)} %")
                for i, (at, rgb) in enumerate(palette.CONFIDENCE_STOPS)] + [(palette.css(palette.HUMAN), "yours")]
    return ("<span class='legend'>tile colours: "
            + " ".join(f"<i style='background:{colour}'></i>{text}" for colour, text in swatches) + "</span>")


LEGEND = legend_html()


def hotkeys_line(class_keys: list[tuple[str, str | None]]) -> str:
    """The keys of the page: each class's own (the classes without one are left out), then the page's."""
    keyed = [f"**{key}** {markdown_text(name)}" for name, key in class_keys if key]
    return " · ".join([*keyed, PAGE_HOTKEYS])


@dataclass
class LabelLayout:
    """The Label tab's components by name. The states are per browser session."""

    header: gr.Markdown  # the page's: a label change redraws its counts
    query_state: gr.State  # GalleryQuery: filters, order and page
    shown_page: gr.State  # ShownPage: the tiles and text drawn, and the next page as it stood
    selected: gr.State  # the image id the detail panel shows
    class_keys: gr.State  # [(class name, key or None), ...] as the class buttons show them
    # the labels' version (LabelingSession.version) this tab last drew in full: every tile and the detail view
    labels_seen: gr.State
    gallery_stale: gr.State  # counts the ticks that found a job ended or the classes changed
    duplicate_at: gr.State  # the index of the duplicate group shown
    class_filter: gr.Dropdown
    tag_filter: gr.Radio  # a multi-label project's: has, lacks or is uncertain of the tag class_filter names
    status_filter: gr.Dropdown
    min_conf: gr.Slider
    max_conf: gr.Slider
    sort: gr.Dropdown
    disagree: gr.Checkbox
    mistakes: gr.Checkbox
    audit_button: gr.Button
    prev_page: gr.Button
    show_all: gr.Button
    clear_filters: gr.Button
    next_page: gr.Button
    search_text: gr.Textbox
    search_button: gr.Button
    duplicates_button: gr.Button
    duplicate_threshold: gr.Number
    previous_group: gr.Button
    next_group: gr.Button
    gallery: gr.HTML
    accept_threshold: gr.Slider
    accept_page: gr.Button
    detail_view: gr.HTML
    last_action: gr.Markdown
    hotkeys: gr.Markdown
    detail_text: gr.Markdown
    top5: gr.Label
    show_heatmap: gr.Checkbox
    heatmap_class: gr.Dropdown
    history: gr.Dataframe

    @property
    def filters(self) -> list:
        return [self.class_filter, self.status_filter, self.min_conf, self.max_conf, self.sort, self.disagree,
                self.mistakes, self.tag_filter]

    @property
    def gallery_parts(self) -> list:
        """What a drawing of the gallery sets: the tiles, the page drawn, the buttons that leave the subset and
        clear the filters."""
        return [self.gallery, self.shown_page, self.show_all, self.clear_filters]

    @property
    def detail_parts(self) -> list:
        return [self.detail_view, self.detail_text, self.top5, self.history]

    @property
    def heatmap_inputs(self) -> list:
        return [self.show_heatmap, self.heatmap_class]

    @property
    def current(self) -> list:
        """What an action on the page reads: the query, the page drawn, the selection and the heatmap's choice."""
        return [self.query_state, self.shown_page, self.selected, *self.heatmap_inputs]

    @property
    def class_controls(self) -> list:
        """Every control that lists classes: the class filter and heatmap dropdowns, the hotkeys line, the class
        buttons' state."""
        return [self.class_filter, self.heatmap_class, self.hotkeys, self.class_keys]


def build_label_layout(header: gr.Markdown) -> LabelLayout:
    states = {"query_state": gr.State(GalleryQuery()), "shown_page": gr.State(ShownPage([], "")),
              "selected": gr.State(None), "class_keys": gr.State([]),  # filled on load and when the classes change
              "labels_seen": gr.State(None), "gallery_stale": gr.State(0), "duplicate_at": gr.State(0)}
    bars = _filter_bars()
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=360):
            gallery_column = _gallery_column()
        with gr.Column(scale=2, min_width=340, elem_id="detail-column"):
            detail_column = _detail_column(states["class_keys"])
    return LabelLayout(header=header, **states, **bars, **gallery_column, **detail_column)


def _filter_bars() -> dict:
    """The filters, and the bar of buttons under them: audit, pages, leave the subset, clear the filters."""
    with gr.Row(elem_id="filters"):
        parts = {
            "class_filter": gr.Dropdown([ALL_CLASSES], value=ALL_CLASSES, label="shows class", scale=2,
                                        min_width=120),
            "tag_filter": gr.Radio(list(TAG_FILTERS), value="has", label="images that … the tag", scale=1,
                                   min_width=100, visible=False, elem_id="tag-filter"),
            "status_filter": gr.Dropdown(list(GALLERY_STATUSES), value="all", label="status", scale=1, min_width=100),
            "min_conf": gr.Slider(0, 1, value=0, step=0.05, label="confidence ≥", scale=2, min_width=120),
            "max_conf": gr.Slider(0, 1, value=1, step=0.05, label="confidence ≤", scale=2, min_width=120),
            "sort": gr.Dropdown([(SORT_LABELS[s], s) for s in GALLERY_SORTS], value="queue", label="sort", scale=1,
                                min_width=110)}
    with gr.Row(elem_id="gallery-bar"):
        parts |= {
            "disagree": gr.Checkbox(label="zero-shot and teacher disagree", min_width=100),
            "mistakes": gr.Checkbox(label="possible label mistake", min_width=100),
            "audit_button": gr.Button("Audit: random images, blind", size="sm", elem_id="audit", min_width=60),
            "prev_page": gr.Button("◀ page [", size="sm", elem_id="prev-page", min_width=60),
            "show_all": gr.Button("✕ show all images", size="sm", elem_id="show-all", min_width=60, visible=False),
            "clear_filters": gr.Button("✕ clear filters", size="sm", elem_id="clear-filters", min_width=60,
                                       visible=False),
            "next_page": gr.Button("] page ▶", size="sm", elem_id="next-page", min_width=60)}
    return parts


def _gallery_column() -> dict:
    """The finding tools over the gallery, the gallery, its legend and the bulk accept."""
    with gr.Row(elem_id="find-bar"):
        parts = {
            "search_text": gr.Textbox(placeholder=SEARCH_PLACEHOLDER, show_label=False, container=False, scale=4,
                                      min_width=180, elem_id="search-text"),
            "search_button": gr.Button("Search", size="sm", elem_id="search", scale=0, min_width=70),
            "duplicates_button": gr.Button("Duplicates at cosine ≥", size="sm", elem_id="duplicates", scale=0,
                                           min_width=150),
            "duplicate_threshold": gr.Number(DUPLICATE_THRESHOLD, minimum=0.5, maximum=1.0, step=0.001,
                                             show_label=False, container=False, scale=0, min_width=80,
                                             elem_id="duplicate-threshold"),
            "previous_group": gr.Button("◀ group", size="sm", elem_id="previous-group", scale=0, min_width=60),
            "next_group": gr.Button("group ▶", size="sm", elem_id="next-group", scale=0, min_width=60)}
    parts["gallery"] = gr.HTML(gallery_html(ShownPage([], ""), None), elem_id="gallery", js_on_load=GALLERY_JS,
                               min_height=200, **GALLERY_PROPS)
    gr.HTML(LEGEND)
    with gr.Row():
        parts["accept_threshold"] = gr.Slider(0.5, 1, value=0.9, step=0.01, label="accept at or above", scale=3)
        parts["accept_page"] = gr.Button("Accept page ≥ threshold", scale=2, elem_id="accept-page")
    return parts


def _detail_column(class_keys: gr.State) -> dict:
    """The detail view, the class buttons and the page's own buttons (GALLERY_JS and DETAIL_JS send what they
    do), the last action, the keys, the predictions, the heatmap's choice and the label history."""
    parts = {"detail_view": gr.HTML(detail_html(None), elem_id="detail-view", js_on_load=DETAIL_JS, padding=False)}
    with gr.Column(elem_id="class-buttons"):
        _class_buttons(class_keys)
    with gr.Row():
        gr.Button("Accept [A]", variant="primary", elem_id="accept", size="sm")
        gr.Button("Undo [U]", elem_id="undo", size="sm")
        gr.Button("More like this [S]", elem_id="similar", size="sm")
    parts |= {"last_action": gr.Markdown(elem_id="last-action"),
              "hotkeys": gr.Markdown(hotkeys_line([]), elem_classes="hotkeys", elem_id="hotkeys"),
              "detail_text": gr.Markdown(elem_id="detail-text"),
              "top5": gr.Label(num_top_classes=5, show_label=False, elem_id="top5")}
    with gr.Row():
        parts["show_heatmap"] = gr.Checkbox(label="Grad-CAM heatmap", elem_id="heatmap-toggle")
        parts["heatmap_class"] = gr.Dropdown([], value=None, label="for class (default: predicted)")
    with gr.Accordion("label history", open=False):
        parts["history"] = gr.Dataframe(headers=["when", "who", "from", "to"], interactive=False, elem_id="history")
    return parts


def _class_buttons(class_keys: gr.State) -> None:
    @gr.render(inputs=class_keys)
    def render_class_buttons(keys):
        """One button per class, "circle [c]" with its key; the class `class-key-c` is what KEYBOARD_JS finds
        when c is pressed (Gradio sets no data attributes on a button)."""
        with gr.Row(elem_classes="class-row"):
            for name, key in keys:
                gr.Button(f"{name} [{key}]" if key else name, size="sm", min_width=60,
                          elem_classes=["class-button", f"class-key-{key}"] if key else "class-button")
            gr.Button(f"{NONE_OF_THESE} [N]", size="sm", elem_classes="class-button", min_width=60)
