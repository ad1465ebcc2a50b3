"""The Map tab: every image's embedding in 2-D (UMAP, PCA while UMAP runs), drawn with WebGL, coloured by class,
confidence, status or "fits no class" (a multi-label project's: by one chosen tag, its probability or whether an
image has it, lacks it or is uncertain of it, or by status). Hovering a point shows its thumbnail; a box or lasso
selection becomes the Label tab's gallery filter ("selection from map: 312 images"), where the bulk tools label it.

gr.Plot has no selection event for Plotly, so a small script listens to the plot's own `plotly_selected` and
`plotly_hover` events: a selection's box or lasso goes to the server, which finds every image inside it (also the
ones a sampled map does not draw); a hover asks the server for the point's tile.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import gradio as gr
import numpy as np
import plotly.graph_objects as go

from app.escaping import html_text, markdown_text
from app.feedback import on
from app.gallery_html import HUMAN_COLOUR, tile_html
from app.label_tab import LabelTab
from app.static_files import static_text
from engine.errors import LabelloopError
from engine.views.gallery import NONE_OF_THESE, UNCERTAIN_TAG, Subset
from engine.learning.map_layout import density_grid, map_sample
from engine.learning.tags import TAG_PRESENT
from engine.views.map import HAS_TAG, LACKS_TAG, TAG_NOT_PREDICTED, UNSURE_OF_TAG, MapState, tag_states
from engine.project.review_queue import FITS_NO_CLASS, fits_no_class_mask
from engine.sources import Source
from engine.session.workspace import Workspace

COLOUR_BY = {"class": "class", "confidence": "confidence", "status": "status", "outlier": "fits no class"}
# A multi-label project's: its rounds score no outliers, and a class or a confidence is not one per image.
TAG_COLOUR_BY = {"tag": "tag: has / lacks / uncertain", "tag_probability": "tag probability", "status": "status"}
# Chromium draws 100k WebGL points with their ids in about a second (benchmarks/bench_map.py); past this many the
# map draws a sample (every labeled image kept) over a density layer of all of them.
MAX_POINTS = 150_000
DENSITY_BINS = 200
# Plotly's qualitative palette, then its light variant: distinct colours for up to 20 classes.
PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880", "#ff97ff",
           "#fecb52", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
GREY = "#9ca3af"

MAP_JS = static_text("map.js")


@dataclass
class Group:
    """One trace of the map: a legend entry with its colour and the rows of the state's points it holds."""

    name: str  # as Plotly reads it: HTML (app.escaping.html_text)
    colour: str  # a CSS colour, or with `values` a Plotly colour scale
    rows: np.ndarray
    values: np.ndarray | None = None  # one number in [0, 1] per point of the state, coloured on the scale
    scale_title: str = ""  # the colour bar's title, with `values`


def colour_groups(state: MapState, colour_by: str) -> list[Group]:
    """The legend groups of the map coloured by `colour_by` (a key of COLOUR_BY), empty ones left out. Colour by
    confidence is one group of machine predictions (coloured by value) and one of the person's labels."""
    points = state.points
    if colour_by == "class":
        names = dict(state.class_names)
        human_none = (points["shown"] == -1) & (points["source"] == Source.HUMAN)
        groups = [Group(html_text(name), PALETTE[index % len(PALETTE)], np.flatnonzero(points["shown"] == class_id))
                  for index, (class_id, name) in enumerate(names.items())]
        groups += [Group(NONE_OF_THESE, "#111827", np.flatnonzero(human_none)),
                   Group("not predicted", GREY, np.flatnonzero((points["shown"] == -1) & ~human_none))]
    elif colour_by == "confidence":
        human = points["source"] == Source.HUMAN
        groups = [Group("machine prediction", "RdYlGn", np.flatnonzero(~human), points["confidence"], "confidence"),
                  Group("labeled by you", HUMAN_COLOUR, np.flatnonzero(human))]
    elif colour_by == "status":
        groups = [Group("labeled by you", HUMAN_COLOUR, np.flatnonzero(points["source"] == Source.HUMAN)),
                  Group("pseudo-label", "#16a34a", np.flatnonzero(points["source"] == Source.PSEUDO)),
                  Group("unlabeled", GREY, np.flatnonzero(points["source"] == ""))]
    elif colour_by == "outlier":
        scored = ~np.isnan(points["outlier"])
        outlying = fits_no_class_mask(points["outlier"])
        groups = [Group(f"fits no class (outlier score ≥ {FITS_NO_CLASS})", "#dc2626", np.flatnonzero(outlying)),
                  Group("fits a class", GREY, np.flatnonzero(scored & ~outlying)),
                  Group("no outlier score (before the first round)", "#d1d5db", np.flatnonzero(~scored))]
    elif colour_by in TAG_COLOUR_BY and colour_by != "status":
        groups = tag_groups(state, colour_by)
    else:
        raise ValueError(f"unknown colouring {colour_by!r}; valid: {', '.join({**COLOUR_BY, **TAG_COLOUR_BY})}")
    return [group for group in groups if len(group.rows)]


