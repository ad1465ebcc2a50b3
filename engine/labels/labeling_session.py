"""Human labels written from the page: one image or many, accepting predictions, and undo kept per person.
Every change names the files it touched, so the page can say exactly what happened."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from engine.project.audit import pending_audit
from engine.errors import LabelloopError
from engine.learning.tags import TAG_PRESENT
from engine.views.gallery import NONE_OF_THESE, GalleryView
from engine.sources import Source
from storage import Store

PAGE_ACTOR = "page"


def page_actor(username: str | None) -> str:
    """Who a page action is recorded as: "page", or "page:NAME" for a person logged in with --auth. Undo is kept
    per actor, so two people sharing a server never undo each other's labels."""
    return f"{PAGE_ACTOR}:{username}" if username else PAGE_ACTOR


@dataclass
class LabelChange:
    """What one page action did: how many labels changed, and a sentence naming them (plain text: the names in it
    are the person's and the folder's, which the page escapes)."""

    changed: int
    message: str
    image_ids: list[int] = field(default_factory=list)  # the images it changed
    confirmed: int = 0  # labels it confirmed (given again as they were): no longer possible mistakes
    # the labels' version (LabelingSession.version) just before and just after its writes, read with them: a page
    # that had drawn the first has drawn everything but this change; None when it stopped before writing
    versions: tuple[str, str] | None = None

    @property
    def undoable(self) -> bool:
        """Whether U has something of this action to take back (and its tiles something new to show)."""
        return bool(self.changed or self.confirmed)


@dataclass
class _UndoStep:
    """One page action as undo takes it back: the label_events id range it wrote, the labels it confirmed, and the
    page session (browser tab) that made it."""

    after: int
    through: int
    confirmed: list[int]
    session: str | None


