"""What a round does, as one frozen value: `RoundConfig` nests the `finetune` and `cache` teachers' settings. Every
field is range-checked when the value is made, and the whole value is saved in the round's checkpoint beside the
model id it was made for (nanoGPT's habit).

Defaults are the ones `benchmarks/bench_selftrain.py` measured best: each keeps its one-line reason beside it, and
the measurements are in docs/experiments.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from engine.errors import LabelloopError
from engine.learning.selftrain.selection import STRATEGIES

MODES = ("head", "finetune")
TEACHERS = ("head", "cache")
REBALANCE = ("none", "ot")
OUTLIER_SCORES = ("mcm", "rmd")


def _check(owner: object, ranges: dict[str, tuple[float, float]], choices: dict[str, tuple[str, ...]]) -> None:
    """Every field of `owner` named in `ranges` lies in [low, high]; every one in `choices` is one of them."""
    for name, valid in choices.items():
        value = getattr(owner, name)
        if value not in valid:
            raise LabelloopError(f"unknown {name.replace('_', ' ')} {value!r}; valid: {', '.join(valid)}")
    for name, (low, high) in ranges.items():
        value = getattr(owner, name)
        if value is None and name == "workers":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
                or not low <= value <= high:
            raise LabelloopError(f"{type(owner).__name__}.{name} must be between {low} and {high}, got {value!r}")


@dataclass(frozen=True)
class FinetuneConfig:
    """`finetune` rounds (engine/learning/selftrain/finetune.py); the defaults measured best on the demo
    (docs/experiments.md#finetune)."""

    steps: int = 150  # optimizer steps per round (about 30 s a round for the demo model on 2 CPU cores)
    batch_size: int = 64  # images per step, half labeled and half for consistency; halves on GPU OOM
    lr: float = 3e-4  # peak AdamW learning rate (linear warm-up over 5% of the steps, cosine decay)
    blocks: int = 4  # last residual blocks that train; norms and the pooling/projection always do
    momentum: float = 0.95  # EMA teacher: share of the teacher kept at each step
    threshold: float = 0.8  # FixMatch: teacher confidence on the weak view needed for a target
    consistency: float = 1.0  # weight of the consistency loss on unlabeled images
    workers: int | None = None  # decode processes; None: one per spare core on a GPU, none on a CPU

    def __post_init__(self) -> None:
        _check(self, {"steps": (1, 1e6), "batch_size": (1, 65536), "lr": (1e-8, 1.0), "blocks": (0, 1000),
                      "momentum": (0.0, 1.0), "threshold": (0.0, 1.0), "consistency": (0.0, 100.0),
                      "workers": (0, 256)}, {})


@dataclass(frozen=True)
class CacheConfig:
    """The training-free `cache` teacher (Tip-Adapter)."""

    keys_per_class: int = 64  # labeled examples kept per class
    alpha: float = 1.0  # weight of the cache logits
    beta: float = 5.0  # sharpness of the cache affinities

    def __post_init__(self) -> None:
        _check(self, {"keys_per_class": (1, 1e6), "alpha": (0.0, 100.0), "beta": (0.0, 100.0)}, {})


@dataclass(frozen=True)
class RoundConfig:
    """One round's settings. Made once, never changed; `dataclasses.asdict` gives the JSON a round records."""

    mode: str = "head"  # head: train over cached embeddings (CPU-fast); finetune: adapt the image encoder first
    teacher: str = "head"  # head: trained linear head; cache: training-free Tip-Adapter cache over the labels
    selection: str = "balanced"  # balanced: top-k per class (GRIP); threshold: every prediction >= threshold
    # Each round takes this much more of each class's audited share (selection.prior_quotas over the class prior
    # of a random audit, engine.learning.quality_estimates.class_prior) as pseudo-labels; 0.1 to 0.3 measured within a
    # draw's noise of each other (docs/experiments.md#share_step).
    share_step: float = 0.2
    # The same without an audit (no class prior), of an even per-class split, in head rounds (finetune rounds keep
    # share_step: the encoder needs targets): 0 takes no pseudo-labels, the only rule within 0.01 of zero-shot on
    # every set; an audit gets the gains back (docs/experiments.md#share_step_without_prior).
    share_step_without_prior: float = 0.0
    per_class_cap: int = 2000  # at most this many pseudo-labels per class, whatever the project's size
    # selection="threshold"; and a multi-label round's pseudo-tags: a tag where the teacher is at least this sure
    # of it either way (engine.learning.tags.pseudo_tags)
    threshold: float = 0.9
    human_weight: float = 5.0  # one human label weighs as much as this many pseudo-labels
    l2_to_init: float = 1e-3  # pull of the head towards the zero-shot text weights
    # L-BFGS steps per head fit (the round's student and each cross-fitting student), most of a round's time at
    # scale: 30 costs about half of 100 and lost nothing measured (docs/experiments.md#head_iterations).
    head_iterations: int = 30
    # WiSE-FT: share of the trained student in its blend with zero-shot; lower shares pull towards zero-shot and
    # measured worse on two of three sets (docs/experiments.md#wise_alpha-and-ema).
    wise_alpha: float = 1.0
    # teacher momentum: share of the previous teacher kept each round (0 = newest student); 0.3 and 0.5 measured
    # worse on two of three sets (docs/experiments.md#wise_alpha-and-ema).
    ema: float = 0.0
    folds: int = 5  # cross-fitting folds: accuracy on human labels and their out-of-sample mistake scores
    crossfit_pseudo_per_class: int = 500  # pseudo-labels per class the cross-fitting students learn from
    min_human_for_calibration: int = 20  # fit a temperature once this many human labels exist
    # Transductive refinement (engine/learning/selftrain/propagate.py): the student's predictions spread over a kNN
    # graph of the collection with the person's labels clamped; the refined predictions are shown and pick the next
    # pseudo-labels. A wash on accuracy, kept on for the label-mistake scores it refines
    # (docs/experiments.md#refine-neighbours-and-propagation).
    refine: bool = True
    neighbours: int = 10  # k of the kNN graph; 20: 0.684 / 0.655 / 0.875
    propagation: float = 0.8  # alpha of label propagation (weight of the neighbours); 0.5: 0.660 / 0.662 / 0.888,
    # 0.9: 0.697 / 0.636 / 0.875
    # The same alpha in a multi-label round, each tag on its own (engine.learning.selftrain.tag_propagation);
    # bench_multilabel, 3 rounds with 2 % queue-picked tags before each, mAP / F1: 0.3: 0.496 / 0.395, 0.4: 0.518 /
    # 0.421, 0.5: 0.541 / 0.459, 0.6: 0.503 / 0.369, 0.8: 0.498 / 0.336; unrefined 0.484 / 0.421 (docs/benchmarks.md)
    tag_propagation: float = 0.5
    # Class-prior rebalancing of the teacher before pseudo-labels are picked (ot: OTTER's optimal transport to the
    # person's label shares); none measured ahead of ot, and of every other pseudo-label rule and label-free prior
    # tried (docs/experiments.md#rebalance-and-the-other-pseudo-label-rules-tried).
    rebalance: str = "none"
    # MCM's softmax temperature over cosine similarities (outlier score): 0.1 to 0.5 measured alike by AUROC, lower
    # worse (docs/experiments.md#outlier_temperature).
    outlier_temperature: float = 0.1
    # mcm: the score is 1 - MCM; rmd: MCM's values in the order of the relative Mahalanobis distance (Ren et al.,
    # 2021) to Gaussians of each class's surest predictions against one of the whole collection: 0.01-0.02 higher
    # AUROC than mcm (docs/experiments.md#outlier_score).
    outlier_score: str = "rmd"
    cache: CacheConfig = field(default_factory=CacheConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "RoundConfig":
        """Refuse a field out of range in one line (a LabelloopError); runs whenever a config is made."""
        _check(self, {"share_step": (1e-6, 1.0), "share_step_without_prior": (0.0, 1.0), "per_class_cap": (1, 1e9),
                      "threshold": (0.0, 1.0),
                      "human_weight": (0.0, 1e4), "l2_to_init": (0.0, 1e6), "head_iterations": (1, 10_000),
                      "wise_alpha": (0.0, 1.0), "ema": (0.0, 1.0), "folds": (0, 100),
                      "crossfit_pseudo_per_class": (1, 1e9), "min_human_for_calibration": (0, 1e9),
                      "neighbours": (1, 200), "propagation": (0.0, 0.999),
                      "tag_propagation": (0.0, 0.999), "outlier_temperature": (1e-4, 10.0)},
               {"mode": MODES, "teacher": TEACHERS, "selection": STRATEGIES, "rebalance": REBALANCE,
                "outlier_score": OUTLIER_SCORES})
        if not isinstance(self.refine, bool):
            raise LabelloopError(f"RoundConfig.refine must be true or false, got {self.refine!r}")
        if not isinstance(self.cache, CacheConfig) or not isinstance(self.finetune, FinetuneConfig):
            raise LabelloopError("RoundConfig.cache and .finetune must be a CacheConfig and a FinetuneConfig")
        return self

    @classmethod
    def from_dict(cls, values: dict) -> "RoundConfig":
        """The config `asdict` wrote (a checkpoint's); unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise LabelloopError(f"unknown round config fields: {', '.join(unknown)}")
        nested = {"cache": CacheConfig(**values.get("cache", {})),
                  "finetune": FinetuneConfig(**values.get("finetune", {}))}
        return cls(**{**values, **nested})

