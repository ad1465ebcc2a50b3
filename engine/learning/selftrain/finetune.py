"""`finetune` rounds: adapt the image encoder itself to the project's images, then embed every image again.

A `head` round only moves a classifier over frozen embeddings; when the images are far from what CLIP saw, the gain
that remains is in the encoder. Here the student is the image tower with its last residual blocks, every
normalisation layer's affine parameters and its pooling / projection trainable (partial fine-tuning: the stem and
early blocks of a deep tower keep their general features). It classifies through the frozen zero-shot text
weights, so its embeddings stay in the text tower's space and the zero-shot classifier keeps working on them; a
fixed good head also keeps fine-tuning from distorting the features (Kumar et al., "Fine-Tuning can Distort
Pretrained Features and Underperform Out-of-Distribution", 2022). Each step half the batch comes from the round's
labeled rows (a person's labels, weighted, and the class-balanced pseudo-labels) seen under strong augmentation,
half from all unlabeled images under FixMatch consistency: the teacher's confident prediction on a weak view is
the student's target on a strong view (Sohn et al., "FixMatch", 2020). The teacher is an exponential moving
average of the student (Tarvainen & Valpola, "Mean Teachers Are Better Role Models", 2017) and is what the round
keeps.

On a GPU the forward passes run in bf16 (fp16 with loss scaling where bf16 is missing) and images are decoded in
spawned worker processes; a CUDA out-of-memory error halves the batch and carries on.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import VisionTransformer
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from engine.errors import LabelloopError
from engine.files.images import ImageReadError, default_workers, model_picture, quiet_worker, read_image
from engine.learning.models import LoadedModel, load_model, save_model_folder
from engine.jobs.progress import phase_spans, within
from engine.learning.selftrain.config import FinetuneConfig
from engine.learning.selftrain.head import Head
from engine.learning.zeroshot import build_zero_shot_classifier

Progress = Callable[[float, str], None]
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


# ---- pure pieces ------------------------------------------------------------------------------------------------

def trainable_parameters(visual: nn.Module, blocks: int) -> list[nn.Parameter]:
    """Freeze an open_clip image tower except its last `blocks` residual blocks, every normalisation layer and what
    follows the blocks (ResNet: attention pooling; ViT: final norm, pooling, projection). Returns the trainable
    parameters. Works for open_clip's ModifiedResNet and VisionTransformer towers."""
    if isinstance(visual, ModifiedResNet):
        residual = [block for stage in (visual.layer1, visual.layer2, visual.layer3, visual.layer4) for block in stage]
        stem = [visual.conv1, visual.bn1, visual.conv2, visual.bn2, visual.conv3, visual.bn3]
        stem_parameters = [p for module in stem for p in module.parameters()]
    elif isinstance(visual, VisionTransformer):
        residual = list(visual.transformer.resblocks)
        stem_parameters = [visual.class_embedding, visual.positional_embedding, *visual.conv1.parameters(),
                           *visual.ln_pre.parameters()]
    else:
        raise LabelloopError(f"finetune rounds adapt open_clip ResNet and ViT image towers; this model's is a "
                             f"{type(visual).__name__}: use --mode head")
    frozen = {id(p) for p in stem_parameters}
    frozen |= {id(p) for block in residual[:max(0, len(residual) - blocks)] for p in block.parameters()}
    frozen -= {id(p) for module in visual.modules() if isinstance(module, _NORMS) for p in module.parameters()}
    for parameter in visual.parameters():
        parameter.requires_grad_(id(parameter) not in frozen)
    return [p for p in visual.parameters() if p.requires_grad]


