"""Confidence calibration and its measurement. Pure functions over numpy arrays."""

from __future__ import annotations

import numpy as np


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", 2017): the T > 0 minimising
    the negative log-likelihood of `labels` (N,) under softmax(logits / T), logits (N, C). One parameter, so it
    cannot change which class is predicted, only how sure the prediction claims to be. Golden-section search on
    log T (the NLL is unimodal in it)."""
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels, int)
    if len(labels) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        scaled = logits / np.exp(log_t)
        scaled -= scaled.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(scaled).sum(axis=1))
        return float(np.mean(log_norm - scaled[np.arange(len(labels)), labels]))

    low, high = np.log(bounds[0]), np.log(bounds[1])
    ratio = (np.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    for _ in range(60):
        if nll(a) < nll(b):
            high, b = b, a
            a = high - ratio * (high - low)
        else:
            low, a = a, b
            b = low + ratio * (high - low)
    return float(np.exp((low + high) / 2))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, *, bins: int = 10) -> float:
    """ECE (Naeini et al., 2015): the confidence-weighted gap between stated confidence and accuracy, over equal-
    width confidence bins. 0 = perfectly calibrated; higher = confidence misleads more."""
    probs = np.asarray(probs)
    labels = np.asarray(labels, int)
    if len(labels) == 0:
        return float("nan")
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(gap)