def tag_groups(state: MapState, colour_by: str) -> list[Group]:
    """The legend groups of a multi-label map coloured by its tag (MapState.tag): by whether each image has it,
    lacks it or is uncertain of it ("tag"), or by its predicted probability beside the person's answers
    ("tag_probability"). Every name says the tag."""
    if state.tag is None:
        raise LabelloopError("choose a tag to colour the map by")
    tag, points = html_text(state.tag), state.points
    probability, looked = points["tag_probability"], points["tag_looked"]
    if colour_by == "tag":
        states = tag_states(probability, looked)
        named = ((HAS_TAG, f"has {tag}", "#16a34a"), (LACKS_TAG, f"lacks {tag}", "#dc2626"),
                 (UNSURE_OF_TAG, f"uncertain of {tag} (under {UNCERTAIN_TAG:.0%} sure)", "#f59e0b"),
                 (TAG_NOT_PREDICTED, "not predicted", GREY))
        return [Group(name, colour, np.flatnonzero(states == code)) for code, name, colour in named]
    predicted = ~looked & ~np.isnan(probability)
    return [Group(f"probability of {tag}", "RdYlGn", np.flatnonzero(predicted), probability, f"P({tag})"),
            Group(f"you: has {tag}", HUMAN_COLOUR, np.flatnonzero(looked & (probability >= TAG_PRESENT))),
            Group(f"you: lacks {tag}", "#111827", np.flatnonzero(looked & (probability < TAG_PRESENT))),
            Group("not predicted", GREY, np.flatnonzero(~looked & np.isnan(probability)))]


def map_figure(state: MapState, colour_by: str, *, max_points: int = MAX_POINTS) -> tuple[go.Figure, int]:
    """The map as a Plotly figure of WebGL traces, one per colour group, each point carrying its image id; past
    `max_points` a sample of them over a density layer of every image. Returns (figure, points drawn)."""
    points = state.points
    drawn = map_sample(len(points["image_id"]), max_points, keep=np.flatnonzero(points["source"] == Source.HUMAN))
    drawn_mask = np.zeros(len(points["image_id"]), bool)
    drawn_mask[drawn] = True
    figure = go.Figure()
    if len(drawn) < len(points["image_id"]):
        counts, x_centres, y_centres = density_grid(np.column_stack([points["x"], points["y"]]), DENSITY_BINS)
        figure.add_trace(go.Heatmap(z=np.log1p(counts).astype(np.float32), x=x_centres.astype(np.float32),
                                    y=y_centres.astype(np.float32), colorscale="Greys", showscale=False,
                                    hoverinfo="skip", name="density of all images", zsmooth="best", opacity=0.6))
    size = 6 if len(drawn) < 5_000 else 4 if len(drawn) < 50_000 else 3
    for group in colour_groups(state, colour_by):
        rows = group.rows[drawn_mask[group.rows]]
        marker = (dict(size=size, color=group.values[rows], colorscale=group.colour, cmin=0, cmax=1,
                       colorbar=dict(title=group.scale_title, len=0.6, y=0.7)) if group.values is not None
                  else dict(size=size, color=group.colour))
        figure.add_trace(go.Scattergl(x=points["x"][rows], y=points["y"][rows], mode="markers", name=group.name,
                                      customdata=points["image_id"][rows].astype(np.int32), marker=marker,
                                      hoverinfo="none"))
    figure.update_layout(height=640, margin=dict(l=10, r=10, t=10, b=10), dragmode="select", hovermode="closest",
                         uirevision="map", legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0, itemsizing="constant"),
                         xaxis=dict(visible=False), yaxis=dict(visible=False), plot_bgcolor="white")
    return figure, len(drawn)


