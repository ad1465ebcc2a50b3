"""What the page draws over images: gallery tiles with a confidence border and badge, and Grad-CAM heatmaps.

Tiles and heatmaps are files cached under the project's `thumbs/` (keyed by content and by what they show), so
the page hands the browser file paths, never in-memory arrays, and a page it has shown before costs nothing.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import numpy as np
import torch

from engine.views import palette
from engine.files.images import fit_within, read_image
from engine.learning.models import LoadedModel

TILE_SIDE = 144  # a drawn tile: what the detail panel shows for a file the browser cannot draw
BADGE_SCALE = 0.45  # Hershey glyphs 10 px tall at TILE_SIDE
_BORDER = 5
_HUMAN_BGR = palette.HUMAN[::-1]  # cv2 draws in BGR
_ERROR_BGR = palette.ERROR[::-1]
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def confidence_colour(confidence: np.ndarray | float) -> np.ndarray:
    """Confidence in [0, 1] -> BGR uint8 colour(s) on the palette's scale (engine.views.palette). (N, 3) or (3,)."""
    return palette.confidence_rgb(confidence)[..., ::-1]


def _atomic_write(path: Path, pixels: np.ndarray, quality: int = 88) -> Path:
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cannot encode {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.{id(pixels)}.tmp")
    temporary.write_bytes(encoded.tobytes())
    os.replace(temporary, path)
    return path


def _cache_name(*parts) -> str:
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:20]


def gallery_tile(thumbs_dir: Path, thumbnail: Path | None, *, text: str, confidence: float | None,
                 human: bool, error: bool = False) -> Path:
    """A square tile: the thumbnail letterboxed, a border coloured by confidence (or the human colour), and a
    badge with `text`. Cached by everything it shows."""
    colour = (_ERROR_BGR if error else _HUMAN_BGR if human
              else tuple(int(v) for v in confidence_colour(confidence if confidence is not None else 0.0)))
    key = _cache_name(thumbnail.name if thumbnail else None, text, None if confidence is None else
                      round(confidence, 2), human, error, colour, TILE_SIDE)
    path = thumbs_dir / "tiles" / key[:2] / f"{key}.jpg"
    if path.exists():
        return path
    tile = np.full((TILE_SIDE, TILE_SIDE, 3), 245, np.uint8)
    pixels = cv2.imread(str(thumbnail)) if thumbnail and thumbnail.exists() else None
    if pixels is not None:
        inner = TILE_SIDE - 2 * _BORDER
        pixels = fit_within(pixels, inner)
        if max(pixels.shape[:2]) < inner:  # small originals are enlarged to fill the tile
            scale = inner / max(pixels.shape[:2])
            pixels = cv2.resize(pixels, (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale))))
        top, left = (TILE_SIDE - pixels.shape[0]) // 2, (TILE_SIDE - pixels.shape[1]) // 2
        tile[top:top + pixels.shape[0], left:left + pixels.shape[1]] = pixels
    cv2.rectangle(tile, (0, 0), (TILE_SIDE - 1, TILE_SIDE - 1), colour, _BORDER * 2 if human else _BORDER)
    # The badge sits at the top: the page writes the file name over the bottom edge.
    scale, thickness = BADGE_SCALE, 1
    (width, height), baseline = cv2.getTextSize(text, _FONT, scale, thickness)
    width = min(width, TILE_SIDE - 2 * _BORDER - (30 if human else 8))
    bottom = _BORDER + height + baseline + 8
    cv2.rectangle(tile, (_BORDER, _BORDER), (_BORDER + width + 8, bottom), colour, -1)
    cv2.putText(tile, text, (_BORDER + 4, bottom - baseline - 4), _FONT, scale, (255, 255, 255), thickness,
                cv2.LINE_AA)
    if human:  # a filled corner mark: human labels are visible at a glance, whatever their class
        cv2.circle(tile, (TILE_SIDE - 17, 17), 9, (255, 255, 255), -1)
        cv2.circle(tile, (TILE_SIDE - 17, 17), 7, _HUMAN_BGR, -1)
    return _atomic_write(path, tile)


