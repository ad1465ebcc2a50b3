import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import engine.learning.models as models
from engine.demo.render import SHAPES, render_source
from engine.errors import LabelloopError
from engine.learning.models import DEMO_SPEC, cpu_has_bf16, load_model, model_fingerprint, parse_model_spec
from engine.learning.class_prompts import default_templates, prompts_for
from engine.learning.probabilities import embedding_fidelity
from engine.learning.zeroshot import build_zero_shot_classifier
from tests.tiny_model import make_tiny_model


@pytest.mark.parametrize("spec, fragment", [
    ("no-such-model", "unknown model 'no-such-model'"),
    ("ViT-B-32", "needs weights"),
    ("ViT-B-32:bogus_tag", "valid tags: "),
    ("ViT-B-32:/no/such/weights.pt", "does not exist"),
    ("/no/such/folder", "does not exist"),
])
def test_bad_specs_are_refused_in_one_line(spec, fragment):
    with pytest.raises(LabelloopError, match=fragment) as error:
        parse_model_spec(spec)
    assert "\n" not in str(error.value)


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(LabelloopError, match="open_clip_config.json"):
        parse_model_spec(str(tmp_path))


def test_missing_demo_model_names_the_ways_out(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "DEMO_MODEL_DIR", tmp_path / "absent")
    with pytest.raises(LabelloopError, match="open_clip NAME:TAG"):
        parse_model_spec("demo")


def test_uncached_weights_offline_fail_fast_with_the_ways_out(tmp_path, monkeypatch):
    hub = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))  # an empty Hugging Face cache: the weights are not there
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(LabelloopError) as error:
        load_model(parse_model_spec("ViT-B-32:laion2b_s34b_b79k"), device=torch.device("cpu"))
    message = str(error.value)
    assert "cannot be reached" in message and "--model demo" in message and "\n" not in message


def test_tiny_model_loads_and_encodes_unit_vectors(tiny_model):
    loaded = load_model(parse_model_spec(str(tiny_model)), device=torch.device("cpu"))
    assert loaded.dim == 32 and loaded.image_size == 32
    texts = loaded.encode_texts(["a photo of a circle.", "a photo of a square."])
    images = loaded.encode_images(torch.zeros(3, 3, 32, 32))
    assert texts.shape == (2, 32) and images.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, rtol=1e-5)


def test_fingerprint_follows_the_weights(tmp_path, tiny_model):
    first = model_fingerprint(parse_model_spec(str(tiny_model)))
    assert first == model_fingerprint(parse_model_spec(str(tiny_model)))
    other = make_tiny_model(tmp_path / "other", seed=1)
    assert model_fingerprint(parse_model_spec(str(other))) != first


def test_a_model_kept_inside_the_project_still_resolves_after_the_project_moves(tmp_path, images, tiny_model):
    from engine.project.folder import create_project, open_project

    with create_project(tmp_path / "before", images=images, classes="cat,dog", model=str(tiny_model)) as project:
        kept = project.models_dir / "round_0003"  # where a finetune round saves its adapted model
        shutil.copytree(tiny_model, kept)
        stored = project.stored_model(parse_model_spec(str(kept)))
        project.store.set_meta(model=stored)
        assert stored == "models/round_0003"
        assert project.stored_model(parse_model_spec(str(tiny_model))) == str(tiny_model.resolve())
    (tmp_path / "before").rename(tmp_path / "after")
    with open_project(tmp_path / "after") as moved:
        assert moved.model_spec.path == tmp_path / "after" / "models" / "round_0003"
        assert model_fingerprint(moved.model_spec) == model_fingerprint(parse_model_spec(str(tiny_model)))


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bfloat16 (AVX512-BF16, AMX)")
def test_the_fast_cpu_path_keeps_the_demo_models_embeddings_and_zero_shot_classes():
    """`ingest --fast-cpu` (the image tower in bfloat16) on the trained demo model: each embedding at cosine >= 0.99
    to float32's and the same zero-shot class for >= 99 % of held-out renderings of its shapes and digits."""
    rng = np.random.default_rng(7)
    exact, fast = (load_model(parse_model_spec(DEMO_SPEC), torch.device("cpu"), fast_cpu=fast_cpu)
                   for fast_cpu in (False, True))
    pictures = [render_source(rng, 64).image for _ in range(400)]
    batch = torch.stack([exact.preprocess(Image.fromarray(np.ascontiguousarray(picture[..., ::-1])))
                         for picture in pictures])
    assert fast.image_dtype == torch.bfloat16 and exact.image_dtype is None
    templates = default_templates()
    classifier = build_zero_shot_classifier(exact, [prompts_for(name, templates, None)
                                                    for name in SHAPES + tuple("0123456789")])
    fidelity = embedding_fidelity(exact.encode_images(batch), fast.encode_images(batch), classifier)
    assert fidelity["min_cosine"] >= 0.99 and fidelity["zero_shot_agreement"] >= 0.99, fidelity


@pytest.mark.parametrize("spec", ["tiny", DEMO_SPEC])
def test_text_encoded_over_the_context_the_prompts_use_gives_open_clips_vectors(spec, tiny_model):
    model = load_model(parse_model_spec(str(tiny_model) if spec == "tiny" else spec), torch.device("cpu"))
    tokens = model.tokenizer(["a photo of a circle.", "a blurry sketch of the number 7, drawn badly", "square"])
    with torch.no_grad():
        whole, trimmed = model.model.encode_text(tokens), models.encode_text_trimmed(model.model, tokens)
    torch.testing.assert_close(trimmed, whole, rtol=1e-4, atol=1e-5)
