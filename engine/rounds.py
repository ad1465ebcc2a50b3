"""Self-training rounds: the person's labels and the teacher's confident predictions train a new linear head over
the cached embeddings; the teacher follows the students slowly; every image gets new predictions. `adapt` is the
algorithm over arrays; `run_round` adds the project's snapshot, checkpoint and one transaction of results around
it. A `finetune` round first adapts the image encoder itself (engine.finetune), embeds every image again under the
adapted model, and then does the same over the new embeddings.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from engine.calibration import expected_calibration_error, fit_temperature
from engine.errors import LabelloopError
from engine.finetune import AdaptedModel, adapt_encoder
from engine.head import Head, cache_logits, fit_head, zero_shot_head
from engine.jobs import Cancelled
from engine.labels import label_arrays
from engine.metrics import accuracy, class_counts, flip_share
from engine.models import load_model
from engine.project import Project
from engine.scoring import prediction_stats, softmax
from engine.selection import STRATEGIES, pseudo_labels_per_class, select_pseudo_labels

MODES = ("head", "finetune")
TEACHERS = ("head", "cache")
Progress = Callable[[float, str], None]


@dataclass
class RoundConfig:
    """Defaults chosen by `benchmarks/bench_selftrain.py` on the demo dataset (see the note in README)."""

    mode: str = "head"  # head: train over cached embeddings (CPU-fast); finetune: adapt the image encoder first
    teacher: str = "head"  # head: trained linear head; cache: training-free Tip-Adapter cache over the labels
    selection: str = "balanced"  # balanced: top-k per class (GRIP); threshold: every prediction >= threshold
    share_step: float = 0.2  # each round takes this much more of an even per-class split as pseudo-labels
    per_class_cap: int = 2000  # at most this many pseudo-labels per class, whatever the project's size
    threshold: float = 0.9  # only for selection="threshold"
    human_weight: float = 5.0  # one human label weighs as much as this many pseudo-labels
    l2_to_init: float = 1e-3  # pull of the head towards the zero-shot text weights
    wise_alpha: float = 1.0  # WiSE-FT: share of the trained student in its blend with zero-shot
    ema: float = 0.0  # teacher momentum: share of the previous teacher kept each round (0 = newest student)
    folds: int = 5  # cross-fitting folds for the accuracy on human labels
    crossfit_pseudo_per_class: int = 500  # pseudo-labels per class the cross-fitting students learn from
    min_human_for_calibration: int = 20  # fit a temperature once this many human labels exist
    cache_keys_per_class: int = 64  # cache teacher: labeled examples kept per class
    cache_alpha: float = 1.0  # cache teacher: weight of the cache logits
    cache_beta: float = 5.0  # cache teacher: sharpness of the cache affinities
    # finetune mode (engine/finetune.py), measured with benchmarks/bench_finetune.py (demo, 3 rounds, no labels; head
    # rounds reach 0.887): these defaults 0.993, without the consistency loss 0.991; at momentum 0.99: 1 block 0.977,
    # norms and pooling only 0.968, 1 block and 300 steps 0.986; at momentum 0.95: 1 block 0.983, 2 blocks 0.985
    finetune_steps: int = 150  # optimizer steps per round (about 30 s a round for the demo model on 2 CPU cores)
    finetune_batch_size: int = 64  # images per step, half labeled and half for consistency; halves on GPU OOM
    finetune_lr: float = 3e-4  # peak AdamW learning rate (linear warm-up over 5% of the steps, cosine decay)
    finetune_blocks: int = 4  # last residual blocks that train; norms and the pooling/projection always do
    finetune_momentum: float = 0.95  # EMA teacher: share of the teacher kept at each step
    finetune_threshold: float = 0.8  # FixMatch: teacher confidence on the weak view needed for a target
    finetune_consistency: float = 1.0  # weight of the consistency loss on unlabeled images
    finetune_workers: int | None = None  # decode processes; None: one per spare core on a GPU, none on a CPU

    def validate(self) -> "RoundConfig":
        for name, value, valid in (("mode", self.mode, MODES), ("teacher", self.teacher, TEACHERS),
                                   ("selection", self.selection, STRATEGIES)):
            if value not in valid:
                raise LabelloopError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
        for words, value in (("finetune steps", self.finetune_steps), ("finetune batch size",
                                                                         self.finetune_batch_size)):
            if value < 1:
                raise LabelloopError(f"{words} must be at least 1, got {value}")
        return self


class RoundCancelled(Exception):
    pass


@dataclass
class RoundOutput:
    teacher: Head
    temperature: float
    probs: np.ndarray  # (N, C) calibrated teacher probabilities for every image
    pseudo_index: np.ndarray  # (M,) rows chosen as pseudo-labels
    pseudo_label: np.ndarray  # (M,) their class columns
    metrics: dict


def adapt(embeddings: np.ndarray, zero_shot: Head, teacher: Head, teacher_probs: np.ndarray,
          human_index: np.ndarray, human_label: np.ndarray, excluded: np.ndarray, round_number: int,
          config: RoundConfig, *, progress: Progress | None = None) -> RoundOutput:
    """One self-training round over arrays.

    embeddings (N, D) unit vectors; zero_shot and teacher: heads over C classes (the teacher's weights feed its
    moving average); teacher_probs (N, C): the previous round's predictions, which pick the pseudo-labels;
    human_index (H,) rows with a human class label human_label (H,); excluded (N,) bool rows never
    pseudo-labeled (every human-labeled row, "none of these" included). round_number counts from 1.
    """
    report = progress or (lambda fraction, message: None)
    n, n_classes = len(embeddings), len(zero_shot.weight)
    report(0.05, "selecting pseudo-labels")
    eligible = ~excluded
    pseudo_index, pseudo_label = choose_pseudo_labels(teacher_probs, excluded, round_number, config)

    def student(train_human: np.ndarray, pseudo: np.ndarray) -> Head:
        rows = np.concatenate([human_index[train_human], pseudo_index[pseudo]])
        labels = np.concatenate([human_label[train_human], pseudo_label[pseudo]])
        weights = np.concatenate([np.full(int(train_human.sum()), config.human_weight), np.ones(int(pseudo.sum()))])
        fitted = fit_head(zero_shot, embeddings[rows], labels, weights, l2_to_init=config.l2_to_init)
        return fitted.blend(zero_shot, keep=config.wise_alpha)

    # Cross-fitting: each human label is scored by a student that never trained on it. These students only
    # score, so they learn from the surest `crossfit_pseudo_per_class` pseudo-labels of each class (cheaper).
    crossfit_pseudo = np.zeros(len(pseudo_index), bool)
    crossfit_pseudo[select_pseudo_labels(teacher_probs[pseudo_index], method="balanced",
                                         per_class=config.crossfit_pseudo_per_class)[0]] = True
    crossfit_logits = np.zeros((len(human_index), n_classes), np.float32)
    folds = min(config.folds, len(human_index))
    fold_of = np.random.default_rng(round_number).permutation(len(human_index)) % max(folds, 1)
    for fold in range(folds if folds >= 2 else 0):
        report(0.1 + 0.6 * fold / folds, f"cross-fitting fold {fold + 1}/{folds}")
        held_out = fold_of == fold
        crossfit_logits[held_out] = student(~held_out, crossfit_pseudo).logits(embeddings[human_index[held_out]])

    scored = folds >= 2
    temperature = 1.0
    if scored and len(human_index) >= config.min_human_for_calibration:
        temperature = fit_temperature(crossfit_logits, human_label)
    report(0.75, "training the student")
    if config.teacher == "cache":
        keys, key_labels = _cache_keys(embeddings, human_index, human_label, pseudo_index, pseudo_label,
                                       teacher_probs, config.cache_keys_per_class, n_classes)
        new_teacher = teacher
        logits = zero_shot.logits(embeddings) + config.cache_alpha * zero_shot.scale * cache_logits(
            embeddings, keys, key_labels, n_classes, beta=config.cache_beta)
    else:
        everything = student(np.ones(len(human_index), bool), np.ones(len(pseudo_index), bool))
        new_teacher = teacher.blend(everything, keep=config.ema)
        report(0.85, "predicting every image")
        logits = new_teacher.logits(embeddings)
    probs = softmax(logits / temperature)
    predicted = probs.argmax(axis=1)
    metrics = {
        "round": round_number,
        "images": n,
        "human_labels": int(len(human_index)),
        "pseudo_labels": int(len(pseudo_index)),
        "coverage": round(len(pseudo_index) / max(1, int(eligible.sum())), 4),
        "pseudo_per_class": class_counts(pseudo_label, n_classes),
        "flip_share": round(flip_share(teacher_probs.argmax(axis=1), predicted) or 0.0, 4),
        "human_accuracy_crossfit": (round(accuracy(crossfit_logits.argmax(axis=1), human_label), 4)
                                    if scored else None),
        "ece_crossfit": (round(expected_calibration_error(softmax(crossfit_logits / temperature), human_label), 4)
                         if scored else None),
        "temperature": round(temperature, 4),
        "mean_confidence": round(float(probs.max(axis=1).mean()), 4),
    }
    report(0.95, "writing predictions")
    return RoundOutput(new_teacher, temperature, probs, pseudo_index, pseudo_label, metrics)


def choose_pseudo_labels(teacher_probs: np.ndarray, excluded: np.ndarray, round_number: int,
                         config: RoundConfig) -> tuple[np.ndarray, np.ndarray]:
    """The round's pseudo-labels (rows (M,), classes (M,)) from the teacher's probabilities (N, C), never on
    `excluded` rows: config.selection with the growing per-class schedule of engine.selection."""
    eligible = ~excluded
    per_class = pseudo_labels_per_class(round_number, int(eligible.sum()), teacher_probs.shape[1],
                                        step=config.share_step, cap=config.per_class_cap)
    return select_pseudo_labels(teacher_probs, method=config.selection, eligible=eligible, per_class=per_class,
                                threshold=config.threshold)


def _cache_keys(embeddings, human_index, human_label, pseudo_index, pseudo_label, teacher_probs, per_class,
                n_classes) -> tuple[np.ndarray, np.ndarray]:
    """All human labels, plus each class's most confident pseudo-labels up to `per_class` keys."""
    rows, labels = [human_index], [human_label]
    for label in range(n_classes):
        members = pseudo_index[pseudo_label == label]
        order = np.argsort(-teacher_probs[members, label], kind="stable")[:per_class]
        rows.append(members[order])
        labels.append(np.full(len(order), label))
    rows, labels = np.concatenate(rows).astype(int), np.concatenate(labels).astype(int)
    return embeddings[rows], labels


