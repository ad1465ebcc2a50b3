"""The Quality tab: what the random audit says of the dataset, as plots with their 95 % intervals: the accuracy of
every round, the confusion matrix, per-class precision and recall, and each class's share of the collection; and the
rounds held back as measured worse, with a button to show one anyway. Every figure comes from engine.project.audit; with
no audit the tab says the accuracy is unknown and how to get it."""

from __future__ import annotations

import gradio as gr
import plotly.graph_objects as go

from app.escaping import html_text, markdown_text
from app.feedback import on
from engine.project.audit import show_round
from engine.session.workspace import Workspace


def _empty(title: str, text: str, height: int = 260) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(height=height, title=title, margin=dict(l=50, r=20, t=40, b=30),
                         xaxis=dict(visible=False), yaxis=dict(visible=False))
    figure.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    return figure


def rounds_figure(quality: dict, held: set[int]) -> go.Figure:
    """The estimated accuracy of each round (0 = zero-shot) with its 95 % interval as a band; held rounds marked."""
    rounds = quality["rounds"]
    if not rounds:
        return _empty("estimated accuracy per round", "no estimate yet: label random images in Audit mode")
    x = [r["round"] for r in rounds]
    figure = go.Figure([
        go.Scatter(x=x + x[::-1], y=[r["high"] for r in rounds] + [r["low"] for r in rounds][::-1], fill="toself",
                   fillcolor="rgba(37, 99, 235, 0.15)", line=dict(width=0), mode="lines", hoverinfo="skip",
                   name="95 % interval"),
        go.Scatter(x=x, y=[r["accuracy"] for r in rounds], mode="lines+markers", name="estimated accuracy",
                   line=dict(color="#2563eb"),
                   error_y=dict(type="data", symmetric=False, array=[r["high"] - r["accuracy"] for r in rounds],
                                arrayminus=[r["accuracy"] - r["low"] for r in rounds], color="#2563eb"),
                   text=[f"round {r['round']}: {r['accuracy']:.1%} ({r['low']:.1%}-{r['high']:.1%}), "
                         f"{r['audited']} audited" + (" · held back: measured worse" if r["round"] in held else "")
                         for r in rounds], hoverinfo="text",
                   marker=dict(size=9, color=["#dc2626" if r["round"] in held else "#2563eb" for r in rounds]))])
    figure.update_layout(height=300, title="estimated accuracy per round (red: held back as measured worse)",
                         margin=dict(l=50, r=20, t=40, b=40), showlegend=False,
                         xaxis=dict(title="round (0 = zero-shot)", tickmode="linear", dtick=1),
                         yaxis=dict(title="share right", range=[0, 1.02], tickformat=".0%"))
    return figure


