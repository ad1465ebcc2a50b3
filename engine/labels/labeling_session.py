"""Human labels written from the page: one image or many, accepting predictions, and undo kept per person.
Every change names the files it touched, so the page can say exactly what happened."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from engine.project.audit import pending_audit
from engine.errors import LabelloopError
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
        back = self.view.label_text(first["class_id"], first["source"], names)
        ids = [row["image_id"] for row in restored]
        if len(restored) == 1:
            return LabelChange(1, f"undid{where}: {first['relpath']} is back to {back}", ids, versions=versions)
        return LabelChange(len(restored), f"undid{where}: {len(restored)} images restored ({first['relpath']} back "
                                          f"to {back}, …)", ids, versions=versions)

    def _write(self, actor: str, image_ids: list[int], class_ids: list[int | None],
               session: str | None) -> tuple[int, int, tuple[str, str]]:
        """Write the labels as `actor`; returns (labels changed, labels newly confirmed, the labels' versions before
        and after) and keeps an undo step. A multi-label project's labels are tag sets, which the page cannot give
        yet: refused, nothing written."""
        if self.multi_label:
            raise LabelloopError("this project is multi-label (tags) and the page cannot tag images yet; import tags "
                                 "with `labelloop label PROJECT --csv FILE` (columns path,label, tags joined by ';')")
        with self._lock:
            version_before = self.version()
            before = self.store.last_label_event_id()
            confirmed = self.store.confirm_labels(image_ids, class_ids, actor=actor)  # those already so
            changed = self.store.set_labels(image_ids, class_ids, source=Source.HUMAN, actor=actor)
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
