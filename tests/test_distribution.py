"""The search and the retraining under tf.distribute: two replicas compute what one device computes.

The MirroredStrategy runs need two logical CPU devices, which must be set up
before TensorFlow initialises, so they run in subprocesses
(tests/distributed_search_run.py: it traces the supernet's steps for one device and
for two replicas; 90 + 225 CPU-seconds, 4:48 alone on 2 cores, more on a busy machine,
hence the 20-minute timeout of the first test, which builds the fixture;
tests/distributed_train_run.py: a tiny retraining, 37 CPU-seconds; as a fixture 39 s at load 1,
73 s at load 4 on 2 cores).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.utils import distribution

HERE = os.path.dirname(os.path.abspath(__file__))


def _run_script(name, workdir, timeout):
    """The JSON a tests/distributed_*_run.py script prints on its last line."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(
        [sys.executable, os.path.join(HERE, name), str(workdir)],
        capture_output=True, text=True, env=env, timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return _run_script("distributed_search_run.py", tmp_path_factory.mktemp("distributed"), 1200)


@pytest.fixture(scope="module")
def train_runs(tmp_path_factory):
    return _run_script("distributed_train_run.py", tmp_path_factory.mktemp("distributed_train"), 600)


def flat(values):
    return np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in values])


@pytest.mark.timeout(1200)
@pytest.mark.long  # the search traced for one device and two replicas: ~400-500 s
def test_two_replicas_give_the_one_device_search(runs):
    assert runs["replicas"] == [1, 2]
    assert runs["synchronized_bn"] == [False, True]
    one, two = runs["one"], runs["two"]
    assert [h["epoch"] for h in one] == [h["epoch"] for h in two] == [1, 2]
    for a, b in zip(one, two):
        for name in ("d_loss", "g_loss", "worst_d_value", "worst_g_loss", "duality_gap"):
            assert b[name] == pytest.approx(a[name], rel=1e-5, abs=1e-5), name
        assert b["genotype"] == a["genotype"]
        alphas_one = flat([e["alpha"] for e in a["alphas"].values()])
        alphas_two = flat([e["alpha"] for e in b["alphas"].values()])
        np.testing.assert_allclose(alphas_two, alphas_one, rtol=0, atol=1e-6)
    # ... and the alphas did move (by far more than the tolerance).
    moved = flat([e["alpha"] for e in one[-1]["alphas"].values()]) - flat(runs["alphas_initial"])
    assert np.abs(moved).max() > 1e-4


# Biases whose gradient is mathematically zero: what cell 3's normal[1], normal[2] and x2 skip
# edges add goes straight into the head's training-mode batch norm, which removes any
# per-channel shift (tests/test_parity_networks.py::_shift_only, the same edges). Their
# gradients are float noise, which Adam turns into steps of about +-lr whatever its size, so
# the two runs' summation orders send them different ways; the head batch norm's moving mean
# averages them in. Both runs are right; what is compared there is the size of the walk.
SHIFT_ONLY = tuple(f"search_generator/cell3/{edge}/" for edge in ("normal1", "normal2", "skip1"))
ABSORBS_SHIFTS = "search_generator/head/bn/moving_mean"


def adam_walk(lr, steps):
    """How far apart two runs' weight can get when Adam (beta1 0, beta2 0.9) steps it by noise.

    One step moves a weight by at most sqrt(1.9) lr: two runs walking opposite ways differ
    by at most twice that per step.
    """
    return 2 * np.sqrt(1.9) * lr * steps


@pytest.mark.long  # the search traced for one device and two replicas: ~400-500 s
def test_two_replicas_train_the_same_weights(runs):
    # The tiny search's G learning rate and G steps (2 epochs of 5 D steps, n_critic 5).
    walk = adam_walk(2e-4, 2)
    for player in ("generator", "discriminator"):
        one, two = runs["one_variables"][player], runs["two_variables"][player]
        assert sorted(one) == sorted(two)
        compared = 0
        for path in one:
            a, b = np.asarray(one[path]), np.asarray(two[path])
            if path.endswith("/bias") and path.startswith(SHIFT_ONLY):
                assert np.abs(b - a).max() <= walk, path
            elif path == ABSORBS_SHIFTS:
                assert np.abs(b - a).max() <= walk, path
            else:
                # Adam moves each weight ~lr per step; replicas differ only by summation order.
                np.testing.assert_allclose(b, a, rtol=0, atol=5e-5, err_msg=path)
                compared += a.size
        assert compared > 0.99 * sum(np.size(v) for v in one.values())