def self_training_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                       weights: torch.Tensor, *, threshold: float,
                       unlabeled_weight: float) -> tuple[torch.Tensor, float]:
    """The student's loss on one batch. student_logits (B, C) on strong views, teacher_logits (B, C) on weak views,
    labels (B,) a class index for labeled rows (a person's label or a pseudo-label) and -1 for unlabeled ones,
    weights (B,) per row (0 drops a row).

    Labeled rows: weighted cross-entropy against their label. Unlabeled rows: FixMatch consistency, cross-entropy
    against the teacher's prediction where the teacher's top probability is at least `threshold`, averaged over
    all unlabeled rows. Returns (labeled + unlabeled_weight * consistency, share of unlabeled rows used)."""
    losses = F.cross_entropy(student_logits.float(), labels.clamp(min=0), reduction="none")
    labeled = labels >= 0
    labeled_weight = weights * labeled
    loss = (losses * labeled_weight).sum() / labeled_weight.sum().clamp(min=1e-6)
    unlabeled = ~labeled
    if not unlabeled.any():
        return loss, 0.0
    confidence, target = teacher_logits.float().softmax(dim=1).max(dim=1)
    sure = unlabeled & (confidence >= threshold) & (weights > 0)
    consistency = F.cross_entropy(student_logits.float(), target, reduction="none")
    loss = loss + unlabeled_weight * (consistency * sure).sum() / unlabeled.sum()
    return loss, float(sure.sum() / unlabeled.sum())


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """teacher <- momentum * teacher + (1 - momentum) * student, for the student's trainable parameters (Mean
    Teacher)."""
    for kept, moving in zip(teacher.parameters(), student.parameters()):
        if moving.requires_grad:
            kept.lerp_(moving.detach(), 1.0 - momentum)


def learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up to `peak`, then cosine decay to zero at `steps`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))