def confusion_figure(quality: dict) -> go.Figure:
    confusion = quality["confusion"]
    if not confusion:
        return _empty("confusion matrix of the audit", "no audited image yet")
    figure = go.Figure(go.Heatmap(z=confusion["matrix"][::-1], x=[html_text(name) for name in confusion["classes"]],
                                  y=[html_text(name) for name in confusion["rows"][::-1]],
                                  colorscale="Blues", text=confusion["matrix"][::-1], texttemplate="%{text}",
                                  hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>", showscale=False))
    figure.update_layout(height=max(260, 40 + 28 * len(confusion["rows"])), margin=dict(l=110, r=20, t=40, b=60),
                         title="confusion matrix of the audit ("
                               + (f"round {quality['round']})" if quality["round"] else "zero-shot)"),
                         xaxis=dict(title="predicted"), yaxis=dict(title="your label"))
    return figure


def _bars(title: str, names: list[str], series: list[tuple[str, list, list, list]], percent_axis: str) -> go.Figure:
    figure = go.Figure()
    for label, values, lows, highs in series:
        figure.add_trace(go.Bar(
            x=[html_text(name) for name in names], y=[v if v is not None else 0 for v in values], name=label,
            error_y=dict(type="data", symmetric=False,
                         array=[(h - v) if v is not None else 0 for v, h in zip(values, highs)],
                         arrayminus=[(v - low) if v is not None else 0 for v, low in zip(values, lows)])))
    figure.update_layout(height=300, title=title, barmode="group", margin=dict(l=50, r=20, t=40, b=60),
                         yaxis=dict(title=percent_axis, range=[0, 1.05], tickformat=".0%"),
                         legend=dict(orientation="h", y=-0.25))
    return figure


def per_class_figure(quality: dict) -> go.Figure:
    per_class = quality["per_class"]
    if not per_class:
        return _empty("precision and recall per class", "no audited image yet")
    names = list(per_class)
    figures = [per_class[name] for name in names]
    return _bars("precision and recall per class (95 % intervals)", names, [
        ("precision", [f["precision"] for f in figures], [f["precision_low"] for f in figures],
         [f["precision_high"] for f in figures]),
        ("recall", [f["recall"] for f in figures], [f["recall_low"] for f in figures],
         [f["recall_high"] for f in figures])], "share")


def shares_figure(quality: dict) -> go.Figure:
    shares = quality["class_shares"]
    if not shares:
        return _empty("estimated share of each class", "no audited image yet")
    names = list(shares)
    return _bars("estimated share of each class in the collection (95 % intervals)", names, [
        ("share", [shares[n]["estimate"] for n in names], [shares[n]["low"] for n in names],
         [shares[n]["high"] for n in names])], "share of images")


def summary_markdown(quality: dict, held: list[dict]) -> str:
    lines = [f"**{markdown_text(quality['message'])}**"]
    if quality["drawn"]:
        lines.append(f"random audit: {quality['drawn']} images drawn, {quality['audited']} labelled blind, "
                     f"{quality['pending']} waiting (press **Audit** on the Label tab to label them)")
    if quality.get("not_covered"):
        lines.append(f"{quality['not_covered']} images added since the audit started are not covered by it")
    if quality["accuracy"] is not None:
        lines.append(f"The estimate is of the labels an export writes for the images no person labelled, each round "
                     f"judged on audit labels it never trained on ({quality['method']} interval).")
    for entry in held:
        quality_of = (entry["metrics"] or {}).get("quality", {})
        lines.append(f"round {entry['id']} is **held back**: measured {quality_of.get('accuracy', 0):.1%} against "
                     f"{quality_of.get('previous_accuracy', 0):.1%} for the round before; the page and exports keep "
                     "that one until you show it")
    return "  \n".join(lines)


class QualityTab:
    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.view = workspace.view

    def shown(self):
        """Summary, plots and the held rounds' choices, as the project stands."""
        quality = self.view.quality(wait=True)
        held = [r for r in self.view.store.rounds() if r["held"]]
        held_ids = {r["id"] for r in held}
        return (summary_markdown(quality, held), rounds_figure(quality, held_ids), confusion_figure(quality),
                per_class_figure(quality), shares_figure(quality),
                gr.Dropdown(choices=[r["id"] for r in held], value=held[-1]["id"] if held else None,
                            visible=bool(held)),
                gr.Button(visible=bool(held)))


def build_quality_tab(workspace: Workspace) -> QualityTab:
    tab = QualityTab(workspace)
    summary = gr.Markdown(elem_id="quality-summary")
    with gr.Row():
        held_choice = gr.Dropdown([], label="held round", visible=False, scale=1)
        show_held = gr.Button("Show this round anyway", visible=False, elem_id="show-held-round", scale=1)
    accuracy_plot = gr.Plot(show_label=False, elem_id="quality-rounds")
    confusion_plot = gr.Plot(show_label=False, elem_id="quality-confusion")
    per_class_plot = gr.Plot(show_label=False, elem_id="quality-per-class")
    shares_plot = gr.Plot(show_label=False, elem_id="quality-shares")
    tab.outputs = [summary, accuracy_plot, confusion_plot, per_class_plot, shares_plot, held_choice, show_held]

    def held_shown(round_id):
        show_round(workspace.project.store, int(round_id))
        return tab.shown()

    on(show_held.click, held_shown, [held_choice], tab.outputs)
    return tab
