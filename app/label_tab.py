"""The Label tab: the gallery with its filters and pages, the detail view, and every way to correct a label
(class buttons, keys, bulk accept, tiles picked with Shift- or Ctrl-click, undo). Its layout is
app/label_layout.py, its handlers app/label_controller.py; here, one table of which event calls which handler.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from app.feedback import on
from app.label_controller import LabelController
from app.label_layout import LabelLayout, build_label_layout
from engine.session.workspace import Workspace

# Label-tab events run one at a time, in the order they reach the server (events sent within milliseconds of each
# other may arrive in either order: label actions therefore carry the image they act on), so each reads the query,
# page and selection the events before it left.
ORDERED_CHECK = {"show_progress": "hidden", "concurrency_id": "label-tab", "concurrency_limit": 1}
# "multiple": a key typed again before the page answered is queued, not dropped (Gradio's default "once" dropped it,
# and the keys after it then labelled the images one step early). A timer's check keeps "once": a tick while the
# last one waits is dropped, not queued in front of the keys.
ORDERED = {**ORDERED_CHECK, "trigger_mode": "multiple"}
# The first grouping of a large collection takes a minute or two (the neighbour graph is cached after): it runs
# beside the label events, so keys and clicks still answer meanwhile, with a spinner on the gallery.
GROUPING = {"show_progress": "minimal", "concurrency_id": "duplicates", "concurrency_limit": 1}


@dataclass
class LabelTab:
    """What the page and the other tabs need of the Label tab."""

    query_state: gr.State
    selected: gr.State
    class_keys: gr.State  # [(class name, key or None), ...] as the class buttons show them
    refresh: object  # (query, selected) -> the outputs `refresh_outputs`, in order
    refresh_outputs: list
    class_controls: list  # the class filter and heatmap dropdowns, the hotkeys line, the class buttons' state
    # (class keys, query, class filter value) -> {component: value} of the query and `class_controls`
    class_controls_shown: object
    load: tuple
    # bumped by the page's tick: a job ended or the classes changed (the gallery and the detail view are drawn
    # again, in the tab's order)
    gallery_stale: gr.State
    # (handler, inputs, outputs) of the labels check the page's labels timer runs, in the tab's order (ORDERED_CHECK)
    labels_check: tuple


def event_table(ui: LabelLayout, tab: LabelController) -> list[tuple]:
    """Every event of the tab in the tab's order (ORDERED): (trigger, handler, inputs, outputs, refusal's answer).
    ← and → past the page's end reach the server as the gallery's `input`, U and the Undo button as its `undo`, the
    class buttons (clicked, or keyed by KEYBOARD_JS), Accept, N and A as its `submit`: each numbered and answered
    (GALLERY_JS), a refusal too."""
    page_turn = [ui.query_state, *ui.gallery_parts]
    shown_after_step = [*page_turn, ui.selected, *ui.detail_parts]
    changed = [*shown_after_step, ui.last_action, ui.header, ui.labels_seen]
    subset = [*page_turn, ui.sort]
    filter_events = [(control.release if control in (ui.min_conf, ui.max_conf) else control.input, tab.apply_filters,
                      [ui.query_state, ui.selected, *ui.filters], page_turn, None)
                     for control in ui.filters]  # a person's change only: setting a dropdown's choices is none
    return [
        *filter_events,
        (ui.prev_page.click, tab.previous_page_shown, [ui.query_state, ui.shown_page, ui.selected], page_turn, None),
        (ui.next_page.click, tab.next_page_shown, [ui.query_state, ui.shown_page, ui.selected], page_turn, None),
        (ui.show_all.click, tab.all_images_shown, [ui.query_state, ui.selected], subset, None),
        (ui.clear_filters.click, tab.filters_cleared, [ui.query_state, ui.selected],
         [*page_turn, ui.class_filter, ui.tag_filter, ui.status_filter, ui.min_conf, ui.max_conf, ui.disagree,
          ui.mistakes], None),
        (ui.audit_button.click, tab.audit_shown, [ui.selected, *ui.heatmap_inputs],
         [*page_turn, *ui.filters, ui.selected, *ui.detail_parts], None),
        (ui.gallery.click, tab.select_tile, [*ui.heatmap_inputs, ui.selected, ui.shown_page],
         [ui.selected, ui.gallery, *ui.detail_parts], tab.refused_click),
        (ui.show_heatmap.input, tab.show_detail, [ui.selected, *ui.heatmap_inputs], ui.detail_parts, None),
        (ui.heatmap_class.input, tab.show_detail, [ui.selected, *ui.heatmap_inputs], ui.detail_parts, None),
        (ui.gallery.input, tab.stepped, ui.current, shown_after_step, tab.refused_ahead),
        (ui.gallery.submit, tab.label_shown_image, [*ui.current, ui.labels_seen], changed, tab.refused_ahead),
        (ui.gallery.undo, tab.undo_last, [*ui.current, ui.labels_seen], changed, tab.refused_ahead),
        (ui.accept_page.click, tab.accept_page_above, [*ui.current, ui.accept_threshold, ui.labels_seen], changed,
         None),
        (ui.gallery_stale.change, tab.redrawn, ui.current, [*ui.gallery_parts, *ui.detail_parts], None),
        (ui.search_button.click, tab.find.search_shown, [ui.query_state, ui.selected, ui.search_text], subset, None),
        (ui.search_text.submit, tab.find.search_shown, [ui.query_state, ui.selected, ui.search_text], subset, None),
        (ui.detail_view.submit, tab.similar_to_shown, [ui.query_state], subset, None),
    ]


def build_label_tab(workspace: Workspace, header: gr.Markdown) -> LabelTab:
    ui = build_label_layout(header)
    tab = LabelController(workspace, ui)
    for trigger, handler, inputs, outputs, refused in event_table(ui, tab):
        on(trigger, handler, inputs, outputs, refused=refused, **ORDERED)
    grouped = [ui.query_state, *ui.gallery_parts, ui.sort, ui.duplicate_at]
    on(ui.duplicates_button.click, tab.find.duplicates_shown, [ui.query_state, ui.selected, ui.duplicate_threshold],
       grouped, **GROUPING)
    for button, show in ((ui.next_group, tab.find.next_group_shown), (ui.previous_group, tab.find.previous_group_shown)):
        on(button.click, show, [ui.query_state, ui.selected, ui.duplicate_threshold, ui.duplicate_at], grouped,
           **GROUPING)
    load = (tab.page_loaded, [ui.query_state, ui.selected, ui.class_filter, *ui.heatmap_inputs],
            [*ui.gallery_parts, *ui.class_controls, ui.query_state, ui.labels_seen, *ui.filters[1:], ui.selected,
             *ui.detail_parts])
    labels_check = (tab.labels_checked, [*ui.current, ui.labels_seen],
                    [ui.gallery, ui.shown_page, *ui.detail_parts, ui.labels_seen])
    return LabelTab(query_state=ui.query_state, selected=ui.selected, class_keys=ui.class_keys, refresh=tab.refresh,
                    refresh_outputs=ui.gallery_parts, class_controls=ui.class_controls,
                    class_controls_shown=tab.class_controls_shown, load=load, gallery_stale=ui.gallery_stale,
                    labels_check=labels_check)
