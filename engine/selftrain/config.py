"""What a round does, as one frozen value: `RoundConfig` nests the `finetune` and `cache` teachers' settings. Every
field is range-checked when the value is made, and the whole value is saved in the round's checkpoint beside the
model id it was made for (nanoGPT's habit).

Defaults are the ones `benchmarks/bench_selftrain.py` measured best; the comparison is beside each field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from engine.errors import LabelloopError
from engine.selftrain.selection import STRATEGIES

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
    """`finetune` rounds (engine/selftrain/finetune.py), measured with benchmarks/bench_finetune.py (demo, 3 rounds,
    no labels; head rounds reach 0.887): these defaults 0.993, without the consistency loss 0.991; at momentum
    0.99: 1 block 0.977, norms and pooling only 0.968, 1 block and 300 steps 0.986; at momentum 0.95: 1 block 0.983,
    2 blocks 0.985."""

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
    # of a random audit, engine.estimates.class_prior) as pseudo-labels. Measured with a 3 % audit labelled before
    # the first round (mean of 4 draws, 3 rounds; demo / inked_digits / shapes_and_digits / neon_shapes /
    # cloth_stamps, zero-shot 0.744 / 0.729 / 0.634 / 0.679 / 0.600): 0.2: 0.896 / 0.759 / 0.649 / 0.803 / 0.702;
    # 0.1: 0.892 / 0.754 / 0.643 / 0.793 / 0.708; 0.3: 0.902 / 0.757 / 0.648 / 0.805 / 0.710 (within a draw's
    # noise of 0.2); rebalance "ot" (the teacher moved to the audit prior before picking) 0.895 / 0.731 / 0.643 /
    # 0.796 / 0.698; refine off 0.885 / 0.744 / 0.640 / 0.789 / 0.688. The prior smoothed towards uniform by 1 or 3
    # imagined audited images per class (inked / shapes / neon / cloth): 0.761 / 0.656 / 0.802 / 0.702 and 0.763 /
    # 0.660 / 0.801 / 0.702 against 0.759 / 0.649 / 0.803 / 0.702 (balanced shapes_and_digits gains a point, the
    # long-tailed sets nothing): left out.
    share_step: float = 0.2
    # The same without an audit (no class prior), of an even per-class split, in head rounds (finetune rounds keep
    # share_step: the encoder needs targets, and they were measured with the even split only): 0, no pseudo-labels
    # at all (a round then trains on the person's labels alone and refines over the graph). The even split pads a long tail's rare
    # classes with the teacher's mistakes, and no label-free prior estimate fixes it (see `rebalance`). Measured
    # (3 rounds, no labels, refined; sets and zero-shot as above): 0: 0.753 / 0.745 / 0.631 / 0.684 / 0.590, the
    # only rule within 0.01 of zero-shot on every set; 0.03: 0.809 / 0.743 / 0.625 / 0.694 / 0.578; 0.05: 0.823 /
    # 0.744 / 0.626 / 0.689 / 0.559; 0.1: 0.840 / 0.733 / 0.631 / 0.678 / 0.555; 0.2 (the rule before audits):
    # 0.877 / 0.690 / 0.651 / 0.644 / 0.558. At 0.05 with the WiSE blend 0.5 or 0.3: 0.788 / 0.743 / 0.630 / 0.689 /
    # 0.580 and 0.777 / 0.743 / 0.631 / 0.687 / 0.586; each class's quota capped at 0.05 or 0.2 of the teacher's
    # predicted count of it: 0.779 / 0.742 / 0.625 / 0.689 / 0.572 and 0.819 / 0.721 / 0.626 / 0.637 / 0.546;
    # unrefined at 0.05 / 0.2: 0.816 / 0.730 / 0.637 / 0.678 / 0.575 and 0.886 / 0.659 / 0.671 / 0.650 / 0.540.
    # The cost is the demo's 0.877 (balanced, where the even split is right): an audit gets it back (0.896).
    share_step_without_prior: float = 0.0
    per_class_cap: int = 2000  # at most this many pseudo-labels per class, whatever the project's size
    threshold: float = 0.9  # only for selection="threshold"
    human_weight: float = 5.0  # one human label weighs as much as this many pseudo-labels
    l2_to_init: float = 1e-3  # pull of the head towards the zero-shot text weights
    # L-BFGS steps per head fit (the round's student and each cross-fitting student): the fits are most of a
    # round's time at scale. Measured: row-evaluations of the loss in one round at 100k x 512-d (20 classes, 100
    # labels) 5.37M at 100 steps, 2.92M at 30, 1.58M at 15, accuracy 0.586 for all three; on the sets (3 rounds,
    # no labels; demo / inked_digits / shapes_and_digits) 100: 0.877 / 0.680 / 0.653, 30: 0.877 / 0.680 / 0.656,
    # 15: 0.877 / 0.652 / 0.657; planted mistakes found 100: 1.00 / 0.70 / 0.75, 30: 1.00 / 0.65 / 0.70, 15: 1.00 /
    # 0.80 / 0.60 (one planted label in 20 is 0.05). Starting the student from the previous teacher saved nothing
    # (3.01M against 2.92M row-evaluations at 30 steps).
    head_iterations: int = 30
    # WiSE-FT: share of the trained student in its blend with zero-shot. Measured (3 rounds, no labels; inked_digits
    # / shapes_and_digits / demo, against 0.680 / 0.656 / 0.877): 0.7: 0.703 / 0.647 / 0.847, 0.5: 0.714 / 0.639 /
    # 0.824; with ema 0.5 as well 0.719 / 0.636 / 0.823 (each moves towards zero-shot, 0.727 / 0.630 / 0.744).
    wise_alpha: float = 1.0
    # teacher momentum: share of the previous teacher kept each round (0 = newest student). 0.3: 0.696 / 0.646 /
    # 0.863, 0.5: 0.703 / 0.638 / 0.846.
    ema: float = 0.0
    folds: int = 5  # cross-fitting folds: accuracy on human labels and their out-of-sample mistake scores
    crossfit_pseudo_per_class: int = 500  # pseudo-labels per class the cross-fitting students learn from
    min_human_for_calibration: int = 20  # fit a temperature once this many human labels exist
    # Transductive refinement (engine/selftrain/propagate.py): the student's predictions spread over a kNN graph of
    # the collection with the person's labels clamped; the refined predictions are shown and pick the next
    # pseudo-labels. See the README's table for with/without.
    # Measured (3 rounds, no labels; inked_digits / shapes_and_digits / demo): on 0.680 / 0.653 / 0.877, off 0.655 /
    # 0.671 / 0.887 (a wash on average: these sets' kNN neighbourhoods agree with the truth no more often than
    # zero-shot does); kept on for the label-mistake scores it refines: planted mistakes found 1.00 on the demo
    # against 0.95 with unrefined out-of-sample scores (0.70 and 0.75 either way on the other two sets).
    # A transductive Gaussian mixture in place of label propagation (TransCLIP's manner, Zanella et al., NeurIPS
    # 2024: class means, a shared diagonal covariance and class proportions by EM, started from and pulled towards
    # the student's predictions) settles on the same clusters whatever the start: 0.711 / 0.631 / 0.847; after
    # label propagation 0.713 / 0.629 / 0.847; with the likelihood at temperature 10 0.698 / 0.643 / 0.859. On
    # zero-shot alone it gives 0.715 / 0.633 / 0.841 (zero-shot 0.727 / 0.630 / 0.744). The kNN graph over the
    # embeddings projected on the span of the class text weights (neighbours then share the class 0.718 / 0.621 /
    # 0.904 of the time, against 0.719 / 0.577 / 0.885): 0.677 / 0.665 / 0.877.
    refine: bool = True
    neighbours: int = 10  # k of the kNN graph; 20: 0.684 / 0.655 / 0.875
    propagation: float = 0.8  # alpha of label propagation (weight of the neighbours); 0.5: 0.660 / 0.662 / 0.888,
    # 0.9: 0.697 / 0.636 / 0.875
    # Class-prior rebalancing of the teacher before pseudo-labels are picked (OTTER: optimal transport to the
    # person's label shares smoothed towards uniform), against the plain per-class top-k: "ot" 0.653 / 0.654 / 0.878.
    # selection="threshold" instead of balanced: 0.766 / 0.595 / 0.747. Per-class quotas of the growing share in
    # proportion to a class prior, against the even split (0.680 / 0.656 / 0.877): the true prior (an oracle)
    # 0.771 / 0.654 / 0.876; label-free estimates from the teacher: its predicted-class shares 0.715 / 0.598 /
    # 0.801, its mean probabilities 0.712 / 0.604 / 0.820, Saerens et al.'s EM ("Adjusting the outputs of a
    # classifier to new a priori probabilities", 2002) 0.689 / 0.388 / 0.760, the square root of the predicted
    # shares 0.704 / 0.625 / 0.855, the predicted shares capped at the even split 0.709 / 0.617 / 0.819 (each
    # estimate is 0.3 or more in L1 from the true prior on some set: without labels the teacher's bias cannot be
    # told from the collection's imbalance). The student's logits moved to Saerens' EM prior: 0.688 / 0.635 /
    # 0.871. Leaving the 10 % or 20 % least class-like images (1 - MCM) out of the pseudo-labels: 0.680 / 0.649 /
    # 0.867 and 0.711 / 0.640 / 0.879. share_step 0.1: 0.728 / 0.629 / 0.840; 0.05: 0.742 / 0.628 / 0.823. Class-wise
    # thresholds instead of quotas: FreeMatch's self-adaptive ones (Wang et al., ICLR 2023) 0.708 / 0.643 / 0.818,
    # FlexMatch's at 0.9 (Zhang et al., NeurIPS 2021) 0.665 / 0.628 / 0.786.
    # Also measured, in brackets the same recipes of inked_digits / shapes_and_digits rendered with another seed
    # (0.647 / 0.683 as is): soft-label self-distillation (the student learns the refined teacher's distribution over
    # every image, weighted by its top probability) 0.755 / 0.617 / 0.754, sharpened at temperature 0.5 0.755 /
    # 0.622 / 0.767; hard top-k labels plus soft ones elsewhere at weight 1, 0.3, 0.1: 0.739 / 0.640 / 0.801, 0.733
    # / 0.643 / 0.802, 0.725 / 0.645 / 0.809. OT to the even split (OTTER) as the targets for every image instead of
    # quotas: soft 0.689 / 0.654 / 0.890 (0.680 / 0.688), hard (its argmax) 0.642 / 0.666 / 0.926 (0.631 / 0.698),
    # soft to the true prior (an oracle) 0.783 / 0.657 / 0.891 (0.791 / 0.685); with 2 % reviews a round the soft
    # targets collapse on shapes_and_digits (queue 0.597 against random 0.673: a temperature fitted on 30 hard labels
    # flattens them), and OT to the person's label shares does worse (0.556: the queue's picks are no random sample).
    # Unbalanced OT (the class marginal only pulled towards the even split by a KL term, Chizat et al., "Scaling
    # algorithms for unbalanced optimal transport problems", 2018), soft, pull 0.3 / 1 / 3: 0.746 / 0.631 / 0.786,
    # 0.724 / 0.648 / 0.839, 0.697 / 0.652 / 0.878. Priors from the collection's structure, as L1 distances to the
    # true prior (the teacher's predicted shares: 0.31 / 0.39 / 0.42): k-means with 2, 4 or 8 clusters per class,
    # each cluster to the class its mean probability favours, 0.25-0.36 / 0.47-0.55 / 0.39-0.52; one cluster per
    # class matched one-to-one (Hungarian) 0.39 / 0.32 / 0.25, hard OT to it 0.716 / 0.641 / 0.845 (0.693 / 0.681);
    # a Gaussian mixture's proportions by EM with means from each class's surest 20 % and a shared shrunk covariance
    # 0.34 / 0.43 / 0.25; Saerens' EM on a student trained on OT-balanced targets returns the even split (0.59 on
    # inked_digits); after a first round as now, 0.42 / 1.18 / 0.49 by the third (accuracy 0.699 / 0.333 / 0.732).
    # The prior as a fixed point of zero-shot moved to it by OT then propagated over the graph (8 steps from the even
    # split): predicted shares 0.26 / 0.53 / 0.28 (zero-shot moved to it: 0.761 / 0.624 / 0.825), mean
    # probabilities 0.56 / 0.11 / 0.05 (0.637 / 0.666 / 0.901): the graph drags it to one set's truth, not both.
    # Zero-shot with the collection's mean embedding as the content-free input of contextual calibration (Zhao et
    # al., "Calibrate Before Use", ICML 2021: each class's logit less that of the mean image, the same argmax as
    # centring the embeddings) lifts zero-shot itself to 0.720 / 0.666 / 0.823 (0.706 / 0.693; from 0.727 / 0.630 /
    # 0.744 and 0.690 / 0.675), but 3 rounds end where they do without it: 0.681 / 0.655 / 0.877 (0.650 / 0.683).
    # The head without a bias 0.681 / 0.659 / 0.876 (0.647 / 0.683); pseudo-labels picked from the unrefined
    # student 0.678 / 0.660 / 0.883 (0.633 / 0.687).
    rebalance: str = "none"
    # MCM's softmax temperature over cosine similarities (outlier score); AUROC on shapes_and_digits' images of no
    # class, zero-shot then refined: 0.01: 0.741 / 0.786, 0.05: 0.776 / 0.826, 0.1: 0.792 / 0.829, 0.5: 0.796 / 0.827
    # Tried on top (AUROC 0.829 with the graph): the kNN distance (Sun et al., "Out-of-distribution detection with
    # deep nearest neighbors", ICML 2022: mean cosine to the 10 nearest) alone 0.706, summed with MCM as z-scores
    # then refined 0.842 (within one set's noise); MCM over the trained head's weights 0.791 unrefined; the
    # likelihood of a transductive Gaussian mixture 0.72 to 0.74.
    outlier_temperature: float = 0.1
    # mcm: the score is 1 - MCM; rmd: MCM's values in the order of the relative Mahalanobis distance (Ren et al.,
    # "A Simple Fix to Mahalanobis Distance for Improving Near-OOD Detection", 2021) to Gaussians of each class's
    # surest predictions against one of the whole collection. AUROC after 3 rounds (refined; shapes_and_digits, and
    # in brackets the same recipe rendered with another seed, never tuned on): mcm 0.829 (0.845), rmd 0.851 (0.852).
    # Class members as many as a round's pseudo-labels at share 0.1 / 0.2 / 0.4: 0.847 / 0.851 / 0.835 (0.843 /
    # 0.852 / 0.842); per-class covariances 0.839 (0.858); ranks summed with MCM's 0.842 (0.850) or with the kNN
    # distance's 0.848 (0.836). rmd costs 12 s a round at 1,000,000 x 512-d, 20 classes (2 cores).
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
                      "neighbours": (1, 200), "propagation": (0.0, 0.999), "outlier_temperature": (1e-4, 10.0)},
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