# ---- the project around the algorithm ------------------------------------------------------------------------

def _checkpoint_path(project: Project, round_id: int) -> Path:
    return project.models_dir / f"round_{round_id:04d}.npz"


def _model_folder(project: Project, round_id: int) -> Path:
    """Where a `finetune` round keeps its adapted model (open_clip local-dir format, loadable with --model)."""
    return project.models_dir / f"round_{round_id:04d}"


def _remove_unfinished_checkpoints(project: Project, finished: set[int]) -> None:
    """A round killed before it finished leaves its checkpoint and adapted model folder behind; no finished round
    names them, so the next round deletes them."""
    for path in project.models_dir.glob("round_*"):
        number = re.fullmatch(r"round_(\d+)(\.npz)?", path.name)
        if number and int(number.group(1)) not in finished:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _load_teacher(project: Project, round_id: int, class_ids: list[int], zero_shot: Head) -> tuple[Head, float]:
    path = _checkpoint_path(project, round_id)
    if round_id == 0 or not path.is_file():
        return zero_shot, 1.0
    with np.load(path) as saved:
        if saved["class_ids"].tolist() != class_ids or saved["weight"].shape != zero_shot.weight.shape:
            return zero_shot, 1.0  # the classes changed since: start again from zero-shot
        return Head(saved["weight"], saved["bias"], float(saved["scale"])), float(saved["temperature"])


