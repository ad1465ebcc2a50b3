"""Turning a model spec into a loaded open_clip model.

A spec is one of:
  demo                          the embedded model in assets/demo_model (offline)
  NAME:TAG                      an open_clip architecture and pretrained tag, e.g. ViT-B-32:laion2b_s34b_b79k
  NAME:/path/to/weights.pt      an open_clip architecture with a local weights file
  /path/to/folder               a folder with open_clip_config.json and weights (open_clip's local-dir format)
  hf-hub:org/repo               an open_clip model on the Hugging Face hub

Resolution (`parse_model_spec`) is cheap and checks everything it can without loading weights; loading
(`load_model`) never waits on a network it cannot reach: weights already in the local cache load offline, and
uncached ones fail in one line that names the ways out.

torch and open_clip are imported inside the functions that need them (3 s of start-up): commands that never load
a model (status, label, export, queue) import this module for the spec and answer at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable
from urllib.parse import urlparse

import numpy as np

from engine.errors import LabelloopError

if TYPE_CHECKING:
    import torch

DEMO_SPEC = "demo"
DEFAULT_SPEC = "ViT-B-32:laion2b_s34b_b79k"
DEMO_MODEL_DIR = Path(__file__).resolve().parents[2] / "assets" / "demo_model"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_WAYS_OUT = "use --model demo (embedded, offline) or --model PATH to a local open_clip checkpoint"


@dataclass(frozen=True)
class ModelSpec:
    text: str  # the spec as the person wrote it
    kind: str  # demo | pretrained | checkpoint | local-dir | hf-hub
    name: str  # the open_clip model name: an architecture, or 'local-dir:...' / 'hf-hub:...'
    tag: str | None = None  # pretrained tag (kind pretrained)
    path: Path | None = None  # weights file (checkpoint) or folder (demo, local-dir)

    @property
    def canonical(self) -> str:
        """The spec as stored in a project: local paths made absolute so any working directory resolves it."""
        if self.kind == "local-dir":
            return str(self.path)
        if self.kind == "checkpoint":
            return f"{self.name}:{self.path}"
        return self.text


@dataclass
class LoadedModel:
    spec: ModelSpec
    model_id: str  # fingerprint: embeddings and predictions are keyed by it, so models never mix
    model: torch.nn.Module
    preprocess: Callable  # PIL image -> (3, S, S) tensor
    tokenizer: Callable
    device: torch.device
    dim: int
    image_size: int
    image_dtype: torch.dtype | None = None  # the image tower's weights when not float32 (the CPU fast path: bf16)

    def _autocast(self):
        import torch

        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return nullcontext()

    def encode_images(self, batch: torch.Tensor) -> np.ndarray:
        """(B, 3, S, S) preprocessed images -> (B, dim) float32 unit vectors."""
        import torch

        with torch.no_grad(), self._autocast():
            features = self.model.encode_image(batch.to(self.device, dtype=self.image_dtype, non_blocking=True))
            features = torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu().numpy()

    def encode_pictures(self, pictures: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) uint8 RGB pictures as `picture_transform` leaves them -> (B, dim) float32 unit vectors."""
        return self.encode_images(self.preprocess_pictures(pictures))

    def preprocess_pictures(self, pictures: np.ndarray) -> torch.Tensor:
        """(B, S, S, 3) uint8 RGB pictures as `picture_transform` leaves them -> the (B, 3, S, S) batch the model's
        preprocessing makes of them (scale to [0, 1], normalise), done once for the whole batch: the same numbers as
        `preprocess` on each picture."""
        import torch

        mean, std = _normalisation(self.preprocess)
        batch = torch.from_numpy(pictures).permute(0, 3, 1, 2).float().div_(255.0)
        batch = batch.sub_(torch.tensor(mean).view(1, 3, 1, 1)).div_(torch.tensor(std).view(1, 3, 1, 1))
        return batch.contiguous()

    @property
    def picture_transform(self) -> Callable:
        """The geometric part of the model's preprocessing (resize, crop, colour mode): a PIL image -> a PIL
        picture of S x S. What `encode_pictures` takes, made where the files are decoded (a decode worker)."""
        from torchvision import transforms

        return transforms.Compose(self.preprocess.transforms[:_tensor_step(self.preprocess)])

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """Strings -> (len(texts), dim) float32 unit vectors."""
        import torch

        with torch.no_grad(), self._autocast():
            features = encode_text_trimmed(self.model, self.tokenizer(texts).to(self.device))
            features = torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu().numpy()

    @property
    def logit_scale(self) -> float:
        scale = getattr(self.model, "logit_scale", None)
        return float(scale.exp().clamp(max=100).item()) if scale is not None else 100.0


