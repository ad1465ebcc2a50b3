// The gallery (app/gallery_html.py draws it), run by Gradio as the gallery's js_on_load: `element` is the gallery,
// `trigger` sends its events, `props` carries the server's constants (human_colour, none_of_these). What the other
// scripts call lives on the one `window.labelloop` namespace.
const labelloop = window.labelloop = window.labelloop || {};
const HUMAN_COLOUR = props.human_colour, NONE_OF_THESE = props.none_of_these;
// Every action the page sends is numbered in the order sent and answered by a drawing (a refusal too): a click on a tile ('click'), a label ('submit': a class key or button, N, A),
// undo ('undo') and ← or → past the page's end ('input'); each answer, and every other drawing of the label tab (a page
// turn, a filter, the labels check: Gradio may draw only the newer of two that land together), lists the numbers of
// the actions answered lately (app/action_order.py). `ahead` holds the actions sent and not answered yet, oldest first; each is shown at once as the server will do it (a label on its tile, the next tile selected and
// shown in the detail view: the image the next key acts on). Every drawing is the server's truth, and the actions
// still unanswered are shown again over it, in order. An action whose result the page cannot foresee (undo, a page
// turned back) is `blind`: the actions after it wait in `waiting`, in order, until its answer has come and the detail
// view names the image it left selected (and says it is waiting meanwhile); so a key typed right after U or ← never
// acts on an image the person did not see. Gradio patches the gallery's DOM in place with each new value, so a drawing is told by its data-drawing
// number, which grows with each drawing the server makes: one older than the newest seen (two answers applied out
// of order) is replaced by the newest. Should answers stop coming (a server error), the newest drawing is put back
// after STALL ms, and the actions still waiting are dropped, saying so in the detail view (they were pressed for an
// image the page could not name).
const ahead = [], waiting = [];
let sent = 0;
// The number of the gallery drawing that answered the latest blind action: a detail view the server drew after it
// names where that action left the selection, even if it landed before it (another Gradio update, or the detail
// view's observer run first) and was told "waiting" then; one drawn before it never takes the keys that waited.
// Infinity while a blind action is on its way.
let blindAnsweredBy = 0;
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
  if (!held() && !shownImage() && labelloop.restoreDetail) labelloop.restoreDetail(blindAnsweredBy);
  const view = document.querySelector('#detail-view .detail-view');
  if (view && view.dataset.imageId && !shownImage()) forget();  // a drawing older than the answer, landed late
  while (waiting.length && !held() && shownImage()) waiting.shift()();
  watchStall();
};
labelloop.release = release;
const clickTile = (tile) => {
  ahead.push({select: tile.dataset.imageId, sequence: ++sent});
  select(tile);
  watchStall();
  if (labelloop.detailAhead) labelloop.detailAhead(tile);
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
let newestAnswered = 0;  // the number of the newest action the server has answered
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
// An action shown as the server will do it (app/label_controller.py `following`): a label moves to the next tile,
// past the page's last tile to the next page's first, and from an image not on the page (a sort or filter moved it
// off) to the page's first tile. An action older than one the server has answered still does its own work (its label
// lands) but moves nothing: the server leaves the newer action's selection (app/action_order.py). Shown with its
// move, a click sent before U and answered after it put the keys that waited for U on the clicked image.
const show = (action) => {
  if (action.stay) return;  // a tag turned over (`tagging`): the server's answer shows the image's tags
  const moves = action.sequence > newestAnswered;
  if (action.select) { const tile = tileOf(action.select); if (tile && moves) select(tile); return; }
  if (action.step) { if (action.step > 0 && moves) turnAhead(true); return; }
  if (action.picks) { action.picks.forEach(id => caption(tileOf(id), action.caption)); return; }
  if (!action.label) return;
  const tile = tileOf(action.label);
  if (!moves) { caption(tile, action.caption); return; }
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
  tile.style.setProperty('--tile', HUMAN_COLOUR);
};
const watchStall = () => {
  clearTimeout(stall);
  if (!ahead.length && !waiting.length) return;
  stall = setTimeout(() => {
    ahead.length = 0;
    const now = element.querySelector('.drawing');
    if (now && truth) now.replaceWith(truth.cloneNode(true));
    const dropped = waiting.length;
    waiting.length = 0;
    blindAnsweredBy = 0;  // the blind action given up: the server's newest detail view names the image again
    // the server's newest detail view, so the view names the image the next key acts on (if it said "waiting")
    if (labelloop.restoreDetail) labelloop.restoreDetail(0);
    const view = document.querySelector('#detail-view .detail-view');
    if (view && dropped) view.appendChild(Object.assign(document.createElement('div'), {className: 'detail-note',
      textContent: `no answer from the server in ${STALL / 1000} s: ${dropped} action(s) not sent, press them again`}));
  }, STALL);
};
const buttonName = (button) => button.innerText.replace(/ \[\w\]$/, '');  // "circle [1]" -> "circle"
// The detail view while it names the image the keys act on: one the page drew ahead (a click, a key that moved on:
// 'pending'), or one the server drew after the gallery drawing that answered the latest blind action. Not while that
// answer is awaited, nor a drawing the server made before it that lands late (a labels check or a click answered
// before an undo): it names where the page was before the undo, and the keys that waited would go there (issue 24).
const shownImage = () => {
  const view = document.querySelector('#detail-view .detail-view');
  if (!view || !view.dataset.imageId) return null;
  return view.classList.contains('pending') || Number(view.dataset.drawing) > blindAnsweredBy ? view : null;
};
// The detail view shows where the actions lead: the tile they leave selected.
const followSelection = () => {
  const chosen = element.querySelector('.tile.selected');
  if (chosen && labelloop.detailAhead) labelloop.detailAhead(chosen);
};
// A drawing of the detail view that lands after the gallery's (a redraw for labels changed elsewhere, sent before a
// click) must not put back the image the page had left: while actions are on their way it follows their selection.
labelloop.follow = () => { if (ahead.length && !held()) followSelection(); };  // held: it says it waits
// Until the answer to a blind action, the detail view names no image and says so: nothing acts on the one it showed
// before, and a key pressed meanwhile acts on the image it names next.
const WAITING = 'waiting for the server…';
const forget = labelloop.forget = () => {
  const view = document.querySelector('#detail-view .detail-view');
  const title = view && view.querySelector('.detail-title');
  if (!view || (!view.dataset.imageId && title && title.textContent === WAITING)) return;  // it says so already
  view.removeAttribute('data-image-id');
  view.classList.add('pending');
  if (title) title.textContent = WAITING;
};
// A multi-label project's drawing (data-tags, app/gallery_html.py): a class key or button turns a tag over on the
// image and stays on it.
const tagging = () => Boolean(element.querySelector('.drawing[data-tags]'));
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
  const text = kind === 'class' ? className : kind === 'none' ? NONE_OF_THESE : accepted;
  const payload = {kind, name: kind === 'accept' ? accepted : name, sequence: ++sent};
  let action;
  if (picks.length) {
    action = {picks, caption: kind !== 'accept' && text ? text + ' (you)' : null, sequence: sent};
    payload.image_ids = picks.map(Number);
  } else {
    action = {label: imageId, caption: text && text + ' (you)', sequence: sent};
    payload.image_id = imageId === null ? null : Number(imageId);
  }
  if (kind === 'class' && tagging()) action.stay = true;
  ahead.push(action);
  show(action);
  watchStall();
  trigger('submit', payload);
  followSelection();
  reveal();
};
labelloop.label = (kind, options) => {
  const picks = [...picked];  // the picks as the key found them: a click after it, run first, drops them
  picked.clear();
  showPicked();
  act(() => label(kind, options, picks));
};
// ← and →: the neighbouring tile, as a click on it; past the page's end, → shows the next page's first tile at
// once (from its copy) and ← waits for the server to turn the page back.
labelloop.step = (step) => act(() => {
  const shown = shownImage();
  const tile = shown && tileOf(shown.dataset.imageId);
  const all = tiles();
  if (!tile) { if (all.length) clickTile(all[step > 0 ? 0 : all.length - 1]); return; }
  const index = all.indexOf(tile) + step;
  if (index >= 0 && index < all.length) { clickTile(all[index]); reveal(); return; }
  const now = element.querySelector('.drawing');
  const action = {step, blind: !(step > 0 && now && now.dataset.nextPage), sequence: ++sent};
  ahead.push(action);
  if (action.blind) { blindAnsweredBy = Infinity; forget(); } else { show(action); followSelection(); reveal(); }
  watchStall();
  trigger('input', {step, sequence: sent});
});
// Undo: blind, the server says which image got its label back.
labelloop.undo = () => act(() => {
  ahead.push({blind: true, sequence: ++sent});
  blindAnsweredBy = Infinity;
  forget();
  watchStall();
  trigger('undo', {sequence: sent});
});
// The next page drawn at once when ▶ is clicked. Not while actions are on their way: their answers redraw the page
// they were given on.
labelloop.turnAhead = () => { if (!ahead.length) turnAhead(false); };
if (!labelloop.buttonsListening) {  // the class buttons, Accept, Undo and page ▶, clicked or keyed
  labelloop.buttonsListening = true;
  document.addEventListener('click', (event) => {
    const button = event.target.closest('button');
    if (!button || !labelloop.label) return;
    if (button.id === 'next-page') labelloop.turnAhead();
    else if (button.id === 'accept') labelloop.label('accept');
    else if (button.id === 'similar' && labelloop.similar) labelloop.similar();
    else if (button.id === 'undo') labelloop.undo();
    else if (button.classList.contains('class-button')) {
      const name = buttonName(button);
      labelloop.label(name === NONE_OF_THESE ? 'none' : 'class', {name});
    }
  }, true);
}
const drawingArrived = () => {
  const now = element.querySelector('.drawing');
  if (!now || !now.dataset.drawing || now.dataset.drawing === mark) return;
  const answered = new Set((now.dataset.answers || '').split(',').filter(Boolean).map(Number));
  answered.forEach(number => { newestAnswered = Math.max(newestAnswered, number); });
  for (let i = ahead.length - 1; i >= 0; i--) {
    if (!answered.has(ahead[i].sequence)) continue;
    const blind = ahead[i].blind;
    ahead.splice(i, 1);
    if (blind && !held()) blindAnsweredBy = Number(now.dataset.drawing);
  }
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
  release();
};
labelloop.held = held;
drawingArrived();
new MutationObserver(drawingArrived).observe(element, {childList: true, subtree: true, attributes: true,
                                                       attributeFilter: ['data-drawing']});
