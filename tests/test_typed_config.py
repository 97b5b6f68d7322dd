"""Configs read back typed: what one command writes, another reads by field, never by raw key."""

import dataclasses
import json

import pytest

from alphagan_tf.gan.search_loop import SearchRunConfig, read_search_config
from alphagan_tf.gan.searcher import SearchConfig
from alphagan_tf.gan.train_loop import TrainRunConfig, read_train_config
from alphagan_tf.gan.trainer import TrainConfig
from alphagan_tf.nas.arch_optimizer import ArchOptimizerConfig
from alphagan_tf.utils.typed_config import ConfigError


def _through_json(config):
    return json.loads(json.dumps(dataclasses.asdict(config)))


def test_search_and_train_configs_round_trip_through_their_json(tmp_path):
    search = SearchRunConfig(
        search=SearchConfig(latent_dim=32, n_critic=2, arch=ArchOptimizerConfig(learning_rate=1e-3)),
        gf=16, bottom_width=2, devices=("/cpu:0", "/cpu:1"), strategy="mirrored",
    )
    (tmp_path / "search_config.json").write_text(json.dumps(_through_json(search)))
    back = read_search_config(str(tmp_path))
    assert back == search
    assert back.search.latent_dim == 32 and back.search.arch.learning_rate == 1e-3
    assert back.devices == ("/cpu:0", "/cpu:1")  # a JSON list becomes the tuple again
    train = TrainRunConfig(train=TrainConfig(latent_dim=24), gf=8, genotype="alphaGAN_s")
    (tmp_path / "train_config.json").write_text(json.dumps(_through_json(train)))
    assert read_train_config(str(tmp_path)) == train


def test_an_unknown_key_is_one_error_naming_the_file_and_the_key(tmp_path):
    data = _through_json(SearchRunConfig())
    data["search"]["latnet_dim"] = 3
    data["gff"] = 1
    path = tmp_path / "search_config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as error:
        read_search_config(str(tmp_path))
    assert str(path) in str(error.value) and "gff" in str(error.value)
    with pytest.raises(FileNotFoundError, match="not a training workdir"):
        read_train_config(str(tmp_path))


def test_values_are_still_validated_when_read_back(tmp_path):
    data = _through_json(SearchRunConfig())
    data["search"]["batch_size"] = 0
    (tmp_path / "search_config.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="batch_size"):
        read_search_config(str(tmp_path))
