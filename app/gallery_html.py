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
from engine import palette
from engine.gallery_view import NONE_OF_THESE, GalleryItem
from engine.sources import Source

HUMAN_COLOUR = palette.css(palette.HUMAN)
ERROR_COLOUR = palette.css(palette.ERROR)
AUDIT_COLOUR = palette.css(palette.AUDIT)

GALLERY_JS = """
// Every action the page sends is numbered in the order sent and answered by a drawing (a refusal too): a click on a tile ('click'), a label ('submit': a class key or button, N, A),
// undo ('undo') and ← or → past the page's end ('input'); each answer lists the numbers of the actions answered
// lately (app/action_order.py). `ahead` holds the actions sent and not answered yet, oldest first; each is shown at once as the server will do it (a label on its tile, the next tile selected and
// shown in the detail view: the image the next key acts on). Every drawing is the server's truth, and the actions
// still unanswered are shown again over it, in order. An action whose result the page cannot foresee (undo, a page
// turned back) is `blind`: the actions after it wait in `waiting`, in order, until its answer has come and the detail
// view names the image it left selected (and says it is waiting meanwhile); so a key typed right after U or ← never
// acts on an image the person did not see. Gradio patches the gallery's DOM in place with each new value, so a drawing is told by its data-drawing
// number, which grows with each drawing the server makes: one older than the newest seen (two answers applied out
// of order) is replaced by the newest. Should answers stop coming (a server error), the newest drawing is put back
// after STALL ms.
const ahead = [], waiting = [];
let sent = 0;
const picked = new Set();  // tiles picked with Shift- or Ctrl/Cmd-click: a label then goes to all of them
const tileOf = (imageId) => imageId && element.querySelector(`.tile[data-image-id="${imageId}"]`);
const tiles = () => [...element.querySelectorAll('.tile')];
const select = (tile) => {
  element.querySelectorAll('.tile.selected').forEach(t => t.classList.remove('selected'));
  tile.classList.add('selected');
};
// After a key moved the selection: the selected tile scrolled into view (not when a drawing arrives: the person
// may be at the filters).
const reveal = () => {
  const chosen = element.querySelector('.tile.selected');
  if (chosen) chosen.scrollIntoView({block: 'nearest'});
};
const showPicked = () => {
  element.querySelectorAll('.tile.picked').forEach(t => t.classList.remove('picked'));
  picked.forEach(id => { const tile = tileOf(id); if (tile) tile.classList.add('picked'); else picked.delete(id); });
};
const held = () => ahead.some(action => action.blind);
const act = (run) => { if (waiting.length || held()) waiting.push(run); else run(); };
const release = () => {
  while (waiting.length && !held() && shownImage()) waiting.shift()();
};
window.labelloopRelease = release;
const clickTile = (tile) => {
  ahead.push({select: tile.dataset.imageId, sequence: ++sent});
  select(tile);
  watchStall();
  if (window.labelloopDetailAhead) window.labelloopDetailAhead(tile);
  trigger('click', {image_id: Number(tile.dataset.imageId), sequence: sent});
};
// Shift-click picks the tiles from the selected one to this one, Ctrl/Cmd-click adds or removes one tile (the
// selected one first); a plain click or Escape drops the picks.
const pick = (tile, range) => {
  if (!picked.size) { const chosen = element.querySelector('.tile.selected'); if (chosen) picked.add(chosen.dataset.imageId); }
  if (range) {
    const all = tiles(), from = all.indexOf(element.querySelector('.tile.selected') || tile), to = all.indexOf(tile);
    all.slice(Math.min(from, to), Math.max(from, to) + 1).forEach(t => picked.add(t.dataset.imageId));
  } else if (picked.has(tile.dataset.imageId)) picked.delete(tile.dataset.imageId);
  else picked.add(tile.dataset.imageId);
  showPicked();
};
document.addEventListener('keydown', (event) => { if (event.key === 'Escape') { picked.clear(); showPicked(); } });
element.addEventListener('click', (event) => {
  const tile = event.target.closest('[data-image-id]');
  if (!tile) return;
  if (event.shiftKey || event.ctrlKey || event.metaKey) { event.preventDefault(); pick(tile, event.shiftKey); return; }
  picked.clear();
  showPicked();
  act(() => clickTile(tile));
});
const STALL = 20000;
let mark = null, newest = 0, truth = null, stall = null;
// The next page, drawn from the drawing's data-next-page (the server's answer follows and wins); `first`: with its
// first tile selected, as the server does when a label or → passes the page's end. False on the last page.
const turnAhead = (first) => {
  const now = element.querySelector('.drawing');
  if (!now || !now.dataset.nextPage) return false;
  const turned = document.createElement('div');
  turned.className = 'drawing';
  turned.innerHTML = now.dataset.nextPage;
  now.replaceWith(turned);
  const tile = turned.querySelector('.tile');
  if (first && tile) select(tile);
  return true;
};
// An action shown as the server will do it (app/label_tab.py `following`): a label moves to the next tile, past the
// page's last tile to the next page's first, and from an image not on the page (a sort or filter moved it off) to
// the page's first tile.
const show = (action) => {
  if (action.select) { const tile = tileOf(action.select); if (tile) select(tile); return; }
  if (action.step) { if (action.step > 0) turnAhead(true); return; }
  if (action.picks) { action.picks.forEach(id => caption(tileOf(id), action.caption)); return; }
  if (!action.label) return;
  const tile = tileOf(action.label);
  if (!tile) { const first = element.querySelector('.tile'); if (first) select(first); return; }
  caption(tile, action.caption);
  const next = tile.nextElementSibling;
  if (next && next.classList.contains('tile')) select(next);
  else turnAhead(true);
};
const caption = (tile, text) => {
  if (!tile || !text) return;
  tile.querySelector('.badge').textContent = text;
  tile.classList.add('human', 'pending');
  tile.style.setProperty('--tile', '%(human)s');
};
const watchStall = () => {
  clearTimeout(stall);
  if (!ahead.length) return;
  stall = setTimeout(() => {
    ahead.length = 0;
    const now = element.querySelector('.drawing');
    if (now && truth) now.replaceWith(truth.cloneNode(true));
    release();
  }, STALL);
};
const buttonName = (button) => button.innerText.replace(/ \\[\\w\\]$/, '');  // "circle [1]" -> "circle"
// The detail view while it names the image the keys act on (not while an answer that will name it is awaited).
const shownImage = () => document.querySelector('#detail-view .detail-view[data-image-id]');
// The detail view shows where the actions lead: the tile they leave selected.
const followSelection = () => {
  const chosen = element.querySelector('.tile.selected');
  if (chosen && window.labelloopDetailAhead) window.labelloopDetailAhead(chosen);
};
// A drawing of the detail view that lands after the gallery's (a redraw for labels changed elsewhere, sent before a
// click) must not put back the image the page had left: while actions are on their way it follows their selection.
window.labelloopFollow = () => { if (ahead.length && !held()) followSelection(); };  // held: it says it waits
// Until the answer to a blind action, the detail view names no image and says so: nothing acts on the one it showed
// before, and a key pressed meanwhile acts on the image it names next.
const WAITING = 'waiting for the server…';
const forget = window.labelloopForget = () => {
  const view = document.querySelector('#detail-view .detail-view');
  const title = view && view.querySelector('.detail-title');
  if (!view || (!view.dataset.imageId && title && title.textContent === WAITING)) return;  // it says so already
  view.removeAttribute('data-image-id');
  view.classList.add('pending');
  if (title) title.textContent = WAITING;
};
// A label action, sent with the image the detail view shows (or with the tiles picked when it was pressed) and
// shown at once. kind: 'class' (with the `name` of the class button clicked or keyed), 'none' or 'accept' (with the class
// the detail view shows: the page accepts what the person saw, not a prediction that changed meanwhile).
const label = (kind, {name = null} = {}, picks = []) => {
  const className = kind === 'class' ? name : null;
  const shown = shownImage();
  const imageId = shown ? shown.dataset.imageId : null;
  const tile = tileOf(imageId);
  const accepted = tile && tile.classList.contains('human') ? null
                   : shown && shown.dataset.shown ? shown.dataset.shown : null;
  const text = kind === 'class' ? className : kind === 'none' ? '%(none)s' : accepted;
  const payload = {kind, name: kind === 'accept' ? accepted : name, sequence: ++sent};
  let action;
  if (picks.length) {
    action = {picks, caption: kind !== 'accept' && text ? text + ' (you)' : null, sequence: sent};
    payload.image_ids = picks.map(Number);
  } else {
    action = {label: imageId, caption: text && text + ' (you)', sequence: sent};
    payload.image_id = imageId === null ? null : Number(imageId);
  }
  ahead.push(action);
  show(action);
  watchStall();
  trigger('submit', payload);
  followSelection();
  reveal();
};
window.labelloopLabel = (kind, options) => {
  const picks = [...picked];  // the picks as the key found them: a click after it, run first, drops them
  picked.clear();
  showPicked();
  act(() => label(kind, options, picks));
};
// ← and →: the neighbouring tile, as a click on it; past the page's end, → shows the next page's first tile at
// once (from its copy) and ← waits for the server to turn the page back.
window.labelloopStep = (step) => act(() => {
  const shown = shownImage();
  const tile = shown && tileOf(shown.dataset.imageId);
  const all = tiles();
  if (!tile) { if (all.length) clickTile(all[step > 0 ? 0 : all.length - 1]); return; }
  const index = all.indexOf(tile) + step;
  if (index >= 0 && index < all.length) { clickTile(all[index]); reveal(); return; }
  const now = element.querySelector('.drawing');
  const action = {step, blind: !(step > 0 && now && now.dataset.nextPage), sequence: ++sent};
  ahead.push(action);
  if (action.blind) forget(); else { show(action); followSelection(); reveal(); }
  watchStall();
  trigger('input', {step, sequence: sent});
});
// Undo: blind, the server says which image got its label back.
window.labelloopUndo = () => act(() => {
  ahead.push({blind: true, sequence: ++sent});
  forget();
  watchStall();
  trigger('undo', {sequence: sent});
});
// The next page drawn at once when ▶ is clicked. Not while actions are on their way: their answers redraw the page
// they were given on.
window.labelloopTurnAhead = () => { if (!ahead.length) turnAhead(false); };
if (!window.labelloopButtonsListening) {  // the class buttons, Accept, Undo and page ▶, clicked or keyed
  window.labelloopButtonsListening = true;
  document.addEventListener('click', (event) => {
    const button = event.target.closest('button');
    if (!button || !window.labelloopLabel) return;
    if (button.id === 'next-page') window.labelloopTurnAhead();
    else if (button.id === 'accept') window.labelloopLabel('accept');
    else if (button.id === 'similar' && window.labelloopSimilar) window.labelloopSimilar();
    else if (button.id === 'undo') window.labelloopUndo();
    else if (button.classList.contains('class-button')) {
      const name = buttonName(button);
      window.labelloopLabel(name === '%(none)s' ? 'none' : 'class', {name});
    }
  }, true);
}
const drawingArrived = () => {
  const now = element.querySelector('.drawing');
  if (!now || !now.dataset.drawing || now.dataset.drawing === mark) return;
  const answered = new Set((now.dataset.answers || '').split(',').filter(Boolean).map(Number));
  for (let i = ahead.length - 1; i >= 0; i--) if (answered.has(ahead[i].sequence)) ahead.splice(i, 1);
  if (Number(now.dataset.drawing) < newest && truth) {  // an older answer applied after a newer one
    mark = String(newest);
    now.replaceWith(truth.cloneNode(true));
  } else {
    mark = now.dataset.drawing;
    newest = Number(mark);
    truth = now.cloneNode(true);
  }
  const link = element.querySelector('.drawing').dataset.link;  // the place: a reload or a shared link lands here
  if (link !== undefined) history.replaceState(history.state, '', location.pathname + (link ? '?' + link : ''));
  ahead.forEach(show);
  showPicked();
  if (ahead.length) followSelection();
  if (held()) forget();  // an earlier answer drew an image; the keys wait for the blind action's
  watchStall();
  release();
};
window.labelloopHeld = held;
drawingArrived();
new MutationObserver(drawingArrived).observe(element, {childList: true, subtree: true, attributes: true,
                                                       attributeFilter: ['data-drawing']});
""" % {"human": HUMAN_COLOUR, "none": NONE_OF_THESE}

