"""The CPU fast path (`ingest --fast-cpu`): its speed against float32 and its fidelity. Prints one JSON object.

    python -m benchmarks.bench_fast_cpu --model ViT-B-32:/path/weights.pt [--batch-size 32] [--repeats 5]

Speed: the image encoder of `--model` (random weights do for speed: a state dict saved from
`open_clip.create_model("ViT-B-32")`) on random input batches, float32 against the fast path (the image tower's
weights in bfloat16) and, for comparison, int8 dynamic quantization of its linear layers
(torch.ao.quantization.quantize_dynamic), in turn with each thread count (1 and all cores) for `--repeats` rounds;
medians in images/s. Fidelity: on the trained demo model (a ModifiedResNet image tower), 400 held-out renderings of
its 8 shapes and 10 digits encoded both ways: the smallest and mean cosine of an image's two embeddings and the
share with the same zero-shot class among the 18 (targets: cosine >= 0.99, agreement >= 0.99). The 1-minute load
average is printed beside: the machine may be shared.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
import warnings

import numpy as np
import torch
from PIL import Image

from engine.demo.render import SHAPES, render_source
from engine.learning.models import DEMO_SPEC, cpu_has_bf16, load_model, parse_model_spec
from engine.learning.class_prompts import default_templates, prompts_for
from engine.learning.probabilities import embedding_fidelity
from engine.learning.zeroshot import build_zero_shot_classifier


def int8_dynamic(model):
    """The model with its image tower's linear layers quantized to int8 (dynamic activations): the alternative."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in favour of torchao
        quantized = copy.copy(model)
        quantized.model = copy.deepcopy(model.model)
        quantized.model.visual = torch.ao.quantization.quantize_dynamic(quantized.model.visual, {torch.nn.Linear},
                                                                        dtype=torch.qint8)
    return quantized


def speeds(spec: str, batch_size: int, repeats: int) -> dict:
    """Median images/s of each variant at each thread count, measured in turn."""
    exact = load_model(parse_model_spec(spec), torch.device("cpu"))
    variants = {"float32": exact, "fast_cpu_bf16": load_model(parse_model_spec(spec), torch.device("cpu"),
                                                              fast_cpu=True), "int8_dynamic": int8_dynamic(exact)}
    batch = torch.randn(batch_size, 3, exact.image_size, exact.image_size)
    thread_counts = sorted({1, os.cpu_count() or 1})
    for model in variants.values():
        model.encode_images(batch[:2])  # warm-up
    rates: dict[tuple[str, int], list[float]] = {}
    for _ in range(repeats):
        for threads in thread_counts:
            torch.set_num_threads(threads)
            for name, model in variants.items():
                started = time.perf_counter()
                model.encode_images(batch)
                rates.setdefault((name, threads), []).append(batch_size / (time.perf_counter() - started))
    result = {}
    for threads in thread_counts:
        base = statistics.median(rates[("float32", threads)])
        for name in variants:
            median = statistics.median(rates[(name, threads)])
            result[f"{name}_images_per_s_{threads}_threads"] = round(median, 2)
            if name != "float32":
                result[f"{name}_speedup_{threads}_threads"] = round(median / base, 2)
    return result


def fidelity(count: int) -> dict:
    """The fast path and int8 against float32 on the trained demo model (held-out renderings)."""
    exact = load_model(parse_model_spec(DEMO_SPEC), torch.device("cpu"))
    rng = np.random.default_rng(7)
    pictures = [render_source(rng, 64).image for _ in range(count)]
    batch = torch.stack([exact.preprocess(Image.fromarray(np.ascontiguousarray(p[..., ::-1]))) for p in pictures])
    templates = default_templates()
    classifier = build_zero_shot_classifier(exact, [prompts_for(name, templates, None)
                                                    for name in SHAPES + tuple("0123456789")])
    reference = exact.encode_images(batch)
    result = {}
    for name, model in (("fast_cpu_bf16", load_model(parse_model_spec(DEMO_SPEC), torch.device("cpu"),
                                                     fast_cpu=True)), ("int8_dynamic", int8_dynamic(exact))):
        try:
            encoded = model.encode_images(batch)
        except TypeError as error:  # quantize_dynamic breaks the demo's ResNet attention pool (q_proj.bias)
            result[f"{name}_demo_error"] = f"{type(error).__name__}: {error}"
            continue
        for key, value in embedding_fidelity(reference, encoded, classifier).items():
            result[f"{name}_demo_{key}"] = round(value, 5)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="the model to time, e.g. ViT-B-32:/path/weights.pt")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fidelity-images", type=int, default=400)
    args = parser.parse_args()
    if not cpu_has_bf16():
        raise SystemExit("this CPU has no native bfloat16 (AVX512-BF16, AMX): the fast path is not offered here")
    load_before = os.getloadavg()[0]
    threads_before = torch.get_num_threads()
    result = {"benchmark": "fast_cpu", "model": args.model, "batch_size": args.batch_size, "cpus": os.cpu_count(),
              "cpu_capability": torch.backends.cpu.get_cpu_capability(), "repeats": args.repeats,
              **speeds(args.model, args.batch_size, args.repeats)}
    torch.set_num_threads(threads_before)
    result.update(fidelity(args.fidelity_images))
    result.update(load_1min_before=round(load_before, 2), load_1min_after=round(os.getloadavg()[0], 2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
