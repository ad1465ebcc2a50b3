"""The random audit of a project, and every figure about its quality that comes from it.

An audit is a uniform random sample of the images a person labels blind (the page's Audit mode hides the machine's
prediction). It starts with a seed and today's classes and images, and draws in the order of one seeded
permutation of those images, so any number of draws together are one uniform sample without replacement. Its
labels are human labels (they export as human) that no round trains on, so that they estimate
(engine.learning.quality_estimates), out of sample:

- the accuracy of what an export writes for the images no person labelled: every round is judged by its own
  predictions of the audited images, which it never learned (cross-fitting them instead, as the label-mistake
  scores do, measured 0.05-0.19 too high: the teacher that picks the cross-fitted students' pseudo-labels and the
  graph refinement both carry the labels; see benchmarks/bench_selftrain.py's coverage);
- per-class precision and recall, the confusion matrix, and each class's share of the collection (the prior that
  sets a round's pseudo-label quotas).

Rules that keep the estimate honest: a change of the class list ends the audit (its labels were given under other
classes); the next draw starts a new one, and the old one is no longer used. Images added after an audit started
are outside it (the estimate says how many it does not cover); images that went missing drop out of it (a uniform
sample less some images chosen without regard to their labels is still uniform). An image a person had labelled
before it was drawn counts for the class shares but not for the accuracy (its label was not given blind, and it is
not among the images no person labelled). Drawn images left unlabelled are not counted; the page and the CLI give
them in draw order, and skipping hard ones makes the estimate optimistic.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np

from engine.errors import LabelloopError
from engine.learning.quality_estimates import (Summary, accuracy_estimate, class_prior, class_share_estimates,
                                               confusion_matrix, paired_difference, precision_recall)
from storage import Store

FIRST_AUDIT = 30  # random labels suggested for a first estimate
NEXT_AUDIT = 40  # how many more the page and status offer at a time
MIN_FOR_PRIOR = 20  # audited images from which a round takes its class prior from the audit


@dataclass
class AuditSample:
    """The current audit's labelled images, aligned: image_id (n,), truth (n,) class column in `class_ids`
    (-1 = none of these), blind (n,) bool (labelled after it was drawn: counts for the accuracy)."""

    audit: dict
    class_ids: list[int]
    image_ids: np.ndarray
    truth: np.ndarray
    blind: np.ndarray
    drawn: int
    pending: int


def _current(store: Store) -> tuple[dict | None, str | None]:
    """(the audit, None) when its class list is today's; else (None, why the accuracy is unknown)."""
    audit = store.current_audit()
    class_ids = [c["id"] for c in store.classes()]
    if audit is None:
        return None, "no random audit yet"
    if audit["class_ids"] != class_ids:
        return None, "the audit was drawn under another class list; start a new one"
    return audit, None