def run_round(project: Project, config: RoundConfig, *, progress: Progress | None = None,
              cancel: Callable[[], bool] | None = None) -> dict:
    """Run one round and write its results in one transaction; returns its metrics. Labels a person writes
    while it runs are kept: the round trains on the labels as they were when it started."""
    config.validate()
    store = project.store
    model_id = store.get_meta("model_id")
    saved = store.class_weights(model_id) if model_id else None
    if saved is None:
        raise LabelloopError(f"no embeddings yet; run `labelloop ingest {project.root}` first")
    class_ids, text_weights, scale = saved
    if class_ids != [c["id"] for c in store.classes()]:
        raise LabelloopError(f"the classes changed since the last zero-shot; run `labelloop ingest {project.root}`")
    started = time.monotonic()

    def report(fraction: float, message: str) -> None:
        if cancel and cancel():
            raise RoundCancelled()
        if progress:
            progress(fraction, message)

    report(0.0, "reading embeddings and labels")
    image_ids, embeddings = store.embeddings(model_id)
    labels, human = label_arrays(store, image_ids, class_ids)
    human_rows = np.flatnonzero(human & (labels >= 0))
    row_of = {image_id: row for row, image_id in enumerate(image_ids.tolist())}
    zero_shot = zero_shot_head(text_weights, scale)
    previous = store.last_finished_round()
    teacher, temperature = _load_teacher(project, previous, class_ids, zero_shot)
    teacher_probs = softmax(teacher.logits(embeddings) / temperature)
    stored = store.prediction_matrix(previous)
    if stored is not None and stored[1] == class_ids:  # the teacher's own word where it has one (cache teachers)
        rows = np.array([row_of.get(image_id, -1) for image_id in stored[0].tolist()])
        teacher_probs[rows[rows >= 0]] = stored[2][rows >= 0]
    finished = {r["id"] for r in store.rounds() if r["status"] == "done"}
    schedule_round = len(finished) + 1
    _remove_unfinished_checkpoints(project, finished)
    round_id = store.start_round(asdict(config))
    try:
        adapted, meta = None, None
        if config.mode == "finetune":
            adapted = _adapt_encoder(project, config, model_id, image_ids, zero_shot, teacher_probs, human_rows,
                                     labels[human_rows], human, schedule_round, _model_folder(project, round_id),
                                     report)
            model_id, embeddings = adapted.model.model_id, adapted.embeddings
            zero_shot = zero_shot_head(adapted.class_weights, adapted.model.logit_scale)
        output = adapt(embeddings, zero_shot, teacher, teacher_probs, human_rows, labels[human_rows], human,
                       schedule_round, config, progress=report if adapted is None else
                       lambda fraction, text: report(0.9 + 0.07 * fraction, text))
        output.metrics["seconds"] = round(time.monotonic() - started, 2)
        output.metrics["round_id"] = round_id  # the round's number in the project; "round" counts finished ones
        project.models_dir.mkdir(exist_ok=True)
        np.savez(_checkpoint_path(project, round_id), weight=output.teacher.weight, bias=output.teacher.bias,
                 scale=output.teacher.scale, temperature=output.temperature, class_ids=np.array(class_ids))
        report(0.97, "writing predictions")
        if adapted:
            spec = project.stored_model(adapted.model.spec)
            output.metrics["finetune"] = {**adapted.summary, "model": spec, "model_id": model_id}
            store.register_model(model_id, spec, adapted.model.dim)
            store.write_embeddings(model_id, image_ids, embeddings)
            store.save_class_weights(model_id, class_ids, adapted.class_weights, adapted.model.logit_scale)
            meta = {"model": spec, "model_id": model_id, "zeroshot_key": adapted.zeroshot_key}
        store.finish_round(round_id, model_id=model_id, image_ids=image_ids, class_ids=class_ids,
                           probs=output.probs, stats=prediction_stats(output.probs),
                           pseudo_ids=image_ids[output.pseudo_index],
                           pseudo_classes=np.asarray(class_ids)[output.pseudo_label], metrics=output.metrics,
                           meta=meta)
    except BaseException as error:
        shutil.rmtree(_model_folder(project, round_id), ignore_errors=True)  # an unfinished round's adapted model
        if isinstance(error, (RoundCancelled, Cancelled)):
            store.end_round(round_id, "cancelled")
        elif isinstance(error, KeyboardInterrupt):
            store.end_round(round_id, "interrupted")
        else:
            store.end_round(round_id, "failed", str(error) or type(error).__name__)
        raise
    return output.metrics