def build_map_tab(workspace: Workspace, label_tab: LabelTab, tabs: gr.Tabs, tab: gr.Tab) -> None:
    """The map, drawn when `tab` is opened. A selection becomes the subset of `label_tab`'s gallery, and `tabs`
    switches to it."""
    maps, view = workspace.map, workspace.view
    multi_label = view.store.is_multi_label()
    colours = TAG_COLOUR_BY if multi_label else COLOUR_BY
    with gr.Row():
        colour_by = gr.Radio([(label, key) for key, label in colours.items()], value=next(iter(colours)),
                             label="colour by", scale=3, elem_id="map-colour")
        tag = gr.Dropdown(view.class_names(), value=None, label="tag", visible=multi_label, scale=1,
                          elem_id="map-tag")
        redraw = gr.Button("Redraw", scale=1, size="sm", elem_id="map-redraw")
    note = gr.Markdown("Open this tab to draw the map.", elem_id="map-note")
    gr.Markdown("Drag a box (or pick the lasso in the plot's toolbar) around images to show them in the Label tab; "
                "click a legend entry to hide its images from the plot and from selections; scroll to zoom.",
                elem_classes="hotkeys")

    def hover_card(image_id: int) -> str:
        """The hovered point's tile (thumbnail, class and confidence) and file name."""
        items = view.items([int(image_id)])
        return tile_html(items[0], False) + f"<div>{html_text(items[0].relpath)}</div>" if items else ""

    plot = gr.Plot(show_label=False, elem_id="map-plot")
    events = gr.HTML("", elem_id="map-events", js_on_load=MAP_JS, server_functions=[hover_card])
    drawn_version = gr.State(None)  # the layout the page shows: a selection must be made on the map it reads
    waiting = gr.Timer(2.0, active=False)  # while UMAP runs: redraw once it is stored

    def shown_tag(chosen_tag: str | None) -> str | None:
        """The tag a multi-label map is coloured by: the one chosen while the project has it, else its first."""
        names = view.class_names() if multi_label else []
        return chosen_tag if chosen_tag in names else next(iter(names), None)

    def drawn(chosen_colour, chosen_tag):
        state = maps.current(shown_tag(chosen_tag))
        figure, count = map_figure(state, chosen_colour)
        total = len(state.points["image_id"])
        sample = "" if count == total else f" · drawn: a sample of {count:,} over the density of all {total:,}"
        return (figure, markdown_text(f"{state.note}{sample}"), state.version, gr.Timer(active=state.method != "umap"),
                gr.Dropdown(choices=view.class_names(), value=state.tag))

    def upgraded(chosen_colour, chosen_tag, version):
        """A tick while UMAP runs: redraw once the stored layout changed, else leave the page alone."""
        if maps.version() == version:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return drawn(chosen_colour, chosen_tag)

    def select_on_map(query, chosen, chosen_colour, chosen_tag, version, event: gr.EventData):
        state = maps.current(shown_tag(chosen_tag))
        if state.version != version:
            raise LabelloopError("the map changed since it was drawn (UMAP finished or images were added); "
                                 "press Redraw, then select again")
        visible = set(getattr(event, "visible", []))  # the legend entries not hidden by a click
        rows = np.concatenate([np.zeros(0, np.int64)] + [group.rows for group in colour_groups(state, chosen_colour)
                                                          if group.name in visible])
        box = getattr(event, "box", None)
        if box is not None:
            ids = maps.selected(state, box=tuple(tuple(map(float, edge)) for edge in box), rows=rows)
        else:
            ids = maps.selected(state, lasso=np.column_stack([np.asarray(axis, float) for axis in event.lasso]),
                                rows=rows)
        if not ids:
            raise LabelloopError("no image lies inside that selection; draw it around some points")
        # The filters set before stay, as they do under a search (a person who chose "unlabeled" and then a region
        # wants the unlabeled images there); the page text counts and names what they hide (gallery_view.page_text).
        query = replace(query, subset=Subset(f"selection from map: {len(ids):,} images", tuple(ids)), offset=0)
        return (query, *label_tab.refresh(query, chosen), gr.Tabs(selected="label"))

    draw_outputs = [plot, note, drawn_version, waiting, tag]
    on(tab.select, drawn, [colour_by, tag], draw_outputs, api_name="map_shown")
    for changed in (redraw.click, colour_by.input, tag.input):
        on(changed, drawn, [colour_by, tag], draw_outputs)
    on(waiting.tick, upgraded, [colour_by, tag, drawn_version], draw_outputs, show_progress="hidden")
    on(events.select, select_on_map, [label_tab.query_state, label_tab.selected, colour_by, tag, drawn_version],
       [label_tab.query_state, *label_tab.refresh_outputs, tabs], show_progress="hidden",
       concurrency_id="label-tab", concurrency_limit=1)