@pytest.mark.long  # the search traced for one device and two replicas: ~400-500 s
def test_arch_optimizer_decay_is_shared_between_replicas(runs):
    one, two = runs["arch_optimizer"]["one"], runs["arch_optimizer"]["two"]
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-6)
    assert np.abs(np.array(one) - [0.5, -1.0, 2.0]).min() > 0.05  # the steps moved alpha


@pytest.mark.long  # the search traced for one device and two replicas: ~400-500 s
def test_a_batch_the_replicas_cannot_share_is_refused(runs):
    assert "cannot be split evenly over 2 replicas" in runs["uneven_batch"]


@pytest.mark.timeout(600)
def test_two_replicas_retrain_like_one_device(train_runs):
    # G iterations 3 and 4: on one device, and resumed from its checkpoint at 2 under
    # MirroredStrategy (tests/distributed_train_run.py).
    assert train_runs["replicas"] == [1, 2]
    assert train_runs["synchronized_bn"] == [False, True]
    one, two = train_runs["losses"]["one"], train_runs["losses"]["two"]
    assert len(one) == len(two) == 2
    for a, b in zip(one, two):
        for name in ("d_loss", "g_loss"):
            assert b[name] == pytest.approx(a[name], rel=1e-5, abs=1e-5), name


# The fixed generator's biases with a mathematically zero gradient (as SHIFT_ONLY above):
# cell 3's normal[1] and normal[2] conv_1x1 (the script's genotype) feed the head's
# training-mode batch norm, whose moving mean averages their walk in. normal[0]'s bias reaches
# it through normal[1]'s ReLU: where node2 is positive its gradient cancels the same way, and
# what is left is so small that float32 summation order (one device or two workers) moved one
# of its entries by 3.5e-4 after 8 iterations (AMD Zen 3): Adam's walk bounds it as well.
RETRAIN_SHIFT_ONLY = tuple(f"generator/cell3/normal{i}_conv_1x1/conv/bias" for i in (0, 1, 2))
RETRAIN_ABSORBS_SHIFTS = "generator/head/bn/moving_mean"


def test_two_replicas_checkpoint_what_one_device_trains(train_runs):
    # The last checkpoint of each run restored into a new one-device trainer: G, D, EMA G,
    # both Adams' moments, iteration counters and the latent RNG.
    one, two, halfway = train_runs["one"], train_runs["two"], train_runs["halfway"]
    assert one["counters"]["g_iterations_done"] == [4]
    # The script's g_lr; G steps under the strategy.
    assert_trained_alike(one, two, halfway, walk=adam_walk(1e-3, 2))


def assert_trained_alike(one, two, earlier, walk):
    """Two retrainings' states (distributed_train_run.state) hold the same values (1e-4), and
    most of them moved since `earlier` by far more (5e-4); the zero-gradient biases and the
    batch-norm mean fed by them are bounded by Adam's `walk` instead."""
    assert one["counters"] == two["counters"]
    for part in ("generator", "discriminator", "ema_generator", "g_optimizer", "d_optimizer"):
        assert sorted(one[part]) == sorted(two[part]), part
        moved, compared = 0, 0
        for path in one[part]:
            a, b = np.asarray(one[part][path]), np.asarray(two[part][path])
            if path in RETRAIN_SHIFT_ONLY + (RETRAIN_ABSORBS_SHIFTS,):
                assert np.abs(b - a).max() <= walk, (part, path)
                continue
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-4, err_msg=f"{part} {path}")
            compared += a.size
            # ... and the iterations since `earlier` moved most values by far more.
            moved += int(np.sum(np.abs(b - np.asarray(earlier[part][path])) > 5e-4))
        assert compared > 0.95 * sum(np.size(v) for v in one[part].values()), part
        assert moved > 0.5 * compared, (part, moved, compared)


