"""The Label tab's handlers (app/label_controller.py) called as Gradio calls them, without a browser: what their
answers tell the page's scripts."""

import re
from types import SimpleNamespace

import gradio as gr

from app.label_controller import LabelController
from app.label_layout import ALL_CLASSES, build_label_layout
from engine.project.folder import open_project
from engine.session.workspace import Workspace
from engine.views.gallery import GalleryQuery
from tests.browser import copy_project


def drawing_number(html: str) -> int:
    return int(re.search(r"data-drawing='(\d+)'", html).group(1))


def test_a_labels_check_lists_the_actions_answered_as_an_actions_answer_does(demo_template, tmp_path):
    # Issue 24: an undo answered just before the labels tick (or a page turn, a filter), both answers landing at
    # once: Gradio draws only the newer gallery, and without the undo's number in it the page waited for that answer
    # for good ("waiting for the server…", the keys pressed meanwhile held).
    project = open_project(copy_project(demo_template, tmp_path / "project"))
    workspace = Workspace(project, ingest_workers=0)
    try:
        with gr.Blocks():
            ui = build_label_layout(gr.Markdown())
        tab = LabelController(workspace, ui)
        query = GalleryQuery()
        shown = tab.refreshed(query, None)[ui.shown_page]
        seen, chosen = workspace.labeling.version(), shown.items[0].image_id
        tab.order.selection("this tab", 7, chosen)  # the page's action number 7 (an undo) answered
        workspace.labeling.label([shown.items[1].image_id], workspace.view.class_names()[0], session="other tab")
        request = SimpleNamespace(session_hash="this tab")
        drawings = [tab.labels_checked(query, shown, chosen, False, None, seen, request),
                    tab.redrawn(query, shown, chosen, False, None, request),  # a round ended, the classes changed
                    tab.next_page_shown(query, shown, chosen, request),  # ▶ or ], not an action the page numbers
                    tab.apply_filters(query, chosen, ALL_CLASSES, "all", 0, 1, query.sort, False, False, "has",
                                      request)]
        assert all("data-answers='7'" in drawn[ui.gallery] for drawn in drawings)
        # the check's detail view numbered after its tiles, as in an action's answer: the page takes a detail view
        # numbered after the drawing that answered an undo as naming where the undo left the selection
        checked = drawings[0]
        assert drawing_number(checked[ui.detail_view]) > drawing_number(checked[ui.gallery])
    finally:
        workspace.close()
        project.close()
