"""Retraining: exact EMA arithmetic, exact resume, periodic evaluation and the best checkpoint."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.gan.space.generator_config import GeneratorConfig
from alphagan_tf.gan.train.config import TrainConfig
from alphagan_tf.gan.train.config import TrainRunConfig
from alphagan_tf.gan.train.ema import WeightEMA
from alphagan_tf.gan.train.loop import load_trained_generator, run_training


def _dense_with_state():
    """Dense (trainable) + BatchNormalization (non-trainable moving statistics)."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2), keras.layers.BatchNormalization()])
    return model


def test_ema_update_is_exact():
    model, average = _dense_with_state(), _dense_with_state()
    ema = WeightEMA(model, average, decay=0.75)
    kernel, bias = model.layers[0].kernel, model.layers[0].bias
    kernel.assign([[1.0, 2.0], [3.0, 4.0]])
    bias.assign([8.0, -8.0])
    ema.initialize()
    np.testing.assert_array_equal(average.layers[0].kernel.numpy(), [[1.0, 2.0], [3.0, 4.0]])

    kernel.assign([[5.0, 6.0], [7.0, 8.0]])
    bias.assign([0.0, 0.0])
    model.layers[1].moving_mean.assign([0.5, -0.25])
    ema.update()
    # 0.75 * old + 0.25 * new, exactly representable in float32.
    np.testing.assert_array_equal(average.layers[0].kernel.numpy(), [[2.0, 3.0], [4.0, 5.0]])
    np.testing.assert_array_equal(average.layers[0].bias.numpy(), [6.0, -6.0])
    # Non-trainable state (BN moving statistics) is copied, not averaged.
    np.testing.assert_array_equal(average.layers[1].moving_mean.numpy(), [0.5, -0.25])
    tf.function(ema.update)()  # the same step compiled, as in GANTrainer's g_step
    np.testing.assert_array_equal(average.layers[0].kernel.numpy(), [[2.75, 3.75], [4.75, 5.75]])
    np.testing.assert_array_equal(average.layers[0].bias.numpy(), [4.5, -4.5])
    # The trained model itself is untouched.
    np.testing.assert_array_equal(kernel.numpy(), [[5.0, 6.0], [7.0, 8.0]])


def test_ema_rejects_bad_decay_and_structure():
    with pytest.raises(ValueError, match="decay=1.0"):
        WeightEMA(_dense_with_state(), _dense_with_state(), decay=1.0)
    other = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="structure"):
        WeightEMA(_dense_with_state(), other)


def _tiny_config(g_iterations: int) -> TrainRunConfig:
    return TrainRunConfig(
        train=TrainConfig(g_iterations=g_iterations, n_critic=2, g_batch_size=4, d_batch_size=4,
                          ema_decay=0.5),
        genotype="alphaGAN_s", model=GeneratorConfig(gf=8, df=8, latent_dim=8, bottom_width=2),
        seed=3,
        checkpoint_every=2, sample_every=2, eval_every=2, keep_checkpoints=5,
    )


def _fake_evaluate(generator):
    """A deterministic 'FID' of the EMA weights that does not touch any random state."""
    return {"fid": float(sum(np.abs(v.numpy()).sum() for v in generator.trainable_variables))}


def _checkpoint_values(workdir):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")))
    return {
        name: reader.get_tensor(name)
        for name, dtype in reader.get_variable_to_dtype_map().items()
        if dtype.is_floating or dtype.is_integer
    }


def _interrupted_copy(workdir, into, iteration):
    """The workdir as a run stopped after `iteration` left it (its files up to that checkpoint)."""
    os.makedirs(os.path.join(into, "checkpoints"))
    for name in ("train_config.json", "genotype.json", "eval_history.json"):
        shutil.copy(os.path.join(workdir, name), into)
    prefix = f"ckpt-{iteration}"
    for name in os.listdir(os.path.join(workdir, "checkpoints")):
        if name.startswith(prefix + "."):
            shutil.copy(os.path.join(workdir, "checkpoints", name), os.path.join(into, "checkpoints"))
    tf.compat.v1.train.update_checkpoint_state(os.path.join(into, "checkpoints"),
                                               os.path.join(into, "checkpoints", prefix))