def encode_text_trimmed(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's `encode_text` (unnormalised) over only the context the prompts use. In a CLIP text tower with a
    causal mask that reads each prompt's features at its end token (the largest token id), nothing after the longest
    prompt's end token changes them: 77 positions shrink to the prompts' 10-20, about 5x less work for the same
    vectors. Any other text tower runs whole."""
    import torch
    from open_clip.model import CLIP
    from open_clip.transformer import text_global_pool

    if not (type(model) is CLIP and model.text_pool_type == "argmax" and model.attn_mask is not None):
        return model.encode_text(tokens)
    length = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:length, :length]))
    x = text_global_pool(x, tokens, "argmax")
    return model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) else x @ model.text_projection


def _tensor_step(preprocess) -> int:
    """Where an open_clip preprocessing turns its PIL picture into a tensor; after it only Normalize follows."""
    names = [type(step).__name__ for step in preprocess.transforms]
    step = next((index for index, name in enumerate(names) if name in ("ToTensor", "MaybeToTensor")), None)
    if step is None or names[step + 1:] != ["Normalize"]:
        raise LabelloopError(f"unexpected image preprocessing {names}: an open_clip model ends it with ToTensor, "
                             "Normalize")
    return step


def _normalisation(preprocess) -> tuple[list[float], list[float]]:
    """(mean, std) per channel of an open_clip preprocessing's last step."""
    normalize = preprocess.transforms[_tensor_step(preprocess) + 1]
    return list(normalize.mean), list(normalize.std)


def pick_device() -> torch.device:
    """cuda, then mps, then cpu; LABELLOOP_DEVICE overrides."""
    import torch

    if os.environ.get("LABELLOOP_DEVICE"):
        return torch.device(os.environ["LABELLOOP_DEVICE"])
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def parse_model_spec(text: str) -> ModelSpec:
    """Check a spec without loading weights; raises LabelloopError naming what is wrong and the ways out."""
    text = (text or "").strip()
    if text == DEMO_SPEC:
        if not (DEMO_MODEL_DIR / "open_clip_config.json").is_file():
            raise LabelloopError(f"the embedded demo model is not in {DEMO_MODEL_DIR}; use --model with an open_clip "
                                 f"NAME:TAG such as {DEFAULT_SPEC}, or a local checkpoint folder")
        return ModelSpec(text, "demo", f"local-dir:{DEMO_MODEL_DIR}", path=DEMO_MODEL_DIR)
    if text.startswith("hf-hub:"):
        return ModelSpec(text, "hf-hub", text)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "open_clip_config.json").is_file():
            raise LabelloopError(f"model folder {path} has no open_clip_config.json; a local model is a folder "
                                 "with open_clip_config.json and its weights (open_clip's local-dir format)")
        if not _weights_in_folder(path):
            raise LabelloopError(f"model folder {path} has no weights file ({', '.join(_WEIGHT_SUFFIXES)})")
        return ModelSpec(text, "local-dir", f"local-dir:{path.resolve()}", path=path.resolve())
    import open_clip

    name, _, rest = text.partition(":")
    if name in open_clip.list_models():
        if not rest:
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none registered"
            raise LabelloopError(f"model {name!r} needs weights: write {name}:TAG (tags: {tags}) or {name}:PATH")
        weights = Path(rest).expanduser()
        if weights.suffix in _WEIGHT_SUFFIXES or weights.exists():
            if not weights.is_file():
                raise LabelloopError(f"weights file {weights} does not exist; check the path in --model")
            return ModelSpec(text, "checkpoint", name, path=weights.resolve())
        tags = open_clip.list_pretrained_tags_by_model(name)
        if rest not in tags:
            raise LabelloopError(f"unknown pretrained tag {rest!r} for {name}; valid tags: {', '.join(tags)}")
        return ModelSpec(text, "pretrained", name, tag=rest)
    if path.suffix in _WEIGHT_SUFFIXES or ("/" in text and not path.exists()):
        raise LabelloopError(f"model path {text} does not exist; give a folder with open_clip_config.json and "
                             f"weights, or NAME:TAG such as {DEFAULT_SPEC}")
    raise LabelloopError(f"unknown model {text!r}: use demo, an open_clip NAME:TAG such as {DEFAULT_SPEC}, "
                         "NAME:PATH to a weights file, or a folder with open_clip_config.json")


def _weights_in_folder(folder: Path) -> Path | None:
    candidates = sorted(p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES)
    candidates.sort(key=lambda p: p.suffix != ".safetensors")
    return candidates[0] if candidates else None