def test_strategy_fields_are_checked_by_the_configs():
    from alphagan_tf.gan.search.config import SearchRunConfig
    from alphagan_tf.gan.train.config import TrainRunConfig
    from alphagan_tf.utils.typed_config import ConfigError

    for config in (SearchRunConfig, TrainRunConfig):
        with pytest.raises(ConfigError, match="strategy: must be one of") as error:
            config(strategy="tpu")
        assert error.value.key == "strategy"
        with pytest.raises(ConfigError, match="cpu_devices: must be an integer >= 0"):
            config(cpu_devices=-1)
        with pytest.raises(ConfigError, match="devices: must be a list of device names"):
            config(devices=("/cpu:0", 1))
        assert config(strategy="mirrored", devices=("/cpu:0", "/cpu:1"), cpu_devices=2)
    assert {"strategy", "devices", "cpu_devices"} <= set(TrainRunConfig.RESUMABLE)


def test_make_strategy_rejects_bad_requests():
    with pytest.raises(distribution.StrategyError, match="Unknown strategy"):
        distribution.make_strategy("tpu")
    with pytest.raises(distribution.StrategyError, match="Unknown device"):
        distribution.make_strategy("mirrored", ["/gpu:7"])
    with pytest.raises(distribution.StrategyError, match="takes no devices"):
        distribution.make_strategy("default", ["/cpu:0"])
    assert distribution.make_strategy("default") is tf.distribute.get_strategy()
    assert distribution.make_strategy("one_device", ["/cpu:0"]).num_replicas_in_sync == 1


def test_device_defaults_follow_the_visible_devices(monkeypatch):
    """one_device without --devices and op determinism: CPU here; a GPU host is faked (no GPU
    can be had here) by TensorFlow's device list."""
    from tensorflow.python.framework import config as framework_config  # no public getter

    enabled = framework_config.is_op_determinism_enabled
    strategy = distribution.make_strategy("one_device")
    assert strategy.extended.worker_devices[0].endswith("CPU:0")
    line = distribution.set_determinism(None)
    assert line == "Op determinism: on (default on CPU; --nodeterministic to turn it off)."
    assert enabled()
    assert distribution.set_determinism(False).startswith("Op determinism: off (--nodeterministic)")
    assert not enabled()
    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: ["/physical_device:GPU:0"] if kind == "GPU" else [])
    assert distribution.default_device() == "/gpu:0"
    line = distribution.set_determinism(None)
    assert line == "Op determinism: off (default off on GPUs; --deterministic to turn it on)."
    assert not enabled()
    assert distribution.set_determinism(True) == "Op determinism: on (--deterministic)."
    assert enabled()


def test_split_cpu_after_tensorflow_started_says_so():
    tf.constant(1.0) + 1.0  # TensorFlow's devices exist now
    assert distribution.split_cpu(1) == [d.name for d in tf.config.list_logical_devices("CPU")]
    with pytest.raises(distribution.StrategyError, match="already initialised"):
        distribution.split_cpu(3)


@pytest.mark.parametrize("command, flags, message", [
    # The CLIs split the CPU before TensorFlow starts, then refuse the uneven batch.
    (["search", "--flagfile=configs/demo.cfg"],
     ["--cpu_devices=2", "--devices=/cpu:0,/cpu:1", "--batch_size=3"],
     "The batch of 3 cannot be split evenly over 2 replicas"),
    (["search", "--flagfile=configs/demo.cfg"], ["--devices=/gpu:3"], "Unknown device '/gpu:3'"),
    (["train", "--flagfile=configs/demo_train.cfg", "--genotype=alphaGAN_s"],
     ["--cpu_devices=2", "--devices=/cpu:0,/cpu:1", "--d_batch_size=5"],
     "The batch of 5 cannot be split evenly over 2 replicas: make d_batch_size"),
])
def test_cli_strategy_errors(tmp_path, command, flags, message):
    name, *command_flags = command
    done = subprocess.run(
        [sys.executable, "-m", f"alphagan_tf.{name}", *command_flags,
         f"--workdir={tmp_path}", "--strategy=mirrored", *flags],
        cwd=os.path.dirname(HERE), capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert message in done.stderr
