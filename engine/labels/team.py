"""Teams: the people of a project and their roles, each person's own labels kept side by side, the overlap draw,
reviews, agreement between people, and the consensus that becomes the image's label.

A project without people is one local person who labels and reviews. Once it has people (`labelloop team --add`, or
`serve --auth NAME:PASS[:reviewer]`), labels imported `--as` a person are that person's own: an image's label (the
`labels` table, what rounds, the queue and exports read) is then the consensus of everyone who labelled it
(model-aware, engine.learning.agreement.crowdlab), until a reviewer approves or corrects one person's label of it.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from engine.errors import LabelloopError
from engine.learning.agreement import (MISSING, crowdlab, fleiss_kappa, fleiss_kappa_per_class, pairwise_kappas,
                                       person_accuracy)
from engine.project.folder import Project
from engine.sources import Source
from storage import Store

ROLES = ("labeler", "reviewer")
CONSENSUS_ACTOR = "consensus"  # label_events' actor of an image label that several people's labels decided
NONE_NAME = "none of these"


def _refuse_multi_label(project: Project) -> None:
    if project.multi_label:
        raise LabelloopError("people's labels, reviews and agreement are for single-label projects; this one is "
                             "multi-label (init --multi-label)")


def check_new_names(names: list[str], known: list[str]) -> None:
    """Refuse a name twice, or two names that differ only in case (new ones among themselves or against `known`)."""
    seen = {name.casefold(): name for name in known}
    for name in names:
        if not name.strip() or name != name.strip():
            raise LabelloopError(f"a person's name {name!r} is empty or starts or ends with a space; give a plain name")
        other = seen.get(name.casefold())
        if other is not None and other != name:
            raise LabelloopError(f"the names {other!r} and {name!r} differ only in case; use one spelling for one "
                                 "person")
        seen[name.casefold()] = name


def parse_person(entry: str) -> tuple[str, str]:
    """'NAME' or 'NAME:reviewer' (or 'NAME:labeler') -> (name, role)."""
    name, colon, role = entry.rpartition(":") if entry.endswith(tuple(f":{r}" for r in ROLES)) else (entry, "", "")
    return name, role or "labeler"


def change_team(project: Project, *, add: list[tuple[str, str]] = (), remove: list[str] = (),
                overlap: float | None = None, seed: int = 0) -> None:
    """Add (name, role) people (or give those already there the role named), remove people without labels, and draw
    the overlap (`draw_overlap`); everything is checked before anything is written."""
    _refuse_multi_label(project)
    check_overlap_share(overlap)
    for name, role in add:
        if role not in ROLES:
            raise LabelloopError(f"unknown role {role!r} for {name!r}; a person is a labeler or a reviewer")
    known = project.store.people()
    check_new_names([name for name, _ in add], [p["name"] for p in known])
    for name in remove:
        person = _known_person(project.store, name)
        if person["labels"]:
            raise LabelloopError(f"{name!r} has labelled {person['labels']} images and stays in the project: their "
                                 "labels are part of the consensus; remove only people without labels")
    project.store.set_people(list(add))
    for name in remove:
        project.store.remove_person(name)
    if overlap is not None:
        draw_overlap(project, overlap, seed)


def _known_person(store: Store, name: str) -> dict:
    people = {p["name"]: p for p in store.people()}
    if not people:
        raise LabelloopError(f"this project has no people, so it knows no {name!r}; add people first with "
                             f"labelloop team PROJECT --add {name}")
    if name not in people:
        same = [known for known in people if known.casefold() == name.casefold()]
        hint = f"; did you mean {same[0]!r}?" if same else f"; the people are {', '.join(people)}"
        raise LabelloopError(f"{name!r} is not a person of this project{hint}")
    return people[name]


def check_labeler(project: Project, name: str) -> None:
    """Refuse to label as `name` unless the project has that person (exact spelling)."""
    _refuse_multi_label(project)
    _known_person(project.store, name)


def check_overlap_share(share: float | None) -> None:
    if share is not None and not 0 < share <= 1:
        raise LabelloopError(f"overlap share {share} is out of range; give a share above 0 and at most 1, such as "
                             "0.1 for 10 % of the images")


def draw_overlap(project: Project, share: float, seed: int = 0) -> list[int]:
    """Draw a `share` (0 < share <= 1) of the usable images at random (seeded; the share and seed are recorded) for
    at least two people to label independently; replaces an earlier draw. Returns the image ids, ascending."""
    _refuse_multi_label(project)
    check_overlap_share(share)
    usable = project.store.usable_image_ids()
    if not len(usable):
        raise LabelloopError("the project has no usable images to draw an overlap from; run labelloop ingest first")
    count = max(1, int(round(share * len(usable))))
    drawn = np.sort(np.random.default_rng(seed).permutation(usable)[:count])
    project.store.set_overlap_images(drawn.tolist())
    project.store.set_meta(overlap_share=share, overlap_seed=seed)
    return drawn.tolist()


def record_person_labels(project: Project, person: str, image_ids: list[int], class_ids: list[int | None]) -> int:
    """Keep `person`'s labels beside the others' and make each image's label the consensus; returns how many of
    the person's labels were new or changed."""
    changed = project.store.set_person_labels(image_ids, class_ids, person=person)
    update_consensus(project)
    return changed


