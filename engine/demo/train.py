"""Train the embedded demo model: a small CLIP (open_clip's ModifiedResNet image tower and text transformer) on
procedurally rendered, captioned shapes and digits. Seeded and reproducible:

    python -m engine.demo.train --out assets/demo_model            # about an hour on a 2-core CPU

The loss is CLIP's contrastive loss with several positives per row (UniCL: Yang et al., "Unified Contrastive
Learning in Image-Text-Label Space", 2022): in a batch of rendered images, the caption "a star" truly describes
every star, not only the one it was written for, so all of them are targets. Plain CLIP would push those true
pairs apart, which on a small vocabulary wastes most of the signal.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torch.utils.data import DataLoader, IterableDataset

from engine.demo.render import BACKGROUND_WORDS, BACKGROUNDS, COLORS, SHAPES, render_source, render_target
from engine.files.images import shrink_shorter_side
from engine.learning.models import write_model_folder
from engine.learning.class_prompts import default_templates, prompts_for

NAMES = SHAPES + tuple(str(digit) for digit in range(10))
_WORD = re.compile(r"[a-z]+")
_OUTLINE_WORDS = {"outline", "outlined", "hollow"}
_FILLED_WORDS = {"filled", "solid"}


@dataclass
class TrainConfig:
    image_size: int = 64  # input side; the demo dataset's 128-px images are shrunk to this by ingest
    vision_layers: tuple[int, ...] = (1, 1, 1, 1)  # ModifiedResNet blocks per stage
    vision_width: int = 16  # ModifiedResNet base width (stage widths are 4x, 8x, 16x, 32x this)
    text_width: int = 128
    text_layers: int = 2
    text_heads: int = 4
    context_length: int = 16  # captions are at most 12 words
    embed_dim: int = 128
    batch_size: int = 256
    steps: int = 6000
    lr: float = 2e-3
    warmup_steps: int = 300
    weight_decay: float = 0.1
    eval_every: int = 500
    eval_images: int = 400  # per held-out set
    seed: int = 0
    history: list = field(default_factory=list)  # evaluation results, filled in while training

    def model_config(self) -> dict:
        return {
            "embed_dim": self.embed_dim,
            "vision_cfg": {"image_size": self.image_size, "layers": list(self.vision_layers),
                           "width": self.vision_width, "head_width": self.vision_width},
            "text_cfg": {"context_length": self.context_length, "vocab_size": 49408, "width": self.text_width,
                         "heads": self.text_heads, "layers": self.text_layers},
        }


PREPROCESS_CFG = {"size": None, "mean": list(OPENAI_DATASET_MEAN), "std": list(OPENAI_DATASET_STD),
                  "interpolation": "bicubic", "resize_mode": "shortest"}


def caption_mentions(caption: str, colors=COLORS, backgrounds=tuple(BACKGROUND_WORDS.values())) -> tuple:
    """Which optional attributes a caption pins down: (colour index or -1, background index or -1,
    fill: 0 unsaid, 1 outlined, 2 filled)."""
    words = set(_WORD.findall(caption))
    color = next((i for i, c in enumerate(colors) if c in words), -1)
    background = next((i for i, b in enumerate(backgrounds) if b in words), -1)
    fill = 1 if words & _OUTLINE_WORDS else 2 if words & _FILLED_WORDS else 0
    return color, background, fill


def match_matrix(name: torch.Tensor, color: torch.Tensor, background: torch.Tensor, outlined: torch.Tensor,
                 said_color: torch.Tensor, said_background: torch.Tensor, said_fill: torch.Tensor) -> torch.Tensor:
    """(B, B) bool: entry [i, j] says caption i truly describes image j. All inputs are (B,) tensors of the
    batch's image attributes and of what each caption mentions (-1 / 0 = not mentioned)."""
    same_name = name[:, None] == name[None, :]
    color_ok = (said_color[:, None] < 0) | (said_color[:, None] == color[None, :])
    background_ok = (said_background[:, None] < 0) | (said_background[:, None] == background[None, :])
    fill_ok = (said_fill[:, None] == 0) | ((said_fill[:, None] == 1) == outlined[None, :])
    return same_name & color_ok & background_ok & fill_ok


