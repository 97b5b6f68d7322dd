"""The search under tf.distribute: two replicas compute what one device computes.

The MirroredStrategy run needs two logical CPU devices, which must be set up
before TensorFlow initialises, so it runs in a subprocess
(tests/distributed_search_run.py, about 2 minutes: it traces the supernet's
steps for one device and for two replicas).
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


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("distributed")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(
        [sys.executable, os.path.join(HERE, "distributed_search_run.py"), str(workdir)],
        capture_output=True, text=True, env=env, timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def flat(values):
    return np.concatenate([np.ravel(np.asarray(v, np.float64)) for v in values])


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


def test_two_replicas_train_the_same_weights(runs):
    for player in ("generator", "discriminator"):
        one = flat(runs["one_variables"][player])
        two = flat(runs["two_variables"][player])
        assert one.shape == two.shape
        # Adam moves each weight ~1e-3 per step; replicas differ only by summation order.
        np.testing.assert_allclose(two, one, rtol=0, atol=1e-4)


def test_arch_optimizer_decay_is_shared_between_replicas(runs):
    one, two = runs["arch_optimizer"]["one"], runs["arch_optimizer"]["two"]
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-6)
    assert np.abs(np.array(one) - [0.5, -1.0, 2.0]).min() > 0.05  # the steps moved alpha


def test_a_batch_the_replicas_cannot_share_is_refused(runs):
    assert "cannot be split evenly over 2 replicas" in runs["uneven_batch"]


def test_make_strategy_rejects_bad_requests():
    with pytest.raises(distribution.StrategyError, match="Unknown strategy"):
        distribution.make_strategy("tpu")
    with pytest.raises(distribution.StrategyError, match="Unknown device"):
        distribution.make_strategy("mirrored", ["/gpu:7"])
    with pytest.raises(distribution.StrategyError, match="takes no devices"):
        distribution.make_strategy("default", ["/cpu:0"])
    assert distribution.make_strategy("default") is tf.distribute.get_strategy()
    assert distribution.make_strategy("one_device", ["/cpu:0"]).num_replicas_in_sync == 1


def test_split_cpu_after_tensorflow_started_says_so():
    tf.constant(1.0) + 1.0  # TensorFlow's devices exist now
    assert distribution.split_cpu(1) == [d.name for d in tf.config.list_logical_devices("CPU")]
    with pytest.raises(distribution.StrategyError, match="already initialised"):
        distribution.split_cpu(3)


@pytest.mark.parametrize("flags, message", [
    # The CLI splits the CPU before TensorFlow starts, then refuses the uneven batch.
    (["--cpu_devices=2", "--devices=/cpu:0,/cpu:1", "--batch_size=3"],
     "The batch of 3 cannot be split evenly over 2 replicas"),
    (["--devices=/gpu:3"], "Unknown device '/gpu:3'"),
])
def test_search_cli_strategy_errors(tmp_path, flags, message):
    done = subprocess.run(
        [sys.executable, "-m", "alphagan_tf.search", "--flagfile=configs/demo.cfg",
         f"--workdir={tmp_path}", "--strategy=mirrored", *flags],
        cwd=os.path.dirname(HERE), capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert message in done.stderr
