"""The page's JavaScript and CSS: files in app/static/ (package data), read once when the page is built, so the
front end is code an editor and a test harness can open (tests/test_static_js.py)."""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).with_name("static")


def static_text(*names: str) -> str:
    """The files `names` of app/static/, joined in order."""
    return "".join((STATIC / name).read_text(encoding="utf-8") for name in names)
