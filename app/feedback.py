"""How the page tells a person that an action was refused: one message, and nothing on the page changes or
locks up (raising gr.Error would mark every output of the event as failed until a reload)."""

from __future__ import annotations

import functools
import logging

import gradio as gr

from app.escaping import html_text, terminal_text
from engine.errors import as_refusal

log = logging.getLogger("labelloop.page")


def refusable(handler, outputs: int, refused=None):
    """`handler` with a LabelloopError (or a full or read-only disk: `as_refusal`) turned into a warning toast
    and one log line; its `outputs` stay as they were, or are what `refused` (called with the handler's arguments)
    returns: an event the page answered ahead of the server (an optimistic label) needs an answer to put the truth
    back. functools.wraps keeps the signature Gradio reads for gr.Request and gr.SelectData."""

    @functools.wraps(handler)
    def run(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except Exception as caught:
            error = as_refusal(caught)
            if error is None:
                raise
            log.warning("refused: %s", terminal_text(error))
            gr.Warning(html_text(error), duration=8)
            if refused is not None:
                return refused(*args, **kwargs)
            return gr.skip() if outputs == 1 else tuple(gr.skip() for _ in range(outputs))

    return run


def on(trigger, handler, inputs, outputs, *, api_name: str | None = None, refused=None, **options):
    """Bind `handler` to an event (`button.click`, `dropdown.change`, ...) with refusals shown as messages (and
    answered by `refused`, see `refusable`). Every event gets a stable api_name: the handler's name unless given."""
    outputs = list(outputs)
    return trigger(refusable(handler, len(outputs), refused), inputs, outputs, api_name=api_name or handler.__name__,
                   **options)