class LabelingSession:
    """Writes human labels for the page. Undo steps are kept per actor, in memory: one step per action."""

    def __init__(self, store: Store, view: GalleryView):
        self.store = store
        self.view = view
        self.multi_label = store.is_multi_label()  # read once: a project never changes kind
        self._undo: dict[str, list[_UndoStep]] = {}  # per actor, one step per action
        self._lock = threading.Lock()  # an action's event range must not interleave with another's
        self._confirmations = 0  # confirmations written or undone: they change what a tile shows, and no event says so

    def version(self) -> str:
        """Changes whenever a label or a confirmation does (the page, a round, an import): an open tab that drew
        another version draws its tiles again."""
        return f"{self.store.last_label_event_id()}.{self._confirmations}"

    def label(self, image_ids: list[int], class_name: str | None, *, actor: str = PAGE_ACTOR,
              session: str | None = None) -> LabelChange:
        """Give each image a human label (None or NONE_OF_THESE = none of these); one undo step of `actor`, made in
        the page session (browser tab) `session`."""
        class_id = None if class_name in (None, NONE_OF_THESE) else self.view.class_id(class_name)
        shown = class_name or NONE_OF_THESE
        if not image_ids:
            return LabelChange(0, "no image selected")
        if self.multi_label:
            return self._toggle(image_ids, class_id, actor, session)
        changed, confirmed, versions = self._write(actor, image_ids, [class_id] * len(image_ids), session)
        note = "" if changed else " (already so: confirmed)" if confirmed else " (already so; nothing changed)"
        return LabelChange(changed, f"{self._files(image_ids)} → {shown}{note}", list(image_ids), confirmed,
                           versions)

    def accept(self, image_ids: list[int], *, min_confidence: float = 0.0, actor: str = PAGE_ACTOR,
               session: str | None = None, expected: str | None = None) -> LabelChange:
        """Make each image's shown prediction its human label, if its confidence is at least `min_confidence`.
        Images a person already labeled are left as they are. One undo step of `actor`. `expected`: for one image,
        the class the page showed the person; should a round have changed the prediction since, the person accepted
        what they saw, and that is the label written."""
        if self.multi_label:
            return self._accept_tags(image_ids, actor, session)
        blind = set(pending_audit(self.store))  # accepting the machine's guess would make the audit agree with it
        chosen = [row for row in self.store.shown_predictions(image_ids, self.store.shown_round())
                  if row["status"] == "ok" and row["label_source"] != Source.HUMAN and row["predicted"] is not None
                  and row["confidence"] >= min_confidence and row["id"] not in blind]
        if not chosen and len(image_ids) == 1 and image_ids[0] in blind:
            raise LabelloopError("this image is in the random audit: press its class's key (or N) instead; its "
                                 "prediction is hidden so it cannot sway you")
        if not chosen:
            return LabelChange(0, "nothing to accept: already labeled by a person, in the random audit, or below "
                                  "the threshold")
        ids = [row["id"] for row in chosen]
        names = {c["id"]: c["name"] for c in self.store.classes()}
        predicted = [row["predicted"] for row in chosen]
        note = "accepted"
        if expected is not None and len(ids) == 1 and names.get(predicted[0]) != expected:
            note = f"accepted as shown; the shown round now predicts {names.get(predicted[0], '?')}"
            predicted = [self.view.class_id(expected)]
        changed, _, versions = self._write(actor, ids, predicted, session)  # no person's label: none confirmed
        if len(ids) == 1:
            return LabelChange(changed, f"{self._files(ids)} → {names[predicted[0]]} ({note})", ids,
                               versions=versions)
        return LabelChange(changed, f"accepted {changed} predictions", ids, versions=versions)

    def undo(self, *, actor: str = PAGE_ACTOR, session: str | None = None) -> LabelChange:
        """Undo `actor`'s last page action (a single label or a bulk accept); only that actor's label changes in
        it are reverted, and an image someone relabeled since keeps the newer label. The message says so when
        another page session (browser tab) than `session` made the action."""
        with self._lock:
            steps = self._undo.get(actor)
            if not steps:
                return LabelChange(0, "nothing to undo")
            step = steps.pop()
            before = self.version()
            restored = self.store.revert_label_events(step.after, step.through, actor=actor, by=f"{actor}:undo")
            self.store.forget_confirmations(step.confirmed)
            self._confirmations += len(step.confirmed)
            versions = (before, self.version())
        confirmed = step.confirmed
        where = " (an action made in another tab)" if step.session != session else ""
        if not restored and confirmed:
            return LabelChange(0, f"undid{where}: {self._files(confirmed)} no longer confirmed (a possible label "
                                  "mistake again if the round doubts it)", confirmed, len(confirmed), versions)
        if not restored:
            return LabelChange(0, f"nothing to undo{where}: those images were relabeled since")
        names = {c["id"]: c["name"] for c in self.store.classes()}
        first = restored[0]
        back = "its tags before" if self.multi_label else \
            self.view.label_text(first["class_id"], first["source"], names)
        ids = [row["image_id"] for row in restored]
        if len(restored) == 1:
            return LabelChange(1, f"undid{where}: {first['relpath']} is back to {back}", ids, versions=versions)
        return LabelChange(len(restored), f"undid{where}: {len(restored)} images restored ({first['relpath']} back "
                                          f"to {back}, …)", ids, versions=versions)

    def _toggle(self, image_ids: list[int], class_id: int | None, actor: str,
                session: str | None) -> LabelChange:
        """A multi-label project's tag key: the tag turned over on each image (from what the tile shows: the
        person's answer where they looked at it, else the prediction) and marked looked at, the image's other answers
        kept; "none of these" (class_id None) = no tag applies, every tag looked at. One undo step."""
        tag_ids = [c["id"] for c in self.store.classes()]
        rows = self.store.shown_tag_rows(image_ids, self.store.shown_round())
        tag_sets = []
        for image_id in image_ids:
            row = rows.get(image_id, {})
            tags, looked = set(row.get("tags") or []), set(row.get("looked_at") or [])
            if class_id is None:
                tag_sets.append(((), tag_ids))
                continue
            probs = dict(zip(row.get("class_ids") or [], row.get("probs") or []))
            has = class_id in tags if class_id in looked else probs.get(class_id, 0.0) >= TAG_PRESENT
            tags = tags - {class_id} if has else tags | {class_id}
            tag_sets.append((sorted(tags), sorted(looked | {class_id})))
        changed, _, versions = self._write(actor, image_ids, [None] * len(image_ids), session, tag_sets=tag_sets)
        names = {c["id"]: c["name"] for c in self.store.classes()}
        if class_id is None:
            what = "no tag applies"
        else:
            turned = [class_id in tags for tags, _ in tag_sets]
            what = f"{names[class_id]} {'on' if all(turned) else 'off' if not any(turned) else 'turned over'}"
        return LabelChange(changed, f"{self._files(image_ids)} → {what}", list(image_ids), versions=versions)

    def _accept_tags(self, image_ids: list[int], actor: str, session: str | None) -> LabelChange:
        """A multi-label project's A: each image's predicted tag set (TAG_PRESENT) as the person's, every tag
        looked at; images a person already tagged are left as they are. One undo step."""
        tag_ids = [c["id"] for c in self.store.classes()]
        rows = self.store.shown_tag_rows(image_ids, self.store.shown_round())
        chosen = [image_id for image_id in image_ids if image_id in rows and rows[image_id]["looked_at"] is None
                  and rows[image_id]["probs"] is not None]
        if not chosen:
            return LabelChange(0, "nothing to accept: already tagged by a person, or not predicted yet")
        tag_sets = [(sorted(c for c, p in zip(rows[i]["class_ids"], rows[i]["probs"]) if p >= TAG_PRESENT), tag_ids)
                    for i in chosen]
        changed, _, versions = self._write(actor, chosen, [None] * len(chosen), session, tag_sets=tag_sets)
        names = {c["id"]: c["name"] for c in self.store.classes()}
        if len(chosen) == 1:
            shown = ", ".join(names[c] for c in tag_sets[0][0]) or "no tag"
            return LabelChange(changed, f"{self._files(chosen)} → {shown} (accepted)", chosen, versions=versions)
        return LabelChange(changed, f"accepted {changed} predicted tag sets", chosen, versions=versions)

    def _write(self, actor: str, image_ids: list[int], class_ids: list[int | None],
               session: str | None, *, tag_sets: list | None = None) -> tuple[int, int, tuple[str, str]]:
        """Write the labels as `actor` (a multi-label project's: `tag_sets`, (tags, looked at) per image, as
        Store.set_labels takes them); returns (labels changed, labels newly confirmed, the labels' versions before
        and after) and keeps an undo step. Tag sets are never confirmed."""
        with self._lock:
            version_before = self.version()
            before = self.store.last_label_event_id()
            confirmed = [] if tag_sets is not None else \
                self.store.confirm_labels(image_ids, class_ids, actor=actor)  # those already so
            changed = self.store.set_labels(image_ids, class_ids, source=Source.HUMAN, actor=actor,
                                            tag_sets=tag_sets)
            self._confirmations += len(confirmed)
            if changed or confirmed:
                self._undo.setdefault(actor, []).append(
                    _UndoStep(before, self.store.last_label_event_id(), confirmed, session))
            return changed, len(confirmed), (version_before, self.version())

    def _files(self, image_ids: list[int]) -> str:
        if len(image_ids) > 3:
            return f"{len(image_ids)} images"
        relpaths = self.store.relpaths_of(image_ids)
        return ", ".join(relpaths[i] for i in image_ids)
