"""The Label tab's controller: one named method per thing the tab does, each answering with its outputs by
component (a dict: the components it leaves out stay as they are). app/label_tab.py says which event calls which.

The selection is an image id, never a position: a key acts on exactly the image the detail panel shows, whatever
the gallery shows meanwhile (a filter, the sort or another person may have changed it).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import gradio as gr

from app.action_order import ActionOrder
from app.escaping import html_text, markdown_text
from app.find import FindTools
from app.gallery_html import ShownPage, detail_html, gallery_html
from app.header import header_markdown
from app.label_layout import ALL_CLASSES, LabelLayout, hotkeys_line
from app.place_link import Place, place_from_link, place_link
from engine.project.audit import FIRST_AUDIT, NEXT_AUDIT, draw_audit, pending_audit
from engine.errors import LabelloopError
from engine.views.gallery import NONE_OF_THESE, GalleryPage, GalleryQuery, ImageDetail, Subset, empty_text, page_text
from engine.labels.labeling_session import LabelChange, page_actor
from engine.sources import Source
from engine.session.workspace import Workspace


def in_order(values: dict, components: list) -> tuple:
    """`values` by component as a tuple in the order of `components`, for a caller that lists outputs by position."""
    return tuple(values[component] for component in components)


def action_message(change: LabelChange) -> str:
    """The last-action line (Markdown) of a label change: its sentence, names and all, shown as written."""
    return markdown_text(change.message) + (" · U undoes" if change.undoable else "")


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


def detail_lines(detail: ImageDetail) -> list[str]:
    """The detail view's title lines (Markdown) for an image that is not in the audit: its label and whose
    predictions it shows, then zero-shot's, the teacher's and the round's judgement of the person's label."""
    whose = f"round {detail.shown_round}" if detail.shown_round else "zero-shot"
    lines = [f"label: **{markdown_text(detail.label or 'none yet')}** · predictions of **{whose}**"]
    if detail.changed:
        lines.append("**changed since labelled**: the file is no longer the picture your label was given for; "
                     "press a class key to relabel it (its own class confirms it); exports leave it out until then")
    teacher, zero_shot, without_label = detail.teacher, detail.zero_shot, detail.without_label
    if zero_shot:
        best_zero = next(iter(zero_shot))
        lines.append(f"zero-shot: {markdown_text(best_zero)} {zero_shot[best_zero]:.0%}")
    if teacher and without_label:  # the teacher trained on the person's label and holds it: say so, not "100 %"
        lines.append(f"teacher (round {detail.shown_round}): trained on your label")
    elif teacher:
        best = next(iter(teacher))
        agreement = "agrees" if zero_shot and best == next(iter(zero_shot)) else "disagrees"
        lines.append(f"teacher (round {detail.shown_round}): {markdown_text(best)} {teacher[best]:.0%} — {agreement}")
    if without_label:
        best = next(iter(without_label))
        verdict = ("possible label mistake: press its class again to keep it" if detail.mistake
                   else "agrees with your label" if best == detail.label_class
                   else "you confirmed your label" if detail.confirmed else "another class")
        lines.append(f"judged without your label (round {detail.shown_round}): {markdown_text(best)} "
                     f"{without_label[best]:.0%} — {verdict}")
    if detail.queue:
        lines.append(f"review queue #{detail.queue.rank}: {markdown_text(detail.queue.reason)}")
    return lines


AUDIT_LINE = ("**random audit**: what does it show? Press its class's key or N. The machine's guess is hidden so that "
              "it cannot sway you; your label estimates how right the dataset is.")


def _sequence(event: gr.EventData | None) -> int | None:
    """The number the page gave the action it sent (GALLERY_JS), if it gave one."""
    return getattr(event, "sequence", None) if event is not None else None


class LabelController:
    """The Label tab's handlers over one `Workspace`; `layout` names the components they answer with."""

    def __init__(self, workspace: Workspace, layout: LabelLayout):
        self.workspace, self.view, self.labeling = workspace, workspace.view, workspace.labeling
        self.ui = layout
        self.order = ActionOrder()
        self.find = FindTools(workspace.discovery, self.refresh)

    # ---- what the page shows -----------------------------------------------------------------------------------

    def gallery_shown(self, query: GalleryQuery, result: GalleryPage, chosen: int | None, *,
                      answered: str = "") -> dict:
        """The gallery (the selected image highlighted when it is on this page) with its page text (and the subset
        it is narrowed to, and what the filters hide of it), the page drawn, and the buttons that leave the subset
        and clear the filters."""
        shown = ShownPage(result.items, page_text(query, result, result.page), result.following,
                          page_text(query, result, result.page + 1), empty_text(query, result),
                          place_link(query, query.subset.link if query.subset else None),
                          tags=self.view.store.is_multi_label())
        ui = self.ui
        return {ui.gallery: gallery_html(shown, chosen, answered=answered), ui.shown_page: shown,
                ui.show_all: gr.Button(visible=query.subset is not None),
                ui.clear_filters: gr.Button(visible=bool(query.named_filters()))}

    def refreshed(self, query: GalleryQuery, chosen: int | None, *, answered: str = "") -> dict:
        return self.gallery_shown(query, self.view.gallery(query), chosen, answered=answered)

    def answered(self, request: gr.Request | None) -> str:
        """The page's actions answered lately, for a drawing of the gallery that answers none of them (a filter, a
        page turn, the labels check): Gradio may draw only it of it and an action's answer landing together, and
        without them that action stayed "on its way" for good (an undo's: the tab "waiting for the server…", the
        keys pressed meanwhile held; issue 24)."""
        return self.order.answered(request.session_hash) if request is not None else ""

    def refresh(self, query: GalleryQuery, chosen: int | None) -> tuple:
        """The gallery's outputs in the order of `LabelLayout.gallery_parts`, for the map and the finding tools."""
        return in_order(self.refreshed(query, chosen), self.ui.gallery_parts)

    def detail_shown(self, image_id: int | None, heatmap: bool, heatmap_for: str | None) -> dict:
        """The detail panel for `image_id`: image (or its heatmap), the title lines, top-5 and history."""
        ui = self.ui
        if image_id is None:
            return {ui.detail_view: detail_html(None), ui.detail_text: "", ui.top5: None, ui.history: []}
        detail = self.view.detail(image_id)
        if detail.placeholder:
            picture, note = detail.placeholder, f": {detail.error}"
        else:
            shows_heatmap = heatmap and not detail.audit  # an audit image is blind: no heatmap of a prediction
            picture = self.view.heatmap(image_id, heatmap_for or detail.predicted) if shows_heatmap else detail.path
            note = f"({detail.size[0]}×{detail.size[1]})"
        rows = [[event.when, event.who, event.from_label, event.to_label] for event in detail.history]
        if detail.audit:  # blind: no prediction
            return {ui.detail_view: detail_html(image_id, detail.relpath, Path(picture), note),
                    ui.detail_text: AUDIT_LINE, ui.top5: None, ui.history: rows}
        shown_class = detail.predicted if detail.label_source != Source.HUMAN else None
        return {ui.detail_view: detail_html(image_id, detail.relpath, Path(picture), note, shown=shown_class),
                ui.detail_text: "  \n".join(detail_lines(detail)),
                ui.top5: detail.without_label or detail.teacher or detail.zero_shot, ui.history: rows}

    def show_detail(self, chosen, heatmap, heatmap_for) -> dict:
        return self.detail_shown(chosen, heatmap, heatmap_for)

    # ---- filters, pages and subsets ----------------------------------------------------------------------------

    def apply_filters(self, query, chosen, class_name, status, low, high, order, only_disagree, only_mistakes,
                      tag_filter, request: gr.Request):
        query = replace(query, class_name=None if class_name in (None, ALL_CLASSES) else class_name,
                        status=status, min_confidence=min(low, high), max_confidence=max(low, high), sort=order,
                        disagree=only_disagree, mistakes=only_mistakes, tag_filter=tag_filter or "has", offset=0)
        return {self.ui.query_state: query, **self.refreshed(query, chosen, answered=self.answered(request))}

    def turned(self, query, shown: ShownPage, step):
        """The next or previous page: forward from the images still in the filter, back by a page."""
        if step > 0:
            offset = self.view.next_offset(query, [item.image_id for item in shown.items])
        else:
            offset = max(0, query.offset - query.page_size)
        result = self.view.gallery(replace(query, offset=offset))
        return replace(query, offset=result.offset), result

    def next_page_shown(self, query, shown, chosen, request: gr.Request):
        query, result = self.turned(query, shown, +1)
        answered = self.answered(request)
        return {self.ui.query_state: query, **self.gallery_shown(query, result, chosen, answered=answered)}

    def previous_page_shown(self, query, shown, chosen, request: gr.Request):
        query, result = self.turned(query, shown, -1)
        answered = self.answered(request)
        return {self.ui.query_state: query, **self.gallery_shown(query, result, chosen, answered=answered)}

    def all_images_shown(self, query, chosen, request: gr.Request):
        """Leave the subset (search results, neighbours, a map selection); the other filters stay."""
        query = replace(query, subset=None, sort="queue" if query.sort == "match" else query.sort, offset=0)
        return {self.ui.query_state: query, **self.refreshed(query, chosen, answered=self.answered(request)),
                self.ui.sort: gr.Dropdown(value=query.sort)}

    def filters_cleared(self, query, chosen, request: gr.Request):
        """Every filter cleared, on the page's controls too; the subset and the sort stay."""
        query, ui = query.without_filters(), self.ui
        return {ui.query_state: query, **self.refreshed(query, chosen, answered=self.answered(request)),
                ui.class_filter: ALL_CLASSES, ui.tag_filter: "has",
                ui.status_filter: "all", ui.min_conf: 0, ui.max_conf: 1, ui.disagree: False, ui.mistakes: False}

    def audit_shown(self, chosen, heatmap, heatmap_for, request: gr.Request):
        """Audit mode: the gallery narrowed to the random audit's images that wait for a label, in draw order (30
        drawn now for a first estimate, 40 more once those are labelled), the first one selected, every filter
        cleared (a filter on the predicted class or its confidence would tell what the machine guessed)."""
        store = self.workspace.project.store
        if not pending_audit(store):
            draw_audit(store, FIRST_AUDIT if store.audit_progress()[2] == 0 else NEXT_AUDIT)
        query = GalleryQuery(subset=self.audit_subset(), sort="match")
        result = self.view.gallery(query)
        chosen = result.items[0].image_id if result.items else chosen
        ui = self.ui
        return {ui.query_state: query, **self.gallery_shown(query, result, chosen, answered=self.answered(request)),
                ui.class_filter: gr.Dropdown(value=ALL_CLASSES), ui.status_filter: gr.Dropdown(value="all"),
                ui.min_conf: 0, ui.max_conf: 1, ui.sort: gr.Dropdown(value="match"), ui.disagree: False,
                ui.mistakes: False, ui.tag_filter: "has", ui.selected: chosen,
                **self.detail_shown(chosen, heatmap, heatmap_for)}

    def audit_subset(self) -> Subset:
        waiting = pending_audit(self.workspace.project.store)
        return Subset(f"random audit · {len(waiting)} drawn for you to label blind", tuple(waiting),
                      link=("audit", "1"))

    def similar_to_shown(self, query, event: gr.EventData):
        """More like this (S or its button), for the image the detail view showed when it was asked (the page sends
        its id, as it does with a label: a click still on its way to the server does not change what it acts on)."""
        image_id = getattr(event, "image_id", None)
        return self.find.similar_shown(query, None if image_id is None else int(image_id))

    # ---- clicks, steps and refusals ------------------------------------------------------------------------------

    def select_tile(self, heatmap, heatmap_for, _selected, shown, event: gr.EventData, request: gr.Request):
        """The clicked image selected; the gallery is drawn again as the click's answer (the page highlighted the
        tile ahead of the server, and a drawing answering an earlier event may have come in between). A click that
        reached the server after a newer action leaves that action's selection (app.action_order)."""
        image_id = self.order.selection(request.session_hash, _sequence(event), int(event.image_id))
        return {self.ui.selected: image_id,
                self.ui.gallery: gallery_html(shown, image_id, answered=self.order.answered(request.session_hash)),
                **self.detail_shown(image_id, heatmap, heatmap_for)}

    def refused_click(self, heatmap, heatmap_for, chosen, shown, *rest, **named):
        """A click the server refused (the image is gone): the image still selected, drawn again over what the page
        showed ahead."""
        return self.refused_ahead(None, shown, chosen, heatmap, heatmap_for, *rest, **named)

    def refused_ahead(self, _query, shown, chosen, heatmap, heatmap_for, *rest, **named):
        """What a refused action the page showed ahead (a click, a key, a class button, undo, ← or → past the
        page's end) is answered with: the gallery and the detail view as they were, drawn again as the one answer
        the page waits for (GALLERY_JS). `rest`: the handler's other inputs, its event and its request."""
        arguments = [*rest, *named.values()]
        event = next((arg for arg in arguments if isinstance(arg, gr.EventData)), None)
        request = next((arg for arg in arguments if isinstance(arg, gr.Request)), None)
        session = request.session_hash if request is not None else None
        self.order.refused(session, _sequence(event), chosen)
        return {self.ui.gallery: gallery_html(shown, chosen, answered=self.order.answered(session)),
                **self.detail_shown(chosen, heatmap, heatmap_for)}

    def stepped(self, query, shown, chosen, heatmap, heatmap_for, event: gr.EventData, request: gr.Request):
        """← or → past the page's end (within the page the page sends a click on the neighbouring tile): the
        previous page's last image or the next page's first; on the first or last page, where it is. Always drawn as
        the answer the page waits for (GALLERY_JS)."""
        step = 1 if int(getattr(event, "step", 1)) > 0 else -1
        new_query, result = self.turned(query, shown, step)
        if new_query.offset == query.offset or not result.items:  # the first or last page: stay where it is
            new_query, result, wanted = query, None, chosen
        else:
            wanted = result.items[0 if step > 0 else -1].image_id
        chosen = self.order.selection(request.session_hash, _sequence(event), wanted)
        answered = self.order.answered(request.session_hash)
        ui = self.ui
        if result is None or chosen != wanted:  # stays, or a newer action moved the selection meanwhile
            drawn = {ui.query_state: query, ui.gallery: gallery_html(shown, chosen, answered=answered)}
        else:
            drawn = {ui.query_state: new_query, **self.gallery_shown(new_query, result, chosen, answered=answered)}
        return {**drawn, ui.selected: chosen, **self.detail_shown(chosen, heatmap, heatmap_for)}

    # ---- label changes -------------------------------------------------------------------------------------------

    def after_change(self, query, shown: ShownPage, chosen, change, heatmap, heatmap_for, seen, *,
                     answered: str = "") -> dict:
        """The page after a label change: the changed tiles redrawn where they are (the grid does not shift under
        the person's hand; turning the page applies the filters again), with `chosen` selected. `answered`: the
        change is an action the page showed ahead (a key, a class button, undo): the actions answered lately."""
        fresh = {item.image_id: item for item in self.view.items(change.image_ids)} if change.undoable else {}
        shown = replace(shown, items=[fresh.get(item.image_id, item) for item in shown.items])
        ui = self.ui
        return {ui.query_state: query, ui.gallery: gallery_html(shown, chosen, answered=answered),
                ui.shown_page: shown, ui.selected: chosen, **self.detail_shown(chosen, heatmap, heatmap_for),
                **self.change_reported(change, seen)}

    def change_reported(self, change: LabelChange, seen: str | None) -> dict:
        """The last-action line, the header and the labels' version this tab has drawn in full after its own label
        change: the version after it only when the tab had drawn the one just before it; else labels changed
        elsewhere meanwhile (another tab, a person) that only the labels check redraws, so `seen` stays for the
        check to find them."""
        drawn = change.versions[1] if change.versions and change.versions[0] == seen else seen
        return {self.ui.last_action: action_message(change), self.ui.header: header_markdown(self.view.header()),
                self.ui.labels_seen: drawn}

    def label_shown_image(self, query, shown, chosen, heatmap, heatmap_for, seen, event: gr.EventData,
                          request: gr.Request):
        """A class key or button, N or A: acts on the image the detail view showed when it was pressed (the page
        sends its id), or on the tiles picked with Shift- or Ctrl-click (`image_ids`: one undo step), whatever order
        the server got that click and this key in; then the next image (`following`; in a multi-label project a
        class key turns a tag over and stays), unless a newer action reached the server first (app.action_order)."""
        session, picks = request.session_hash, getattr(event, "image_ids", None)
        if picks:
            change = self.apply_label([int(i) for i in picks], event, request)
            chosen = self.order.selection(session, _sequence(event), chosen)
            return self.after_change(query, shown, chosen, change, heatmap, heatmap_for, seen,
                                     answered=self.order.answered(session))
        if getattr(event, "image_id", None) is None:
            raise LabelloopError("select an image first (click it, or press →)")
        image_id = int(event.image_id)
        change = self.apply_label([image_id], event, request)
        stays = shown.tags and getattr(event, "kind", None) == "class"  # a tag turned over: the same image
        wanted, result = image_id if stays else following(shown, image_id), None
        if wanted is None:  # past the page's last tile: the next page's first image, as the page showed it ahead
            new_query, result = self.turned(query, shown, +1)
            wanted = result.items[0].image_id if new_query.offset != query.offset and result.items else image_id
            result = result if wanted != image_id else None
        chosen = self.order.selection(session, _sequence(event), wanted)
        answered = self.order.answered(session)
        if result is not None and chosen == wanted:
            return {self.ui.query_state: new_query,
                    **self.gallery_shown(new_query, result, chosen, answered=answered), self.ui.selected: chosen,
                    **self.detail_shown(chosen, heatmap, heatmap_for), **self.change_reported(change, seen)}
        return self.after_change(query, shown, chosen, change, heatmap, heatmap_for, seen, answered=answered)

    def apply_label(self, image_ids: list[int], event: gr.EventData, request: gr.Request) -> LabelChange:
        """The label a key or button names (`kind`: class, by `name`, which the page reads off the class's button;
        none; accept, of the class the page showed as `name`: a prediction that changed since the person saw it is
        not what they accepted). A name, never a position: a class list changed meanwhile cannot send it to another
        class."""
        kind, name = getattr(event, "kind", None), getattr(event, "name", None)
        actor, session = page_actor(request.username), request.session_hash
        if kind == "accept":
            return self.labeling.accept(image_ids, actor=actor, session=session, expected=name)
        return self.labeling.label(image_ids, NONE_OF_THESE if kind == "none" else str(name), actor=actor,
                                   session=session)

    def accept_page_above(self, query, shown, chosen, heatmap, heatmap_for, threshold, seen, request: gr.Request):
        change = self.labeling.accept([item.image_id for item in shown.items], min_confidence=threshold,
                                      actor=page_actor(request.username), session=request.session_hash)
        change.message += f" at or above {threshold:.0%}"
        return self.after_change(query, shown, chosen, change, heatmap, heatmap_for, seen)

    def undo_last(self, query, shown, chosen, heatmap, heatmap_for, seen, event: gr.EventData, request: gr.Request):
        """U or Undo: the person's last action undone (saying so when another tab made it), and the image that got
        its label back selected; always the answer the page waits for (GALLERY_JS)."""
        change = self.labeling.undo(actor=page_actor(request.username), session=request.session_hash)
        wanted = change.image_ids[0] if len(change.image_ids) == 1 else chosen
        chosen = self.order.selection(request.session_hash, _sequence(event), wanted)
        return self.after_change(query, shown, chosen, change, heatmap, heatmap_for, seen,
                                 answered=self.order.answered(request.session_hash))

    # ---- what changed elsewhere --------------------------------------------------------------------------------

    def redrawn(self, query, _shown, chosen, heatmap, heatmap_for, request: gr.Request):
        """The gallery and the detail view after a job ended or the classes changed: a label-tab event of its own,
        so it runs after a filter, sort or page change sent before it and reads the query that change left (drawn by
        the tick itself, it could put the page the person left back on the screen); the detail view follows the
        round like every other view, so A accepts what it shows."""
        return {**self.refreshed(query, chosen, answered=self.answered(request)),
                **self.detail_shown(chosen, heatmap, heatmap_for)}

    def labels_checked(self, query, shown: ShownPage, chosen, heatmap, heatmap_for, seen, request: gr.Request):
        """The labels timer's check, answered in one round trip: when labels changed since this tab last drew them
        in full (another tab, person or round changed them), the page's tiles and the detail view drawn again where
        they are (no tile moves: the filters apply again when the page is turned), so every open tab shows the truth
        within LABELS_TICK and one answer. The tiles only when one it shows changed: a drawing of the page the
        server holds, landing while the page has turned ahead to the next, would move the detail view (and the
        next key) back to it. The version is read first: a label written while this draws is found next time.
        The tiles are drawn before the detail view, as in every answer: a detail view numbered after the gallery
        drawing that says an undo was answered names where the undo left the selection (GALLERY_JS)."""
        version = self.labeling.version()
        if seen is None or version == seen:  # seen None: the page has not loaded yet
            return {self.ui.labels_seen: gr.skip()}  # (Gradio takes an empty dict for one output's value)
        drawn = {self.ui.labels_seen: version}
        fresh = self.view.items([item.image_id for item in shown.items])
        if fresh != shown.items:
            shown = replace(shown, items=fresh)
            drawn |= {self.ui.gallery: gallery_html(shown, chosen, answered=self.answered(request)),
                      self.ui.shown_page: shown}
        return drawn | self.detail_shown(chosen, heatmap, heatmap_for)

    def class_controls_shown(self, keys, query, filter_value, *, drawn_first: bool = False) -> dict:
        """Every control that lists classes, from the project's classes and keys now, and the query. Only the
        choices change, so a class a person is picking meanwhile stays picked; a filter on a class that is gone is
        dropped. The page's first drawing (`drawn_first`) also sets the class filter to the query's."""
        names = [name for name, _ in keys]
        if query.class_name and query.class_name not in names:
            query = replace(query, class_name=None, offset=0)
        keep = filter_value in names and not drawn_first
        ui = self.ui
        return {ui.query_state: query,
                ui.class_filter: gr.Dropdown(choices=[ALL_CLASSES, *names],
                                             **({} if keep else {"value": query.class_name or ALL_CLASSES})),
                ui.heatmap_class: gr.Dropdown(choices=names), ui.hotkeys: hotkeys_line(keys), ui.class_keys: keys}

    # ---- the page as it opens ------------------------------------------------------------------------------------

    def place_restored(self, place: Place) -> tuple[GalleryQuery, int | None]:
        """The query and selected image a link names; a subset it cannot make again (the search model fails to
        load, the image is gone) is left out, and so is an image no longer in the project."""
        query, (kind, what) = place.query, place.subset or (None, None)
        try:
            subset = (self.find.searched(what) if kind == "search" else self.find.like(int(what)) if kind == "like"
                      else self.audit_subset() if kind == "audit" else None)
        except (LabelloopError, ValueError) as error:
            gr.Warning(html_text(f"the link's {kind} could not be shown again: {error}"))
            subset = None
        if subset is not None:
            query = replace(query, subset=subset)
        image_id = place.image_id if place.image_id is not None and self.view.items([place.image_id]) else None
        return query, image_id

    @staticmethod
    def page_address(request: gr.Request | None) -> dict[str, str]:
        """The query of the page's own address: the load event's request is the queue's, and its Referer names the
        page (Gradio passes the page's query to it only in some versions)."""
        if request is None:
            return {}
        params = dict(request.query_params)
        referer = request.headers.get("referer") if request.headers else None
        return params or (dict(parse_qsl(urlsplit(referer).query)) if referer else {})

    def page_loaded(self, query, chosen, filter_value, heatmap, heatmap_for, request: gr.Request):
        """The page as it opens: where its address says (a reload, back, a shared link), else the gallery's first
        page; the filter controls set to the query's."""
        place = place_from_link(self.page_address(request), self.view.class_names())
        if place is not None:
            query, chosen = self.place_restored(place)
        controls = self.class_controls_shown(self.view.class_keys(), query, filter_value, drawn_first=True)
        query, ui = controls[self.ui.query_state], self.ui
        version = self.labeling.version()  # before the drawing: a label written meanwhile is found by the next check
        return {**controls, **self.refreshed(query, chosen), ui.labels_seen: version, ui.status_filter: query.status,
                ui.min_conf: query.min_confidence, ui.max_conf: query.max_confidence, ui.sort: query.sort,
                ui.disagree: query.disagree, ui.mistakes: query.mistakes, ui.selected: chosen,
                ui.tag_filter: gr.Radio(value=query.tag_filter, visible=self.view.store.is_multi_label()),
                **self.detail_shown(chosen, heatmap, heatmap_for)}
