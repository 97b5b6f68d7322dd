"""The supernet generator: shapes, alpha bookkeeping, gradients, derivation, config."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.gan.space.genotypes import EDGE_NAMES, EDGES, NORMAL_OPS, PRESETS, UP_OPS
from alphagan_tf.gan.space.search_generator import SearchGenerator
from alphagan_tf.nas.mixed_op import MixedOp

GF, LATENT = 8, 16


def _count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


def test_full_size_parameter_count_matches_the_paper():
    g = SearchGenerator(gf=256, latent_dim=128, bottom_width=4)
    weights = _count(g.weight_variables)
    # Spec: supernet G 27.5M (27.47M); the 81 alpha logits are not counted.
    assert abs(weights - 27.47e6) / 27.47e6 < 0.01
    assert weights == 27_469_571
    assert _count(g.arch_variables) == 9 * 6 + 9 * 3


@pytest.mark.parametrize("bottom_width, side", [(4, 32), (6, 48)])
def test_output_shape_and_range(bottom_width, side):
    g = SearchGenerator(gf=GF, latent_dim=LATENT, bottom_width=bottom_width)
    z = np.random.randn(3, LATENT).astype("float32")
    for training in (True, False):
        images = np.asarray(g(z, training=training))
        assert images.shape == (3, side, side, 3)
        assert images.min() >= -1.0 and images.max() <= 1.0
        assert images.std() > 1e-3


def test_arch_and_weight_variables_partition_the_trainable_variables():
    g = SearchGenerator(gf=GF, latent_dim=LATENT)
    arch = g.arch_variables
    assert len(arch) == 18
    for (name, kind), alpha in zip(EDGES, arch):
        assert tuple(alpha.shape) == ((len(NORMAL_OPS),) if kind == "normal" else (len(UP_OPS),)), name
        assert np.abs(np.asarray(alpha)).max() < 1e-2  # 1e-3 * N(0, 1)
    ids = lambda vs: [id(v) for v in vs]  # noqa: E731
    assert not set(ids(arch)) & set(ids(g.weight_variables))
    assert sorted(ids(arch) + ids(g.weight_variables)) == sorted(ids(g.trainable_variables))
    # The documented order: a MixedOp's alpha per edge, EDGE_NAMES order.
    assert ids(arch) == ids(op.alpha for op in g.mixed_ops())
    cell1, cell2, cell3 = g.gen_cells
    assert arch[0] is cell1.up_edges[0].alpha and arch[2] is cell1.normal_edges[0].alpha
    assert arch[15] is cell2.skip_edges[0].alpha
    assert arch[16] is cell3.skip_edges[0].alpha and arch[17] is cell3.skip_edges[1].alpha
    assert all(isinstance(op, MixedOp) for op in g.mixed_ops())


def test_edge_alphas_lists_every_edge_in_order():
    g = SearchGenerator(gf=GF, latent_dim=LATENT)
    rows = g.edge_alphas()
    assert [r[0] for r in rows] == list(EDGE_NAMES)
    assert [r[1] for r in rows] == [k for _, k in EDGES]
    assert rows[2][2] == list(NORMAL_OPS) and rows[0][2] == list(UP_OPS)
    assert all(r[3] is a for r, a in zip(rows, g.arch_variables))


def test_skip_edges_upsample_the_right_features():
    g = SearchGenerator(gf=GF, latent_dim=LATENT)
    _, cell2, cell3 = g.gen_cells
    assert cell2.skip_scales == (2,) and cell3.skip_scales == (4, 2)
    # deconv x4 on cell 1's node1 (8x8) gives cell 3's 32x32.
    x = np.zeros((1, 8, 8, GF), dtype="float32")
    assert tuple(cell3.skip_edges[0](x).shape) == (1, 32, 32, GF)


def test_gradients_reach_every_alpha():
    g = SearchGenerator(gf=GF, latent_dim=LATENT)
    z = tf.random.normal((4, LATENT), seed=1)
    probe = tf.random.normal((4, 32, 32, 3), seed=2)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(g(z, training=True) * probe)
    grads = tape.gradient(loss, g.arch_variables + g.weight_variables)
    alpha_grads = grads[: len(g.arch_variables)]
    for name, grad in zip(EDGE_NAMES, alpha_grads):
        assert grad is not None, name
        assert np.abs(np.asarray(grad)).max() > 1e-6, name
    assert all(grad is not None for grad in grads[len(g.arch_variables):])


def test_genotype_is_the_argmax_of_the_alphas():
    g = SearchGenerator(gf=GF, latent_dim=LATENT)
    for name, genotype in PRESETS.items():
        g.set_alphas_from_genotype(genotype, chosen_logit=1.0)
        assert g.genotype() == genotype, name
    g.set_alphas_from_genotype(PRESETS["alphaGAN_l"])
    weights = np.asarray(g.mixed_ops()[0].op_weights())
    np.testing.assert_array_equal(weights, [1.0, 0.0, 0.0])  # exactly one-hot


def test_config_round_trip():
    g = SearchGenerator(gf=GF, latent_dim=LATENT, bottom_width=6, alpha_stddev=1e-2, name="sg")
    config = g.get_config()
    clone = SearchGenerator.from_config(config)
    assert clone.get_config() == config
    assert [tuple(v.shape) for v in clone.weights] == [tuple(v.shape) for v in g.weights]
    clone.set_weights(g.get_weights())
    z = np.random.randn(2, LATENT).astype("float32")
    np.testing.assert_allclose(
        np.asarray(clone(z, training=False)), np.asarray(g(z, training=False)), atol=1e-6
    )
    serialized = keras.saving.serialize_keras_object(g)
    assert type(keras.saving.deserialize_keras_object(serialized)) is SearchGenerator


def test_tf_checkpoint_saves_and_restores_every_variable(tmp_path):
    # Layers held in Python lists (cells, mixed-op candidates, sep-conv halves)
    # must be reachable by tf.train.Checkpoint (nas/tracking.py).
    g = SearchGenerator(gf=GF, latent_dim=LATENT)
    g(np.random.randn(4, LATENT).astype("float32"), training=True)  # moving statistics move
    for alpha in g.arch_variables:
        alpha.assign(np.random.randn(*alpha.shape).astype("float32"))
    path = tf.train.Checkpoint(generator=g).save(str(tmp_path / "ckpt"))
    saved = [n for n in tf.train.list_variables(path) if n[0].startswith("generator/")]
    assert len(saved) == len(g.variables)
    restored = SearchGenerator(gf=GF, latent_dim=LATENT)
    tf.train.Checkpoint(generator=restored).restore(path).assert_consumed()
    for a, b in zip(g.variables, restored.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=a.path)