def test_resume_is_exact(tmp_path):
    # Train 4 G iterations straight (checkpoints at 2 and 4); then resume a copy of the
    # workdir as it stood at iteration 2 (what a run with g_iterations=2 leaves: same
    # checkpoint, evaluation and samples at 2) for the remaining 2 iterations.
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    summary = run_training(_tiny_config(4), straight, evaluate_fn=_fake_evaluate, verbose=0)
    _interrupted_copy(straight, resumed, 2)
    run_training(_tiny_config(4), resumed, evaluate_fn=_fake_evaluate, verbose=0)

    a, b = _checkpoint_values(straight), _checkpoint_values(resumed)
    assert sorted(a) == sorted(b)
    names = [n for n in a if n.startswith(("generator/", "discriminator/", "ema_generator/"))]
    assert len(names) > 20
    for name in a:  # weights, EMA, Adam moments, latent RNG state, iteration counter
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert a["g_iterations_done/.ATTRIBUTES/VARIABLE_VALUE"] == 4
    # The weights really moved in the second half (resume did not just reload iteration 2).
    first_half = tf.train.load_checkpoint(os.path.join(resumed, "checkpoints", "ckpt-2"))
    moved = [n for n in names if not np.array_equal(first_half.get_tensor(n), b[n])]
    assert len(moved) > 10

    history_a = json.load(open(os.path.join(straight, "eval_history.json")))
    history_b = json.load(open(os.path.join(resumed, "eval_history.json")))
    assert [h["iteration"] for h in history_a] == [0, 2, 4] == [h["iteration"] for h in history_b]
    assert [h["fid"] for h in history_a] == [h["fid"] for h in history_b]
    assert summary["best_fid"] == min(h["fid"] for h in history_a)
    for name in ("samples.png", "train_summary.json"):
        assert os.path.exists(os.path.join(resumed, name)), name
    # The diversity signal of the final EMA samples, the same after an exact resume.
    resumed_summary = json.load(open(os.path.join(resumed, "train_summary.json")))
    assert summary["diversity_ratio"] > 0
    assert resumed_summary["diversity_ratio"] == pytest.approx(summary["diversity_ratio"], rel=1e-6)

    # load_trained_generator gives the EMA generator that was evaluated (at 4, and the best).
    assert _fake_evaluate(load_trained_generator(resumed))["fid"] == pytest.approx(
        history_b[-1]["fid"], rel=1e-6)
    best = load_trained_generator(straight, which="best")
    assert _fake_evaluate(best)["fid"] == pytest.approx(summary["best_fid"], rel=1e-6)


def _tensorboard_scalars(workdir, tag):
    """{step: value} of one scalar of a run's TensorBoard events."""
    import glob

    values = {}
    for path in sorted(glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def _with(config, **train):
    import dataclasses

    return dataclasses.replace(config, train=dataclasses.replace(config.train, **train))


def test_several_iterations_per_call_train_what_one_per_call_trains(tmp_path):
    """--steps_per_call=3 (calls of 3 and 1 iterations, ending at the checkpoint) = one per call."""
    import dataclasses

    config = dataclasses.replace(_tiny_config(4), checkpoint_every=4, sample_every=4, eval_every=4)
    one, three = str(tmp_path / "one"), str(tmp_path / "three")
    run_training(config, one, evaluate_fn=_fake_evaluate, verbose=0)
    run_training(_with(config, steps_per_call=3), three, evaluate_fn=_fake_evaluate, verbose=0)
    a, b = _checkpoint_values(one), _checkpoint_values(three)
    assert sorted(a) == sorted(b) and a["g_iterations_done/.ATTRIBUTES/VARIABLE_VALUE"] == 4
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert _tensorboard_scalars(one, "train/d_loss") == _tensorboard_scalars(three, "train/d_loss")


def test_a_resume_trains_at_the_learning_rate_of_its_config(tmp_path, capsys):
    """Keras checkpoints each optimizer's rate; a rerun with other rates must train at them."""
    workdir = str(tmp_path / "run")
    run_training(_with(_tiny_config(2), g_lr=5e-3, d_lr=5e-3), workdir, verbose=0)
    run_training(_with(_tiny_config(4), g_lr=1e-4, d_lr=1e-4), workdir, verbose=1)
    assert "g_adam learning rate changed from 0.005 to 0.0001 at step 2." in capsys.readouterr().out
    reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints", "ckpt-4"))
    for optimizer in ("g_optimizer", "d_optimizer"):
        rate = reader.get_tensor(f"{optimizer}/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE")
        assert rate == pytest.approx(1e-4)
    assert _tensorboard_scalars(workdir, "learning_rate/g_adam")[4] == pytest.approx(1e-4)
    assert _tensorboard_scalars(workdir, "learning_rate/d_adam")[4] == pytest.approx(1e-4)


def test_export_evaluate_and_sample_fall_back_past_a_damaged_checkpoint(tmp_path):
    """load_trained_generator (what export, evaluate and sample read) skips a truncated newest
    checkpoint as `train` does, and moves nothing (they only read the workdir)."""
    from alphagan_tf.gan.space.genotypes import load_genotype
    from alphagan_tf.gan.train.loop import build_generator

    workdir = str(tmp_path / "run")
    config = _tiny_config(4)
    run_training(config, workdir, verbose=0)
    folder = os.path.join(workdir, "checkpoints")
    data = next(os.path.join(folder, n) for n in os.listdir(folder) if n.startswith("ckpt-4.data"))
    with open(data, "r+b") as f:
        f.truncate(10)
    loaded = load_trained_generator(workdir)
    expected = build_generator(load_genotype(config.genotype), config.model)
    expected(tf.zeros([1, config.model.latent_dim]), training=False)
    tf.train.Checkpoint(ema_generator=expected).restore(
        os.path.join(folder, "ckpt-2")).expect_partial()
    assert len(loaded.variables) == len(expected.variables) > 10
    for a, b in zip(loaded.variables, expected.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert os.path.exists(data) and not os.path.exists(os.path.join(folder, "unreadable"))
