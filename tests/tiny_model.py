"""A tiny randomly initialised open_clip model, written in open_clip's local-dir format for tests and benchmarks.

Its predictions are noise; it exercises exactly the loading, tokenising and encoding code a real CLIP goes through.
"""

from __future__ import annotations

from pathlib import Path

import open_clip
import torch

from engine.learning.models import write_model_folder

TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def make_tiny_model(folder: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_CONFIG)
    return write_model_folder(model, TINY_CONFIG, folder)
