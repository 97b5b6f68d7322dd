"""The fixed generator: parameter counts, shapes, no alpha, transfer from the supernet."""

import keras
import numpy as np
import pytest

from alphagan_tf.gan.space.generator import Generator, transfer_search_weights
from alphagan_tf.gan.space.genotypes import EDGES, PRESETS, Genotype
from alphagan_tf.gan.space.search_generator import SearchGenerator
from alphagan_tf.nas.architecture import ArchitectureLayer

GF, LATENT = 8, 16


def _count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


@pytest.mark.parametrize(
    "name, bottom_width, paper, exact",
    [
        ("alphaGAN_l", 4, 8.62e6, 8_618_499),
        ("alphaGAN_s", 4, 2.95e6, 2_952_707),
        ("alphaGAN_l", 6, 9.28e6, 9_278_979),
    ],
)
def test_full_size_parameter_counts_match_the_paper(name, bottom_width, paper, exact):
    g = Generator.from_genotype(PRESETS[name], gf=256, latent_dim=128, bottom_width=bottom_width)
    count = _count(g.trainable_variables)
    assert abs(count - paper) / paper < 0.01
    assert count == exact


@pytest.mark.parametrize("bottom_width, side", [(4, 32), (6, 48)])
def test_output_shape_and_range(bottom_width, side):
    g = Generator.from_genotype(PRESETS["alphaGAN_s"], gf=GF, latent_dim=LATENT, bottom_width=bottom_width)
    z = np.random.randn(3, LATENT).astype("float32")
    for training in (True, False):
        images = np.asarray(g(z, training=training))
        assert images.shape == (3, side, side, 3)
        assert images.min() >= -1.0 and images.max() <= 1.0
        assert images.std() > 1e-3


def test_fixed_generator_holds_only_the_chosen_ops():
    genotype = PRESETS["alphaGAN_l"]
    g = Generator.from_genotype(genotype, gf=GF, latent_dim=LATENT)
    assert not any(isinstance(layer, ArchitectureLayer) for layer in g._flatten_layers())
    assert len(g.edge_layers()) == len(EDGES)
    for layer, op in zip(g.edge_layers(), genotype.ops()):
        assert layer.name.endswith(op)
    # Normal edges of the fixed network have affine batch norms.
    sep = g.gen_cells[0].normal_edges[2]
    assert sep.affine and sep.norms[0].scale


def _randomized_supernet(gf=GF, bottom_width=4):
    s = SearchGenerator(gf=gf, latent_dim=LATENT, bottom_width=bottom_width)
    rng = np.random.default_rng(3)
    for alpha in s.arch_variables:
        alpha.assign(rng.normal(size=alpha.shape).astype("float32"))
    # Non-trivial moving statistics in every batch norm.
    z = np.random.randn(8, LATENT).astype("float32")
    for _ in range(2):
        s(z, training=True)
    return s


@pytest.mark.parametrize("name", ["alphaGAN_l", "alphaGAN_s", "derived"])
def test_one_hot_supernet_equals_fixed_generator_after_transfer(name):
    s = _randomized_supernet()
    genotype = s.genotype() if name == "derived" else PRESETS[name]
    g = Generator.from_genotype(genotype, gf=GF, latent_dim=LATENT)
    transfer_search_weights(s, g)
    s.set_alphas_from_genotype(genotype)
    z = np.random.randn(4, LATENT).astype("float32")
    # Inference mode (moving statistics), then training mode (batch statistics).
    for training in (False, True):
        fixed = np.asarray(g(z, training=training))
        supernet = np.asarray(s(z, training=training))
        assert np.abs(fixed - supernet).max() < 1e-5
        assert fixed.std() > 1e-3


def test_transfer_copies_moving_statistics_and_sets_gamma_beta():
    s = _randomized_supernet()
    genotype = PRESETS["alphaGAN_s"]
    g = Generator.from_genotype(genotype, gf=GF, latent_dim=LATENT)
    transfer_search_weights(s, g)
    source = s.gen_cells[1].normal_edges[0].candidates[4]  # cell2.normal[0] = sep_conv_5x5
    target = g.gen_cells[1].normal_edges[0]
    assert source.name == "sep_conv_5x5"
    np.testing.assert_array_equal(np.asarray(target.norms[1].moving_variance), np.asarray(source.norms[1].moving_variance))
    assert np.abs(np.asarray(source.norms[1].moving_mean)).max() > 0
    np.testing.assert_array_equal(np.asarray(target.norms[1].gamma), np.ones(GF))
    np.testing.assert_array_equal(np.asarray(target.norms[1].beta), np.zeros(GF))


def test_transfer_rejects_networks_of_different_size():
    s = SearchGenerator(gf=GF, latent_dim=LATENT)
    g = Generator.from_genotype(PRESETS["alphaGAN_l"], gf=2 * GF, latent_dim=LATENT)
    with pytest.raises(ValueError, match="gf=8 \\(supernet\\) vs 16 \\(generator\\)"):
        transfer_search_weights(s, g)


def test_config_round_trip_and_keras_file(tmp_path):
    g = Generator.from_genotype(PRESETS["alphaGAN_s"], gf=GF, latent_dim=LATENT, bottom_width=6)
    config = g.get_config()
    assert Genotype.from_dict(config["genotype"]) == PRESETS["alphaGAN_s"]
    clone = Generator.from_config(config)
    assert clone.genotype == g.genotype and clone.get_config() == config
    z = np.random.randn(2, LATENT).astype("float32")
    expected = np.asarray(g(z, training=False))
    path = tmp_path / "generator.keras"
    g.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is Generator and loaded.genotype == g.genotype
    np.testing.assert_allclose(np.asarray(loaded(z, training=False)), expected, atol=1e-6)


def test_tf_checkpoint_saves_and_restores_every_variable(tmp_path):
    import tensorflow as tf

    g = Generator.from_genotype(PRESETS["alphaGAN_s"], gf=GF, latent_dim=LATENT)
    g(np.random.randn(4, LATENT).astype("float32"), training=True)
    path = tf.train.Checkpoint(generator=g).save(str(tmp_path / "ckpt"))
    saved = [n for n in tf.train.list_variables(path) if n[0].startswith("generator/")]
    assert len(saved) == len(g.variables)
    restored = Generator.from_genotype(PRESETS["alphaGAN_s"], gf=GF, latent_dim=LATENT)
    tf.train.Checkpoint(generator=restored).restore(path).assert_consumed()
    for a, b in zip(g.variables, restored.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
