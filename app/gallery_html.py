"""The gallery as HTML: one tile per image with its thumbnail, a border and badge coloured by confidence (blue with
a corner dot for a person's label), its similarity in the corner when a search narrowed the gallery, the file name
and the review queue's reason on hover. Drawn by the browser, so a tile is only its thumbnail's URL: a label
changes one badge, and no picture is drawn or copied on the server.

A class key, N, A or a class button shows its label at once on the tile of the image the detail view shows, ahead
of the server (dashed border: not written yet), and selects the next image as the server will; a click shows the
file in the detail view at once; turning the page draws the next page at once from its copy, sent with this page.
The server's answers redraw the gallery and the detail view with the truth (GALLERY_JS, DETAIL_JS)."""

from __future__ import annotations

import html
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from app.escaping import html_text
from app.place_link import with_image
from app.static_files import static_text
from engine.views import palette
from engine.views.gallery import NONE_OF_THESE, GalleryItem
from engine.sources import Source

HUMAN_COLOUR = palette.css(palette.HUMAN)
ERROR_COLOUR = palette.css(palette.ERROR)
AUDIT_COLOUR = palette.css(palette.AUDIT)

GALLERY_JS = static_text("gallery.js")
GALLERY_PROPS = {"human_colour": HUMAN_COLOUR, "none_of_these": NONE_OF_THESE}  # the constants GALLERY_JS reads
DETAIL_JS = static_text("detail.js")

# One count for every drawing of the gallery and the detail view, in every session: numbers only grow, so the page
# can tell a detail view drawn after the gallery drawing that answered an undo from one drawn before it (GALLERY_JS
# `shownImage`; each answer draws its gallery first), and each drawing differs from the one before, so the browser
# takes every answer. A count per session would do as well; one is simpler and its gaps mean nothing.
_drawings = itertools.count(1)


def _colour(item: GalleryItem) -> str:
    if item.status == "error":
        return ERROR_COLOUR
    if item.label_source == Source.HUMAN:
        return HUMAN_COLOUR
    if item.audit:
        return AUDIT_COLOUR
    return palette.css(palette.confidence_rgb(item.confidence if item.confidence is not None else 0.0))


def tile_html(item: GalleryItem, selected: bool) -> str:
    title = item.relpath + (f" · {item.reason}" if item.reason else "")
    score = ""
    if item.score is not None:  # its similarity to what narrowed the gallery (a search, an image, a group's first)
        title += f" · similarity {item.score:.3f}"
        score = f"<span class='score'>{item.score:.3f}</span>"
    doubt = ""
    if item.doubted_as is not None:  # a possible label mistake: what the round sees without the person's label
        title += f" · possible label mistake: judged without your label, {item.doubted_as}"
        doubt = f"<span class='doubt'>{html_text(item.doubted_as)}?</span>"
    classes = "tile" + (" human" if item.label_source == Source.HUMAN else "") + (" selected" if selected else "")
    picture = (f"<img src='{thumbnail_url(item.thumbnail)}' alt='{html_text(item.relpath)}'>"
               if item.thumbnail else
               f"<span class='unreadable' role='img' aria-label='{html_text(item.relpath)}'>unreadable</span>")
    # data-shown goes back to the server with A, so it keeps the class's name exactly; the rest is only shown
    shown = item.shown if item.label_source != Source.HUMAN and item.status != "error" else ""
    return (f"<button class='{classes}' data-image-id='{item.image_id}' "
            f"data-path='{html_text(item.relpath)}' data-shown='{html.escape(shown, True)}' "
            f"style='--tile: {_colour(item)}' "
            f"title='{html_text(title)}'>{picture}<span class='badge'>{html_text(item.caption)}</span>"
            f"{doubt}{score}</button>")


def _url(path: Path) -> str:
    """The server's image route (app.server.image_route) for a file in the images folder or the thumbnails."""
    return f"image{quote(str(path))}"


