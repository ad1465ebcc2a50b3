"""The order of a page's selection actions. Gradio sends a tab's events on separate requests, so a click and the
key pressed right after it can reach the server in either order (the label tab's events then run one at a time, in
the order they arrived). The page numbers every click and label action it sends, and the server remembers, per
page session, the newest it has applied: an action that arrives late still does its own work (a label lands on the
image it names) but never moves the selection back to where the older action would leave it.
"""

from __future__ import annotations

import threading

SESSIONS_KEPT = 10_000  # page sessions remembered; the one least recently used is forgotten first


class ActionOrder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._newest: dict[str, tuple[int, int]] = {}  # session -> (newest action's number, its selection)

    def selection(self, session: str | None, sequence: int | None, wanted: int) -> int:
        """What the action numbered `sequence` leaves selected in `session`: `wanted` when it is the newest so far
        (recorded as such), else what the newer action left. An action without a number is taken as the newest."""
        session = session or ""
        with self._lock:
            newest = self._newest.pop(session, None)
            if sequence is not None and newest is not None and int(sequence) < newest[0]:
                self._newest[session] = newest
                return newest[1]
            self._newest[session] = (int(sequence) if sequence is not None else
                                     newest[0] if newest is not None else -1, wanted)
            while len(self._newest) > SESSIONS_KEPT:
                self._newest.pop(next(iter(self._newest)))
            return wanted