# The detail view's picture and title. A click on a tile draws them at once from the tile (its thumbnail, its file
# name) until the server's answer; a click on the picture zooms it to the window, a click or Escape zooms it out.
DETAIL_JS = """
// More like this (S, or its button): asked for the image the detail view shows, as a label is.
window.labelloopSimilar = () => {
  const view = element.querySelector('.detail-view[data-image-id]');
  trigger('submit', {image_id: view ? Number(view.dataset.imageId) : null});
};
window.labelloopDetailAhead = (tile) => {
  const view = element.querySelector('.detail-view');
  const thumbnail = tile.querySelector('img');
  if (!view || view.dataset.imageId === tile.dataset.imageId) return;  // it shows that image already
  view.classList.add('pending');
  view.dataset.imageId = tile.dataset.imageId;
  view.dataset.shown = tile.dataset.shown;  // the class A accepts: the one the tile shows
  view.querySelector('.detail-title').replaceChildren(Object.assign(document.createElement('strong'),
                                                                    {textContent: tile.dataset.path}));
  const picture = view.querySelector('img') || view.appendChild(document.createElement('img'));
  picture.alt = tile.dataset.path;
  picture.src = thumbnail ? thumbnail.src : '';
};
element.addEventListener('click', (event) => {
  const view = event.target.closest('.detail-view');
  if (view && (event.target.tagName === 'IMG' || view.classList.contains('zoomed'))) view.classList.toggle('zoomed');
});
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape') element.querySelectorAll('.detail-view.zoomed').forEach(v => v.classList.remove('zoomed'));
});
// The newest drawing wins, as in the gallery: an older answer applied after a newer one is replaced by the newer
// (the server's drawing, never what the page showed ahead over it). `newest` is the number of the copy kept, so the
// copy put back is never older than what it replaces: a newer drawing already redrawn ahead (pending) is not kept,
// and counting it as the newest made the copy put back "older" again, replaced again, for good (the tab froze).
let newest = 0, newestView = null;
new MutationObserver(() => {
  const view = element.querySelector('.detail-view[data-drawing]');
  const number = view ? Number(view.dataset.drawing) : 0;
  if (number > newest && !view.classList.contains('pending')) { newest = number; newestView = view.cloneNode(true); }
  else if (number && number < newest) view.replaceWith(newestView.cloneNode(true));
  if (window.labelloopFollow) window.labelloopFollow();
  if (window.labelloopHeld && window.labelloopHeld()) window.labelloopForget();  // still waiting: say so
  if (window.labelloopRelease) window.labelloopRelease();  // actions held until this view names an image
}).observe(element, {childList: true, subtree: true, attributes: true, attributeFilter: ['data-drawing']});
"""

