"""The tabs that change what the project holds: Classes (with their prompts), Ingest and Export."""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr
import pandas as pd

from app.feedback import fail
from app.label_tab import ALL_CLASSES, LabelTab
from engine.errors import LabelloopError
from engine.workspace import NONE_OF_THESE, Workspace


def build_classes_tab(workspace: Workspace, label_tab: LabelTab) -> None:
    def table():
        return pd.DataFrame([{"#": i + 1, "class": c["name"], "prompts": " | ".join(c["prompts"] or ["(default)"])}
                             for i, c in enumerate(workspace.store.classes())])

    classes_table = gr.Dataframe(table(), interactive=False, elem_id="classes-table")
    names = workspace.class_names()
    with gr.Row():
        new_classes = gr.Textbox(label="add classes (comma-separated)", scale=3)
        add = gr.Button("Add", scale=1)
    with gr.Row():
        chosen = gr.Dropdown(names, label="class", scale=2)
        new_name = gr.Textbox(label="new name", scale=2)
        rename = gr.Button("Rename", scale=1)
        remove = gr.Button("Remove", variant="stop", scale=1)
    prompts = gr.Textbox(label="prompts for this class, one per line ({} = the class name; empty = the defaults)",
                         lines=3)
    save_prompts = gr.Button("Save prompts")
    message = gr.Markdown()
    gr.Markdown("Zero-shot reruns in the background after each change; human labels are kept. The teacher starts "
                "again from zero-shot at the next round when the set of classes changed.")
    class_filter, heatmap_class, picked_class, class_buttons = label_tab.class_controls

    def changed(action):
        try:
            job_id = action()
        except LabelloopError as error:
            fail(error)
        names = workspace.class_names()
        return (table(), gr.Dropdown(choices=names, value=None), f"zero-shot is rerunning (job {job_id})",
                gr.Dropdown(choices=[ALL_CLASSES, *names]), gr.Dropdown(choices=names),
                gr.Dropdown(choices=[*names, NONE_OF_THESE]), names)

    outputs = [classes_table, chosen, message, class_filter, heatmap_class, picked_class, class_buttons]
    add.click(lambda text: changed(lambda: workspace.add_classes(text)), [new_classes], outputs)
    rename.click(lambda old, new: changed(lambda: workspace.rename_class(old, new)), [chosen, new_name], outputs)
    remove.click(lambda name: changed(lambda: workspace.remove_class(name)), [chosen], outputs)
    save_prompts.click(lambda name, text: changed(lambda: workspace.set_prompts(name, text)), [chosen, prompts],
                       outputs)
    chosen.change(lambda name: "\n".join(next((c["prompts"] or [] for c in workspace.store.classes()
                                               if c["name"] == name), [])), [chosen], [prompts])


def build_ingest_tab(workspace: Workspace) -> None:
    root = workspace.project.images_root
    gr.Markdown(f"Images folder: `{root}`. Put new images anywhere inside it and scan, or upload them here "
                f"(they are copied to `{root / 'uploads'}`).")
    with gr.Row():
        folder = gr.Textbox(label="folder inside the images folder (empty = all of it)", scale=3)
        scan = gr.Button("Scan and ingest", variant="primary", scale=1, elem_id="scan")
    uploads = gr.File(file_count="multiple", file_types=["image"], label="upload images")
    upload = gr.Button("Add uploaded images")
    message = gr.Markdown(elem_id="ingest-message")

    def start_scan(path):
        try:
            return f"ingest started (job {workspace.start_ingest(path or None)}); progress shows at the top"
        except LabelloopError as error:
            fail(error)

    def add_uploads(files):
        try:
            return f"ingest started (job {workspace.add_uploads(list(files or []))}); progress shows at the top"
        except LabelloopError as error:
            fail(error)

    scan.click(start_scan, [folder], [message])
    upload.click(add_uploads, [uploads], [message])


def build_export_tab(workspace: Workspace) -> None:
    from engine.export import EXPORT_FORMATS, FILE_FORMATS, FOLDER_FORMATS, LINK_MODES

    exports_dir = workspace.project.root / "exports"
    gr.Markdown(f"Exports are written to `{exports_dir}`; the one-file formats can be downloaded from here. "
                "Human labels always pass the confidence filter.")
    with gr.Row():
        fmt = gr.Dropdown(list(EXPORT_FORMATS), value="csv", label="format", elem_id="export-format")
        source = gr.Radio(["all", "human"], value="all", label="labels")
        min_confidence = gr.Slider(0, 1, value=0, step=0.05, label="leave out machine labels below")
        include_none = gr.Checkbox(label="include 'none of these'", value=True)
    with gr.Accordion(f"folder formats ({', '.join(FOLDER_FORMATS)})", open=False):
        with gr.Row():
            link = gr.Radio(list(LINK_MODES), value="copy", label="images are")
            split = gr.Textbox(label="train,val,test split (empty = no split)", placeholder="0.8,0.1,0.1")
            seed = gr.Number(0, precision=0, label="split seed")
    export = gr.Button("Export", variant="primary", elem_id="export")
    download = gr.File(label="download", interactive=False, elem_id="export-file")
    message = gr.Markdown(elem_id="export-message")

    def run_export(chosen_format, chosen_source, threshold, none, link_mode, split_text, split_seed):
        exports_dir.mkdir(exist_ok=True)
        suffix = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".jsonl", "label-studio": ".json"}
        out = exports_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{chosen_format}{suffix.get(chosen_format, '')}"
        folder = chosen_format in FOLDER_FORMATS
        try:
            report = workspace.export(fmt=chosen_format, out=out, source=chosen_source,
                                      min_confidence=threshold or None, include_none=none,
                                      link=link_mode if folder else "copy",
                                      split=(split_text or None) if folder else None, seed=int(split_seed or 0))
        except LabelloopError as error:
            fail(error)
        path = Path(report.path)
        return (str(path) if chosen_format in FILE_FORMATS else None), f"wrote {report.rows} rows to {path}"

    export.click(run_export, [fmt, source, min_confidence, include_none, link, split, seed], [download, message])
