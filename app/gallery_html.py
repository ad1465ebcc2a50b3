"""The gallery as HTML: one tile per image with its thumbnail, a border and badge coloured by confidence (blue with
a corner dot for a person's label), its similarity in the corner when a search narrowed the gallery, the file name
and the review queue's reason on hover. Drawn by the browser, so a tile is only its thumbnail's URL: a label
changes one badge, and no picture is drawn or copied on the server."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Sequence
from urllib.parse import quote

from engine.gallery_view import GalleryItem
from engine.overlays import confidence_colour

# Clicks on a tile trigger the gallery's `click` event with the tile's image id; the tile is highlighted at once.
GALLERY_JS = """
element.addEventListener('click', (event) => {
  const tile = event.target.closest('[data-image-id]');
  if (!tile) return;
  element.querySelectorAll('.tile.selected').forEach(t => t.classList.remove('selected'));
  tile.classList.add('selected');
  trigger('click', {image_id: Number(tile.dataset.imageId)});
});
// The next page's thumbnails, fetched one at a time after each drawing of the gallery: turning the page draws them
// from the browser's cache, and they never take the connections a click or a key needs meanwhile.
const fetched = new Set();
let ahead = [], fetching = false;
const fetchAhead = () => {
  if (fetching || !ahead.length) return;
  const url = ahead.shift();
  if (fetched.size > 5000) fetched.clear();  // a long session: forget old pages rather than grow
  fetched.add(url);
  fetching = true;
  const image = new Image();
  image.onload = image.onerror = () => { fetching = false; fetchAhead(); };
  image.src = url;
};
new MutationObserver(() => {
  const upcoming = element.querySelector('[data-upcoming]');
  if (!upcoming) return;
  ahead = upcoming.dataset.upcoming.split(' ').filter(url => url && !fetched.has(url));
  fetchAhead();
}).observe(element, {childList: true, subtree: true});
"""

GALLERY_CSS = """
#gallery .tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(120px, 1fr)); gap: 6px;
                  max-height: 560px; overflow-y: auto; overflow-x: hidden; padding: 4px; }
#gallery .tile { position: relative; aspect-ratio: 1; border: 4px solid var(--tile); border-radius: 6px;
                 padding: 0; background: #f3f4f6; cursor: pointer; overflow: hidden; max-width: 180px; }
#gallery .tile img { width: 100%; height: 100%; object-fit: contain; display: block; }
#gallery .tile.human { border-width: 6px; }
#gallery .tile.human .badge { max-width: calc(100% - 22px); }
#gallery .tile.human::after { content: ''; position: absolute; top: 5px; right: 5px; width: 12px; height: 12px;
                              border-radius: 50%; background: var(--tile); border: 2px solid white; }
#gallery .tile.selected { outline: 4px solid #111827; outline-offset: 1px; }
#gallery .badge { position: absolute; top: 0; left: 0; background: var(--tile); color: white; font-size: 12px;
                  line-height: 16px; padding: 0 4px; border-bottom-right-radius: 4px; max-width: 100%;
                  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
#gallery .score { position: absolute; bottom: 0; right: 0; background: rgba(17, 24, 39, .75); color: white;
                  font-size: 11px; line-height: 15px; padding: 0 4px; border-top-left-radius: 4px; }
#gallery .unreadable { display: flex; height: 100%; align-items: center; justify-content: center; color: #374151;
                       font-size: 12px; }
#gallery .empty { padding: 24px; color: #6b7280; }
"""

HUMAN_COLOUR = "rgb(37, 99, 235)"
ERROR_COLOUR = "rgb(60, 60, 60)"


def _colour(item: GalleryItem) -> str:
    if item.status == "error":
        return ERROR_COLOUR
    if item.label_source == "human":
        return HUMAN_COLOUR
    blue, green, red = confidence_colour(item.confidence if item.confidence is not None else 0.0).tolist()
    return f"rgb({red}, {green}, {blue})"


def tile_html(item: GalleryItem, selected: bool) -> str:
    title = item.relpath + (f" · {item.reason}" if item.reason else "")
    score = ""
    if item.score is not None:  # its similarity to what narrowed the gallery (a search, an image, a group's first)
        title += f" · similarity {item.score:.3f}"
        score = f"<span class='score'>{item.score:.3f}</span>"
    classes = "tile" + (" human" if item.label_source == "human" else "") + (" selected" if selected else "")
    picture = (f"<img src='{_url(item.thumbnail)}' alt='{html.escape(item.relpath, True)}'>"
               if item.thumbnail else
               f"<span class='unreadable' role='img' aria-label='{html.escape(item.relpath, True)}'>unreadable</span>")
    return (f"<button class='{classes}' data-image-id='{item.image_id}' "
            f"data-path='{html.escape(item.relpath, True)}' style='--tile: {_colour(item)}' "
            f"title='{html.escape(title, True)}'>{picture}<span class='badge'>{html.escape(item.caption)}</span>"
            f"{score}</button>")


def _url(path: Path) -> str:
    return f"gradio_api/file={quote(str(path))}"


def gallery_html(items: list[GalleryItem], selected: int | None, upcoming: Sequence[Path] = ()) -> str:
    """The tiles; `upcoming` thumbnails (the next page's) are fetched ahead by GALLERY_JS."""
    ahead = f"<div hidden data-upcoming='{' '.join(_url(path) for path in upcoming)}'></div>"
    if not items:
        return f"<div class='tiles'><div class='empty'>No image matches these filters.</div></div>{ahead}"
    return ("<div class='tiles'>" + "".join(tile_html(item, item.image_id == selected) for item in items) + "</div>"
            + ahead)