def draw_audit(store: Store, k: int, *, seed: int | None = None) -> list[dict]:
    """Draw `k` more images into the audit (starting one over today's images and classes if there is none, or
    the classes changed since): the next images of its permutation that are still usable and that no person has
    labelled (those passed on the way are recorded too, as labelled before the draw). Returns [{"path",
    "image_id"}] in draw order. Refuses k < 1 and more images than remain undrawn, writing nothing."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise LabelloopError(f"--k must be at least 1, got {k}")
    class_ids = [c["id"] for c in store.classes()]
    if not class_ids:
        raise LabelloopError("the project has no classes; add some before auditing")
    audit, _ = _current(store)
    if audit is None:
        if not store.header_counts()["images"]["ok"]:
            raise LabelloopError("no usable images to audit; run `labelloop ingest PROJECT` first")
        audit = store.start_audit(secrets.randbits(62) if seed is None else seed, class_ids)
    frame = store.audit_frame(audit)
    order = frame[np.random.default_rng(audit["seed"]).permutation(len(frame))]
    drawn = store.audit_draws(audit["id"])
    start = int(drawn["position"].max()) + 1 if len(drawn["position"]) else 0
    ok = store.ok_image_ids()
    human = store.human_labelled_ids()
    rest = order[start:]
    usable = np.isin(rest, ok)
    needs_label = usable & ~np.isin(rest, human)
    if needs_label.sum() < k:
        raise LabelloopError(f"only {int(needs_label.sum())} images of the audit remain to be drawn; use --k "
                             f"{int(needs_label.sum())} or fewer" if needs_label.any() else
                             "every image of the audit has been drawn; nothing remains to audit")
    last = int(np.flatnonzero(needs_label)[k - 1])
    taken = np.flatnonzero(usable[:last + 1])
    store.add_audit_draws(audit["id"], rest[taken], start + taken)
    picked = rest[:last + 1][needs_label[:last + 1]]
    relpaths = store.relpaths_of(picked.tolist())
    return [{"path": relpaths[int(image_id)], "image_id": int(image_id)} for image_id in picked]


def pending_audit(store: Store) -> list[int]:
    """The current audit's drawn images that still wait for a person's label, in draw order."""
    audit, _ = _current(store)
    if audit is None:
        return []
    drawn = store.audit_draws(audit["id"])
    waiting = (drawn["label"] == -2) & (drawn["status"] == "ok")
    return drawn["image_id"][waiting].tolist()


def audit_sample(store: Store) -> AuditSample | None:
    """The current audit's labelled images (None without a current audit). A label for a class no longer in the
    list cannot occur: a class change ends the audit."""
    audit, _ = _current(store)
    if audit is None:
        return None
    drawn = store.audit_draws(audit["id"])
    usable = drawn["status"] == "ok"
    labelled = usable & (drawn["label"] != -2)
    column_of = {class_id: column for column, class_id in enumerate(audit["class_ids"])}
    truth = np.array([column_of.get(int(c), -1) for c in drawn["label"][labelled]], int)
    return AuditSample(audit, audit["class_ids"], drawn["image_id"][labelled], truth,
                       ~drawn["labelled_before"][labelled], drawn=int(usable.sum()),
                       pending=int((usable & (drawn["label"] == -2)).sum()))


def audit_label_ids(store: Store) -> np.ndarray:
    """The images of the current audit a person labelled blind: rounds hold them out of training, so that every
    round can be judged on them (engine.session.round_runner)."""
    sample = audit_sample(store)
    return sample.image_ids[sample.blind] if sample is not None else np.zeros(0, np.int64)


def _round_probs(store: Store, round_id: int, sample: AuditSample) -> tuple[np.ndarray, np.ndarray, Summary] | None:
    """For one round over the audit's classes: (the audited images' predictions (n, C), known (n,) bool: whether
    the round predicted the image without having trained on its label, the `Summary` of the confidence over the
    population: the images of the audit's frame no person labelled). None when the round predicted other classes."""
    if store.round_class_ids(round_id) != sample.class_ids:
        return None
    found, _, probs = store.prediction_rows(round_id, sample.image_ids)
    rows = np.searchsorted(found, sample.image_ids).clip(0, max(len(found) - 1, 0))
    known = found[rows] == sample.image_ids if len(found) else np.zeros(len(sample.image_ids), bool)
    audit_probs = probs[rows] if len(found) else np.zeros((len(sample.image_ids), len(sample.class_ids)))
    # A round that trained on a label cannot judge it (rounds hold the audit's labels out, but a label given before
    # its image was drawn, or one a round made before this rule, was trained on): the round cross-fitted every
    # label it trained on, so a cross-fitted row marks it.
    crossfit = store.crossfit_matrix(round_id) if round_id > 0 else None
    if crossfit is not None:
        known &= ~np.isin(sample.image_ids, crossfit[0])
    return audit_probs, known, Summary(*store.confidence_summary(round_id, sample.audit["last_image_id"]))


def round_estimate(store: Store, round_id: int, sample: AuditSample) -> dict | None:
    """The accuracy estimate of one round (engine.learning.quality_estimates.accuracy_estimate over the blind audited
    images it can judge out of sample) with, per audited image, `_right` and `_predicted` where `_use` (judged: known
    and blind); None when the round predicted other classes."""
    probs = _round_probs(store, round_id, sample)
    if probs is None:
        return None
    audit_probs, known, population = probs
    use = known & sample.blind
    estimate = accuracy_estimate(sample.truth[use], audit_probs[use], population)
    predicted = audit_probs.argmax(axis=1) if len(use) else np.zeros(0, int)
    return {"round": round_id, "accuracy": estimate["estimate"], "low": estimate["low"], "high": estimate["high"],
            "audited": estimate["n"], "method": estimate["method"], "covers": population.size,
            "_right": use & (predicted == sample.truth), "_use": use, "_predicted": predicted}