def halve_on_oom(work: Callable[[int], None], batch_size: int) -> int:
    """Call work(batch_size); when CUDA runs out of memory, halve the batch and call it again (work resumes where it
    stopped: its progress lives in its own state). Returns the batch size that finished."""
    while True:
        try:
            work(batch_size)
            return batch_size
        except torch.cuda.OutOfMemoryError:
            if batch_size <= 1:
                raise LabelloopError("the GPU ran out of memory even with a batch of 1; free it (other processes?) "
                                     "or set LABELLOOP_DEVICE=cpu") from None
        batch_size //= 2  # outside the except block, so the failed step's tensors are already released
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _flip_and_shift(image_size: int) -> list[Callable]:
    """A horizontal flip and a shift of up to an eighth of the side (reflected border): FixMatch's weak view."""
    return [transforms.RandomHorizontalFlip(),
            transforms.RandomCrop(image_size, padding=image_size // 8, padding_mode="reflect")]


def weak_augmentation(image_size: int, preprocess: Callable) -> Callable:
    """FixMatch's weak view, then the model's preprocessing."""
    return transforms.Compose([*_flip_and_shift(image_size), preprocess])


def strong_augmentation(image_size: int, preprocess: Callable) -> Callable:
    """FixMatch's strong view: the weak one, then RandAugment (two random operations at magnitude 10; Cubuk et
    al., 2020), the model's preprocessing and a random erased patch (Cutout)."""
    return transforms.Compose([*_flip_and_shift(image_size), transforms.RandAugment(num_ops=2, magnitude=10),
                               preprocess, transforms.RandomErasing(p=1.0, scale=(0.02, 0.15), value=0)])


# ---- images --------------------------------------------------------------------------------------------------

class ImageViews(Dataset):
    """Item i: (one tensor per transform of image i, i, whether it could be read). Decoding is ingest's
    (engine.files.images); a file that can no longer be read gives zero tensors and False instead of stopping the
    work."""

    def __init__(self, paths: list[Path], image_size: int, views: tuple[Callable, ...]):
        self.paths, self.image_size, self.views = paths, image_size, views

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[tuple[torch.Tensor, ...], int, bool]:
        try:
            picture = model_picture(read_image(self.paths[index]).pixels, self.image_size)
        except (ImageReadError, OSError):
            blank = torch.zeros(3, self.image_size, self.image_size)
            return tuple(blank for _ in self.views), index, False
        return tuple(view(picture) for view in self.views), index, True


def _loader(dataset: Dataset, device: torch.device, workers: int, seed: int, **batching) -> DataLoader:
    """Spawned decode workers, as in ingest (a fork of a process whose OpenMP pool already ran can deadlock)."""
    return DataLoader(dataset, num_workers=workers, worker_init_fn=quiet_worker if workers else None,
                      multiprocessing_context="spawn" if workers else None, pin_memory=device.type == "cuda",
                      generator=torch.Generator().manual_seed(seed), **batching)


def _workers(config: FinetuneConfig, device: torch.device) -> int:
    if config.workers is not None:
        return config.workers
    return default_workers() if device.type == "cuda" else 0


def _precision(device: torch.device) -> tuple[Callable, torch.amp.GradScaler]:
    """(autocast context factory, gradient scaler): bf16 on GPUs that have it, else fp16 with loss scaling; full
    precision elsewhere."""
    if device.type != "cuda":
        return nullcontext, torch.amp.GradScaler("cpu", enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return (lambda: torch.autocast("cuda", dtype=dtype)), torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)


# ---- training ------------------------------------------------------------------------------------------------

def _batches(labeled: np.ndarray, unlabeled: np.ndarray, batch_size: int, steps: int,
             rng: np.random.Generator) -> tuple[list[np.ndarray], int]:
    """Row indices of `steps` batches: the first `per_batch` of each from `labeled` (epoch after epoch, reshuffled),
    the rest drawn from `unlabeled`. Returns (batches, per_batch)."""
    per_batch = batch_size if len(unlabeled) == 0 else max(1, (batch_size + 1) // 2)
    needed = steps * per_batch
    order = np.concatenate([rng.permutation(labeled) for _ in range(-(-needed // len(labeled)))])[:needed]
    batches = []
    for step in range(steps):
        rows = order[step * per_batch:(step + 1) * per_batch]
        if len(unlabeled):
            rows = np.concatenate([rows, rng.choice(unlabeled, batch_size - per_batch, replace=True)])
        batches.append(rows)
    return batches, per_batch


def train_encoder(model: LoadedModel, paths: list[Path], classifier: Head, labels: np.ndarray,
                  weights: np.ndarray, unlabeled: np.ndarray, config: FinetuneConfig, *, seed: int,
                  report: Progress) -> dict:
    """Adapt `model`'s image tower in place; on return it holds the EMA teacher's weights.

    paths (N,) image files; labels (N,) class index of each labeled row (-1 elsewhere) with weights (N,);
    unlabeled (U,) rows for the consistency loss; classifier: the frozen zero-shot head. Returns a summary."""
    device, student = model.device, model.model.visual
    labeled = np.flatnonzero(labels >= 0)
    if len(labeled) == 0:
        raise LabelloopError("nothing to fine-tune on: no labels and no pseudo-labels; run a zero-shot ingest first")
    trainable = trainable_parameters(student, config.blocks)
    teacher = copy.deepcopy(student).eval()
    student.train()
    for module in student.modules():  # batch statistics stay those of pre-training: strong views would skew them
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    weight = torch.from_numpy(classifier.weight).to(device)
    bias = torch.from_numpy(classifier.bias).to(device)
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)
    autocast, scaler = _precision(device)
    views = (weak_augmentation(model.image_size, model.preprocess),
             strong_augmentation(model.image_size, model.preprocess))
    dataset = ImageViews(paths, model.image_size, views)
    row_labels, row_weights = torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(weights.astype(np.float32))
    rng = np.random.default_rng(seed)
    steps, warmup = config.steps, max(1, config.steps // 20)
    state = {"step": 0, "loss": float("nan"), "said": ""}

    def logits(tower: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return classifier.scale * F.normalize(tower(images), dim=-1) @ weight.T + bias

    def train(batch_size: int) -> None:
        batches, per_batch = _batches(labeled, unlabeled, batch_size, steps - state["step"], rng)
        epochs = -(-steps * per_batch // len(labeled))
        for (weak, strong), rows, readable in _loader(dataset, device, _workers(config, device),
                                                      seed + state["step"], batch_sampler=batches):
            step = state["step"]
            epoch = step * per_batch // len(labeled) + 1
            report(step / steps, f"epoch {epoch}/{epochs}, step {step + 1}/{steps}{state['said']}")
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, steps, config.lr, warmup)
            batch_labels = row_labels[rows].clone()
            batch_labels[per_batch:] = -1  # the second part of a batch is the consistency part, whatever its row
            weak = weak.to(device, non_blocking=True)
            strong = strong.to(device, non_blocking=True)
            with torch.no_grad(), autocast():
                teacher_logits = logits(teacher, weak)
            with autocast():
                student_logits = logits(student, strong)
            loss, used = self_training_loss(student_logits, teacher_logits, batch_labels.to(device),
                                            (row_weights[rows] * readable).to(device),
                                            threshold=config.threshold,
                                            unlabeled_weight=config.consistency)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            ema_update(teacher, student, config.momentum)
            value = loss.item()
            state.update(step=step + 1, loss=value, said=f", loss {value:.3f}, teacher sure of {used:.0%}")

    started = time.monotonic()
    batch_size = halve_on_oom(train, config.batch_size)
    student.load_state_dict(teacher.state_dict())
    student.eval()
    return {"steps": steps, "batch_size": batch_size, "final_loss": round(state["loss"], 4),
            "trainable_parameters": sum(p.numel() for p in trainable), "device": str(device),
            "train_seconds": round(time.monotonic() - started, 2)}


def embed_images(model: LoadedModel, paths: list[Path], config: FinetuneConfig, *, report: Progress) -> np.ndarray:
    """(N, D) unit vectors of `paths` under `model`, as ingest computes them. Raises LabelloopError naming a file
    that can no longer be read."""
    dataset = ImageViews(paths, model.image_size, (model.preprocess,))
    vectors: list[np.ndarray] = []

    def embed(batch_size: int) -> None:
        done = sum(len(v) for v in vectors)
        batches = [np.arange(start, min(start + batch_size, len(paths))) for start in range(done, len(paths),
                                                                                              batch_size)]
        for (images,), rows, readable in _loader(dataset, model.device, _workers(config, model.device), 0,
                                                 batch_sampler=batches):
            if not readable.all():
                path = paths[int(rows[~readable][0])]
                raise LabelloopError(f"{path} can no longer be read; run `labelloop ingest` to update the "
                                     "project, then run the round again")
            vectors.append(model.encode_images(images))
            report((int(rows[-1]) + 1) / len(paths), f"embedding {int(rows[-1]) + 1}/{len(paths)}")

    halve_on_oom(embed, 2 * config.batch_size)
    return np.concatenate(vectors) if vectors else np.zeros((0, model.dim), np.float32)


# ---- the round -----------------------------------------------------------------------------------------------

# What a training step costs per image of its batch, counted in what embedding one image costs: two augmented
# views decoded, the teacher's forward pass on one, the student's forward and backward passes on the other.
# Measured on the demo (2 shared CPU cores, load average 9): 12 steps of 64 images in 105 s, 0.137 s an image;
# embedding 0.0175 s an image (1,372 in 24 s); so 7.8. The training and the embedding share a finetune round's
# progress bar by it, so the pace measured during training holds for the embedding (fixed shares, 75 % and 10 %,
# ignored the number of steps and images).
TRAIN_COST_PER_IMAGE = 7.5


def training_cost(config: FinetuneConfig) -> float:
    """A finetune round's training in embedded-image equivalents (see TRAIN_COST_PER_IMAGE)."""
    return config.steps * config.batch_size * TRAIN_COST_PER_IMAGE


@dataclass
class AdaptedModel:
    model: LoadedModel  # the adapted model, loaded back from its folder (exactly what --model FOLDER loads)
    embeddings: np.ndarray  # (N, D) unit vectors of the round's images under it
    class_weights: np.ndarray  # (C, D) its zero-shot classifier (the text tower did not change)
    summary: dict  # what the training did: steps, batch size, trainable parameters, device, seconds


def adapt_encoder(base: LoadedModel, prompts: list[list[str]], paths: list[Path], classifier: Head,
                  labels: np.ndarray, weights: np.ndarray, unlabeled: np.ndarray, config: FinetuneConfig, *,
                  folder: Path, seed: int, report: Progress) -> AdaptedModel:
    """Train `base`'s image tower (see train_encoder), save the whole model to `folder` (open_clip's local-dir
    format), load it back from there, embed every image of `paths` with it and build its zero-shot classifier
    from `prompts` (one list per class)."""
    train_span, embed_span = phase_spans([training_cost(config), len(paths)])
    devices = [torch.cuda.current_device()] if base.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # seeded, without touching the process's random state
        torch.manual_seed(seed)
        summary = train_encoder(base, paths, classifier, labels, weights, unlabeled, config, seed=seed,
                                report=within(report, train_span))
    adapted = load_model(save_model_folder(base, folder), base.device)
    embeddings = embed_images(adapted, paths, config, report=within(report, embed_span))
    return AdaptedModel(adapted, embeddings, build_zero_shot_classifier(adapted, prompts), summary)