def multi_positive_clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                             matches: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy between scaled cosine similarities and targets spread evenly over the true pairs
    (UniCL). `matches[i, j]`: caption i describes image j; its diagonal must be true."""
    logits = logit_scale * text_features @ image_features.T  # (texts, images)
    targets = matches.float()
    text_to_image = -(targets / targets.sum(1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(1).mean()
    image_to_text = -(targets.T / targets.T.sum(1, keepdim=True) * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return (text_to_image + image_to_text) / 2


class RenderedBatches(IterableDataset):
    """An endless, seeded stream of rendered batches (run in one worker process so the order is reproducible)."""

    def __init__(self, config: TrainConfig):
        self.config = config
        self.tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=config.context_length)

    def __iter__(self):
        size, batch = self.config.image_size, self.config.batch_size
        for index in range(10**9):
            rng = np.random.default_rng([self.config.seed, index])
            samples = [render_source(rng, size) for _ in range(batch)]
            mentions = np.array([caption_mentions(s.caption) for s in samples])
            yield {
                "images": torch.from_numpy(np.stack([s.image for s in samples])),
                "tokens": self.tokenizer([s.caption for s in samples]),
                "name": torch.tensor([NAMES.index(s.name) for s in samples]),
                "color": torch.tensor([COLORS.index(s.color) for s in samples]),
                "background": torch.tensor([BACKGROUNDS.index(s.background) for s in samples]),
                "outlined": torch.tensor([s.outlined for s in samples]),
                "said_color": torch.from_numpy(mentions[:, 0]),
                "said_background": torch.from_numpy(mentions[:, 1]),
                "said_fill": torch.from_numpy(mentions[:, 2]),
            }


def to_model_input(images_bgr: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 BGR -> normalised (B, 3, H, W) float, exactly what open_clip's preprocessing yields for
    an image already at the model's size."""
    images = torch.as_tensor(images_bgr).flip(-1).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def held_out_sets(config: TrainConfig) -> dict[str, tuple[np.ndarray, np.ndarray, tuple[str, ...]]]:
    """Source-domain shapes and digits, and target-domain shapes, from seeds training never uses."""
    rng = np.random.default_rng([config.seed, 10**9 + 1])
    shapes, digits = [], []
    while len(shapes) < config.eval_images or len(digits) < config.eval_images:
        sample = render_source(rng, config.image_size)
        bucket = shapes if sample.kind == "shape" else digits
        if len(bucket) < config.eval_images:
            bucket.append((sample.image, sample.name))
    target = [(shrink_shorter_side(render_target(rng, SHAPES[i % len(SHAPES)]), config.image_size),
               SHAPES[i % len(SHAPES)]) for i in range(config.eval_images)]
    sets = {}
    for key, items, names in (("source_shapes", shapes, SHAPES), ("source_digits", digits, NAMES[len(SHAPES):]),
                              ("target_shapes", target, SHAPES)):
        images = np.stack([image for image, _ in items])
        labels = np.array([names.index(name) for _, name in items])
        sets[key] = (images, labels, names)
    return sets


@torch.no_grad()
def zero_shot_accuracy(model, tokenizer, images: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> float:
    """Top-1 with the project's default prompt ensemble, as `labelloop ingest` scores it."""
    model.eval()
    templates = default_templates()
    weights = []
    for name in names:
        text = model.encode_text(tokenizer(prompts_for(name, templates, None)), normalize=True).mean(0)
        weights.append(text / text.norm())
    features = torch.cat([model.encode_image(to_model_input(images[i:i + 256]), normalize=True)
                          for i in range(0, len(images), 256)])
    predicted = (features @ torch.stack(weights).T).argmax(1).numpy()
    model.train()
    return float((predicted == labels).mean())


def learning_rate(step: int, config: TrainConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.lr * 0.5 * (1 + math.cos(math.pi * progress))


def train(config: TrainConfig, out: Path) -> TrainConfig:
    torch.manual_seed(config.seed)
    model = open_clip.CLIP(**config.model_config())
    tokenizer = open_clip.tokenizer.SimpleTokenizer(context_length=config.context_length)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    evaluation = held_out_sets(config)
    loader = DataLoader(RenderedBatches(config), batch_size=None, num_workers=1, prefetch_factor=4)
    started, model_cfg = time.time(), config.model_config()
    model.train()
    for step, batch in enumerate(loader):
        if step >= config.steps:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        image_features = model.encode_image(to_model_input(batch["images"]), normalize=True)
        text_features = model.encode_text(batch["tokens"], normalize=True)
        matches = match_matrix(batch["name"], batch["color"], batch["background"], batch["outlined"],
                               batch["said_color"], batch["said_background"], batch["said_fill"])
        loss = multi_positive_clip_loss(image_features, text_features, model.logit_scale.exp(), matches)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            result = {"step": step + 1, "loss": round(loss.item(), 4), "minutes": round((time.time() - started) / 60, 1)}
            for key, (images, labels, names) in evaluation.items():
                result[key] = round(zero_shot_accuracy(model, tokenizer, images, labels, names), 4)
            config.history.append(result)
            print(json.dumps(result), flush=True)
            write_model_folder(model, model_cfg, out, preprocess_cfg={**PREPROCESS_CFG, "size": config.image_size},
                               half=True)
            (out / "training.json").write_text(json.dumps(asdict(config), indent=2))
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the embedded demo model (seeded, reproducible).")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "assets" / "demo_model")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    train(TrainConfig(steps=args.steps, seed=args.seed), args.out)


if __name__ == "__main__":
    main()
