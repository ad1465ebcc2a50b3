"""Self-training rounds in a project: the person's labels and the teacher's confident predictions train a new
linear head over the cached embeddings (engine.learning.selftrain.adapt), its predictions are refined over the
collection's kNN graph (built once per model and cached in `models/`), and every image gets new predictions,
out-of-sample scores for the person's labels and an outlier score, in one transaction. A `finetune` round first
adapts the image encoder itself (engine.learning.selftrain.finetune), embeds every image again under the adapted
model, and then does the same over the new embeddings.

This runner does the project's I/O: it reads the snapshot a round starts from (embeddings, labels, the audit, the
previous teacher), hands arrays to the learner (engine.learning.selftrain), and writes what it returns.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from engine.project.audit import audit_label_ids, audit_prior, judge_round
from engine.project.current_labels import label_arrays, none_of_these_rows
from engine.errors import DAMAGED_NPZ, LabelloopError
from engine.learning.models import load_model
from engine.learning.neighbours import cached_knn_graph, graph_file
from engine.jobs.progress import phase_spans, within
from engine.project.folder import Project
from engine.learning.probabilities import prediction_stats, softmax
from engine.learning.selftrain.adapt import Progress, RoundMetrics, adapt, choose_pseudo_labels
from engine.learning.selftrain.config import RoundConfig
from engine.learning.selftrain.finetune import AdaptedModel, adapt_encoder, training_cost
from engine.learning.selftrain.head import Head, zero_shot_head
from engine.learning.zeroshot import class_prompts
from engine.session.round_start import begin_round, end_unfinished_round, neighbour_graph
from engine.session.tag_rounds import TagRoundMetrics, run_tag_round


# What the head round costs per image, counted in what embedding one image costs (on the demo, 2 shared CPU cores:
# 0.9 s for the head round over 1,500 images against 0.0175 s to embed one image, so 0.034, rounded up for the
# neighbour graph a new model needs): a finetune round's encoder work and its head round share its progress bar by
# it (the head round had a fixed 10 % before).
HEAD_COST_PER_IMAGE = 0.05
GRAPH_JOB = "neighbour graph"  # the job kind of build_neighbour_graph


# ---- the project around the algorithm ------------------------------------------------------------------------

def _checkpoint_path(project: Project, round_id: int) -> Path:
    return project.models_dir / f"round_{round_id:04d}.npz"


def _model_folder(project: Project, round_id: int) -> Path:
    """Where a `finetune` round keeps its adapted model (open_clip local-dir format, loadable with --model)."""
    return project.models_dir / f"round_{round_id:04d}"


def _remove_leftovers(project: Project, finished: set[int]) -> None:
    """A round killed before it finished leaves its checkpoint and adapted model folder behind, and one killed while
    saving the neighbour graph a `knn_*.partial.npz`; no finished round names them, so the next round deletes them."""
    for path in project.models_dir.glob("knn_*.partial.npz"):
        path.unlink(missing_ok=True)
    for path in project.models_dir.glob("round_*"):
        number = re.fullmatch(r"round_(\d+)(\.npz)?", path.name)
        if number and int(number.group(1)) not in finished:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def save_checkpoint(path: Path, teacher: Head, temperature: float, class_ids: list[int], model_id: str,
                    config: RoundConfig) -> None:
    """A round's teacher head with what made it: its classes, the model whose embeddings it reads, its config."""
    np.savez(path, weight=teacher.weight, bias=teacher.bias, scale=teacher.scale, temperature=temperature,
             class_ids=np.array(class_ids), model_id=np.array(model_id), config=np.array(json.dumps(asdict(config))))


def load_checkpoint(path: Path, *, model_id: str, class_ids: list[int]) -> tuple[Head, float, RoundConfig]:
    """(teacher head, temperature, config) of a round checkpoint. Refuses, in one line, a checkpoint made for
    another model (its head reads other embeddings) or other classes."""
    with np.load(path) as saved:
        saved_model = str(saved["model_id"]) if "model_id" in saved else None
        if saved_model != model_id:
            raise LabelloopError(f"{path.name} was trained for model {saved_model or '(unrecorded)'}, not the "
                                 f"project's model {model_id}; its round cannot teach the next one")
        if saved["class_ids"].tolist() != class_ids:
            raise LabelloopError(f"{path.name} was trained for other classes; the next round starts from zero-shot")
        config = RoundConfig.from_dict(json.loads(str(saved["config"])))
        return (Head(saved["weight"], saved["bias"], float(saved["scale"])), float(saved["temperature"]), config)