GALLERY_CSS = """
#detail-view .detail-title { font-size: 14px; padding: 0 0 4px; overflow-wrap: anywhere; }
#detail-view .detail-view img { width: 100%; height: 250px; object-fit: contain; display: block; cursor: zoom-in;
                                background: #f9fafb; border-radius: 6px; }
#detail-view .detail-view.zoomed img { position: fixed; inset: 0; width: 100vw; height: 100vh; z-index: 1000;
                                       background: rgba(17, 24, 39, .9); cursor: zoom-out; border-radius: 0; }
#gallery .page-text { font-size: 14px; color: #374151; padding: 0 4px 4px; }
#gallery .tiles { display: grid; grid-template-columns: repeat(auto-fill, minmax(120px, 1fr)); gap: 6px;
                  padding: 4px; }
#gallery .tile { position: relative; aspect-ratio: 1; border: 4px solid var(--tile); border-radius: 6px;
                 padding: 0; background: #f3f4f6; cursor: pointer; overflow: hidden; max-width: 180px; }
#gallery .tile img { width: 100%; height: 100%; object-fit: contain; display: block; }
#gallery .tile.human { border-width: 6px; }
#gallery .tile.human .badge { max-width: calc(100% - 22px); }
#gallery .tile.human::after { content: ''; position: absolute; top: 5px; right: 5px; width: 12px; height: 12px;
                              border-radius: 50%; background: var(--tile); border: 2px solid white; }
#gallery .tile.pending { border-style: dashed; }
#gallery .tile.selected { outline: 4px solid #111827; outline-offset: 1px; }
#gallery .tile.picked::before { content: ''; position: absolute; inset: 0; background: rgba(37, 99, 235, .28);
                                box-shadow: inset 0 0 0 3px #1d4ed8; pointer-events: none; }
#gallery .badge { position: absolute; top: 0; left: 0; background: var(--tile); color: white; font-size: 12px;
                  line-height: 15px; padding: 0 4px; border-bottom-right-radius: 4px; max-width: 100%;
                  overflow-wrap: anywhere; text-align: left; }
#gallery .score { position: absolute; bottom: 0; right: 0; background: rgba(17, 24, 39, .75); color: white;
                  font-size: 11px; line-height: 15px; padding: 0 4px; border-top-left-radius: 4px; }
#gallery .doubt { position: absolute; bottom: 0; left: 0; background: #b45309; color: white; font-size: 12px;
                  line-height: 16px; padding: 0 4px; border-top-right-radius: 4px; max-width: 100%;
                  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
#gallery .unreadable { display: flex; height: 100%; align-items: center; justify-content: center; color: #374151;
                       font-size: 12px; }
#gallery .empty { padding: 24px; color: #6b7280; }
"""

_drawings = itertools.count(1)  # each drawing differs from the one before, so the browser takes every answer


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
    """The server's own thumbnail route (app.server.thumbnail_route) for a file named by engine.imageio's
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
             + (f" data-link='{html.escape(with_image(shown.link, selected), True)}'" if shown.link is not None else ""))
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