def _adapt_encoder(project: Project, config: RoundConfig, model_id: str, image_ids: np.ndarray, zero_shot: Head,
                   teacher_probs: np.ndarray, human_rows: np.ndarray, human_labels: np.ndarray, excluded: np.ndarray,
                   round_number: int, folder: Path, report: Progress) -> AdaptedModel:
    """A finetune round's first part: the person's labels (weighted) and this round's pseudo-labels train the
    project's image encoder; the adapted model is saved to `folder` and embeds every image again."""
    report(0.01, "loading the model")
    base = load_model(project.model_spec)
    if base.model_id != model_id:
        raise LabelloopError(f"the project's model changed since its images were embedded; run `labelloop ingest "
                             f"{project.root}` first")
    pseudo_index, pseudo_label = choose_pseudo_labels(teacher_probs, excluded, round_number, config)
    labels = np.full(len(image_ids), -1)
    labels[pseudo_index], labels[human_rows] = pseudo_label, human_labels
    weights = np.ones(len(image_ids), np.float32)
    weights[human_rows] = config.human_weight
    relpaths = project.store.relpaths()
    paths = [project.images_root / relpaths[image_id] for image_id in image_ids.tolist()]
    return adapt_encoder(base, project.store, paths, zero_shot, labels, weights, np.flatnonzero(~excluded), config,
                         folder=folder, seed=round_number, report=report)
