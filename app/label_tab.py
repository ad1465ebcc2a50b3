"""The Label tab: the gallery with its filters and pages, the detail view, and every way to correct a label
(class buttons, keys, bulk accept, tiles picked with Shift- or Ctrl-click, undo).

The selection is an image id, never a position: a key acts on exactly the image the detail panel shows, whatever
the gallery shows meanwhile (a filter, the sort or another person may have changed it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import gradio as gr

from app.action_order import ActionOrder
from app.escaping import html_text, markdown_text
from app.feedback import on
from app.find import SEARCH_PLACEHOLDER, FindTools
from app.gallery_html import DETAIL_JS, GALLERY_JS, GALLERY_PROPS, ShownPage, detail_html, gallery_html
from app.header import header_markdown
from app.place_link import Place, place_from_link, place_link
from engine.views import palette
from engine.project.audit import FIRST_AUDIT, NEXT_AUDIT, draw_audit, pending_audit
from engine.project.discovery import DUPLICATE_THRESHOLD
from engine.errors import LabelloopError
from engine.views.gallery import (GALLERY_SORTS, GALLERY_STATUSES, NONE_OF_THESE, GalleryPage, GalleryQuery, Subset,
                                  empty_text, page_text)
from engine.labels.labeling_session import LabelChange, page_actor
from engine.sources import Source
from engine.session.workspace import Workspace

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


def action_message(change: LabelChange) -> str:
    """The last-action line (Markdown) of a label change: its sentence, names and all, shown as written."""
    return markdown_text(change.message) + (" · U undoes" if change.undoable else "")


@dataclass
class LabelTab:
    """What the page and the other tabs need of the Label tab."""

    query_state: gr.State
    selected: gr.State
    class_keys: gr.State  # [(class name, key or None), ...] as the class buttons show them
    refresh: object  # (query, selected) -> refresh_outputs
    refresh_outputs: list
    class_controls: list  # the class filter and heatmap dropdowns, the hotkeys line, the class buttons' state
    class_controls_shown: object  # (class keys, query, class filter value) -> (query, *class_controls)
    load: tuple
    # bumped by the page's tick: a job ended or the classes changed (the gallery and the detail view are drawn
    # again, in the tab's order), or labels changed in another tab (the tiles shown and the detail view, in place)
    gallery_stale: gr.State
    labels_stale: gr.State
    labels_seen: gr.State  # the labels' version this tab last drew


def following(shown: ShownPage, image_id: int) -> int | None:
    """Where a label on `image_id` moves the selection, as the page shows it ahead (GALLERY_JS `show`): the next
    tile; past the page's last tile None, the next page's first image (or the last tile again on the last page);
    from an image not on the page (a sort or filter moved it off), the page's first tile, so the next key never
    relabels an image the gallery no longer shows."""
    ids = [item.image_id for item in shown.items]
    if image_id not in ids:
        return ids[0] if ids else image_id
    position = ids.index(image_id) + 1
    if position < len(ids):
        return ids[position]
    return None if shown.following else image_id


def build_label_tab(workspace: Workspace, header: gr.Markdown) -> LabelTab:
    view, labeling = workspace.view, workspace.labeling
    order = ActionOrder()
    query_state = gr.State(GalleryQuery())  # per browser session: filters, order and page
    shown_page = gr.State(ShownPage([], ""))  # the tiles and text drawn, and the next page as it stood
    selected = gr.State(None)  # the image id the detail panel shows
    class_keys = gr.State([])  # filled on load, and again whenever the classes or their keys change
    labels_seen = gr.State(None)  # the labels' version (LabelingSession.version) this tab last drew
    labels_stale = gr.State(0)  # counts the ticks that found labels changed by another tab or person
    gallery_stale = gr.State(0)  # counts the ticks that found a job ended or the classes changed
    with gr.Row(elem_id="filters"):
        class_filter = gr.Dropdown([ALL_CLASSES], value=ALL_CLASSES, label="shows class", scale=2, min_width=120)
        status_filter = gr.Dropdown(list(GALLERY_STATUSES), value="all", label="status", scale=1, min_width=100)
        min_conf = gr.Slider(0, 1, value=0, step=0.05, label="confidence ≥", scale=2, min_width=120)
        max_conf = gr.Slider(0, 1, value=1, step=0.05, label="confidence ≤", scale=2, min_width=120)
        sort = gr.Dropdown([(SORT_LABELS[s], s) for s in GALLERY_SORTS], value="queue", label="sort", scale=1,
                           min_width=110)
    with gr.Row(elem_id="gallery-bar"):
        disagree = gr.Checkbox(label="zero-shot and teacher disagree", min_width=100)
        mistakes = gr.Checkbox(label="possible label mistake", min_width=100)
        audit_button = gr.Button("Audit: random images, blind", size="sm", elem_id="audit", min_width=60)
        prev_page = gr.Button("◀ page [", size="sm", elem_id="prev-page", min_width=60)
        show_all = gr.Button("✕ show all images", size="sm", elem_id="show-all", min_width=60, visible=False)
        clear_filters = gr.Button("✕ clear filters", size="sm", elem_id="clear-filters", min_width=60, visible=False)
        next_page = gr.Button("] page ▶", size="sm", elem_id="next-page", min_width=60)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=360):
            with gr.Row(elem_id="find-bar"):
                search_text = gr.Textbox(placeholder=SEARCH_PLACEHOLDER, show_label=False, container=False, scale=4,
                                         min_width=180, elem_id="search-text")
                search_button = gr.Button("Search", size="sm", elem_id="search", scale=0, min_width=70)
                duplicates_button = gr.Button("Duplicates at cosine ≥", size="sm", elem_id="duplicates", scale=0,
                                              min_width=150)
                duplicate_threshold = gr.Number(DUPLICATE_THRESHOLD, minimum=0.5, maximum=1.0, step=0.001,
                                                show_label=False, container=False, scale=0, min_width=80,
                                                elem_id="duplicate-threshold")
                previous_group = gr.Button("◀ group", size="sm", elem_id="previous-group", scale=0, min_width=60)
                next_group = gr.Button("group ▶", size="sm", elem_id="next-group", scale=0, min_width=60)
            duplicate_at = gr.State(0)  # the index of the duplicate group shown
            gallery = gr.HTML(gallery_html(ShownPage([], ""), None), elem_id="gallery", js_on_load=GALLERY_JS, min_height=200,
                              **GALLERY_PROPS)
            gr.HTML(LEGEND)
            with gr.Row():
                accept_threshold = gr.Slider(0.5, 1, value=0.9, step=0.01, label="accept at or above", scale=3)
                accept_page = gr.Button("Accept page ≥ threshold", scale=2, elem_id="accept-page")
        with gr.Column(scale=2, min_width=340, elem_id="detail-column"):
            detail_view = gr.HTML(detail_html(None), elem_id="detail-view", js_on_load=DETAIL_JS,
                                  padding=False)
            class_row = gr.Column(elem_id="class-buttons")
            with gr.Row():
                gr.Button("Accept [A]", variant="primary", elem_id="accept", size="sm")  # GALLERY_JS sends it
                gr.Button("Undo [U]", elem_id="undo", size="sm")  # GALLERY_JS sends it
                gr.Button("More like this [S]", elem_id="similar", size="sm")  # DETAIL_JS sends it
            last_action = gr.Markdown(elem_id="last-action")
            hotkeys = gr.Markdown(hotkeys_line([]), elem_classes="hotkeys", elem_id="hotkeys")
            detail_text = gr.Markdown(elem_id="detail-text")
            top5 = gr.Label(num_top_classes=5, show_label=False, elem_id="top5")
            with gr.Row():
                show_heatmap = gr.Checkbox(label="Grad-CAM heatmap", elem_id="heatmap-toggle")
                heatmap_class = gr.Dropdown([], value=None, label="for class (default: predicted)")
            with gr.Accordion("label history", open=False):
                history = gr.Dataframe(headers=["when", "who", "from", "to"], interactive=False, elem_id="history")
    refresh_outputs = [gallery, shown_page, show_all, clear_filters]
    keep_gallery = tuple(gr.skip() for _ in refresh_outputs)  # a handler that leaves the gallery as it is

    # ---- what the page shows -----------------------------------------------------------------------------------

    def gallery_outputs(query: GalleryQuery, result: GalleryPage, chosen: int | None, *, answered: str = ""):
        """The gallery (the selected image highlighted when it is on this page) with its page text (and the subset
        it is narrowed to, and what the filters hide of it), the page drawn, and the buttons that leave the subset
        and clear the filters."""
        shown = ShownPage(result.items, page_text(query, result, result.page), result.following,
                          page_text(query, result, result.page + 1), empty_text(query, result),
                          place_link(query, query.subset.link if query.subset else None))
        return (gallery_html(shown, chosen, answered=answered), shown,
                gr.Button(visible=query.subset is not None), gr.Button(visible=bool(query.named_filters())))

    def detail_outputs(image_id: int | None, heatmap: bool, heatmap_for: str | None):
        """The detail panel for `image_id`: image (or its heatmap), the title lines, top-5 and history."""
        if image_id is None:
            return detail_html(None), "", None, []
        detail = view.detail(image_id)
        if detail["placeholder"]:
            picture, note = detail["placeholder"], f": {detail['error']}"
        else:
            shows_heatmap = heatmap and not detail["audit"]  # an audit image is blind: no heatmap of a prediction
            picture = view.heatmap(image_id, heatmap_for or detail["predicted"]) if shows_heatmap else detail["path"]
            note = f"({detail['size'][0]}×{detail['size'][1]})"
        teacher, zero_shot = detail["teacher"], detail["zero_shot"]
        if detail["audit"]:  # blind: no prediction
            lines = ["**random audit**: what does it show? Press its class's key or N. The machine's guess is "
                     "hidden so that it cannot sway you; your label estimates how right the dataset is."]
            rows = [[h["when"], h["who"], h["from"], h["to"]] for h in detail["history"]]
            return (detail_html(image_id, detail["relpath"], Path(picture), note), "  \n".join(lines), None, rows)
        shown_class = detail["predicted"] if detail["label_source"] != Source.HUMAN else None
        whose = f"round {detail['shown_round']}" if detail["shown_round"] else "zero-shot"
        lines = [f"label: **{markdown_text(detail['label'] or 'none yet')}** · predictions of **{whose}**"]
        if detail["changed"]:
            lines.append("**changed since labelled**: the file is no longer the picture your label was given for; "
                         "press a class key to relabel it (its own class confirms it); exports leave it out until then")
        if zero_shot:
            best_zero = next(iter(zero_shot))
            lines.append(f"zero-shot: {markdown_text(best_zero)} {zero_shot[best_zero]:.0%}")
        without_label = detail["without_label"]
        if teacher and without_label:  # the teacher trained on the person's label and holds it: say so, not "100 %"
            lines.append(f"teacher (round {detail['shown_round']}): trained on your label")
        elif teacher:
            best = next(iter(teacher))
            agreement = "agrees" if zero_shot and best == next(iter(zero_shot)) else "disagrees"
            lines.append(f"teacher (round {detail['shown_round']}): {markdown_text(best)} {teacher[best]:.0%} — "
                         f"{agreement}")
        if without_label:
            best = next(iter(without_label))
            verdict = ("possible label mistake: press its class again to keep it" if detail["mistake"]
                       else "agrees with your label" if best == detail["label_class"]
                       else "you confirmed your label" if detail["confirmed"] else "another class")
            lines.append(f"judged without your label (round {detail['shown_round']}): {markdown_text(best)} "
                         f"{without_label[best]:.0%} — {verdict}")
        if detail["queue"]:
            lines.append(f"review queue #{detail['queue']['rank']}: {markdown_text(detail['queue']['reason'])}")
        rows = [[h["when"], h["who"], h["from"], h["to"]] for h in detail["history"]]
        return (detail_html(image_id, detail["relpath"], Path(picture), note, shown=shown_class),
                "  \n".join(lines), without_label or teacher or zero_shot, rows)

    def refresh(query: GalleryQuery, chosen: int | None):
        return gallery_outputs(query, view.gallery(query), chosen)

    # ---- handlers ----------------------------------------------------------------------------------------------

    def apply_filters(query, chosen, class_name, status, low, high, order, only_disagree, only_mistakes):
        query = replace(query, class_name=None if class_name in (None, ALL_CLASSES) else class_name,
                        status=status, min_confidence=min(low, high), max_confidence=max(low, high), sort=order,
                        disagree=only_disagree, mistakes=only_mistakes, offset=0)
        return (query, *refresh(query, chosen))

    def turned(query, shown: ShownPage, step):
        """The next or previous page: forward from the images still in the filter, back by a page."""
        if step > 0:
            offset = view.next_offset(query, [item.image_id for item in shown.items])
        else:
            offset = max(0, query.offset - query.page_size)
        result = view.gallery(replace(query, offset=offset))
        return replace(query, offset=result.offset), result

    def next_page_shown(query, shown, chosen):
        query, result = turned(query, shown, +1)
        return (query, *gallery_outputs(query, result, chosen))

    def previous_page_shown(query, shown, chosen):
        query, result = turned(query, shown, -1)
        return (query, *gallery_outputs(query, result, chosen))

    def select_tile(heatmap, heatmap_for, _selected, shown, event: gr.EventData, request: gr.Request):
        """The clicked image selected; the gallery is drawn again as the click's answer (the page highlighted the
        tile ahead of the server, and a drawing answering an earlier event may have come in between). A click that
        reached the server after a newer action leaves that action's selection (app.action_order)."""
        image_id = order.selection(request.session_hash, event._data.get("sequence"), int(event._data["image_id"]))
        return (image_id, gallery_html(shown, image_id, answered=order.answered(request.session_hash)),
                *detail_outputs(image_id, heatmap, heatmap_for))

    def refused_detail(heatmap, heatmap_for, chosen, shown, *rest, **named):
        """A click the server refused (the image is gone): the image still selected, drawn again over what the page
        showed ahead."""
        return (gr.skip(), gallery_html(shown, chosen, answered=refusal_answered([*rest, *named.values()])),
                *detail_outputs(chosen, heatmap, heatmap_for))

    def refusal_answered(rest) -> str:
        """A refused action counted as answered (app.action_order); `rest`: the handler's event and request."""
        event = next((arg for arg in rest if isinstance(arg, gr.EventData)), None)
        request = next((arg for arg in rest if isinstance(arg, gr.Request)), None)
        session = request.session_hash if request is not None else None
        order.refused(session, event._data.get("sequence") if event is not None else None)
        return order.answered(session)

    def stepped(query, shown, chosen, heatmap, heatmap_for, event: gr.EventData, request: gr.Request):
        """← or → past the page's end (within the page the page sends a click on the neighbouring tile): the
        previous page's last image or the next page's first; on the first or last page, where it is. Always drawn as
        the answer the page waits for (GALLERY_JS)."""
        step = 1 if int(event._data.get("step", 1)) > 0 else -1
        new_query, result = turned(query, shown, step)
        if new_query.offset == query.offset or not result.items:  # the first or last page: stay where it is
            new_query, result, wanted = query, None, chosen
        else:
            wanted = result.items[0 if step > 0 else -1].image_id
        chosen = order.selection(request.session_hash, event._data.get("sequence"), wanted)
        answered = order.answered(request.session_hash)
        if result is None or chosen != wanted:  # stays, or a newer action moved the selection meanwhile
            return (query, gallery_html(shown, chosen, answered=answered), *keep_gallery[1:], chosen,
                    *detail_outputs(chosen, heatmap, heatmap_for))
        return (new_query, *gallery_outputs(new_query, result, chosen, answered=answered), chosen,
                *detail_outputs(chosen, heatmap, heatmap_for))

    def all_images_shown(query, chosen):
        """Leave the subset (search results, neighbours, a map selection); the other filters stay."""
        query = replace(query, subset=None, sort="queue" if query.sort == "match" else query.sort, offset=0)
        return (query, *refresh(query, chosen), gr.Dropdown(value=query.sort))

    def filters_cleared(query, chosen):
        """Every filter cleared, on the page's controls too; the subset and the sort stay."""
        query = query.without_filters()
        return (query, *refresh(query, chosen), ALL_CLASSES, "all", 0, 1, False, False)

    def audit_shown(chosen, heatmap, heatmap_for):
        """Audit mode: the gallery narrowed to the random audit's images that wait for a label, in draw order (30
        drawn now for a first estimate, 40 more once those are labelled), the first one selected, every filter
        cleared (a filter on the predicted class or its confidence would tell what the machine guessed)."""
        store = workspace.project.store
        if not pending_audit(store):
            draw_audit(store, FIRST_AUDIT if store.audit_progress()[2] == 0 else NEXT_AUDIT)
        query = GalleryQuery(subset=audit_subset(), sort="match")
        result = view.gallery(query)
        chosen = result.items[0].image_id if result.items else chosen
        return (query, *gallery_outputs(query, result, chosen), gr.Dropdown(value=ALL_CLASSES),
                gr.Dropdown(value="all"), 0, 1, gr.Dropdown(value="match"), False, False, chosen,
                *detail_outputs(chosen, heatmap, heatmap_for))

    def audit_subset() -> Subset:
        waiting = pending_audit(workspace.project.store)
        return Subset(f"random audit · {len(waiting)} drawn for you to label blind", tuple(waiting),
                      link=("audit", "1"))

    def show_detail(chosen, heatmap, heatmap_for):
        return detail_outputs(chosen, heatmap, heatmap_for)

    def after_change(query, shown: ShownPage, chosen, change, heatmap, heatmap_for, *, answered: str = ""):
        """The page after a label change: the changed tiles redrawn where they are (the grid does not shift under
        the person's hand; turning the page applies the filters again), with `chosen` selected. `answered`: the
        change is an action the page showed ahead (a key, a class button, undo): the actions answered lately."""
        fresh = {item.image_id: item for item in view.items(change.image_ids)} if change.undoable else {}
        shown = replace(shown, items=[fresh.get(item.image_id, item) for item in shown.items])
        return (query, gallery_html(shown, chosen, answered=answered), shown, *keep_gallery[2:],
                chosen, *detail_outputs(chosen, heatmap, heatmap_for), *change_reported(change))

    def change_reported(change) -> tuple:
        """The last-action line, the header and the labels' version after a label change."""
        return action_message(change), header_markdown(view.header()), labeling.version()

    def label_shown_image(query, shown, chosen, heatmap, heatmap_for, event: gr.EventData, request: gr.Request):
        """A class key or button, N or A: acts on the image the detail view showed when it was pressed (the page
        sends its id), or on the tiles picked with Shift- or Ctrl-click (`image_ids`: one undo step), whatever order
        the server got that click and this key in; then the next image (`following`), unless a newer action reached
        the server first (app.action_order)."""
        action = event._data
        actor, picks = page_actor(request.username), action.get("image_ids")
        if picks:
            change = apply_label([int(i) for i in picks], action, actor, request.session_hash)
            chosen = order.selection(request.session_hash, action.get("sequence"), chosen)
            return after_change(query, shown, chosen, change, heatmap, heatmap_for,
                                answered=order.answered(request.session_hash))
        if action.get("image_id") is None:
            raise LabelloopError("select an image first (click it, or press →)")
        image_id = int(action["image_id"])
        change = apply_label([image_id], action, actor, request.session_hash)
        wanted, result = following(shown, image_id), None
        if wanted is None:  # past the page's last tile: the next page's first image, as the page showed it ahead
            new_query, result = turned(query, shown, +1)
            wanted = result.items[0].image_id if new_query.offset != query.offset and result.items else image_id
            result = result if wanted != image_id else None
        chosen = order.selection(request.session_hash, action.get("sequence"), wanted)
        answered = order.answered(request.session_hash)
        if result is not None and chosen == wanted:
            return (new_query, *gallery_outputs(new_query, result, chosen, answered=answered), chosen,
                    *detail_outputs(chosen, heatmap, heatmap_for), *change_reported(change))
        return after_change(query, shown, chosen, change, heatmap, heatmap_for, answered=answered)

    def apply_label(image_ids: list[int], action: dict, actor: str, session: str | None):
        """The label a key or button names (`kind`: class, by `name`, which the page reads off the class's button;
        none; accept, of the class the page showed as `name`: a prediction that changed since the person saw it is
        not what they accepted). A name, never a position: a class list changed meanwhile cannot send it to another
        class."""
        if action.get("kind") == "accept":
            return labeling.accept(image_ids, actor=actor, session=session, expected=action.get("name"))
        name = NONE_OF_THESE if action.get("kind") == "none" else action.get("name")
        return labeling.label(image_ids, str(name), actor=actor, session=session)

    def answered_unchanged(outputs: list):
        """What a refused action the page showed ahead (a key, a class button, undo, ← or → past the page's end)
        is answered with: the gallery and the detail view as they were, drawn again as the one answer the page
        waits for (GALLERY_JS)."""
        def refused(query, shown, chosen, heatmap, heatmap_for, *rest, **named):
            keep = [gr.skip()] * len(outputs)
            keep[outputs.index(gallery)] = gallery_html(shown, chosen,
                                                        answered=refusal_answered([*rest, *named.values()]))
            start = outputs.index(detail_view)
            keep[start:start + len(detail_parts)] = detail_outputs(chosen, heatmap, heatmap_for)
            return tuple(keep)
        return refused

    def accept_page_above(query, shown, chosen, heatmap, heatmap_for, threshold, request: gr.Request):
        change = labeling.accept([item.image_id for item in shown.items], min_confidence=threshold,
                                 actor=page_actor(request.username), session=request.session_hash)
        change.message += f" at or above {threshold:.0%}"
        return after_change(query, shown, chosen, change, heatmap, heatmap_for)

    def undo_last(query, shown, chosen, heatmap, heatmap_for, event: gr.EventData, request: gr.Request):
        """U or Undo: the person's last action undone (saying so when another tab made it), and the image that got
        its label back selected; always the answer the page waits for (GALLERY_JS)."""
        change = labeling.undo(actor=page_actor(request.username), session=request.session_hash)
        wanted = change.image_ids[0] if len(change.image_ids) == 1 else chosen
        chosen = order.selection(request.session_hash, event._data.get("sequence"), wanted)
        return after_change(query, shown, chosen, change, heatmap, heatmap_for,
                            answered=order.answered(request.session_hash))

    def redrawn(query, _shown, chosen, heatmap, heatmap_for):
        """The gallery and the detail view after a job ended or the classes changed: a label-tab event of its own,
        so it runs after a filter, sort or page change sent before it and reads the query that change left (drawn by
        the tick itself, it could put the page the person left back on the screen); the detail view follows the
        round like every other view, so A accepts what it shows."""
        return (*refresh(query, chosen), *detail_outputs(chosen, heatmap, heatmap_for))

    def tiles_redrawn(query, shown: ShownPage, chosen, heatmap, heatmap_for, seen):
        """The page's tiles and the detail view drawn again where they are (no tile moves: the filters apply again
        when the page is turned), after another tab, person or round changed labels: every open tab shows the truth.
        Not when this tab drew that version itself meanwhile (the tick that asked raced its own label); the tiles
        only when one it shows changed: a drawing of the page the server holds, landing while the page has turned
        ahead to the next, would move the detail view (and the next key) back to it."""
        version = labeling.version()
        if version == seen:
            return (*[gr.skip()] * (2 + len(detail_parts)), version)
        fresh = view.items([item.image_id for item in shown.items])
        detail = detail_outputs(chosen, heatmap, heatmap_for)  # its label may change where no tile shows it
        if fresh == shown.items:
            return (gr.skip(), gr.skip(), *detail, version)
        shown = replace(shown, items=fresh)
        return (gallery_html(shown, chosen), shown, *detail, version)

    def class_controls_shown(keys, query, filter_value, *, drawn_first: bool = False):
        """Every control that lists classes, from the project's classes and keys now. Only the choices change, so
        a class a person is picking meanwhile stays picked; a filter on a class that is gone is dropped. The page's
        first drawing (`drawn_first`) also sets the class filter to the query's."""
        names = [name for name, _ in keys]
        if query.class_name and query.class_name not in names:
            query = replace(query, class_name=None, offset=0)
        keep = filter_value in names and not drawn_first
        return (query, gr.Dropdown(choices=[ALL_CLASSES, *names],
                                   **({} if keep else {"value": query.class_name or ALL_CLASSES})),
                gr.Dropdown(choices=names), hotkeys_line(keys), keys)

    def place_restored(place: Place) -> tuple[GalleryQuery, int | None]:
        """The query and selected image a link names; a subset it cannot make again (the search model fails to
        load, the image is gone) is left out, and so is an image no longer in the project."""
        query, (kind, what) = place.query, place.subset or (None, None)
        try:
            subset = (find.searched(what) if kind == "search" else find.like(int(what)) if kind == "like"
                      else audit_subset() if kind == "audit" else None)
        except (LabelloopError, ValueError) as error:
            gr.Warning(html_text(f"the link's {kind} could not be shown again: {error}"))
            subset = None
        if subset is not None:
            query = replace(query, subset=subset)
        image_id = place.image_id if place.image_id is not None and view.items([place.image_id]) else None
        return query, image_id

    def page_address(request: gr.Request | None) -> dict[str, str]:
        """The query of the page's own address: the load event's request is the queue's, and its Referer names the
        page (Gradio passes the page's query to it only in some versions)."""
        if request is None:
            return {}
        params = dict(request.query_params)
        referer = request.headers.get("referer") if request.headers else None
        return params or (dict(parse_qsl(urlsplit(referer).query)) if referer else {})

    def page_loaded(query, chosen, filter_value, heatmap, heatmap_for, request: gr.Request):
        """The page as it opens: where its address says (a reload, back, a shared link), else the gallery's first
        page; the filter controls set to the query's."""
        place = place_from_link(page_address(request), view.class_names())
        if place is not None:
            query, chosen = place_restored(place)
        query, *controls = class_controls_shown(view.class_keys(), query, filter_value, drawn_first=True)
        return (query, *refresh(query, chosen), *controls, labeling.version(), query.status, query.min_confidence,
                query.max_confidence, query.sort, query.disagree, query.mistakes, chosen,
                *detail_outputs(chosen, heatmap, heatmap_for))

    # ---- events --------------------------------------------------------------------------------------------------

    detail_parts = [detail_view, detail_text, top5, history]
    heatmap_inputs = [show_heatmap, heatmap_class]
    # Label-tab events run one at a time, in the order they reach the server (events sent within milliseconds of
    # each other may arrive in either order: label actions therefore carry the image they act on). "multiple": a key typed again
    # before the page answered is queued, not dropped (Gradio's default "once" dropped it, and the keys after it
    # then labelled the images one step early).
    ordered = {"show_progress": "hidden", "concurrency_id": "label-tab", "concurrency_limit": 1,
               "trigger_mode": "multiple"}
    filters = [class_filter, status_filter, min_conf, max_conf, sort, disagree, mistakes]
    for control in filters:  # a person's change only: the page setting a dropdown's choices is no filter change
        on(control.release if control in (min_conf, max_conf) else control.input, apply_filters, [query_state, selected, *filters], [query_state, *refresh_outputs], **ordered)
    on(prev_page.click, previous_page_shown, [query_state, shown_page, selected], [query_state, *refresh_outputs],
       **ordered)
    on(next_page.click, next_page_shown, [query_state, shown_page, selected], [query_state, *refresh_outputs],
       **ordered)
    on(show_all.click, all_images_shown, [query_state, selected], [query_state, *refresh_outputs, sort], **ordered)
    on(clear_filters.click, filters_cleared, [query_state, selected],
       [query_state, *refresh_outputs, class_filter, status_filter, min_conf, max_conf, disagree, mistakes], **ordered)
    on(audit_button.click, audit_shown, [selected, *heatmap_inputs],
       [query_state, *refresh_outputs, *filters, selected, *detail_parts], **ordered)
    on(gallery.click, select_tile, [*heatmap_inputs, selected, shown_page], [selected, gallery, *detail_parts],
       refused=refused_detail, **ordered)
    for control in heatmap_inputs:
        on(control.input, show_detail, [selected, *heatmap_inputs], detail_parts, **ordered)
    current = [query_state, shown_page, selected, *heatmap_inputs]
    # ← and → past the page's end reach the server as the gallery's `input`, U and the Undo button as its `undo`, the
    # class buttons (clicked, or keyed by KEYBOARD_JS), Accept, N and A as its `submit`: each numbered and answered
    # (GALLERY_JS)
    stepped_outputs = [query_state, *refresh_outputs, selected, *detail_parts]
    on(gallery.input, stepped, current, stepped_outputs, refused=answered_unchanged(stepped_outputs), **ordered)
    changed_outputs = [query_state, *refresh_outputs, selected, *detail_parts, last_action, header, labels_seen]
    on(gallery.submit, label_shown_image, current, changed_outputs, refused=answered_unchanged(changed_outputs),
       **ordered)
    on(gallery.undo, undo_last, current, changed_outputs, refused=answered_unchanged(changed_outputs), **ordered)
    on(accept_page.click, accept_page_above, [*current, accept_threshold], changed_outputs, **ordered)
    on(labels_stale.change, tiles_redrawn, [*current, labels_seen], [gallery, shown_page, *detail_parts, labels_seen],
       **ordered)
    on(gallery_stale.change, redrawn, current, [*refresh_outputs, *detail_parts], **ordered)

    find = FindTools(workspace.discovery, refresh)
    subset_outputs = [query_state, *refresh_outputs, sort]
    for trigger in (search_button.click, search_text.submit):
        on(trigger, find.search_shown, [query_state, selected, search_text], subset_outputs, **ordered)

    def similar_to_shown(query, event: gr.EventData):
        """More like this (S or its button), for the image the detail view showed when it was asked (the page sends
        its id, as it does with a label: a click still on its way to the server does not change what it acts on)."""
        image_id = event._data.get("image_id")
        return find.similar_shown(query, None if image_id is None else int(image_id))

    on(detail_view.submit, similar_to_shown, [query_state], subset_outputs, **ordered)
    # The first grouping of a large collection takes a minute or two (the neighbour graph is cached after): it runs
    # beside the label events, so keys and clicks still answer meanwhile, with a spinner on the gallery.
    grouping = {"show_progress": "minimal", "concurrency_id": "duplicates", "concurrency_limit": 1}
    on(duplicates_button.click, find.duplicates_shown, [query_state, selected, duplicate_threshold],
       [*subset_outputs, duplicate_at], **grouping)
    for button, show in ((next_group, find.next_group_shown), (previous_group, find.previous_group_shown)):
        on(button.click, show, [query_state, selected, duplicate_threshold, duplicate_at],
           [*subset_outputs, duplicate_at], **grouping)

    with class_row:
        @gr.render(inputs=class_keys)
        def render_class_buttons(keys):
            """One button per class, "circle [c]" with its key; the class `class-key-c` is what KEYBOARD_JS finds
            when c is pressed (Gradio sets no data attributes on a button)."""
            with gr.Row(elem_classes="class-row"):
                for name, key in keys:
                    gr.Button(f"{name} [{key}]" if key else name, size="sm", min_width=60,
                              elem_classes=["class-button", f"class-key-{key}"] if key else "class-button")
                gr.Button(f"{NONE_OF_THESE} [N]", size="sm", elem_classes="class-button", min_width=60)

    class_controls = [class_filter, heatmap_class, hotkeys, class_keys]
    load = (page_loaded, [query_state, selected, class_filter, *heatmap_inputs],
            [query_state, *refresh_outputs, *class_controls, labels_seen, *filters[1:], selected, *detail_parts])
    return LabelTab(query_state=query_state, selected=selected, class_keys=class_keys, refresh=refresh,
                    refresh_outputs=refresh_outputs, class_controls=class_controls,
                    class_controls_shown=class_controls_shown, load=load, gallery_stale=gallery_stale,
                    labels_stale=labels_stale, labels_seen=labels_seen)
