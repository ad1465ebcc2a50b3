import dataclasses
from dataclasses import asdict

import numpy as np
import pytest

from engine.errors import LabelloopError
from engine.learning.selftrain.config import CacheConfig, FinetuneConfig, RoundConfig
from engine.learning.selftrain.head import zero_shot_head
from engine.session.round_runner import load_checkpoint, save_checkpoint


def test_round_config_is_frozen_and_nests_its_teachers():
    config = RoundConfig(finetune=FinetuneConfig(steps=3))
    assert config.finetune.steps == 3 and config.cache == CacheConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.share_step = 0.5
    assert RoundConfig.from_dict(asdict(config)) == config


@pytest.mark.parametrize("make", [
    lambda: RoundConfig(share_step=0), lambda: RoundConfig(propagation=1.0), lambda: RoundConfig(neighbours=0),
    lambda: RoundConfig(mode="gpu"), lambda: RoundConfig(rebalance="yes"), lambda: RoundConfig(folds=-1),
    lambda: RoundConfig(human_weight=float("nan")), lambda: FinetuneConfig(batch_size=0),
    lambda: FinetuneConfig(momentum=1.5), lambda: CacheConfig(keys_per_class=0), lambda: RoundConfig(refine=1),
    lambda: RoundConfig(head_iterations=0)])
def test_every_field_is_range_checked_in_one_line(make):
    with pytest.raises(LabelloopError) as refused:
        make()
    assert "\n" not in str(refused.value)


def test_a_checkpoint_carries_its_config_and_model_and_is_refused_for_another_model(tmp_path):
    head = zero_shot_head(np.eye(3, 8, dtype=np.float32), 50.0)
    config = RoundConfig(human_weight=3.0)
    path = tmp_path / "round_0001.npz"
    save_checkpoint(path, head, 1.5, [1, 2, 3], "modelA", config)
    teacher, temperature, saved_config = load_checkpoint(path, model_id="modelA", class_ids=[1, 2, 3])
    np.testing.assert_array_equal(teacher.weight, head.weight)
    assert temperature == 1.5 and saved_config == config
    with pytest.raises(LabelloopError, match="modelB"):
        load_checkpoint(path, model_id="modelB", class_ids=[1, 2, 3])
    with pytest.raises(LabelloopError, match="other classes"):
        load_checkpoint(path, model_id="modelA", class_ids=[1, 2])
