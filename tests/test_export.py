"""SavedModel export: versions, atomicity, signatures, TF1 loader, saved_model_cli, bad input."""

import hashlib
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

from alphagan_tf.gan.space.generator import Generator
from alphagan_tf.gan.space.genotypes import PRESETS
from alphagan_tf.serving import savedmodel, warmup
from alphagan_tf.serving.signatures import latents_for_seed
from alphagan_tf.utils.images import to_uint8
from tools.local_server import PredictError, SessionModel

GF, LATENT, BOTTOM = 8, 16, 1  # 8x8 images
MAX_BATCH = 8
WARMUP_SIZES = (1, 4)


def _tiny_generator(name="alphaGAN_s", seed=0):
    keras.utils.set_random_seed(seed)
    g = Generator.from_genotype(PRESETS[name], gf=GF, latent_dim=LATENT, bottom_width=BOTTOM)
    # Non-trivial moving statistics, so inference and training mode differ.
    for _ in range(3):
        g(np.random.default_rng(seed).normal(size=(8, LATENT)).astype("float32"), training=True)
    return g


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    g = _tiny_generator()
    base = tmp_path_factory.mktemp("export") / "alphagan"
    path = savedmodel.export_saved_model(
        g, str(base), max_batch=MAX_BATCH, warmup_batch_sizes=WARMUP_SIZES
    )
    return g, str(base), path


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(exported[2])


@pytest.fixture(scope="module")
def session_model(exported):
    model = SessionModel(exported[2], model_name="alphagan")
    yield model
    model.close()


def _digest(folder):
    h = hashlib.sha256()
    for root, _, names in sorted(os.walk(folder)):
        for name in sorted(names):
            with open(os.path.join(root, name), "rb") as f:
                h.update(name.encode() + f.read())
    return h.hexdigest()


