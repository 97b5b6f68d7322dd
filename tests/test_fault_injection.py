"""A retraining killed with SIGKILL at random points, then rerun, ends exactly where an
uninterrupted run with the same seed ends (issue 19). Real processes, the real CLI."""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

ITERATIONS = 8
FLAGS = ["--dataset=demo", "--genotype=alphaGAN_s", "--bottom_width=1", "--gf=4", "--df=4",
         "--latent_dim=4", "--g_batch_size=4", "--d_batch_size=4", "--n_critic=2",
         f"--g_iterations={ITERATIONS}", "--checkpoint_every=1", "--keep_checkpoints=3",
         "--feature_extractor=none", "--seed=5"]


def _start(workdir):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.Popen([sys.executable, "-m", "alphagan_tf.train", *FLAGS, f"--workdir={workdir}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def _checkpoints(workdir):
    folder = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(folder):
        return 0
    return max([int(n.split("-")[1].split(".")[0]) for n in os.listdir(folder)
                if n.startswith("ckpt-") and n.endswith(".index")] or [0])


def _values(workdir):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")))
    return {name: reader.get_tensor(name) for name, dtype in reader.get_variable_to_dtype_map().items()
            if dtype.is_floating or dtype.is_integer}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_retrain_killed_at_random_points_resumes_to_the_same_weights(tmp_path):
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    process = _start(straight)
    assert process.wait(timeout=600) == 0, process.stderr.read().decode()[-2000:]

    rng = random.Random(19)
    kills = sorted(rng.sample(range(1, ITERATIONS - 2), 2))  # after these checkpoints
    killed_mid_run = 0
    for after in kills:
        process = _start(killed)
        deadline = time.time() + 600
        while _checkpoints(killed) < after and process.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.02))  # inside the next iteration or checkpoint write
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        assert process.returncode in (-signal.SIGKILL, 0)
        killed_mid_run += process.returncode == -signal.SIGKILL and _checkpoints(killed) < ITERATIONS
    assert killed_mid_run == len(kills)  # each kill really interrupted the run
    process = _start(killed)
    assert process.wait(timeout=600) == 0, process.stderr.read().decode()[-2000:]

    a, b = _values(straight), _values(killed)
    assert sorted(a) == sorted(b)
    assert int(b["g_iterations_done/.ATTRIBUTES/VARIABLE_VALUE"]) == ITERATIONS
    for name in a:  # G, D, EMA G, Adam moments, latent RNG, data iterator position
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