class TeamLabels:
    """Every person's labels as arrays: `labels` (N images, P people) of class indices (MISSING where none); index
    K of the classes is "none of these"."""

    def __init__(self, store: Store):
        table = store.person_labels()
        self.class_ids = [c["id"] for c in store.classes()]
        self.class_names = [c["name"] for c in store.classes()] + [NONE_NAME]
        self.image_ids = np.unique(table.column("image_id").to_numpy()) if table.num_rows else np.zeros(0, np.int64)
        self.people = sorted(set(table.column("person").to_pylist()))
        index = {class_id: position for position, class_id in enumerate(self.class_ids)}
        self.labels = np.full((len(self.image_ids), len(self.people)), MISSING, np.int64)
        rows = np.searchsorted(self.image_ids, table.column("image_id").to_numpy())
        columns = [self.people.index(p) for p in table.column("person").to_pylist()]
        classes = [index.get(c, len(self.class_ids)) if c is not None else len(self.class_ids)
                   for c in table.column("class_id").to_pylist()]
        self.labels[rows, columns] = classes
        self.probs = _model_probs(store, self.image_ids, self.class_ids)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def class_id(self, index: int) -> int | None:
        return self.class_ids[index] if index < len(self.class_ids) else None

    def consensus(self) -> np.ndarray:
        """(N,) the consensus class index of each image: the model-aware one (engine.learning.agreement.crowdlab),
        which measured above majority vote on both sets of benchmarks/bench_teams.py (docs/benchmarks.md, "Teams")."""
        return crowdlab(self.labels, self.probs).labels


def _model_probs(store: Store, image_ids: np.ndarray, class_ids: list[int]) -> np.ndarray:
    """(N, K + 1) the model's probabilities of these images over the classes and "none of these" (0): the shown
    round's out-of-sample ones for the images a person labelled, else its prediction; uniform without one."""
    probs = np.full((len(image_ids), len(class_ids) + 1), 1.0 / len(class_ids))
    probs[:, -1] = 0.0
    relpaths = store.relpaths_of(image_ids.tolist())
    position = {relpaths[i]: n for n, i in enumerate(image_ids.tolist())}
    shown = store.shown_class_probabilities()
    for path, predicted, values in zip(*(shown.column(name).to_pylist() for name in ("path", "class_ids", "probs"))):
        if path in position and predicted == class_ids:
            probs[position[path], :-1] = values
    crossfit = store.crossfit_matrix(store.shown_round())
    if crossfit is not None and crossfit[1] == class_ids:
        found = np.isin(crossfit[0], image_ids)
        probs[np.searchsorted(image_ids, crossfit[0][found]), :-1] = crossfit[2][found]
    return probs


def update_consensus(project: Project) -> int:
    """Make the label of every image people labelled and no reviewer decided their consensus; recorded as the one
    person's label where one person labelled it, else as CONSENSUS_ACTOR. Returns how many labels changed."""
    store = project.store
    team = TeamLabels(store)
    if not len(team.image_ids):
        return 0
    consensus = team.consensus()
    undecided = ~np.isin(team.image_ids, store.reviewed_image_ids())
    by_actor: dict[str, tuple[list[int], list[int | None]]] = defaultdict(lambda: ([], []))
    for row in np.flatnonzero(undecided):
        given = np.flatnonzero(team.labels[row] != MISSING)
        actor = team.people[given[0]] if len(given) == 1 else CONSENSUS_ACTOR
        by_actor[actor][0].append(int(team.image_ids[row]))
        by_actor[actor][1].append(team.class_id(int(consensus[row])))
    return sum(store.set_labels(ids, classes, source=Source.HUMAN, actor=actor)
               for actor, (ids, classes) in by_actor.items())


