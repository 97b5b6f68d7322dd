"""--precision: the choices, what stays float32 under bfloat16, and bfloat16 runs end to end.

One tiny bfloat16 searcher is shared by the search tests (tracing its steps
takes about a minute); each starts from its initial state (`fresh`).
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_searcher import batches

from alphagan_tf.gan.search.alphagan import build_searcher, run_search
from alphagan_tf.gan.search.config import SearchConfig
from alphagan_tf.gan.search.config import SearchRunConfig
from alphagan_tf.gan.space.discriminator import Discriminator
from alphagan_tf.gan.space.generator import Generator
from alphagan_tf.gan.space.generator_config import GeneratorConfig
from alphagan_tf.gan.space.genotypes import PRESETS
from alphagan_tf.gan.space.search_generator import SearchGenerator
from alphagan_tf.gan.train.config import TrainConfig
from alphagan_tf.gan.train.config import TrainRunConfig
from alphagan_tf.gan.train.loop import build_trainer, load_trained_generator, run_training
from alphagan_tf.utils import precision

# Fewer steps than test_searcher's TINY: emulated bfloat16 is slow on CPUs without AVX512-BF16.
TINY = SearchConfig(inner_steps=2, worst_steps=1, outer_steps=1, n_critic=2, batch_size=4)


def tiny_search_config(**overrides) -> SearchRunConfig:
    base = dict(search=TINY, model=GeneratorConfig(gf=4, df=4, latent_dim=8, bottom_width=1),
                epochs=2, seed=0,  # conftest's: reseeding would drop the compiled steps
                sample_every=1, keep_checkpoints=2, deterministic=False, precision="bfloat16")
    base.update(overrides)
    return SearchRunConfig(**base)


def tiny_train_config(**overrides) -> TrainRunConfig:
    base = dict(
        train=TrainConfig(g_iterations=2, n_critic=2, g_batch_size=4, d_batch_size=4,
                          ema_decay=0.5),
        genotype="alphaGAN_s", model=GeneratorConfig(gf=8, df=8, latent_dim=8, bottom_width=1),
        seed=3,
        checkpoint_every=2, sample_every=2, keep_checkpoints=2, precision="bfloat16",
    )
    base.update(overrides)
    return TrainRunConfig(**base)


# -- the choices ------------------------------------------------------------------------


def test_a_bad_precision_is_one_error_listing_the_choices():
    message = "precision: must be one of float32, bfloat16, float16. Received: 'bf16x'"
    with pytest.raises(ValueError, match=message):
        precision.validate("bf16x")
    with pytest.raises(ValueError, match=message):
        tiny_search_config(precision="bf16x")
    with pytest.raises(ValueError, match=message):
        tiny_train_config(precision="bf16x")
    from absl import flags

    import alphagan_tf.search  # noqa: F401  (defines --precision)

    with pytest.raises(flags.IllegalFlagValueError) as info:
        flags.FLAGS["precision"].parse("bf16x")
    assert "float32|bfloat16|float16" in str(info.value)


def test_only_float16_uses_loss_scaling():
    assert precision.uses_loss_scaling("float16")
    assert not precision.uses_loss_scaling("bfloat16")
    assert not precision.uses_loss_scaling("float32")


def test_native_bfloat16_is_read_from_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 fma\n")
    assert precision.cpu_has_native_bfloat16(str(cpuinfo)) is False
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_tile\n")
    assert precision.cpu_has_native_bfloat16(str(cpuinfo)) is True
    assert precision.cpu_has_native_bfloat16(str(tmp_path / "missing")) is None
    assert not precision.warn_if_emulated("float32")


# -- bfloat16 against float32 on the same weights --------------------------------------

# Largest |difference| of bfloat16 and float32 outputs on the same weights, gf = df = 32,
# 16x16 images, batch 16, random init (measured 2026-11-30): images in [-1, 1]
#   inference mode (moving statistics): max 0.0083 (alphaGAN_s), 0.0095 (_l), 0.0074 (supernet)
#   training mode (batch statistics):   mean 0.016 (_s), 0.007 (_l), 0.014 (supernet)
#                                       max 0.17 (_s), 0.07 (_l), 0.13 (supernet): batch norm
#                                       divides bfloat16 rounding by small batch deviations
#   discriminator logits, relative to max |logit|: 0.011 (inference), 0.008 (training)
# The bounds below leave a margin of about 2x.
INFERENCE_MAX = 0.02
TRAINING_MEAN = 0.035
LOGIT_RELATIVE = 0.025


def _float32_and_bfloat16(make, x):
    keras.utils.set_random_seed(0)
    reference = make()
    reference(x, training=False)
    with precision.dtype_policy("bfloat16"):
        low = make()
    low(x, training=False)
    assert keras.config.dtype_policy().name == "float32"
    for a, b in zip(reference.variables, low.variables):
        assert b.dtype == a.dtype == "float32", b.path
        b.assign(a)
    return reference, low


@pytest.mark.parametrize("name", ["alphaGAN_s", "alphaGAN_l", "supernet"])
def test_bfloat16_generators_agree_with_float32_on_the_same_weights(name):
    def make():
        if name == "supernet":
            return SearchGenerator(gf=32, latent_dim=32, bottom_width=2)
        return Generator.from_genotype(PRESETS[name], gf=32, latent_dim=32, bottom_width=2)

    z = tf.random.stateless_normal([16, 32], seed=[1, 2])
    reference, low = _float32_and_bfloat16(make, z)
    inference = low(z, training=False)
    assert inference.dtype == tf.bfloat16
    difference = np.abs(reference(z, training=False).numpy()
                        - precision.to_float32(inference).numpy())
    assert 1e-4 < difference.max() < INFERENCE_MAX  # > 1e-4: it did compute in bfloat16
    difference = np.abs(reference(z, training=True).numpy()
                        - precision.to_float32(low(z, training=True)).numpy())
    assert difference.mean() < TRAINING_MEAN


def test_bfloat16_discriminator_agrees_with_float32_on_the_same_weights():
    images = tf.random.stateless_uniform([16, 16, 16, 3], seed=[3, 4], minval=-1, maxval=1)
    reference, low = _float32_and_bfloat16(lambda: Discriminator(df=32), images)
    for training in (False, True):  # training: both run one power iteration from the same u
        expected = reference(images, training=training).numpy()
        logits = precision.to_float32(low(images, training=training)).numpy()
        assert np.abs(expected - logits).max() < LOGIT_RELATIVE * np.abs(expected).max()
    for a, b in zip(reference.non_trainable_variables, low.non_trainable_variables):
        assert b.dtype == "float32"  # u, v
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)  # float32 power iteration


# -- the bfloat16 search ------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_searcher(tmp_path_factory):
    """The bfloat16 searcher and its initial state (as test_searcher's float32 one)."""
    searcher = build_searcher(tiny_search_config())
    checkpoint = tf.train.Checkpoint(**searcher.checkpoint_items())
    return searcher, checkpoint, checkpoint.write(str(tmp_path_factory.mktemp("initial") / "state"))


@pytest.fixture()
def searcher(shared_searcher):
    shared_searcher[1].read(shared_searcher[2]).assert_consumed()
    return shared_searcher[0]


def _float32_kept(searcher):
    """Every tensor utils/precision.py keeps float32, read through public attributes."""
    g, d = searcher.generator, searcher.discriminator
    ops_ = g.mixed_ops()
    sep_convs = [c for op in ops_ for c in op.candidates if hasattr(c, "norms")]
    norms = [bn for c in sep_convs for bn in c.norms] + [g.head.norm]
    optimizers = [searcher.g_optimizer, searcher.d_optimizer, searcher.arch_optimizer.optimizer,
                  searcher.worst_g_optimizer.optimizer, searcher.worst_d_optimizer.optimizer]
    return {
        "alphas": g.arch_variables,
        "softmax(alpha)": [op.op_weights() for op in ops_],
        "fused kernels": [k for op in ops_ if hasattr(op, "fused_kernel")
                          for k in op.fused_kernel(op.op_weights())],
        "spectral-norm u, v": d.non_trainable_variables,
        "batch-norm statistics": [x for bn in norms for x in (bn.moving_mean, bn.moving_variance)],
        "weights": g.weight_variables + d.trainable_variables,
        "optimizer state": [v for o in optimizers for v in o.variables if keras.backend.is_float_dtype(v.dtype)],
    }, len(sep_convs), len(d.non_trainable_variables)


def test_bfloat16_search_computes_in_bfloat16_and_keeps_its_state_float32(searcher):
    kept, sep_convs, spectral = _float32_kept(searcher)
    assert sep_convs == 3 * 3 * 3 and spectral == 2 * 11  # u, v of 10 convs and the dense
    for what, tensors in kept.items():
        assert tensors, what
        assert {tf.as_dtype(t.dtype).name for t in tensors} == {"float32"}, what
    g = searcher.generator
    convs = [c.conv for op in g.mixed_ops() for c in op.candidates if hasattr(c, "conv")]
    assert {conv.compute_dtype for conv in convs} == {"bfloat16"}
    assert g.head.norm.compute_dtype == "bfloat16"
    # Only float16 scales the loss.
    for optimizer in (searcher.g_optimizer, searcher.arch_optimizer.optimizer):
        assert not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    real = next(batches(0))
    assert searcher.d_step(real).dtype == tf.float32
    assert searcher.g_step().dtype == tf.float32
    searcher.make_worst_players()
    out = searcher.arch_step(real, searcher.worst_value_step(real))
    assert {v.dtype for v in out.values()} == {tf.float32}
    # After steps (power iterations, batch statistics, Adam updates) still float32.
    for what, tensors in _float32_kept(searcher)[0].items():
        assert {tf.as_dtype(t.dtype).name for t in tensors} == {"float32"}, what


def _history(workdir):
    return json.load(open(os.path.join(workdir, "genotype_history.json")))


def test_bfloat16_search_is_deterministic_and_resumes_exactly(searcher, shared_searcher, tmp_path):
    """A second run with the seed repeats the first's epoch 1 and, resumed, its epoch 2."""
    _, initial, initial_path = shared_searcher
    run_search(tiny_search_config(), str(tmp_path / "first"), verbose=0, searcher=searcher)
    initial.read(initial_path).assert_consumed()
    run_search(tiny_search_config(epochs=1), str(tmp_path / "resumed"), verbose=0, searcher=searcher)
    searcher.run_epoch(batches(11), batches(12))  # "a new process": the state moves away
    resumed = run_search(tiny_search_config(), str(tmp_path / "resumed"), verbose=0,
                         searcher=searcher)
    assert resumed.epochs_run == 1
    first = _history(tmp_path / "first")
    assert [h["epoch"] for h in first] == [1, 2]
    assert _history(tmp_path / "resumed") == first  # bit for bit, losses and alphas
    edge = next(iter(first[0]["alphas"]))
    assert first[0]["alphas"][edge]["alpha"] != first[1]["alphas"][edge]["alpha"]
    assert all(np.isfinite(first[-1][k]) for k in ("d_loss", "g_loss", "duality_gap"))


# -- the bfloat16 retraining and its export ------------------------------------------------


def test_bfloat16_trainer_keeps_ema_losses_and_optimizer_state_float32():
    trainer = build_trainer(tiny_train_config(), PRESETS["alphaGAN_s"])
    assert trainer.generator.dtype_policy.name == "mixed_bfloat16"
    assert trainer.ema_generator.dtype_policy.name == "mixed_bfloat16"
    real = tf.zeros([4, 8, 8, 3])
    assert trainer.d_step(real).dtype == tf.float32
    assert trainer.g_step().dtype == tf.float32  # also one EMA update
    tensors = (trainer.ema_generator.variables + trainer.generator.variables
               + trainer.discriminator.variables
               + [v for o in (trainer.g_optimizer, trainer.d_optimizer) for v in o.variables
                  if keras.backend.is_float_dtype(v.dtype)])
    assert {v.dtype for v in tensors} == {"float32"}
    assert not isinstance(trainer.g_optimizer, keras.optimizers.LossScaleOptimizer)
    float16 = build_trainer(tiny_train_config(precision="float16"), PRESETS["alphaGAN_s"])
    assert isinstance(float16.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert float16.d_step(real).dtype == tf.float32


def test_bfloat16_retrain_exports_a_float32_saved_model_and_tflite(tmp_path):
    from alphagan_tf.serving import savedmodel, tflite
    from alphagan_tf.serving.signatures import latents_for_seed

    workdir = str(tmp_path / "train")
    summary = run_training(tiny_train_config(), workdir, verbose=0)
    assert np.isfinite(summary["final_losses"]["g_loss"])
    assert json.load(open(os.path.join(workdir, "train_config.json")))["precision"] == "bfloat16"
    generator = load_trained_generator(workdir)  # float32, from the float32 checkpoint
    assert generator.dtype_policy.name == "float32"
    z = latents_for_seed(0, 4, 8).numpy()
    expected = generator(z, training=False).numpy()
    path = savedmodel.export_saved_model(generator, str(tmp_path / "export"), max_batch=4,
                                         warmup_batch_sizes=(1,))
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        signature = meta_graph.signature_def["serving_default"]
        assert signature.inputs["z"].dtype == tf.float32.as_datatype_enum
        assert signature.outputs["images"].dtype == tf.uint8.as_datatype_enum
        images = session.run(signature.outputs["images_float"].name,
                             {signature.inputs["z"].name: z})
    np.testing.assert_allclose(images, expected, atol=1e-6)
    # The bfloat16 EMA generator the run trained computes the same images, to bfloat16 rounding.
    with precision.dtype_policy("bfloat16"):
        trained = Generator.from_genotype(PRESETS["alphaGAN_s"], gf=8, latent_dim=8, bottom_width=1)
    trained(z, training=False)
    for a, b in zip(generator.variables, trained.variables):
        b.assign(a)
    assert np.abs(precision.to_float32(trained(z, training=False)).numpy() - images).max() < INFERENCE_MAX

    source = tflite.write_conversion_source(generator, str(tmp_path / "source"))
    file = tflite.write_tflite(tflite.convert_saved_model(source, 8, "none"),
                               str(tmp_path / "generator_none.tflite"))
    np.testing.assert_allclose(tflite.TFLiteGenerator(file)(z), expected, atol=1e-5)


def test_serving_precision_bfloat16_exports_the_same_interface_computing_in_bfloat16(tmp_path):
    """`export --serving_precision=bfloat16`: float32 z in, uint8 / float32 images out, the v1
    session loader, images within bfloat16 rounding of the float32 export of the same weights."""
    import subprocess
    import sys

    from alphagan_tf.serving.signatures import latents_for_seed

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    common = ["--genotype=alphaGAN_s", "--gf=16", "--latent_dim=8", "--bottom_width=2", "--seed=3",
              "--max_batch=8"]

    def export(*args):
        return subprocess.run([sys.executable, "-m", "alphagan_tf.export", *common, *args],
                              cwd=root, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})

    paths = {}
    for name in ("float32", "bfloat16"):
        result = export(f"--export_dir={tmp_path / name}", f"--serving_precision={name}")
        assert result.returncode == 0, result.stderr[-2000:]
        paths[name] = result.stdout.strip().splitlines()[-1]
    z = latents_for_seed(0, 8, 8).numpy()
    images = {}
    for name, path in paths.items():
        info = json.load(open(os.path.join(path, "assets.extra", "export_info.json")))
        assert info["compute_dtype"] == name
        with tf.Graph().as_default(), tf.compat.v1.Session() as session:
            meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
            signature = meta_graph.signature_def["serving_default"]
            assert signature.inputs["z"].dtype == tf.float32.as_datatype_enum
            assert signature.outputs["images"].dtype == tf.uint8.as_datatype_enum
            assert signature.outputs["images_float"].dtype == tf.float32.as_datatype_enum
            images[name] = session.run(signature.outputs["images_float"].name,
                                       {signature.inputs["z"].name: z})
    difference = np.abs(images["bfloat16"] - images["float32"]).max()
    assert 1e-4 < difference < INFERENCE_MAX  # > 1e-4: the bfloat16 graph did round

    tflite = export(f"--export_dir={tmp_path / 'lite'}", "--format=tflite",
                    "--serving_precision=bfloat16")
    assert tflite.returncode == 2
    assert "--serving_precision is the SavedModel's" in tflite.stderr
    assert not (tmp_path / "lite").exists()
