// The Map tab's events, run by Gradio as the hidden #map-events element's js_on_load (`trigger`, `server`): a box or
// lasso selection goes to the server with the legend entries shown, a hovered point asks the server for its tile.
const card = document.createElement('div');
card.id = 'map-hover-card';
document.body.appendChild(card);
const attach = () => {
  const plot = document.querySelector('#map-plot [data-testid=plotly]');
  if (!plot || !plot.on || plot.dataset.labelloop) return;
  plot.dataset.labelloop = 'listening';
  plot.on('plotly_selected', (event) => {
    if (!event || !(event.range || event.lassoPoints)) return;
    // the traces a legend click has not hidden, from the figure's public data (`visible` unset, true or
    // 'legendonly')
    const visible = plot.data.filter(t => t.type === 'scattergl' && (t.visible === undefined || t.visible === true))
                             .map(t => t.name);
    trigger('select', event.range ? {box: [event.range.x, event.range.y], visible}
                                  : {lasso: [event.lassoPoints.x, event.lassoPoints.y], visible});
  });
  plot.on('plotly_hover', async (event) => {
    const point = event.points && event.points[0];
    if (!point || point.customdata === undefined) return;
    const id = String(point.customdata);
    card.dataset.imageId = id;
    card.style.left = (event.event.clientX + 14) + 'px';
    card.style.top = (event.event.clientY + 14) + 'px';
    const shown = await server.hover_card(Number(id));
    if (card.dataset.imageId === id) { card.innerHTML = shown; card.style.display = 'block'; }
  });
  plot.on('plotly_unhover', () => { card.dataset.imageId = ''; card.style.display = 'none'; });
};
setInterval(attach, 300);
