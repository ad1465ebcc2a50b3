"""How the page tells a person that an action was refused."""

from __future__ import annotations

import gradio as gr

from engine.errors import LabelloopError


def fail(error: LabelloopError):
    """A refused action becomes one readable line in the page; nothing else changes."""
    raise gr.Error(str(error), duration=8)
