"""TFLite conversion run with LiteRT: parity with the SavedModel per quantisation, sample CLI."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

from alphagan_tf.gan.space.generator import Generator
from alphagan_tf.gan.space.genotypes import PRESETS
from alphagan_tf.serving import savedmodel, tflite
from alphagan_tf.serving.samplers import SavedModelGenerator, load_generator, sample_images
from alphagan_tf.serving.signatures import latents_for_seed

GF, LATENT, BOTTOM = 16, 16, 1  # gf 16: weights large enough to be quantised (>= 1024 values)

# Max / mean absolute difference of images in [-1, 1] vs the SavedModel on 64 latents.
# Measured on random-weight generators at gf 16 (alphaGAN_l and _s, weight seeds 0 and 1):
#   none     max <= 5.1e-7                 float16  max <= 6.5e-4, mean <= 9.1e-5
#   dynamic  max <= 0.0121, mean <= 0.0015 int8     max <= 0.202,  mean <= 0.0092
# The bounds leave a margin of about 2-3x.
BOUNDS = {
    "none": (1e-5, 1e-6),
    "float16": (2e-3, 3e-4),
    "dynamic": (0.04, 0.005),
    "int8": (0.4, 0.025),
}


def _tiny_generator(name, seed=0):
    keras.utils.set_random_seed(seed)
    g = Generator.from_genotype(PRESETS[name], gf=GF, latent_dim=LATENT, bottom_width=BOTTOM)
    for _ in range(3):  # non-trivial batch-norm moving statistics
        g(np.random.default_rng(seed).normal(size=(8, LATENT)).astype("float32"), training=True)
    return g


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """alphaGAN_l in all four variants and alphaGAN_s in float32, next to their SavedModels."""
    root = tmp_path_factory.mktemp("tflite")
    out = {}
    for name, modes in (("alphaGAN_l", tflite.QUANTIZE_MODES), ("alphaGAN_s", ("none",))):
        g = _tiny_generator(name)
        saved = savedmodel.write_saved_model(g, str(root / name / "saved_model"))
        source = tflite.write_conversion_source(g, str(root / name / "source"))
        files = {
            mode: tflite.write_tflite(
                tflite.convert_saved_model(source, LATENT, mode, calibration_samples=64),
                str(root / name / f"generator_{mode}.tflite"),
            )
            for mode in modes
        }
        out[name] = (g, saved, files)
    return out


@pytest.mark.parametrize(
    "name, mode",
    [("alphaGAN_l", m) for m in tflite.QUANTIZE_MODES] + [("alphaGAN_s", "none")],
)
def test_parity_with_the_saved_model(models, name, mode):
    _, saved, files = models[name]
    z = latents_for_seed(7, 64, LATENT).numpy()
    reference = SavedModelGenerator(saved)(z)
    lite = tflite.TFLiteGenerator(files[mode], num_threads=1)
    assert lite.latent_dim == LATENT and lite.image_shape == (8, 8, 3)
    images = lite(z)
    assert images.shape == reference.shape == (64, 8, 8, 3)
    diff = np.abs(images - reference)
    max_bound, mean_bound = BOUNDS[mode]
    assert diff.max() <= max_bound, (mode, diff.max())
    assert diff.mean() <= mean_bound, (mode, diff.mean())
    if mode != "none":  # quantisation did something
        assert diff.max() > 1e-6
    # Dynamic batch: one latent at a time gives the same images as the batch.
    np.testing.assert_allclose(lite(z[:1]), images[:1], atol=1e-6)
    np.testing.assert_allclose(lite(z[3:8]), images[3:8], atol=1e-6)


def test_quantised_files_hold_quantised_tensors_and_are_smaller(models):
    from ai_edge_litert.interpreter import Interpreter

    files = models["alphaGAN_l"][2]
    sizes = {mode: os.path.getsize(path) for mode, path in files.items()}
    for mode in ("float16", "dynamic", "int8"):
        assert sizes[mode] < 0.8 * sizes["none"], sizes

    def dtypes(mode):
        interpreter = Interpreter(model_path=files[mode])
        return {d["dtype"] for d in interpreter.get_tensor_details()}

    assert np.float16 in dtypes("float16")
    assert np.int8 in dtypes("dynamic")
    int8 = tflite.TFLiteGenerator(files["int8"])
    details = int8.runner.get_input_details()["z"], int8.runner.get_output_details()["images_float"]
    assert all(d["dtype"] == np.float32 for d in details)  # float32 in and out
    assert np.int8 in dtypes("int8") and np.float16 not in dtypes("int8")


def test_runner_rejects_bad_latents(models):
    lite = tflite.TFLiteGenerator(models["alphaGAN_s"][2]["none"])
    for bad in (np.zeros([2, 7], np.float32), np.zeros([LATENT], np.float32),
                np.zeros([2, LATENT], np.float64), np.zeros([0, LATENT], np.float32)):
        with pytest.raises(ValueError, match=r"z must be float32 \[batch, 16\] with 1 <= batch "
                           r"<= 1024. Received: dtype="):
            lite(bad)
    with pytest.raises(ValueError, match="quantize must be one of"):
        tflite.convert_to_tflite(models["alphaGAN_s"][0], "int4")


def test_runner_has_the_saved_models_guard(models):
    """Finding 3 of issue 35: NaN, inf and 3e38 latents gave non-finite images silently and
    any batch was accepted (100000: 6.9 GB, then a bare RuntimeError)."""
    from alphagan_tf.serving.generator_guard import GeneratorInputError

    path = models["alphaGAN_s"][2]["none"]
    lite = tflite.TFLiteGenerator(path, num_threads=1, max_batch=8)
    z = latents_for_seed(0, 8, LATENT).numpy()
    huge = np.full([1, LATENT], 3e38, np.float32)
    # What the guard is for: the interpreter itself turns z = 3e38 into non-finite images.
    assert not np.isfinite(lite.runner(z=huge)["images_float"]).all()
    refused = [
        (np.where(np.arange(LATENT) == 3, np.nan, z[:2]).astype(np.float32),
         "z must be finite. Received: 2 NaN and 0 infinite values"),
        (np.full([1, LATENT], np.inf, np.float32), "z must be finite. Received: 0 NaN and 16 infinite"),
        (huge, "z must satisfy |z| <= 10000 (latents are standard normal; larger ones overflow "
               "the generator). Received: max |z| = 3e+38"),
        (np.zeros([9, LATENT], np.float32),
         "z must be float32 [batch, 16] with 1 <= batch <= 8. Received: dtype=float32, shape=(9, 16)"),
        (np.zeros([100000, LATENT], np.float32), "1 <= batch <= 8. Received: dtype=float32, "
                                                  "shape=(100000, 16)"),
    ]
    for bad, message in refused:
        with pytest.raises(GeneratorInputError) as info:
            lite(bad)
        assert message in str(info.value), str(info.value)
    # Still serving: the same latents give the images they gave before the refusals.
    images = lite(z)
    assert images.shape == (8, 8, 8, 3) and np.isfinite(images).all() and images.std() > 1e-3
    np.testing.assert_array_equal(images, tflite.TFLiteGenerator(path, num_threads=1)(z))
    # Up to the bound |z| = 1e4, served and finite (the SavedModel's bound, same test there).
    assert np.isfinite(lite(np.full([2, LATENT], 1e4, np.float32))).all()
    for bad in (0, 2**31, 1.5):
        with pytest.raises(GeneratorInputError, match=r"max_batch: must be an integer in \[1, "):
            tflite.TFLiteGenerator(path, max_batch=bad)


def test_runner_refuses_non_finite_images(tmp_path):
    from alphagan_tf.serving.generator_guard import GeneratorInputError

    g = _tiny_generator("alphaGAN_s")
    bias = g.head.conv.bias  # the last conv's bias: a NaN there reaches every pixel
    bias.assign(np.full(bias.shape, np.nan, np.float32))
    path = tflite.write_tflite(tflite.convert_to_tflite(g), str(tmp_path / "nan.tflite"))
    with pytest.raises(GeneratorInputError) as info:
        tflite.TFLiteGenerator(path)(latents_for_seed(0, 2, LATENT).numpy())
    assert str(info.value).startswith("images_float are not finite: the generator overflowed "
                                      "on this z. Received: 384 non-finite values"), str(info.value)


def _read_png(path):
    return tf.io.decode_png(tf.io.read_file(path)).numpy()


def test_sample_cli_gives_the_same_grid_from_both_formats(models, tmp_path, capsys):
    from alphagan_tf.cli import sample as sample_cli

    g, saved, files = models["alphaGAN_s"]
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    outputs = {}
    for fmt, model in (("savedmodel", saved), ("tflite", files["none"])):
        outputs[fmt] = str(tmp_path / f"{fmt}.png")
        with flagsaver.as_parsed(model=model, n="10", seed="3", batch_size="4",
                                 out=outputs[fmt]):
            sample_cli.main(["sample"])
    assert capsys.readouterr().out.split() == [outputs["savedmodel"], outputs["tflite"]]
    a, b = _read_png(outputs["savedmodel"]), _read_png(outputs["tflite"])
    assert a.shape == b.shape and a.std() > 5
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert (a != b).mean() < 0.002  # float32 parity 5e-7: a pixel flips only near a .5 boundary
    # The grid's images are those of the SavedModel's `generate` signature for the seed.
    generated = SavedModelGenerator(saved).generate(seed=3, count=10)["images_float"]
    np.testing.assert_allclose(sample_images(load_generator(saved), 10, 3, 4), generated, atol=1e-6)
    np.testing.assert_allclose(sample_images(load_generator(files["none"]), 10, 3, 4), generated,
                               atol=1e-5)
    # A different seed, a different grid.
    with flagsaver.as_parsed(model=saved, n="10", seed="4", out=str(tmp_path / "other.png")):
        sample_cli.main(["sample"])
    assert np.abs(_read_png(str(tmp_path / "other.png")).astype(int) - a).max() > 20


def test_export_cli_writes_tflite(tmp_path, capsys):
    from alphagan_tf.cli import export as export_cli

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    with flagsaver.as_parsed(genotype="alphaGAN_s", gf="8", latent_dim="16", bottom_width="1",
                             export_dir=str(tmp_path), format="tflite", quantize="float16"):
        export_cli.main(["export"])
    path = str(tmp_path / "generator_float16.tflite")
    assert capsys.readouterr().out.split() == [path]
    lite = tflite.TFLiteGenerator(path)
    images = lite(latents_for_seed(0, 2, 16).numpy())
    assert images.shape == (2, 8, 8, 3) and images.std() > 1e-3
    from alphagan_tf.cli import sample as sample_cli

    with flagsaver.as_parsed(model=str(tmp_path / "missing.tflite"), out=str(tmp_path / "x.png")):
        assert sample_cli.main(["sample"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "error: --model: TFLite model not found" in lines[0], lines
    # The runner's batch bound is --max_batch (default 1024): a batch above it is one line.
    grid = str(tmp_path / "grid.png")
    with flagsaver.as_parsed(model=path, n="4", batch_size="4", max_batch="2", out=grid):
        assert sample_cli.main(["sample"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: --batch_size: must be <= 2, the largest batch {path} accepts (--max_batch). "
        "Received: 4"]
    with flagsaver.as_parsed(model=path, n="4", batch_size="4", max_batch="4", out=grid):
        assert sample_cli.main(["sample"]) == 0
    assert capsys.readouterr().out.split() == [grid]