# ---- Grad-CAM -----------------------------------------------------------------------------------------------

def _feature_layer(visual: torch.nn.Module) -> tuple[torch.nn.Module, bool]:
    """Where to read activations in an open_clip image tower, and whether at the layer's input: a ResNet's last
    stage (its output); a ViT's last block, at its input, because only the class token leaves the last block,
    so its patch tokens get no gradient there."""
    if hasattr(visual, "layer4"):
        return visual.layer4, False
    if hasattr(visual, "transformer") and hasattr(visual.transformer, "resblocks"):
        return visual.transformer.resblocks[-1], True
    blocks = getattr(getattr(visual, "trunk", None), "blocks", None)  # timm ViTs
    if blocks is not None:
        return blocks[-1], True
    raise ValueError(f"no Grad-CAM layer known for {type(visual).__name__}")


def _as_grid(activations: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) as is; ViT tokens (B, L, D) or (L, B, D) -> (B, D, g, g), dropping class/register tokens."""
    if activations.dim() == 4:
        return activations
    if activations.shape[0] != 1 and activations.shape[1] == 1:  # sequence-first transformer
        activations = activations.transpose(0, 1)
    tokens = activations.shape[1]
    grid = int(np.sqrt(tokens))
    while grid > 0 and tokens - grid * grid > 16:
        grid -= 1
    patches = activations[:, tokens - grid * grid:, :]
    return patches.transpose(1, 2).reshape(activations.shape[0], -1, grid, grid)


def grad_cam(model: LoadedModel, pixels: np.ndarray, class_weight: np.ndarray) -> np.ndarray:
    """Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
    Localization", 2017) of the cosine score between the image and one class's text weight, on the image
    tower's last spatial layer. pixels: (H, W, 3) BGR uint8. Returns an (H, W) float32 map in [0, 1]."""
    from PIL import Image

    rgb = Image.fromarray(cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB))
    batch = model.preprocess(rgb).unsqueeze(0).to(model.device)
    layer, at_input = _feature_layer(model.model.visual)
    captured: dict[str, torch.Tensor] = {}

    def keep(_module, inputs, output):
        chosen = inputs[0] if at_input else output
        chosen = chosen[0] if isinstance(chosen, tuple) else chosen
        chosen.retain_grad()
        captured["activations"] = chosen

    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            features = model.model.encode_image(batch, normalize=True)
            target = torch.tensor(np.asarray(class_weight), dtype=features.dtype, device=features.device)
            (features[0] @ target).backward()
    finally:
        handle.remove()
        model.model.zero_grad(set_to_none=True)
    activations = captured["activations"]
    grid, gradients = _as_grid(activations.detach()), _as_grid(activations.grad)
    weights = gradients.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * grid).sum(dim=1))[0].float().cpu().numpy()
    cam = cam / cam.max() if cam.max() > 0 else cam
    return cv2.resize(cam, (pixels.shape[1], pixels.shape[0]), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def blend_heatmap(pixels: np.ndarray, cam: np.ndarray, *, opacity: float = 0.45) -> np.ndarray:
    """Colour `cam` (H, W) in [0, 1] with OpenCV's JET map and blend it over `pixels` (H, W, 3) BGR."""
    colours = cv2.applyColorMap((cam * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(pixels, 1.0 - opacity, colours, opacity, 0.0)


def heatmap_file(thumbs_dir: Path, model: LoadedModel, image_path: Path, class_weight: np.ndarray, *,
                 sha256: str, side: int = 512) -> Path:
    """The image with its Grad-CAM for one class blended over it, cached by image content, model and class."""
    key = _cache_name(sha256, model.model_id, hashlib.sha1(np.asarray(class_weight).tobytes()).hexdigest(), side)
    path = thumbs_dir / "heatmaps" / key[:2] / f"{key}.jpg"
    if path.exists():
        return path
    pixels = fit_within(read_image(image_path).pixels, side)
    return _atomic_write(path, blend_heatmap(pixels, grad_cam(model, pixels, class_weight)))
