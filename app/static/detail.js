// The detail view's picture and title, run by Gradio as its js_on_load (`element`, `trigger`). A click on a tile draws
// them at once from the tile (its thumbnail, its file name) until the server's answer; a click on the picture zooms
// it to the window, a click or Escape zooms it out.
const labelloop = window.labelloop = window.labelloop || {};
// More like this (S, or its button): asked for the image the detail view shows, as a label is.
labelloop.similar = () => {
  const view = element.querySelector('.detail-view[data-image-id]');
  trigger('submit', {image_id: view ? Number(view.dataset.imageId) : null});
};
labelloop.detailAhead = (tile) => {
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
  if (labelloop.follow) labelloop.follow();
  if (labelloop.held && labelloop.held()) labelloop.forget();  // still waiting: say so
  if (labelloop.release) labelloop.release();  // actions held until this view names an image
}).observe(element, {childList: true, subtree: true, attributes: true, attributeFilter: ['data-drawing']});
// The server's newest detail view put back over one that says "waiting", when it was drawn after the gallery drawing
// numbered `after` (gallery.js: the one that answered the latest blind action) and names an image.
labelloop.restoreDetail = (after) => {
  const view = element.querySelector('.detail-view');
  if (!view || view.dataset.imageId || !newestView || newest <= after || !newestView.dataset.imageId) return;
  view.replaceWith(newestView.cloneNode(true));
};