def audit_prior(store: Store, class_ids: list[int]) -> np.ndarray | None:
    """The class prior (C,) a round's pseudo-label quotas follow, from the current audit's class shares; None
    without an audit over `class_ids` of at least MIN_FOR_PRIOR audited images."""
    sample = audit_sample(store)
    if sample is None or sample.class_ids != class_ids or len(sample.truth) < MIN_FOR_PRIOR:
        return None
    return class_prior(_class_shares(store, sample), len(class_ids))


def audit_class_shares(store: Store) -> list[dict]:
    """engine.learning.quality_estimates.class_share_estimates of the current audit (C + 1 dicts, "none of these" last);
    [] without one."""
    sample = audit_sample(store)
    return _class_shares(store, sample) if sample is not None and len(sample.truth) else []


def _class_shares(store: Store, sample: AuditSample) -> list[dict]:
    """Each class's share of the audit's images (and of none of these, last), guessed by zero-shot (it never
    trained on a label) and corrected by every audited image, blind or not."""
    n_classes = len(sample.class_ids)
    found, class_ids, probs = store.prediction_rows(0, sample.image_ids)
    if class_ids != sample.class_ids:  # zero-shot runs again after a class change; until then, the audit alone
        return class_share_estimates(sample.truth, np.zeros((len(sample.truth), n_classes)),
                                     [Summary(0, 0.0, 0.0)] * n_classes)
    known = np.isin(sample.image_ids, found)
    size, means, variances = store.probability_summary(0, sample.audit["last_image_id"], n_classes)
    return class_share_estimates(sample.truth[known], probs[np.searchsorted(found, sample.image_ids[known])],
                                 [Summary(size, float(m), float(v)) for m, v in zip(means, variances)])


def quality_report(store: Store, *, project_hint: str = "PROJECT") -> dict:
    """Everything the project knows about its own quality, as `status --json`'s `quality` object: audited (blind
    audited images), accuracy / low / high (the shown round's estimate, None without an audit), per_class
    (precision and recall with intervals), class_shares, confusion ({"classes", "rows", "matrix"}), rounds (the
    estimate of every round the audit can judge), drawn / pending, message (what to do next), and next (what NEXT_AUDIT
    more random labels would make of the interval)."""
    sample = audit_sample(store)
    names = {c["id"]: c["name"] for c in store.classes()}
    unknown = {"audited": 0, "drawn": 0, "pending": 0, "accuracy": None, "low": None, "high": None, "round": None,
               "method": None, "per_class": {}, "class_shares": {}, "confusion": None, "rounds": [], "next": None,
               "covers": None, "not_covered": None}
    command = f"labelloop audit {project_hint} --k {FIRST_AUDIT}"
    if sample is None:
        why = _current(store)[1]
        return {**unknown, "message": f"accuracy unknown: {why}; label {FIRST_AUDIT} random images (Audit on the "
                                      f"page, or `{command}`) for an estimate"}
    audit = sample.audit
    shown = store.shown_round()
    estimate = round_estimate(store, shown, sample)
    report = {**unknown, "audit_id": audit["id"], "drawn": sample.drawn, "pending": sample.pending,
              "audited": int(sample.blind.sum()), "round": shown}
    class_names = [names.get(c, str(c)) for c in sample.class_ids]
    shares = _class_shares(store, sample)
    report["class_shares"] = {name: _rounded(share) for name, share in zip(class_names + ["none of these"], shares)}
    report["not_covered"] = int((store.ok_image_ids() > audit["last_image_id"]).sum())  # added since it started
    if estimate is None or not estimate["audited"]:
        if estimate is None:
            why = "the shown round predicted other classes"
        elif report["audited"]:  # every blind label was trained on (by a round made before rounds held them out)
            why = (f"the shown round trained on all {report['audited']} audited labels, so none can judge it; label "
                   f"{NEXT_AUDIT} more random images (Audit, or `labelloop audit {project_hint} --k {NEXT_AUDIT}`)")
        else:
            why = (f"none of the {sample.drawn} images drawn is labelled yet; label them in Audit mode (or "
                   "`labelloop label --csv`)")
        report["message"] = f"accuracy unknown: {why}"
        return report
    use = estimate["_use"]
    matrix = confusion_matrix(sample.truth[use], estimate["_predicted"][use], len(sample.class_ids))
    report.update(accuracy=estimate["accuracy"], low=estimate["low"], high=estimate["high"],
                  method=estimate["method"], covers=estimate["covers"],
                  confusion={"classes": class_names, "rows": class_names + ["none of these"],
                             "matrix": matrix.tolist()},
                  per_class={name: _rounded(figures) for name, figures in zip(class_names, precision_recall(matrix))})
    report["rounds"] = [{key: value for key, value in judged.items() if not key.startswith("_")}
                        for judged in (round_estimate(store, r, sample) for r in _scored_rounds(store))
                        if judged is not None and judged["audited"]]
    half = (estimate["high"] - estimate["low"]) / 2
    n = estimate["audited"]
    report["next"] = {"k": NEXT_AUDIT, "half_width": round(half, 4),
                      "half_width_after": round(half * (n / (n + NEXT_AUDIT)) ** 0.5, 4)}
    report["message"] = (f"≈ {estimate['accuracy']:.0%} right ({estimate['low']:.0%}–{estimate['high']:.0%}), "
                         f"{n} audited; label {NEXT_AUDIT} more random images: ± {100 * half:.0f} → ± "
                         f"{100 * report['next']['half_width_after']:.0f} points")
    for key in ("accuracy", "low", "high"):
        report[key] = round(report[key], 4)
    return report


