"""A multi-label round's refinement over the kNN graph: each tag's probabilities spread as
engine.learning.selftrain.propagate spreads a class distribution. Pure functions over numpy arrays."""

from __future__ import annotations

import numpy as np

from engine.learning.selftrain.propagate import Affinity, propagate_scores


def refine_tags(affinity: Affinity, probs: np.ndarray, has: np.ndarray, looked: np.ndarray, *,
                alpha: float) -> np.ndarray:
    """Each tag's probabilities (N, C) refined over the kNN graph by label propagation (Zhou et al., "Learning with
    Local and Global Consistency", 2004), one tag at a time as the two-class distribution (has it, lacks it)
    (`propagate_scores`), the (image, tag) pairs a person looked at (`looked` (N, C)) held at their answer (`has`)."""
    probs, has, looked = np.asarray(probs, np.float32), np.asarray(has, bool), np.asarray(looked, bool)
    return np.stack([propagate_scores(affinity, probs[:, tag], np.flatnonzero(looked[:, tag]),
                                      has[looked[:, tag], tag].astype(np.float32), alpha=alpha)
                     for tag in range(probs.shape[1])], axis=1)

