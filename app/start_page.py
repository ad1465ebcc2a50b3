"""The start page: what `labelloop serve` without a project shows. Open a project (by its path, or one of those
found in the home folder) or create one (project folder, images folder, classes, model: engine.project.folder's
create_project, the rules of `labelloop init`); the server then serves that project's labeling page in its place
(app.server.pick_project), and every tab on the start page reloads into it (static/start.js).

Paths typed here are read relative to the home folder. A refusal is one message (app.feedback), and nothing is
written: create_project checks everything before it writes.
"""

from __future__ import annotations

import threading
from pathlib import Path

import gradio as gr

from app.escaping import markdown_text
from app.feedback import on
from engine.errors import LabelloopError
from engine.labels.folder_labels import refuse_in_multi_label, set_folder_labels
from engine.learning.models import DEFAULT_SPEC
from engine.project.folder import Project, create_project, open_project, projects_in

START_TITLE = "labelloop · start"  # static/start.js reloads once the server answers with another page's title
MODEL_CHOICES = [(f"{DEFAULT_SPEC} (the default: downloads once)", DEFAULT_SPEC),
                 ("demo (embedded, offline: shapes, digits and colours only)", "demo")]


class ProjectChoice:
    """The project a person opened or created on the start page, handed from the page's handler thread to the
    server's: the first one wins, and a second try (another tab) is refused before it opens or writes anything."""

    def __init__(self, home: Path):
        self.home = home
        self.project: Project | None = None
        self.created = False
        self._claimed = threading.Lock()
        self._made = threading.Event()

    def path(self, text: str | None, what: str) -> Path:
        """The folder `text` names, relative to the home folder unless absolute (~ expanded)."""
        if not (text or "").strip():
            raise LabelloopError(f"give the {what}")
        return self.home / Path(text.strip()).expanduser()

    def open(self, text: str | None) -> Project:
        """Open the project at `text` (open_project's refusals: not a project, held by another process, ...)."""
        path = self.path(text, "project folder to open")
        return self._claim(lambda: open_project(path), created=False)

    def create(self, folder: str | None, images: str | None, classes: str | None, model: str | None,
               labels_from_folders: bool = False, multi_label: bool = False) -> Project:
        """Create a project as `labelloop init` does, refusing an images folder without images (it is ingested at
        once). Class names come comma-separated or one a line: the lines are joined into init's comma list.
        `multi_label`: init --multi-label (tags; labels from folders are refused with it, as at init)."""
        root, images_root = self.path(folder, "project folder to create"), self.path(images, "images folder")
        names = ",".join((classes or "").strip().splitlines())

        if multi_label:
            refuse_in_multi_label(labels_from_folders)

        def made() -> Project:
            project = create_project(root, images=images_root, classes=names, model=model or DEFAULT_SPEC,
                                     require_images=True, multi_label=multi_label)
            if labels_from_folders:
                try:
                    set_folder_labels(project, True)
                except BaseException:  # the project stays as init left it; this process lets go of it
                    project.close()
                    raise
            return project

        return self._claim(made, created=True)

    def _claim(self, make, *, created: bool) -> Project:
        if not self._claimed.acquire(blocking=False):
            raise LabelloopError("a project is being opened from this server already; this page switches to it in "
                                 "a moment")
        try:
            self.project = make()
        except BaseException:
            self._claimed.release()
            raise
        self.created = created
        self._made.set()
        return self.project

    def wait(self, seconds: float) -> bool:
        """Whether a project was opened or created, waiting at most `seconds`."""
        return self._made.wait(seconds)


def build_start_page(choice: ProjectChoice) -> gr.Blocks:
    def found_projects():
        found = [str(folder) for folder in projects_in(choice.home)]
        return gr.Radio(choices=found, value=None,
                        label=f"projects in {choice.home}" + ("" if found else ": none yet (give a path below)"))

    with gr.Blocks(title=START_TITLE) as page:
        gr.Markdown(f"## labelloop\nOpen a project or create one. Paths are read from {markdown_text(choice.home)} "
                    "unless they start with / or ~.")
        with gr.Row(equal_height=False):
            with gr.Column(variant="panel"):
                gr.Markdown("### Open a project")
                found = gr.Radio([], label=f"projects in {choice.home}", elem_id="found-projects")
                open_path = gr.Textbox(label="project folder", elem_id="open-path")
                open_button = gr.Button("Open", variant="primary", elem_id="open-project")
            with gr.Column(variant="panel"):
                gr.Markdown("### New project")
                folder = gr.Textbox(label="project folder (new or empty; not inside the images folder)",
                                    elem_id="new-project")
                images = gr.Textbox(label="images folder (read, never changed)", elem_id="new-images")
                classes = gr.Textbox(label="classes: one a line, or comma-separated (at least two)", lines=4,
                                     elem_id="new-classes")
                model = gr.Dropdown(MODEL_CHOICES, value=DEFAULT_SPEC, allow_custom_value=True, elem_id="new-model",
                                    label="model (or an open_clip NAME:TAG, NAME:/path/weights.pt or a local folder)")
                from_folders = gr.Checkbox(label="labels from folder names (an image in a folder named like a class "
                                                 "gets that class)", elem_id="new-from-folders")
                tags = gr.Checkbox(label="multi-label: each image gets a set of tags (none, one or several)",
                                   elem_id="new-multi-label")
                create_button = gr.Button("Create and ingest", variant="primary", elem_id="create-project")
        message = gr.Markdown(elem_id="start-message")

        def open_chosen(path):
            project = choice.open(path)
            return markdown_text(f"opening {project.root} ...")

        def create_new(root, images_folder, names, spec, labels_from_folders, multi_label):
            project = choice.create(root, images_folder, names, spec, labels_from_folders, multi_label)
            return markdown_text(f"created {project.root}; opening it, ingest starts there ...")

        def picked(path):
            return path

        page.load(found_projects, [], [found], show_progress="hidden", api_name="projects_found")
        found.input(picked, [found], [open_path], show_progress="hidden", api_name="project_picked")
        on(open_button.click, open_chosen, [open_path], [message])
        on(create_button.click, create_new, [folder, images, classes, model, from_folders, tags], [message])
    return page
