"""The `head` student: a linear classifier over frozen image embeddings, started from the zero-shot text weights.

logits = scale * X @ W.T + b, with W (C, D) initialised to the class text embeddings and b = 0, so an untrained
head *is* zero-shot CLIP. Training pulls W towards the labels but keeps it near the text weights with an L2
penalty on W - W0 (L2-SP: Li et al., "Explicit Inductive Bias for Transfer Learning with Convolutional
Networks", 2018), which stops a few hundred noisy pseudo-labels from erasing what CLIP knew.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Head:
    weight: np.ndarray  # (C, D) float32
    bias: np.ndarray  # (C,) float32
    scale: float  # the model's logit scale; weights stay on the text embeddings' scale

    def logits(self, embeddings: np.ndarray, *, batch: int = 262144) -> np.ndarray:
        """(N, D) -> (N, C) float32, in chunks so a million rows never need a second copy in memory."""
        weight = self.scale * self.weight.T
        return np.concatenate([np.asarray(embeddings[i:i + batch], np.float32) @ weight + self.bias
                               for i in range(0, max(1, len(embeddings)), batch)])

    def blend(self, other: "Head", keep: float) -> "Head":
        """keep * self + (1 - keep) * other: WiSE-FT weight interpolation (Wortsman et al., "Robust Fine-Tuning
        of Zero-Shot Models", 2022) and the teacher's exponential moving average (Tarvainen & Valpola, "Mean
        Teachers Are Better Role Models", 2017) are both this."""
        return Head(weight=(keep * self.weight + (1 - keep) * other.weight).astype(np.float32),
                    bias=(keep * self.bias + (1 - keep) * other.bias).astype(np.float32), scale=self.scale)


def zero_shot_head(class_weights: np.ndarray, scale: float) -> Head:
    return Head(weight=np.asarray(class_weights, np.float32).copy(),
                bias=np.zeros(len(class_weights), np.float32), scale=float(scale))


@contextmanager
def _one_thread():
    """Torch on one thread while inside. L-BFGS does hundreds of small vector operations per fit, and with two
    threads each pays OpenMP's hand-over, which a busy machine makes slow: one fit of 42,000 x 512-d rows, 20 classes,
    30 steps took 14.5-17.3 s on two threads and 3.9-4.2 s on one (2 cores, load average 3.3)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def fit_head(init: Head, embeddings: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray, *,
             l2_to_init: float = 1.0, iterations: int = 100) -> Head:
    """Weighted cross-entropy plus `l2_to_init` * ||W - W0||^2, minimised with full-batch L-BFGS.
    embeddings (M, D), labels (M,) class indices, sample_weight (M,). Deterministic for the same inputs."""
    if len(labels) == 0:
        return init
    y = torch.from_numpy(np.asarray(labels, np.int64))
    w = torch.from_numpy(np.asarray(sample_weight, np.float32))
    w = w / w.sum()
    with _one_thread():
        return _fit(init, embeddings, lambda logits: (F.cross_entropy(logits, y, reduction="none") * w).sum(),
                    l2_to_init, iterations)


def fit_tag_head(init: Head, embeddings: np.ndarray, targets: np.ndarray, weight: np.ndarray, *,
                 l2_to_init: float = 1.0, iterations: int = 100) -> Head:
    """A multi-label head: one sigmoid per tag, trained by binary cross-entropy weighted per (image, tag) entry plus
    `l2_to_init` * ||W - W0||^2, full-batch L-BFGS. embeddings (M, D), targets (M, C) in [0, 1], weight (M, C): 0
    for a tag no one looked at and no pseudo-tag covers, so it is masked out of the loss."""
    if not np.any(weight):
        return init
    y = torch.from_numpy(np.asarray(targets, np.float32))
    w = torch.from_numpy(np.asarray(weight, np.float32))
    w = w / w.sum()
    with _one_thread():
        return _fit(init, embeddings,
                    lambda logits: (F.binary_cross_entropy_with_logits(logits, y, reduction="none") * w).sum(),
                    l2_to_init, iterations)


def _fit(init: Head, embeddings: np.ndarray, data_loss, l2_to_init: float, iterations: int) -> Head:
    """Minimise data_loss(logits) + `l2_to_init` * ||W - W0||^2 over the head's weight and bias (L-BFGS)."""
    x = torch.from_numpy(np.asarray(embeddings, np.float32))
    anchor = torch.from_numpy(init.weight)
    weight = anchor.clone().requires_grad_(True)
    bias = torch.from_numpy(init.bias.copy()).requires_grad_(True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=iterations, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-6, tolerance_change=1e-9)

    def closure():
        optimizer.zero_grad()
        loss = data_loss(init.scale * x @ weight.T + bias) + l2_to_init * (weight - anchor).pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return Head(weight=weight.detach().numpy().copy(), bias=bias.detach().numpy().copy(), scale=init.scale)


def cache_logits(embeddings: np.ndarray, keys: np.ndarray, key_labels: np.ndarray, n_classes: int, *,
                 beta: float = 5.0, batch: int = 65536) -> np.ndarray:
    """Training-free cache classifier (Tip-Adapter: Zhang et al., "Tip-Adapter: Training-free Adaption of CLIP
    for Few-shot Classification", 2022): each image votes for the labels of cached labeled images in proportion
    to exp(-beta * (1 - cosine)). embeddings (N, D), keys (K, D) unit vectors; returns (N, C) affinities."""
    values = np.eye(n_classes, dtype=np.float32)[np.asarray(key_labels, int)]
    keys = np.asarray(keys, np.float32)
    return np.concatenate([np.exp(-beta * (1.0 - np.asarray(embeddings[i:i + batch], np.float32) @ keys.T)) @ values
                           for i in range(0, max(1, len(embeddings)), batch)])
