"""Zero-shot pseudo-labels: a prompt-ensemble text classifier over cached image embeddings (CLIP, Radford et al.,
"Learning Transferable Visual Models From Natural Language Supervision", section 3.1.4)."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from engine.learning.models import LoadedModel
from engine.learning.class_prompts import prompts_for
from engine.learning.probabilities import cosine_probs, prediction_stats
from engine.sources import Source
from engine.learning.tags import tag_stats, zero_shot_tag_probs
from storage import Store

ZERO_SHOT_ROUND = 0
_TEXT_BATCH = 256


def build_zero_shot_classifier(model: LoadedModel, prompts_per_class: list[list[str]]) -> np.ndarray:
    """One unit vector per class: the renormalised mean of the unit text embeddings of its prompts. (C, D)."""
    flat = [prompt for prompts in prompts_per_class for prompt in prompts]
    encoded = np.concatenate([model.encode_texts(flat[start:start + _TEXT_BATCH])
                              for start in range(0, len(flat), _TEXT_BATCH)])
    weights, start = [], 0
    for prompts in prompts_per_class:
        mean = encoded[start:start + len(prompts)].mean(axis=0)
        weights.append(mean / max(np.linalg.norm(mean), 1e-12))
        start += len(prompts)
    return np.stack(weights).astype(np.float32)


def class_prompts(store: Store, model_id: str) -> tuple[list[int], list[list[str]], str]:
    """(class ids, each class's prompts, a key naming the model, classes and prompts: it changes when any does)."""
    classes = store.classes()
    templates = store.get_meta("templates")
    class_ids = [c["id"] for c in classes]
    prompts = [prompts_for(c["name"], templates, c["prompts"]) for c in classes]
    return class_ids, prompts, hashlib.sha256(json.dumps([model_id, class_ids, prompts]).encode()).hexdigest()


def stale_classifier_prompts(store: Store, model_id: str) -> list[list[str]] | None:
    """Each class's prompts when the stored zero-shot classifier of `model_id` is out of date (new classes, prompts
    or model): what `build_zero_shot_classifier` must encode before `run_zero_shot`; None when it is current."""
    _, prompts, key = class_prompts(store, model_id)
    return prompts if store.get_meta("zeroshot_key") != key else None


def run_zero_shot(store: Store, model: LoadedModel, *, weights: np.ndarray | None = None) -> int:
    """Write round-0 predictions for every embedded image that lacks one, or for all of them when the classes,
    prompts or model changed since the last run (a multi-label project's: always all, per tag,
    `engine.learning.tags.zero_shot_tag_probs`). `weights`: the classifier of `stale_classifier_prompts`, built
    ahead (ingest builds it in its model thread before the images); built here when not given. Returns the number
    of images predicted."""
    class_ids, prompts, key = class_prompts(store, model.model_id)
    multi_label = store.is_multi_label()  # each tag is fitted over the whole collection: all are scored again
    replace_all = store.get_meta("zeroshot_key") != key or multi_label
    image_ids, vectors = store.embeddings(model.model_id)
    if replace_all:  # rounds start from these weights, so they are kept beside the predictions they made
        weights = build_zero_shot_classifier(model, prompts) if weights is None else weights
        store.save_class_weights(model.model_id, class_ids, weights, model.logit_scale)
    else:
        wanted = store.image_ids_without_prediction(ZERO_SHOT_ROUND)
        keep = np.fromiter((image_id in wanted for image_id in image_ids), bool, len(image_ids))
        image_ids, vectors = image_ids[keep], vectors[keep]
    if len(image_ids):
        class_ids, weights, scale = store.class_weights(model.model_id)
        if multi_label:
            probs = zero_shot_tag_probs(vectors, weights)
            stats = tag_stats(probs)
        else:
            probs = cosine_probs(vectors, weights, scale)
            stats = prediction_stats(probs)
        store.replace_predictions(round_id=ZERO_SHOT_ROUND, source=Source.ZEROSHOT, model_id=model.model_id,
                                  image_ids=image_ids, class_ids=class_ids, probs=probs, stats=stats,
                                  replace_all=replace_all)
    store.set_meta(zeroshot_key=key)
    return int(len(image_ids))