def _hash_files(*parts: str | Path) -> str:
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            with open(part, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
        else:
            digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def model_fingerprint(spec: ModelSpec) -> str:
    """A short id that changes whenever the weights could: pretrained tags are immutable, local files are hashed."""
    if spec.kind in ("demo", "local-dir"):
        return _hash_files(spec.path / "open_clip_config.json", _weights_in_folder(spec.path))
    if spec.kind == "checkpoint":
        return _hash_files(spec.name, spec.path)
    return _hash_files(spec.kind, spec.name, spec.tag or "")


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX), what the CPU fast path needs."""
    import torch

    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def load_model(spec: ModelSpec, device: torch.device | None = None, *, fast_cpu: bool = False) -> LoadedModel:
    """Load weights and transforms; raises LabelloopError (one line) when the weights cannot be had.
    `fast_cpu`: on a CPU with native bfloat16, keep the image tower's weights in bfloat16 (measured about 2x the
    float32 encode rate of ViT-B-32, embeddings at cosine >= 0.99 to float32: docs/benchmarks.md); for encoding
    only (no training). A GPU runs float16 anyway and ignores it."""
    import open_clip
    import torch

    device = device or pick_device()
    if fast_cpu and device.type == "cpu" and not cpu_has_bf16():
        raise LabelloopError("--fast-cpu needs a CPU with bfloat16 instructions (AVX512-BF16 or AMX) and this one "
                             "has none; run without --fast-cpu")
    kwargs: dict = {}
    name, pretrained = spec.name, None
    if spec.kind == "checkpoint":
        pretrained = str(spec.path)
    elif spec.kind == "pretrained":
        pretrained, kwargs = _pretrained_weights(spec)
    elif spec.kind == "hf-hub":
        _require_hub(spec)
    # The fingerprint hashes the weights file (600 MB for ViT-B-32: 0.4-0.7 s) while open_clip builds the model.
    with ThreadPoolExecutor(1, thread_name_prefix="labelloop-fingerprint") as hasher:
        model_id = hasher.submit(model_fingerprint, spec)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, device=device,
                                                                         **kwargs)
            tokenizer = open_clip.get_tokenizer(name)
        except LabelloopError:
            raise
        except Exception as error:  # open_clip raises many kinds; the person needs one line either way
            raise LabelloopError(f"cannot load model {spec.text}: {str(error).splitlines()[0]}; {_WAYS_OUT}") \
                from None
    model.eval()
    image_size = model.visual.image_size
    image_size = int(image_size[0] if isinstance(image_size, (tuple, list)) else image_size)
    dim = int(model.text_projection.shape[1]) if getattr(model, "text_projection", None) is not None else None
    image_dtype = torch.bfloat16 if fast_cpu and device.type == "cpu" else None
    if image_dtype:
        model.visual.to(image_dtype)
    loaded = LoadedModel(spec=spec, model_id=model_id.result(), model=model, preprocess=preprocess,
                         tokenizer=tokenizer, device=device, dim=dim or 0, image_size=image_size,
                         image_dtype=image_dtype)
    if not loaded.dim:
        loaded.dim = loaded.encode_texts(["a"]).shape[1]
    return loaded


def _pretrained_weights(spec: ModelSpec) -> tuple[str, dict]:
    """The weights file for NAME:TAG: from the local cache when it is there (no network at all), else download."""
    import open_clip

    config = open_clip.get_pretrained_cfg(spec.name, spec.tag)
    # A file path loses the tag's preprocessing and activation settings, so pass them on explicitly.
    settings = {"image_mean": config.get("mean"), "image_std": config.get("std"),
                "image_interpolation": config.get("interpolation"), "image_resize_mode": config.get("resize_mode"),
                "force_quick_gelu": bool(config.get("quick_gelu", False))}
    cached = _cached_hub_file(config.get("hf_hub", ""))
    if cached:
        return cached, settings
    _require_hub(spec)
    return spec.tag, {}


def _cached_hub_file(hub_entry: str) -> str | None:
    if not hub_entry:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    repo, filename = os.path.split(hub_entry)
    names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    if filename.endswith(".bin"):
        names.insert(0, filename[:-4] + ".safetensors")
    for candidate in names:
        found = try_to_load_from_cache(repo, candidate)
        if isinstance(found, str):
            return found
    return None


def _require_hub(spec: ModelSpec) -> None:
    """Fail in seconds, not after minutes of retries, when the hub cannot be reached."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host, port = parsed.hostname or "huggingface.co", parsed.port or (80 if parsed.scheme == "http" else 443)
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise LabelloopError(f"model {spec.text} is not in the local cache and HF_HUB_OFFLINE is set; {_WAYS_OUT}")
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError:
        raise LabelloopError(f"model {spec.text} is not in the local cache and {host} cannot be reached (offline?); "
                             f"connect once to download it, or {_WAYS_OUT}") from None


def write_model_folder(model: torch.nn.Module, model_cfg: dict, folder: Path, *, preprocess_cfg: dict | None = None,
                       half: bool = False) -> Path:
    """Save a model in open_clip's local-dir format (config JSON + safetensors), loadable with --model FOLDER."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {key: (value.half() if half and value.is_floating_point() else value).contiguous()
             for key, value in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg or {}}
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    return folder


def save_model_folder(model: LoadedModel, folder: Path) -> ModelSpec:
    """Write a loaded model's current weights (fp16) as an open_clip local-dir folder with the configuration and
    preprocessing that built it; returns the spec that loads it back, as `--model FOLDER` does."""
    import open_clip

    config = open_clip.get_model_config(model.spec.name)
    if model.spec.kind == "pretrained" and open_clip.get_pretrained_cfg(model.spec.name, model.spec.tag).get(
            "quick_gelu"):
        config["quick_gelu"] = True  # as load_model builds it for such a tag
    write_model_folder(model.model, config, folder, preprocess_cfg=open_clip.get_model_preprocess_cfg(model.model),
                       half=True)
    return parse_model_spec(str(folder))