def thumbnail_url(thumbnail: Path) -> str:
    """The server's own thumbnail route (app.server.thumbnail_route) for a file named by engine.files.images's
    thumbnail_path: its name is the content's key."""
    return f"thumbnails/{quote(thumbnail.stem)}"


@dataclass
class ShownPage:
    """One page of the gallery as drawn: its tiles and text, and the next page as it stood then."""

    items: list[GalleryItem]
    text: str  # "page 2 of 9 · 412 images", after the subset's name when the gallery is narrowed to one
    following: list[GalleryItem] = field(default_factory=list)
    following_text: str = ""
    empty: str = "No images yet."  # what it says without tiles: the filters that hide every image (empty_text)
    # the place as the page's address (app.place_link), without the selected image; None before the page's first
    # answer (the drawing built with the page must not wipe the address the page was opened at)
    link: str | None = None
    # a multi-label project's page: a class key or button turns a tag over on the image and stays on it (the drawing
    # says so to GALLERY_JS and KEYS_JS with data-tags; Enter moves on)
    tags: bool = False


def _page_html(items: list[GalleryItem], text: str, selected: int | None, empty: str) -> str:
    tiles = ("".join(tile_html(item, item.image_id == selected) for item in items) if items
             else f"<div class='empty'>{html_text(empty)}</div>")
    return f"<div class='page-text'>{html_text(text)}</div><div class='tiles'>{tiles}</div>"


def detail_html(image_id: int | None, relpath: str = "", picture: Path | None = None, note: str = "",
                shown: str | None = None) -> str:
    """The detail view of one image: its file name (and `note`: its size, or why it cannot be read) over its
    picture; `data-image-id` names the image every label action acts on, `data-shown` the predicted class it shows
    (what A accepts)."""
    if image_id is None:
        return (f"<div class='detail-view' data-drawing='{next(_drawings)}'><div class='detail-title'>Click an image, "
                "or press → to start.</div></div>")
    title = f"<strong>{html_text(relpath)}</strong>" + (f" {html_text(note)}" if note else "")
    image = f"<img src='{_url(picture)}' alt='{html_text(relpath)}'>" if picture else ""
    accepts = f" data-shown='{html.escape(shown, True)}'" if shown else ""
    return (f"<div class='detail-view' data-image-id='{image_id}'{accepts} data-drawing='{next(_drawings)}'>"
            f"<div class='detail-title'>{title}</div>{image}</div>")


def gallery_html(shown: ShownPage, selected: int | None, *, answered: str = "") -> str:
    """The page text and tiles, the next page in an attribute (GALLERY_JS draws it at once when the page is turned,
    until the server's answer), and its thumbnails to fetch ahead. `answered`: the numbers of the page's actions the server has
    answered lately (app.action_order), when this drawing answers one: GALLERY_JS shows the rest ahead over it."""
    marks = (f" data-drawing='{next(_drawings)}'" + (f" data-answers='{answered}'" if answered else "")
             + (f" data-link='{html.escape(with_image(shown.link, selected), True)}'" if shown.link is not None else "")
             + (" data-tags='1'" if shown.tags else ""))
    if shown.following:  # an attribute, not a <template>: Gradio's in-place patching never updates a template's content
        drawn_next = _page_html(shown.following, shown.following_text, selected, shown.empty)
        marks += f" data-next-page='{html.escape(drawn_next, True)}'"
    # The next page's thumbnails, loaded by the browser with the page: turning the page draws them from its cache.
    # (Fetched by script two at a time, each started from the last one's onload, they waited on the page's busy main
    # thread: in bench_page only 4-15 of the 48 had arrived when the page was turned.) Chromium loads images out of
    # view at low priority, after a key's or a click's request.
    upcoming = "".join(f"<img src='{thumbnail_url(item.thumbnail)}' alt=''>"
                       for item in shown.following if item.thumbnail)
    return (f"<div class='drawing'{marks}>{_page_html(shown.items, shown.text, selected, shown.empty)}</div>"
            f"<div hidden class='upcoming'>{upcoming}</div>")
