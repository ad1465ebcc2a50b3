"""The Team tab: how much the project's people agree on the images several of them labelled, as the CLI's
`labelloop agreement` computes it (engine.labels.team.agreement_report): the overall Fleiss' kappa, the kappa of
each class, Cohen's kappa of each pair with the images both labelled, and each person's labels, agreement with the
consensus and estimated accuracy (engine.labels.team.team_report). Drawn afresh each time the tab is opened."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from app.escaping import markdown_text
from app.feedback import on
from engine.errors import LabelloopError
from engine.labels.team import agreement_report, team_report
from engine.session.workspace import Workspace

PEOPLE_COLUMNS = ["person", "role", "labels", "agreement with the consensus", "estimated accuracy", "reviewed",
                  "approved", "corrected"]
PAIR_COLUMNS = ["person", "other person", "Cohen's kappa", "images both labelled"]
CLASS_COLUMNS = ["class", "Fleiss' kappa"]


def kappa_text(kappa: float | None) -> str:
    """A kappa as the CLI prints it: three decimals, or n/a where it is undefined."""
    return "n/a" if kappa is None else f"{kappa:.3f}"


def share_text(share: float | None) -> str:
    return "" if share is None else f"{share:.0%}"


def summary_markdown(agreement: dict, team: dict, project_root: str) -> str:
    """One line on the overall kappa, or on what is missing before there is one and what to do."""
    if not agreement["people"]:
        return markdown_text(f"This project has no people yet: one local person labels and reviews. Add people with "
                             f"labelloop team {project_root} --add NAME (NAME:reviewer for a reviewer), then import "
                             "each one's labels with labelloop label --csv FILE --as NAME.")
    lines = []
    if not agreement["pairs"]:
        lines.append("No image has labels from two people yet, so there is no agreement to measure: give the "
                     "same images to two people or more (labelloop team --overlap SHARE draws them).")
    else:
        lines.append(f"**Fleiss' kappa {kappa_text(agreement['kappa'])}** over the images two people or more "
                     "labelled (1 = full agreement, 0 = what chance would give).")
    overlap = team["overlap"]
    if overlap is not None:
        lines.append(f"overlap: {overlap['images']} images ({overlap['share']:.0%} of the collection, seed "
                     f"{overlap['seed']}) go to two people or more")
    return "  \n".join(lines)


def people_table(agreement: dict, team: dict) -> pd.DataFrame:
    """Every person of the project or with labels (agreement_report's people): role, labels, agreement with the
    consensus, estimated accuracy and the reviews of their labels."""
    known = {p["name"]: p for p in team["people"]}
    rows = []
    for entry in agreement["people"]:
        person = known.get(entry["name"], {})
        rows.append([entry["name"], person.get("role", ""), entry["labels"],
                     share_text(entry["agreement_with_consensus"]), share_text(person.get("estimated_accuracy")),
                     *(person.get(key, 0) for key in ("reviewed", "approved", "corrected"))])
    return pd.DataFrame(rows, columns=PEOPLE_COLUMNS)


def pairs_table(agreement: dict) -> pd.DataFrame:
    return pd.DataFrame([[p["a"], p["b"], kappa_text(p["kappa"]), p["n"]] for p in agreement["pairs"]],
                        columns=PAIR_COLUMNS)


def classes_table(agreement: dict) -> pd.DataFrame:
    return pd.DataFrame([[name, kappa_text(kappa)] for name, kappa in agreement["per_class"].items()],
                        columns=CLASS_COLUMNS)


class TeamTab:
    def __init__(self, workspace: Workspace):
        self.project = workspace.project

    def shown(self):
        """Summary, people, pairs and classes as the project stands; a refusal (a multi-label project) is the
        summary, with empty tables."""
        try:
            agreement, team = agreement_report(self.project), team_report(self.project)
        except LabelloopError as refused:
            return (markdown_text(str(refused)), pd.DataFrame(columns=PEOPLE_COLUMNS),
                    pd.DataFrame(columns=PAIR_COLUMNS), pd.DataFrame(columns=CLASS_COLUMNS))
        return (summary_markdown(agreement, team, str(self.project.root)), people_table(agreement, team),
                pairs_table(agreement), classes_table(agreement))


def build_team_tab(workspace: Workspace, tab_item) -> TeamTab:
    """The tab's parts, filled when `tab_item` (its gr.Tab) is selected."""
    tab = TeamTab(workspace)
    summary = gr.Markdown(elem_id="team-summary")
    gr.Markdown("People: their labels of the shared images against the consensus (the label each of those images "
                "has now), and how accurate each one is estimated to be from everyone's labels and the model's.")
    people = gr.Dataframe(pd.DataFrame(columns=PEOPLE_COLUMNS), interactive=False, elem_id="team-people")
    gr.Markdown("Pairs: Cohen's kappa on the images both people labelled.")
    pairs = gr.Dataframe(pd.DataFrame(columns=PAIR_COLUMNS), interactive=False, elem_id="team-pairs")
    gr.Markdown("Classes: Fleiss' kappa of each class against all the others.")
    classes = gr.Dataframe(pd.DataFrame(columns=CLASS_COLUMNS), interactive=False, elem_id="team-classes")
    on(tab_item.select, tab.shown, [], [summary, people, pairs, classes], api_name="team_shown",
       show_progress="hidden")
    return tab