def _scored_rounds(store: Store) -> list[int]:
    return [0] + [r["id"] for r in store.rounds() if r["status"] == "done"]


def _rounded(figures: dict) -> dict:
    return {key: round(value, 4) if isinstance(value, float) else value for key, value in figures.items()}


def judge_round(store: Store, round_id: int, previous: int, *, may_hold: bool = True) -> dict:
    """After round `round_id` finished: its estimate against that of `previous` (the round shown before it) on the
    same blind audited images, both out of sample. A round worse beyond the interval of the paired difference is
    held back (`may_hold`): the page and exports keep showing `previous` until the person chooses the new one.
    Returns what the round reports (also without an audit: its effect is then unmeasured). The round was written
    held when an audit could judge it (`held` of storage's finish_round): a process killed before this judgement
    leaves it held, never shown unjudged; this call shows it unless it is worse."""
    verdict = _judgement(store, round_id, previous, may_hold=may_hold)
    store.set_round_held(round_id, verdict.get("held", False))
    return verdict


def _judgement(store: Store, round_id: int, previous: int, *, may_hold: bool) -> dict:
    sample = audit_sample(store)
    if sample is None or not sample.blind.any():
        return {"measured": False, "message": f"effect unmeasured: no random audit yet; label {FIRST_AUDIT} random "
                                              "images (Audit) for an estimate, and for the class shares that let a "
                                              "round learn from its own confident predictions"}
    new, old = round_estimate(store, round_id, sample), round_estimate(store, previous, sample)
    if new is None or old is None or not new["audited"]:
        return {"measured": False, "message": "effect unmeasured: the audit cannot judge this round"}
    both = new["_use"] & old["_use"]
    comparison = paired_difference(new["_right"][both], old["_right"][both])
    verdict = {"measured": True, "previous": previous,
               **{f"{key}": round(new[key], 4) for key in ("accuracy", "low", "high")},
               "previous_accuracy": round(old["accuracy"], 4) if old["accuracy"] is not None else None,
               "previous_low": round(old["low"], 4), "previous_high": round(old["high"], 4),
               "audited": new["audited"], "difference": comparison["difference"],
               "worse": comparison["worse"], "held": bool(comparison["worse"] and may_hold)}
    return verdict


def show_round(store: Store, round_id: int) -> None:
    """The person chooses a held round: it is shown (and teaches the next round) from now on."""
    rounds = {r["id"]: r for r in store.rounds()}
    if round_id not in rounds or rounds[round_id]["status"] != "done":
        raise LabelloopError(f"round {round_id} is not a finished round; `labelloop status` lists them")
    store.set_round_held(round_id, False)

