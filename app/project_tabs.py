"""The tabs that change what the project holds: Classes (with their prompts), Ingest and Export."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from app.escaping import markdown_text
from app.feedback import on
from engine.labels.folder_labels import folder_labels_enabled, labels_from_folders, set_folder_labels
from engine.session.workspace import Workspace


@dataclass
class ClassesTab:
    """What the page needs of the Classes tab: its class-listing outputs and how to fill them."""

    outputs: list  # the classes table and the class dropdown
    shown: object  # () -> outputs


def build_classes_tab(workspace: Workspace) -> ClassesTab:
    view, editor = workspace.view, workspace.classes

    def classes_table():
        return pd.DataFrame([{"key": c["key"] or "", "class": c["name"],
                              "prompts": " | ".join(c["prompts"] or ["(default)"])}
                             for c in view.classes()], columns=["key", "class", "prompts"])

    classes_table_view = gr.Dataframe(classes_table(), interactive=False, elem_id="classes-table")
    with gr.Row():
        new_classes = gr.Textbox(label="add classes (comma-separated)", scale=3, elem_id="new-classes")
        add = gr.Button("Add", scale=1, elem_id="add-classes")
    with gr.Row():
        chosen = gr.Dropdown(view.class_names(), value=None, label="class", scale=2, elem_id="chosen-class")
        new_name = gr.Textbox(label="new name", scale=2, elem_id="new-name")
        rename = gr.Button("Rename", scale=1, elem_id="rename-class")
        remove = gr.Button("Remove", variant="stop", scale=1, elem_id="remove-class")
    with gr.Row():
        new_key = gr.Textbox(label="its key on the Label tab: one letter or digit (not a, n, s, u; empty = none)",
                             scale=3, elem_id="new-key")
        set_key = gr.Button("Set key", scale=1, elem_id="set-key")
    prompts = gr.Textbox(label="prompts for this class, one per line ({} = the class name; empty = the defaults)",
                         lines=3)
    save_prompts = gr.Button("Save prompts")
    message = gr.Markdown(elem_id="classes-message")
    gr.Markdown("Zero-shot reruns in the background after each change but a key; human labels are kept. The "
                "teacher starts again from zero-shot at the next round when the set of classes changed.")

    def shown():
        """The table and the class choices (a class being picked meanwhile stays picked)."""
        return classes_table(), gr.Dropdown(choices=view.class_names())

    def changed(job_id: int, what: str):
        """`what` the change did, in plain text (names and all), for the Markdown message."""
        return classes_table(), gr.Dropdown(choices=view.class_names(), value=None), \
            markdown_text(f"{what}; zero-shot is rerunning (job {job_id})")

    def add_classes(text):
        return changed(editor.add(text), f"added {text.strip()}")

    def rename_class(old, new):
        return changed(editor.rename(old, new), f"renamed {old} to {new.strip()}")

    def remove_class(name):
        return changed(editor.remove(name), f"removed {name}")

    def set_class_key(name, key):
        """The class keeps its place in the dropdown: a key changes no prediction, so zero-shot does not rerun."""
        now = editor.set_key(name, key)
        return classes_table(), gr.skip(), markdown_text(f"the key of {name} is now {now}" if now
                                                         else f"{name} has no key now")

    def save_class_prompts(name, text):
        return changed(editor.set_prompts(name, text), f"saved the prompts of {name}")

    def prompts_of(name):
        return "\n".join(next((c["prompts"] or [] for c in view.classes() if c["name"] == name), []))

    outputs = [classes_table_view, chosen, message]
    on(add.click, add_classes, [new_classes], outputs)
    on(rename.click, rename_class, [chosen, new_name], outputs)
    on(remove.click, remove_class, [chosen], outputs)
    on(save_prompts.click, save_class_prompts, [chosen, prompts], outputs)
    on(set_key.click, set_class_key, [chosen, new_key], outputs)
    on(chosen.input, prompts_of, [chosen], [prompts])
    return ClassesTab(outputs=[classes_table_view, chosen], shown=shown)


def build_ingest_tab(workspace: Workspace) -> None:
    root = workspace.project.images_root
    gr.Markdown(f"Images folder: {markdown_text(root)}. Put new images anywhere inside it and scan, or upload them "
                f"here (they are copied to {markdown_text(root / 'uploads')}).")
    with gr.Row():
        folder = gr.Textbox(label="folder inside the images folder (empty = all of it)", scale=3)
        scan = gr.Button("Scan and ingest", variant="primary", scale=1, elem_id="scan")
    uploads = gr.File(file_count="multiple", file_types=["image"], label="upload images")
    upload = gr.Button("Add uploaded images")
    from_folders = gr.Checkbox(folder_labels_enabled(workspace.project), elem_id="labels-from-folders",
                               label="labels from folder names: an image in a folder named like a class (the "
                                     "nearest such folder) gets that class as its label, now and at every scan; "
                                     "images a person labeled are kept")
    message = gr.Markdown(elem_id="ingest-message")

    def start_scan(path):
        return f"ingest started (job {workspace.start_ingest(path or None)}); progress shows at the top"

    def add_uploads(files):
        return f"ingest started (job {workspace.add_uploads(list(files or []))}); progress shows at the top"

    def folder_labels_set(enabled):
        set_folder_labels(workspace.project, enabled)
        if not enabled:
            return "labels from folder names: off (labels already given stay)"
        return markdown_text(labels_from_folders(workspace.project).message)

    on(scan.click, start_scan, [folder], [message])
    on(from_folders.input, folder_labels_set, [from_folders], [message])
    on(upload.click, add_uploads, [uploads], [message])


def private_copy(path: Path) -> Path:
    """A copy of the export at `path`, readable by this user only (0600), in Gradio's private cache
    (app.server.private_cache): offered from there as it is, where Gradio would copy it with the export's own mode."""
    copy = Path(tempfile.mkdtemp(dir=gr.utils.get_upload_folder())) / path.name
    shutil.copyfile(path, copy)
    copy.chmod(0o600)
    return copy


def build_export_tab(workspace: Workspace) -> None:
    from engine.dataset.export import EXPORT_FORMATS, FILE_FORMATS, FOLDER_FORMATS, LINK_MODES, changed_note

    exports_dir = workspace.project.root / "exports"
    gr.Markdown(f"Exports are written to {markdown_text(exports_dir)}; the one-file formats can be downloaded from "
                "here. Human labels always pass the confidence filter.")
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
        report = workspace.export(fmt=chosen_format, out=out, source=chosen_source,
                                  min_confidence=threshold or None, include_none=none,
                                  link=link_mode if folder else "copy",
                                  split=(split_text or None) if folder else None, seed=int(split_seed or 0))
        path = Path(report.path)
        changed = f"; {changed_note(report.skipped_changed)}" if report.skipped_changed else ""
        offered = str(private_copy(path)) if chosen_format in FILE_FORMATS else None
        return offered, markdown_text(f"wrote {report.rows} rows to {path}{changed}")

    on(export.click, run_export, [fmt, source, min_confidence, include_none, link, split, seed], [download, message])