def _load_teacher(project: Project, round_id: int, class_ids: list[int], model_id: str,
                  zero_shot: Head) -> tuple[Head, float, str | None]:
    """The previous round's teacher, or zero-shot (with the reason) when there is none it may use."""
    path = _checkpoint_path(project, round_id)
    if round_id == 0 or not path.is_file():
        return zero_shot, 1.0, None
    try:
        teacher, temperature, _ = load_checkpoint(path, model_id=model_id, class_ids=class_ids)
    except LabelloopError as refused:
        return zero_shot, 1.0, str(refused)
    except DAMAGED_NPZ as error:  # cut short by a full disk, or damaged since: it cannot teach, zero-shot can
        return zero_shot, 1.0, f"{path.name} is damaged ({error}); this round starts from zero-shot"
    return teacher, temperature, None


def build_neighbour_graph(project: Project, progress: Progress | None = None) -> dict:
    """Build and cache the kNN graph the next round reads (k of the default RoundConfig), so that round does not
    wait for it: ingest runs it at its end (the server as a background job, GRAPH_JOB). A graph cached already for
    these images is kept. Returns what it did: images, whether it was cached already, seconds."""
    started = time.monotonic()
    model_id = project.store.get_meta("model_id")
    image_ids, embeddings = project.store.embeddings(model_id)
    k = RoundConfig().neighbours
    if len(image_ids) <= k:  # too few images: a round refines over no graph either
        return {"images": len(image_ids), "cached": False, "seconds": 0.0}
    *_, cached = cached_knn_graph(graph_file(project.models_dir, model_id), image_ids, embeddings, k,
                                  progress=progress)
    return {"images": len(image_ids), "cached": cached, "seconds": round(time.monotonic() - started, 2)}


def run_round(project: Project, config: RoundConfig, *, progress: Progress | None = None,
              cancel: Callable[[], bool] | None = None) -> RoundMetrics | TagRoundMetrics:
    """Run one round and write its results in one transaction; returns its metrics (a multi-label project's:
    engine/session/tag_rounds.py's). Labels a person writes while it runs are kept: the round trains on the labels
    as they were when it started."""
    config.validate()
    if project.multi_label:
        return run_tag_round(project, config, progress=progress, cancel=cancel)
    start = begin_round(project, progress, cancel, reading="labels")
    store, class_ids, image_ids, report = start.store, start.class_ids, start.image_ids, start.report
    model_id, embeddings = start.model_id, start.embeddings  # a finetune round replaces both with its adapted model's
    labels, human = label_arrays(store, image_ids, class_ids)
    # The random audit's labels train no round: a round judged on labels it learned from (even through cross-fitted
    # students, whose pseudo-labels come from a teacher that learned them, refined over a graph that spreads them)
    # measured its own accuracy 0.05-0.19 too high; held out, the 95 % intervals hold the truth 91-96 % of the time
    # (bench_selftrain's coverage), for 0.2-4 points of accuracy. They still give the prior and export as human.
    audit_ids = audit_label_ids(store)
    # A finetune round makes its adapted model the project's: holding it back would show predictions of another model.
    may_hold = config.mode != "finetune"
    held_out = np.isin(image_ids, audit_ids)
    human_rows = np.flatnonzero(human & (labels >= 0) & ~held_out)
    none_rows = np.setdiff1d(none_of_these_rows(store, image_ids), np.flatnonzero(held_out))
    row_of = {image_id: row for row, image_id in enumerate(image_ids.tolist())}
    zero_shot = zero_shot_head(start.text_weights, start.scale)
    previous = store.last_finished_round()
    shown_before = store.shown_round()
    prior = audit_prior(store, class_ids)
    teacher, temperature, refused = _load_teacher(project, previous, class_ids, model_id, zero_shot)
    teacher_probs = softmax(teacher.logits(embeddings) / temperature)
    stored = store.prediction_matrix(previous)
    if stored is not None and stored[1] == class_ids:  # the teacher's own word where it has one (cache teachers)
        rows = np.array([row_of.get(image_id, -1) for image_id in stored[0].tolist()])
        teacher_probs[rows[rows >= 0]] = stored[2][rows >= 0]
    finished = {r["id"] for r in store.rounds() if r["status"] == "done"}
    schedule_round = len(finished) + 1
    _remove_leftovers(project, finished)
    round_id = store.start_round(asdict(config))
    encoder_report, adapt_report = (within(report, span) for span in _round_phases(config, len(image_ids)))
    try:
        adapted, meta = None, None
        if config.mode == "finetune":
            adapted = _adapt_encoder(project, config, model_id, image_ids, zero_shot, teacher_probs, human_rows,
                                     labels[human_rows], human, schedule_round, _model_folder(project, round_id),
                                     encoder_report)
            model_id, embeddings = adapted.model.model_id, adapted.embeddings
            zero_shot = zero_shot_head(adapted.class_weights, adapted.model.logit_scale)
        affinity, graph = None, None
        if config.refine and len(image_ids) > config.neighbours:
            affinity, graph = neighbour_graph(project, model_id, image_ids, embeddings, config.neighbours,
                                              adapt_report)
        output = adapt(embeddings, zero_shot, teacher, teacher_probs, human_rows, labels[human_rows], human,
                       schedule_round, config, affinity=affinity, none_index=none_rows, class_prior=prior,
                       progress=adapt_report)
        metrics = output.metrics
        if graph is not None:
            metrics.graph_cached, metrics.graph_seconds = graph
        metrics.seconds = start.seconds()
        metrics.round_id = round_id
        metrics.class_prior = "audit" if prior is not None else "none"
        metrics.audit_labels_held_out = int(held_out.sum())
        metrics.teacher_refused = refused or None
        project.models_dir.mkdir(exist_ok=True)
        save_checkpoint(_checkpoint_path(project, round_id), output.teacher, output.temperature, class_ids, model_id,
                        config)
        adapt_report(0.97, "writing predictions")
        if adapted:
            spec = project.stored_model(adapted.model.spec)
            metrics.finetune = {**adapted.summary, "model": spec, "model_id": model_id}
            store.register_model(model_id, spec, adapted.model.dim)
            store.write_embeddings(model_id, image_ids, embeddings)
            store.save_class_weights(model_id, class_ids, adapted.class_weights, adapted.model.logit_scale)
            meta = {"model": spec, "model_id": model_id, "zeroshot_key": class_prompts(store, model_id)[2]}
        store.finish_round(round_id, model_id=model_id, image_ids=image_ids, class_ids=class_ids,
                           probs=output.probs, stats=prediction_stats(output.probs),
                           pseudo_ids=image_ids[output.pseudo_index],
                           pseudo_classes=np.asarray(class_ids)[output.pseudo_label], metrics=metrics.as_json(),
                           meta=meta, crossfit_ids=image_ids[human_rows] if output.crossfit_probs is not None
                           else image_ids[:0], crossfit_probs=output.crossfit_probs, outlier=output.outlier,
                           held=may_hold and len(audit_ids) > 0)
    except BaseException as error:
        shutil.rmtree(_model_folder(project, round_id), ignore_errors=True)  # an unfinished round's adapted model
        end_unfinished_round(store, round_id, error)
        raise
    metrics.quality = judge_round(store, round_id, shown_before, may_hold=may_hold)
    store.add_round_metrics(round_id, quality=metrics.quality)
    return metrics