def review(project: Project, image_id: int, *, reviewer: str, labeler: str, class_id: int | None = None,
           approve: bool = False) -> None:
    """A reviewer's decision on `labeler`'s label of an image: approve it (the image's label becomes it, confirmed:
    no longer a possible label mistake), or correct it to `class_id`. Both labels stay: the labeler's beside the
    others', the decision in the reviews and the label history."""
    store = project.store
    if _known_person(store, reviewer)["role"] != "reviewer":
        raise LabelloopError(f"{reviewer!r} is a labeler; only a reviewer reviews (serve --auth NAME:PASS:reviewer, "
                             "or labelloop team --add NAME:reviewer)")
    if reviewer == labeler:
        raise LabelloopError(f"{reviewer!r} cannot review their own label; another reviewer must")
    labelled, labelled_class = store.person_label(image_id, labeler)
    if not labelled:
        raise LabelloopError(f"{labeler!r} has not labelled image {image_id}; nothing of theirs to review")
    decided = labelled_class if approve else class_id
    store.add_review(image_id, labeler=labeler, reviewer=reviewer, labelled_class=labelled_class,
                     decided_class=decided, approved=approve)
    store.set_labels([image_id], [decided], source=Source.HUMAN, actor=reviewer)
    if approve:
        store.confirm_labels([image_id], [decided], actor=reviewer)


def _number(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 4)


def agreement_report(project: Project) -> dict:
    """Agreement on the images several people labelled: {"kappa": Fleiss' kappa, "per_class": {class: Fleiss'
    kappa}, "pairs": [{"a", "b", "kappa": Cohen's, "n": images both labelled}], "people": [{"name", "labels",
    "agreement_with_consensus": the share of their labels of those images that equal the image's label}]}; a kappa
    is null where it is undefined (no shared image, or everyone always gave one class)."""
    _refuse_multi_label(project)
    store = project.store
    team = TeamLabels(store)
    shared = (team.labels != MISSING).sum(axis=1) >= 2
    per_class = fleiss_kappa_per_class(team.labels, team.n_classes)
    given = np.unique(team.labels[team.labels != MISSING])
    current = store.human_label_times(team.image_ids[shared].tolist())
    index = {class_id: n for n, class_id in enumerate(team.class_ids)}
    final = np.array([index.get(current.get(int(i), (None,))[0], len(team.class_ids)) for i in team.image_ids[shared]],
                     np.int64)
    people = []
    counts = {p["name"]: p["labels"] for p in store.people()}
    for name in sorted(set(counts) | set(team.people)):
        agreement = None
        if name in team.people:
            mine = team.labels[shared, team.people.index(name)]
            if (mine != MISSING).any():
                agreement = round(float(np.mean(mine[mine != MISSING] == final[mine != MISSING])), 4)
        people.append({"name": name, "labels": counts.get(name, 0), "agreement_with_consensus": agreement})
    return {"kappa": _number(fleiss_kappa(team.labels, team.n_classes)),
            "per_class": {team.class_names[k]: _number(per_class[k]) for k in range(team.n_classes)
                          if k < len(team.class_ids) or k in given},
            "pairs": [{"a": team.people[a], "b": team.people[b], "kappa": _number(kappa), "n": n}
                      for a, b, kappa, n in pairwise_kappas(team.labels, team.n_classes)],
            "people": people}


def team_report(project: Project) -> dict:
    """{"people": [{"name", "role", "labels", "reviewed", "approved", "corrected", "estimated_accuracy"}],
    "overlap": {"share", "seed", "images"} or None}."""
    store = project.store
    reviews = store.review_counts()
    accuracy = estimated_accuracy(project) if store.people() else {}
    people = [{**person, **reviews.get(person["name"], {"reviewed": 0, "approved": 0, "corrected": 0}),
               "estimated_accuracy": accuracy.get(person["name"])} for person in store.people()]
    share = store.get_meta("overlap_share")
    overlap = None if share is None else {"share": share, "seed": store.get_meta("overlap_seed"),
                                          "images": len(store.overlap_image_ids())}
    return {"people": people, "overlap": overlap}


def estimated_accuracy(project: Project) -> dict[str, float | None]:
    """person -> estimated accuracy (engine.learning.agreement.person_accuracy), None for a person who shares no
    image with anyone."""
    team = TeamLabels(project.store)
    if not len(team.image_ids):
        return {}
    accuracy = person_accuracy(team.labels, team.probs)
    return {name: _number(value) for name, value in zip(team.people, accuracy)}