def test_versions_are_numbered_and_a_failed_export_leaves_no_trace(exported, tmp_path, monkeypatch):
    g = exported[0]
    base = tmp_path / "model"
    (base / "7").mkdir(parents=True)  # an existing version (empty is enough for numbering)
    (base / "notes").mkdir()  # non-numeric: ignored
    first = savedmodel.export_saved_model(g, str(base), max_batch=MAX_BATCH, warmup_batch_sizes=(1,))
    assert os.path.basename(first) == "8"
    second = savedmodel.export_saved_model(g, str(base), max_batch=MAX_BATCH, warmup_batch_sizes=(1,))
    assert os.path.basename(second) == "9"
    assert savedmodel.existing_versions(str(base)) == [7, 8, 9]
    before = _digest(first)

    def broken(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(warmup, "write_warmup_requests", broken)
    with pytest.raises(OSError, match="simulated"):
        savedmodel.export_saved_model(g, str(base), max_batch=MAX_BATCH, warmup_batch_sizes=(1,))
    assert sorted(os.listdir(base)) == ["7", "8", "9", "notes"]  # no 10, no .tmp-*
    assert _digest(first) == before
    assert savedmodel.resolve_saved_model_dir(str(base)) == second


def test_export_rejects_the_supernet_and_bad_warmup_sizes(exported, tmp_path):
    from alphagan_tf.gan.space.search_generator import SearchGenerator

    s = SearchGenerator(gf=GF, latent_dim=LATENT, bottom_width=BOTTOM)
    s(np.zeros((1, LATENT), "float32"))
    with pytest.raises(TypeError, match="architecture variables"):
        savedmodel.export_saved_model(s, str(tmp_path / "m"))
    with pytest.raises(ValueError, match="warmup_batch_sizes"):
        savedmodel.export_saved_model(exported[0], str(tmp_path / "m"), max_batch=4,
                                      warmup_batch_sizes=(1, 16))
    assert not os.path.exists(tmp_path / "m" / "1")


def test_only_the_generator_weights_are_in_the_graph(exported):
    g, _, path = exported
    names = [
        (name, shape)
        for name, shape in tf.train.list_variables(os.path.join(path, "variables", "variables"))
        if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")
    ]
    assert len(names) == len(g.weights)  # trainable + BN moving statistics, nothing else
    assert sum(int(np.prod(s)) for _, s in names) == sum(int(np.prod(w.shape)) for w in g.weights)
    assert not any("alpha" in name.lower() for name, _ in names)


def test_serving_default_equals_the_keras_generator_in_inference_mode(exported, loaded):
    g = exported[0]
    z = latents_for_seed(5, 6, LATENT).numpy()
    out = loaded.signatures["serving_default"](z=tf.constant(z))
    images_float = out["images_float"].numpy()
    assert out["images"].dtype == tf.uint8 and out["images"].shape == (6, 8, 8, 3)
    np.testing.assert_allclose(images_float, g(z, training=False).numpy(), atol=1e-6)
    assert np.abs(images_float - g(z, training=True).numpy()).max() > 1e-3
    np.testing.assert_array_equal(out["images"].numpy(), to_uint8(images_float))
    assert -1.0 <= images_float.min() and images_float.max() <= 1.0 and images_float.std() > 1e-2


def test_generate_is_deterministic_and_uses_latents_for_seed(loaded):
    generate = loaded.signatures["generate"]
    seed, count = tf.constant(3, tf.int64), tf.constant(5, tf.int32)
    a = generate(seed=seed, count=count)
    b = generate(seed=seed, count=count)
    np.testing.assert_array_equal(a["images_float"].numpy(), b["images_float"].numpy())
    via_z = loaded.signatures["serving_default"](z=latents_for_seed(3, 5, LATENT))
    np.testing.assert_array_equal(a["images_float"].numpy(), via_z["images_float"].numpy())
    np.testing.assert_array_equal(a["images"].numpy(), via_z["images"].numpy())
    other = generate(seed=tf.constant(4, tf.int64), count=count)["images_float"].numpy()
    assert np.abs(other - a["images_float"].numpy()).max() > 1e-2
    assert a["images"].shape == (5, 8, 8, 3)


def test_tf1_session_loader_runs_both_signatures(exported, loaded):
    path = exported[2]
    z = latents_for_seed(1, 3, LATENT).numpy()
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        sig = meta_graph.signature_def["serving_default"]
        images_float = session.run(sig.outputs["images_float"].name, {sig.inputs["z"].name: z})
        gen = meta_graph.signature_def["generate"]
        generated = session.run(
            gen.outputs["images"].name,
            {gen.inputs["seed"].name: np.int64(1), gen.inputs["count"].name: np.int32(3)},
        )
    reference = loaded.signatures["serving_default"](z=tf.constant(z))
    np.testing.assert_allclose(images_float, reference["images_float"].numpy(), atol=1e-6)
    np.testing.assert_array_equal(generated, reference["images"].numpy())


def _saved_model_cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cli = [sys.executable, "-c", "from tensorflow.python.tools.saved_model_cli import main; main()"]
    return subprocess.run(cli + list(args), capture_output=True, text=True, env=env, timeout=300)


def test_saved_model_cli_run(exported, loaded, tmp_path):
    path = exported[2]
    z = np.linspace(-1, 1, 2 * LATENT, dtype=np.float32).reshape(2, LATENT)
    # --input_exprs takes Python literals only; float32 values survive the round trip.
    result = _saved_model_cli(
        "run", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default",
        "--input_exprs", f"z={z.tolist()!r}", "--outdir", str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    images = np.load(tmp_path / "images.npy")
    reference = loaded.signatures["serving_default"](z=tf.constant(z))["images"].numpy()
    np.testing.assert_array_equal(images, reference)
    bad = _saved_model_cli(
        "run", "--dir", path, "--tag_set", "serve", "--signature_def", "generate",
        "--input_exprs", "seed=0;count=0",
    )
    assert bad.returncode != 0
    assert f"count must be in [1, {MAX_BATCH}]. Received: count=" in bad.stderr


# (input name, value, expected fragments of the message)
BAD_Z = [
    ("rank 1", np.zeros([LATENT], np.float32), ["z must be float32 [batch, 16]", f"[{LATENT}]"]),
    ("latent size", np.zeros([2, 7], np.float32), ["z must be float32 [batch, 16]", "[2 7]"]),
    ("rank 3", np.zeros([2, LATENT, 1], np.float32), ["z must be float32", f"[2 {LATENT} 1]"]),
    ("empty batch", np.zeros([0, LATENT], np.float32), ["1 <= batch <= 8", f"[0 {LATENT}]"]),
    ("batch too large", np.zeros([9, LATENT], np.float32), ["1 <= batch <= 8", f"[9 {LATENT}]"]),
    ("not finite", np.full([2, LATENT], np.nan, np.float32), ["z must be finite"]),
    # Finite but huge: 3e38 made NaN floats / black uint8 images before the bound.
    ("huge", np.full([2, LATENT], 3e38, np.float32), ["|z| <= 10000", "max |z| =] [3e+38]"]),
    ("above the bound", np.full([1, LATENT], -1.0001e4, np.float32), ["|z| <= 10000", "[10001"]),
]
BAD_GENERATE = [
    ("count 0", {"seed": np.int64(0), "count": np.int32(0)}, ["count must be in [1, 8]", "count=] [0]"]),
    ("count too large", {"seed": np.int64(0), "count": np.int32(9)}, ["count must be in [1, 8]", "[9]"]),
    ("negative count", {"seed": np.int64(0), "count": np.int32(-3)}, ["count must be in [1, 8]"]),
    ("seed not scalar", {"seed": np.array([0], np.int64), "count": np.int32(2)},
     ["seed must be an int64 scalar", "shape=] [1]"]),
    ("count not scalar", {"seed": np.int64(0), "count": np.array([2, 3], np.int32)},
     ["count must be an int32 scalar", "shape=] [2]"]),
    ("count [1]", {"seed": np.int64(0), "count": np.array([1], np.int32)},
     ["count must be an int32 scalar", "shape=] [1]"]),
    ("count [[2]]", {"seed": np.int64(0), "count": np.array([[2]], np.int32)},
     ["count must be an int32 scalar", "shape=] [1 1]"]),
]


@pytest.mark.parametrize("case, z, fragments", BAD_Z, ids=[c[0] for c in BAD_Z])
def test_bad_z_gives_a_clear_error_where_tf_serving_feeds_it(session_model, loaded, case, z, fragments):
    # C++ session feeds (as TF Serving) and TF2 loaded signatures: both reach the graph's asserts.
    with pytest.raises(PredictError) as info:
        session_model.predict("serving_default", {"z": z})
    assert info.value.code == "INVALID_ARGUMENT"
    with pytest.raises(tf.errors.InvalidArgumentError) as info2:
        loaded.signatures["serving_default"](z=tf.constant(z))
    for message in (str(info.value), info2.value.message):
        for fragment in fragments:
            assert fragment in message, message


@pytest.mark.parametrize("case, inputs, fragments", BAD_GENERATE, ids=[c[0] for c in BAD_GENERATE])
def test_bad_seed_or_count_gives_a_clear_error(session_model, loaded, case, inputs, fragments):
    with pytest.raises(PredictError) as info:
        session_model.predict("generate", inputs)
    assert info.value.code == "INVALID_ARGUMENT"
    # TF2's loader too (count=[2, 3] gave 5 images when seed and count were declared scalar).
    with pytest.raises(tf.errors.InvalidArgumentError) as info2:
        loaded.signatures["generate"](**{k: tf.constant(v) for k, v in inputs.items()})
    for message in (str(info.value), info2.value.message):
        for fragment in fragments:
            assert fragment in message, message


def test_latents_up_to_the_bound_are_served_finite_and_unclipped(loaded):
    from alphagan_tf.serving.generator_guard import MAX_ABS_LATENT

    z = np.stack([np.full([LATENT], MAX_ABS_LATENT), np.full([LATENT], MAX_ABS_LATENT / 2)])
    images = loaded.signatures["serving_default"](z=tf.constant(z, tf.float32))["images_float"]
    assert np.isfinite(images.numpy()).all()
    assert np.abs(images.numpy()[0] - images.numpy()[1]).max() > 0  # not clipped to one value


def test_wrong_dtype_and_python_feed_checks_name_the_input(exported, session_model, loaded):
    z64 = np.zeros([2, LATENT], np.float64)
    with pytest.raises(PredictError) as info:  # TF Serving's path: the session's type check
        session_model.predict("serving_default", {"z": z64})
    assert info.value.code == "INVALID_ARGUMENT"
    assert "serving_default_z" in str(info.value) and "double" in str(info.value)
    with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor"):
        loaded.signatures["serving_default"](z=tf.constant(z64))
    with pytest.raises(PredictError, match=r"Inputs must be exactly \['z'\]"):
        session_model.predict("serving_default", {"latent": np.zeros([1, LATENT], np.float32)})
    # A Python TF1 session checks the placeholder shape itself, naming the tensor.
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        sig = tf.compat.v1.saved_model.loader.load(session, ["serve"], exported[2]).signature_def
        with pytest.raises(ValueError, match=r"serving_default_z:0, which has shape \(None, 16\)"):
            session.run(sig["serving_default"].outputs["images"].name,
                        {sig["serving_default"].inputs["z"].name: np.zeros([2, 7], np.float32)})


def test_warmup_requests_are_real_predict_requests_that_run(exported, session_model):
    path = exported[2]
    logs = warmup.read_warmup_requests(path)
    assert len(logs) == len(WARMUP_SIZES)
    for log, batch in zip(logs, WARMUP_SIZES):
        request = log.predict_log.request
        assert request.model_spec.name == "alphagan"
        assert request.model_spec.signature_name == "serving_default"
        z = tf.make_ndarray(request.inputs["z"])
        assert z.shape == (batch, LATENT) and z.dtype == np.float32
        out = session_model.predict("serving_default", {"z": z})
        assert out["images"].shape == (batch, 8, 8, 3)
    info = savedmodel.read_export_info(path)
    assert info["latent_dim"] == LATENT and info["image_size"] == 8 and info["max_batch"] == MAX_BATCH
    assert info["genotype"] == PRESETS["alphaGAN_s"].to_dict()


def _fake_training_workdir(root):
    """What load_trained_generator reads: train_config.json, genotype.json, checkpoints/."""
    raw = _tiny_generator("alphaGAN_l", seed=1)
    ema = _tiny_generator("alphaGAN_l", seed=2)
    os.makedirs(root / "checkpoints")
    with open(root / "train_config.json", "w") as f:
        json.dump({"model": {"gf": GF, "bottom_width": BOTTOM, "latent_dim": LATENT}}, f)
    PRESETS["alphaGAN_l"].save(str(root / "genotype.json"))
    tf.train.Checkpoint(generator=raw, ema_generator=ema).save(str(root / "checkpoints" / "ckpt"))
    return raw, ema


def test_export_cli_exports_the_ema_generator_of_a_checkpoint(tmp_path, capsys):
    from alphagan_tf.cli import export as export_cli

    raw, ema = _fake_training_workdir(tmp_path / "train")
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    with flagsaver.as_parsed(checkpoint=str(tmp_path / "train"), export_dir=str(tmp_path / "out"),
                             max_batch="4"):
        export_cli.main(["export"])
        export_cli.main(["export"])
    assert capsys.readouterr().out.split() == [str(tmp_path / "out" / "1"), str(tmp_path / "out" / "2")]
    model = tf.saved_model.load(str(tmp_path / "out" / "2"))
    z = latents_for_seed(0, 4, LATENT).numpy()
    images = model.signatures["serving_default"](z=tf.constant(z))["images_float"].numpy()
    np.testing.assert_allclose(images, ema(z, training=False).numpy(), atol=1e-6)
    assert np.abs(images - raw(z, training=False).numpy()).max() > 1e-2
    info = savedmodel.read_export_info(str(tmp_path / "out" / "2"))
    assert info["source"]["weights"] == "ema_generator" and info["source"]["which"] == "latest"
    assert [len(tf.make_ndarray(log.predict_log.request.inputs["z"]))
            for log in warmup.read_warmup_requests(str(tmp_path / "out" / "2"))] == [1, 4]


def _one_error_line(capsys):
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_export_cli_needs_exactly_one_source(tmp_path, capsys):
    from alphagan_tf.cli import export as export_cli

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    with flagsaver.as_parsed(export_dir=str(tmp_path / "out")):
        assert export_cli.main(["export"]) == 2
    assert "exactly one of --checkpoint" in _one_error_line(capsys)
    with flagsaver.as_parsed(export_dir=str(tmp_path / "out"), checkpoint=str(tmp_path),
                             genotype="alphaGAN_s"):
        assert export_cli.main(["export"]) == 2
    assert "exactly one of --checkpoint" in _one_error_line(capsys)
    with flagsaver.as_parsed(export_dir=str(tmp_path / "out"), checkpoint=str(tmp_path / "none")):
        assert export_cli.main(["export"]) == 2
    assert "train_config.json is missing" in _one_error_line(capsys)
    assert not os.path.exists(tmp_path / "out" / "1")


def test_export_refuses_a_diverged_generator(tmp_path, capsys):
    from alphagan_tf.cli import export as export_cli

    raw, ema = _fake_training_workdir(tmp_path / "train")
    ema.trainable_variables[3].assign(tf.fill(ema.trainable_variables[3].shape, np.nan))
    tf.train.Checkpoint(generator=raw, ema_generator=ema).save(
        str(tmp_path / "train" / "checkpoints" / "ckpt"))
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    with flagsaver.as_parsed(checkpoint=str(tmp_path / "train"), export_dir=str(tmp_path / "out")):
        assert export_cli.main(["export"]) == 2
    assert "non-finite weights (1 variables" in _one_error_line(capsys)
    assert not os.path.exists(tmp_path / "out")