def _round_phases(config: RoundConfig, images: int) -> list[tuple[float, float]]:
    """The progress bar's spans of a round's two parts, by their cost: adapting the encoder (finetune rounds only)
    and the head round over the embeddings."""
    if config.mode != "finetune":
        return [(0.0, 0.0), (0.0, 1.0)]
    return phase_spans([training_cost(config.finetune) + images, HEAD_COST_PER_IMAGE * images])


def _adapt_encoder(project: Project, config: RoundConfig, model_id: str, image_ids: np.ndarray, zero_shot: Head,
                   teacher_probs: np.ndarray, human_rows: np.ndarray, human_labels: np.ndarray, excluded: np.ndarray,
                   round_number: int, folder: Path, report: Progress) -> AdaptedModel:
    """A finetune round's first part: the person's labels (weighted) and this round's pseudo-labels train the
    project's image encoder; the adapted model is saved to `folder` and embeds every image again."""
    report(0.0, "loading the model")
    base = load_model(project.model_spec)
    if base.model_id != model_id:
        raise LabelloopError(f"the project's model changed since its images were embedded; run `labelloop ingest "
                             f"{project.root}` first")
    pseudo_index, pseudo_label = choose_pseudo_labels(teacher_probs, excluded, round_number, config)
    labels = np.full(len(image_ids), -1)
    labels[pseudo_index], labels[human_rows] = pseudo_label, human_labels
    weights = np.ones(len(image_ids), np.float32)
    weights[human_rows] = config.human_weight
    prompts = class_prompts(project.store, model_id)[1]
    relpaths = project.store.relpaths()
    paths = [project.images_root / relpaths[image_id] for image_id in image_ids.tolist()]
    return adapt_encoder(base, prompts, paths, zero_shot, labels, weights, np.flatnonzero(~excluded), config.finetune,
                         folder=folder, seed=round_number, report=report)

