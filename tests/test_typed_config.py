"""Configs read back typed: what one command writes, another reads by field, never by raw key."""

import json

import pytest

from alphagan_tf.data.config import DataConfig
from alphagan_tf.gan.search.config import SearchConfig, SearchRunConfig, read_search_config
from alphagan_tf.gan.space.generator_config import GeneratorConfig
from alphagan_tf.gan.train.config import TrainConfig, TrainRunConfig, read_train_config
from alphagan_tf.nas.arch_optimizer import ArchOptimizerConfig
from alphagan_tf.utils.typed_config import ConfigError


def _through_json(config):
    return json.loads(json.dumps(config.to_dict()))


def test_search_and_train_configs_round_trip_through_their_json(tmp_path):
    search = SearchRunConfig(
        search=SearchConfig(n_critic=2, arch=ArchOptimizerConfig(learning_rate=1e-3)),
        model=GeneratorConfig(gf=16, latent_dim=32, bottom_width=2),
        data=DataConfig(dataset="npz:/data/x.npz"),
        devices=("/cpu:0", "/cpu:1"), strategy="mirrored",
    )
    (tmp_path / "search_config.json").write_text(json.dumps(_through_json(search)))
    back = read_search_config(str(tmp_path))
    assert back == search
    assert back.model.latent_dim == 32 and back.search.arch.learning_rate == 1e-3
    assert back.image_size == 16 and back.data.dataset == "npz:/data/x.npz"
    assert back.devices == ("/cpu:0", "/cpu:1")  # a JSON list becomes the tuple again
    train = TrainRunConfig(train=TrainConfig(beta_2=0.99), model=GeneratorConfig(gf=8, latent_dim=24),
                           genotype="alphaGAN_s")
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
    with pytest.raises(ConfigError, match="batch_size") as error:
        read_search_config(str(tmp_path))
    assert error.value.key == "batch_size"


@pytest.mark.parametrize("make, key", [
    (lambda: GeneratorConfig(gf=0), "gf"),
    (lambda: GeneratorConfig(latent_dim=-3), "latent_dim"),
    (lambda: DataConfig(dataset="bogus"), "dataset"),
    (lambda: TrainConfig(ema_decay=1.5), "ema_decay"),
    (lambda: TrainConfig(g_lr=float("nan")), "g_lr"),
    (lambda: TrainConfig(d_lr=-1e-4), "d_lr"),
    (lambda: SearchConfig(inner_steps=0), "inner_steps"),
    (lambda: SearchConfig(beta_2=1.0), "beta_2"),
    (lambda: SearchRunConfig(epochs=0), "epochs"),
])
def test_a_bad_value_names_its_field_and_the_value(make, key):
    with pytest.raises(ConfigError) as error:
        make()
    assert error.value.key == key
    assert str(error.value).startswith(f"{key}: ") and "Received:" in str(error.value)


def test_differences_are_dotted_keys():
    a = SearchRunConfig(model=GeneratorConfig(gf=8), epochs=3)
    b = SearchRunConfig(model=GeneratorConfig(gf=16), epochs=5, devices=("/cpu:0",))
    assert a.differences(b) == ["devices", "epochs", "model.gf"]
    assert a.differences(a) == []
