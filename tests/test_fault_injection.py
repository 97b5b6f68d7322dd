"""A retraining and a search killed with SIGKILL at random points, then rerun, end exactly
where an uninterrupted run with the same seed ends (issue 19). Real processes, the real CLI."""

import json
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
TRAIN_FLAGS = ["--dataset=demo", "--genotype=alphaGAN_s", "--bottom_width=1", "--gf=4", "--df=4",
         "--latent_dim=4", "--g_batch_size=4", "--d_batch_size=4", "--n_critic=2",
         f"--g_iterations={ITERATIONS}", "--checkpoint_every=1", "--keep_checkpoints=3",
         "--feature_extractor=none", "--seed=5"]


EPOCHS = 4
SEARCH_FLAGS = ["--dataset=demo", "--bottom_width=2", "--gf=4", "--df=4", "--latent_dim=4",
                "--batch_size=4", f"--epochs={EPOCHS}", "--inner_steps=2", "--worst_steps=1",
                "--outer_steps=1", "--n_critic=1", "--sample_every=100", "--keep_checkpoints=3",
                "--seed=5"]


def _start(workdir, command="train"):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    flags = TRAIN_FLAGS if command == "train" else SEARCH_FLAGS
    return subprocess.Popen([sys.executable, "-m", f"alphagan_tf.{command}", *flags, f"--workdir={workdir}"],
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


def _writing_checkpoint(workdir) -> bool:
    """Whether a checkpoint is being written now (the manager's ckpt-N_temp folder exists)."""
    folder = os.path.join(workdir, "checkpoints")
    try:
        return any("_temp" in name for name in os.listdir(folder))
    except FileNotFoundError:
        return False


def _kill_during_a_write(workdir, command, deadline_s=600) -> bool:
    """Starts `command` and SIGKILLs it the moment a checkpoint write is seen under way.

    Returns whether the kill landed inside the write (its temporary folder still there).
    """
    process = _start(workdir, command)
    deadline = time.time() + deadline_s
    while process.poll() is None and time.time() < deadline:
        if _writing_checkpoint(workdir):
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    return process.returncode == -signal.SIGKILL and _writing_checkpoint(workdir)


def _kill_and_resume(workdir, command, kills, last, rng, during_write=0):
    """Starts `command` once per entry of `kills`, SIGKILLs it just after that checkpoint
    (within 20 ms: inside the next step or checkpoint write), then `during_write` more times
    in the middle of a checkpoint write, then lets a last run finish."""
    killed_mid_run = 0
    for after in kills:
        process = _start(workdir, command)
        deadline = time.time() + 600
        while _checkpoints(workdir) < after and process.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.02))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        assert process.returncode in (-signal.SIGKILL, 0)
        killed_mid_run += process.returncode == -signal.SIGKILL and _checkpoints(workdir) < last
    assert killed_mid_run == len(kills)  # each kill really interrupted the run
    inside_writes = 0
    for _ in range(3 * during_write):  # a write lasts milliseconds: a poll may miss one
        if inside_writes == during_write or _checkpoints(workdir) >= last - 1:
            break
        inside_writes += _kill_during_a_write(workdir, command)
    assert inside_writes == during_write
    process = _start(workdir, command)
    assert process.wait(timeout=600) == 0, process.stderr.read().decode()[-2000:]


def _assert_same_checkpoint(straight, killed):
    a, b = _values(straight), _values(killed)
    assert sorted(a) == sorted(b)
    for name in a:  # weights, optimizer moments, alphas, RNG and data iterator positions
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    return b


def _retrain_killed(tmp_path, kills, during_write):
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    process = _start(straight)
    assert process.wait(timeout=600) == 0, process.stderr.read().decode()[-2000:]
    rng = random.Random(19)
    points = sorted(rng.sample(range(1, ITERATIONS - 2), kills))
    _kill_and_resume(killed, "train", points, ITERATIONS, rng, during_write)
    b = _assert_same_checkpoint(straight, killed)
    assert int(b["g_iterations_done/.ATTRIBUTES/VARIABLE_VALUE"]) == ITERATIONS


def _search_killed(tmp_path, kills, during_write):
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    process = _start(straight, "search")
    assert process.wait(timeout=600) == 0, process.stderr.read().decode()[-2000:]
    rng = random.Random(11)
    points = sorted(rng.sample(range(1, EPOCHS - 1), kills)) if kills <= EPOCHS - 2 else sorted(
        rng.choices(range(1, EPOCHS - 1), k=kills))
    _kill_and_resume(killed, "search", points, EPOCHS, rng, during_write)
    _assert_same_checkpoint(straight, killed)
    for name in ("genotype.json", "genotype_history.json"):  # alphas and losses of every epoch
        with open(os.path.join(straight, name)) as a, open(os.path.join(killed, name)) as b:
            assert json.load(a) == json.load(b), name


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_retrain_killed_at_a_random_point_resumes_to_the_same_weights(tmp_path):
    _retrain_killed(tmp_path, kills=1, during_write=0)


@pytest.mark.long  # seven retraining processes: `pytest -m long`
@pytest.mark.timeout(1800)
def test_a_retrain_killed_at_five_points_one_inside_a_checkpoint_write_resumes_exactly(tmp_path):
    _retrain_killed(tmp_path, kills=4, during_write=1)


@pytest.mark.long  # three search processes: 300-490 s on 2 shared cores; in-process resume of a
@pytest.mark.timeout(900)  # search: test_searcher.py::test_resume_after_interruption_matches_...
def test_a_search_killed_at_a_random_point_resumes_to_the_same_genotype(tmp_path):
    _search_killed(tmp_path, kills=1, during_write=0)


@pytest.mark.long  # seven search processes: `pytest -m long`
@pytest.mark.timeout(3600)
def test_a_search_killed_at_five_points_one_inside_a_checkpoint_write_resumes_exactly(tmp_path):
    _search_killed(tmp_path, kills=4, during_write=1)
