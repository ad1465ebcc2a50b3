"""The order of a page's actions. Gradio sends a tab's events on separate requests, so a click and the key pressed
right after it can reach the server in either order (the label tab's events then run one at a time, in the order
they arrived). The page numbers every click, label, undo and page step it sends, and the server remembers, per page
session, the newest it has applied: an action that arrives late still does its own work (a label lands on the image
it names) but never moves the selection back to where the older action would leave it. It also remembers the
numbers it has answered lately: each answer lists them, so the page knows which of its actions are done even when
two answers reach its screen at once and only the later one is drawn.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field

SESSIONS_KEPT = 10_000  # page sessions remembered; the one least recently used is forgotten first
ANSWERS_KEPT = 64  # answered action numbers listed per session: far more than a page has on its way at once


@dataclass
class _Session:
    newest: int = -1  # the newest action's number
    selection: int | None = None  # what it left selected
    answered: deque = field(default_factory=lambda: deque(maxlen=ANSWERS_KEPT))


class ActionOrder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    def _session(self, session: str | None) -> _Session:
        key = session or ""
        state = self._sessions.pop(key, None) or _Session()
        self._sessions[key] = state
        while len(self._sessions) > SESSIONS_KEPT:
            self._sessions.popitem(last=False)
        return state

    def selection(self, session: str | None, sequence: int | None, wanted: int | None) -> int | None:
        """What the action numbered `sequence` leaves selected in `session`: `wanted` when it is the newest so far
        (recorded as such), else what the newer action left. An action without a number is taken as the newest.
        Either way the action counts as answered."""
        with self._lock:
            state = self._session(session)
            if sequence is not None:
                state.answered.append(int(sequence))
                if int(sequence) < state.newest:
                    return state.selection
                state.newest = int(sequence)
            state.selection = wanted
            return wanted

    def refused(self, session: str | None, sequence: int | None, selection: int | None) -> None:
        """An action refused: answered, and nothing moves: `selection`, what was selected, stays; an older action
        arriving after it leaves it, as after any newer action (the page foresees it so: GALLERY_JS `show`)."""
        if sequence is not None:
            with self._lock:
                state = self._session(session)
                state.answered.append(int(sequence))
                if int(sequence) > state.newest:
                    state.newest, state.selection = int(sequence), selection

    def answered(self, session: str | None) -> str:
        """The numbers of the session's actions answered lately, as the page reads them: "3,4,6"."""
        with self._lock:
            return ",".join(map(str, self._session(session).answered))
