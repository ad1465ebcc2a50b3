"""Turning scores into probabilities and per-image prediction statistics. Pure functions over numpy arrays."""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits; stable for large values. Rows sum to one."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def cosine_probs(embeddings: np.ndarray, class_weights: np.ndarray, logit_scale: float) -> np.ndarray:
    """CLIP's zero-shot rule: softmax(scale * cos(image, class)). embeddings (N, D) and class_weights (C, D) are
    unit vectors; returns (N, C) probabilities."""
    return softmax(logit_scale * (np.asarray(embeddings, np.float32) @ np.asarray(class_weights, np.float32).T))


def prediction_stats(probs: np.ndarray) -> dict[str, np.ndarray]:
    """Per row of (N, C) probabilities: `label` (argmax index), `confidence` (top probability), `margin` (top
    minus runner-up; lower = less sure) and `entropy` (nats; higher = less sure)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 1:
        raise ValueError(f"probs must have shape (N, C) with C >= 1, got {probs.shape}")
    label = probs.argmax(axis=1)
    top_two = -np.sort(-probs, axis=1)[:, :2]
    confidence = top_two[:, 0]
    margin = confidence - (top_two[:, 1] if probs.shape[1] > 1 else 0.0)
    entropy = -(probs * np.log(np.clip(probs, 1e-12, None))).sum(axis=1)
    return {"label": label, "confidence": confidence, "margin": margin, "entropy": entropy}


def embedding_fidelity(reference: np.ndarray, candidate: np.ndarray, class_weights: np.ndarray) -> dict[str, float]:
    """How far a faster encoding (`candidate`, e.g. bfloat16) keeps the `reference` (float32) unit embeddings of the
    same images, (N, D) each: the smallest and mean cosine of an image's two vectors, and the share of images whose
    zero-shot class (the nearest of `class_weights`, (C, D) unit vectors) is the same."""
    cosines = np.sum(reference * candidate, axis=1)
    same_class = (reference @ class_weights.T).argmax(1) == (candidate @ class_weights.T).argmax(1)
    return {"min_cosine": float(cosines.min()), "mean_cosine": float(cosines.mean()),
            "zero_shot_agreement": float(same_class.mean())}
