() => {
  // The page's keys, run by Gradio as the page's `js=` (a function: the file starts with it). Label keys (A, N), U,
  // ← and → go through the gallery (gallery.js: a label with the image the detail view shows, ← and → within the page
  // as clicks on the neighbouring tile), S through the detail view with that image (detail.js); a class's own key
  // clicks the class button that shows it (class `class-key-K`), which sends that class's name, never a position a
  // changed class list could send elsewhere; [ and ] click the page buttons, so a keypress runs exactly the handler
  // a click would. Typing in a text field is left alone; on a slider the arrows move the slider and every other key
  // still labels. In a multi-label project Enter moves on as → does (`tagging`).
  const labelloop = window.labelloop = window.labelloop || {};
  if (labelloop.keysListening) return;
  labelloop.keysListening = true;
  const named = {'[': 'prev-page', ']': 'next-page', PageUp: 'prev-page', PageDown: 'next-page'};
  // A multi-label project's page (its gallery drawing says data-tags): its class keys turn tags over and stay on the
  // image, and Enter moves on as → does.
  const tagging = () => Boolean(document.querySelector('#gallery .drawing[data-tags]'));
  document.addEventListener('keydown', (event) => {
    const target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const tag = target && target.tagName;
    const typing = target && ((tag === 'INPUT' && !['checkbox', 'radio', 'button', 'range'].includes(target.type))
                              || ['TEXTAREA', 'SELECT'].includes(tag) || target.isContentEditable);
    if (typing) return;
    if (tag === 'INPUT' && target.type === 'range' && event.key.startsWith('Arrow')) return;
    if (!document.getElementById('gallery') || !document.getElementById('gallery').offsetParent) return;
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const label = key === 'a' ? ['accept'] : key === 'n' ? ['none'] : null;
    const similar = key === 's' && labelloop.similar;  // sent through the detail view with the image it shows
    const step = key === 'ArrowRight' || (key === 'Enter' && tagging()) ? 1 : key === 'ArrowLeft' ? -1 : 0;
    const button = !label && !step && (named[key] ? document.getElementById(named[key])
                                       : /^[0-9a-z]$/.test(key) && document.querySelector('#class-buttons .class-key-' + key));
    if (!label && !similar && !step && key !== 'u' && !button) return;
    event.preventDefault();
    if (target && target.blur) target.blur();
    if (label) labelloop.label(...label);
    else if (similar) similar();
    else if (step) labelloop.step(step);
    else if (key === 'u') labelloop.undo();
    else button.click();
  });
}
