"""`--strategy=multi_worker`: two worker processes on 127.0.0.1 compute what one device computes.

Real CLI processes (`python -m alphagan_tf.train/search`), a cluster of two workers on
free loopback ports picked at run time, each process under a hard deadline and killed in
a `finally`. The retraining uses the tiny genotype of tests/distributed_train_run.py; its
final checkpoints are restored into one-device trainers and compared as the MirroredStrategy
test compares them (tests/test_distribution.py::assert_trained_alike).

Measured on 2 shared cores (README "Scaling out" has the figures).
"""

import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from distributed_train_run import GENOTYPE, restored, run_config
from test_distribution import adam_walk, assert_trained_alike

from alphagan_tf.utils import distribution

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEADLINE = 600  # seconds any group of processes may take
ITERATIONS = 8
TRAIN_FLAGS = ["--dataset=demo", "--bottom_width=1", "--gf=4", "--df=4", "--latent_dim=8",
               "--g_batch_size=4", "--d_batch_size=4", "--n_critic=2", "--g_lr=1e-3",
               "--d_lr=1e-3", "--ema_decay=0.5", f"--g_iterations={ITERATIONS}",
               "--checkpoint_every=1", "--sample_every=4", f"--keep_checkpoints={ITERATIONS}",
               "--feature_extractor=none", "--seed=3"]
# --worker_timeout of the kill test. The other runs keep the default (60 s): on a starved
# machine (nice 19 at load 9 on 2 cores) a 5 s timeout stopped a healthy run, its heartbeat
# RPC having missed its deadline.
WORKER_TIMEOUT = 15
EPOCHS = 2
SEARCH_FLAGS = ["--dataset=demo", "--bottom_width=2", "--gf=4", "--df=4", "--latent_dim=4",
                "--batch_size=4", f"--epochs={EPOCHS}", "--inner_steps=2", "--worst_steps=1",
                "--outer_steps=1", "--n_critic=1", "--sample_every=1", "--seed=5"]


def free_ports(count):
    """`count` loopback ports nothing listens on now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@contextlib.contextmanager
def processes():
    """A list to add Popen objects to; every one still running at the end is killed."""
    started = []
    try:
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=60)


def launch(started, command, flags, workdir, logs, cluster=None, task=None, worker_timeout=None):
    """Starts `python -m alphagan_tf.COMMAND`; as worker `task` of `cluster` if given.

    Its stdout+stderr go to LOGS.log and its temporary files to LOGS/ (TMPDIR).
    """
    os.makedirs(logs, exist_ok=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "TMPDIR": logs}
    env.pop("TF_CONFIG", None)
    strategy = []
    if cluster is not None:
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": task}})
        strategy = ["--strategy=multi_worker"]
        if worker_timeout is not None:
            strategy.append(f"--worker_timeout={worker_timeout}")
    with open(f"{logs}.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", f"alphagan_tf.{command}", *flags, f"--workdir={workdir}", *strategy],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    process.logs = logs
    started.append(process)
    return process


def launch_workers(started, command, flags, workdir, logs, worker_timeout=None):
    """Two workers of one new cluster on 127.0.0.1; worker 0 is the chief."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    return [launch(started, command, flags, workdir, f"{logs}_worker{i}", cluster, i, worker_timeout)
            for i in (0, 1)]


def wait_all(group, deadline=DEADLINE):
    """Waits for every process of `group`; the processes' output if one failed."""
    end = time.time() + deadline
    for process in group:
        process.wait(timeout=max(1.0, end - time.time()))
    return [output(p) for p in group]


def output(process):
    with open(f"{process.logs}.log") as log:
        return log.read()


def checkpoints(workdir):
    return sorted(int(m) for m in re.findall(r"ckpt-(\d+)\.index", " ".join(
        os.listdir(os.path.join(workdir, "checkpoints"))
        if os.path.isdir(os.path.join(workdir, "checkpoints")) else [])))


def final_losses(workdir):
    with open(os.path.join(workdir, "train_summary.json")) as f:
        return json.load(f)["final_losses"]


@pytest.fixture(scope="module")
def train_runs(tmp_path_factory):
    """A one-device retraining and the same on two workers, run side by side."""
    base = tmp_path_factory.mktemp("multi_worker_train")
    genotype = base / "genotype.json"
    genotype.write_text(json.dumps(GENOTYPE))
    flags = [*TRAIN_FLAGS, f"--genotype={genotype}"]
    started_at = time.time()
    with processes() as started:
        one = launch(started, "train", flags, base / "one", str(base / "one_logs"))
        workers = launch_workers(started, "train", flags, base / "two", str(base / "two"))
        group = [one, *workers]
        logs = wait_all(group)
        assert [p.returncode for p in group] == [0, 0, 0], "\n".join(l[-3000:] for l in logs)
    config = run_config(ITERATIONS, str(genotype))
    return {
        "base": base, "genotype": str(genotype), "config": config, "workers": workers,
        "logs": logs, "seconds": time.time() - started_at,
        "one": restored(base / "one", config, str(genotype)),
        "one_earlier": restored(base / "one", config, str(genotype), ITERATIONS - 2),
        "two": restored(base / "two", config, str(genotype)),
    }


@pytest.mark.timeout(900)
def test_two_workers_retrain_like_one_device(train_runs):
    print(f"one device + two workers side by side: {train_runs['seconds']:.0f} s")
    base = train_runs["base"]
    one, two = final_losses(base / "one"), final_losses(base / "two")
    for name in ("d_loss", "g_loss"):
        assert two[name] == pytest.approx(one[name], rel=1e-5, abs=1e-5), name
    assert "2 replica(s)" in train_runs["logs"][1] and "1 replica(s)" in train_runs["logs"][0]
    assert train_runs["two"]["counters"]["g_iterations_done"] == [ITERATIONS]
    # All G steps ran under the strategy: the zero-gradient biases may walk that far.
    assert_trained_alike(train_runs["one"], train_runs["two"], train_runs["one_earlier"],
                         walk=adam_walk(1e-3, ITERATIONS))


def test_only_the_chief_writes_the_workdir(train_runs):
    chief, other = train_runs["workers"]
    workdir = train_runs["base"] / "two"
    assert checkpoints(workdir) == list(range(1, ITERATIONS + 1))
    for name in ("train_config.json", "genotype.json", "train_summary.json", "samples.png"):
        assert (workdir / name).is_file(), name
    # The other worker wrote its checkpoints, summaries and files to a temporary folder.
    assert_only_the_chief_wrote(workdir, chief, other)


def test_workers_that_resume_from_different_steps_are_stopped(train_runs, tmp_path):
    # The chief sees the finished run's checkpoints, worker 1 an empty workdir (as a host
    # without the shared filesystem would): both stop before the first step.
    shutil.copytree(train_runs["base"] / "two", tmp_path / "chief")
    flags = [*TRAIN_FLAGS, f"--genotype={train_runs['genotype']}"]
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    with processes() as started:
        group = [launch(started, "train", flags, tmp_path / name, str(tmp_path / f"{name}_logs"),
                        cluster, task) for task, name in enumerate(("chief", "other"))]
        logs = wait_all(group)
    assert [p.returncode for p in group] == [2, 2], "\n".join(l[-3000:] for l in logs)
    for log in logs:
        assert log.strip().splitlines()[-1] == (
            f"error: The workers resumed from different checkpoints (step per worker: "
            f"[{ITERATIONS}, 0]): every worker must read the chief's --workdir (put it on a "
            "filesystem all hosts share) and run the same command.")
    assert not (tmp_path / "other").exists()


def assert_only_the_chief_wrote(workdir, chief, other):
    """One TensorBoard event file in `workdir`, the chief's; the other worker's temporary
    folder (in its TMPDIR) is gone."""
    # TensorBoard names its event files after the writing process.
    events = glob.glob(str(workdir / "tensorboard" / "events.out.tfevents.*"))
    assert [int(e.split(".")[-3]) for e in events] == [chief.pid]
    assert "Not the chief" not in output(chief)
    scratch = re.search(r"Not the chief: reading \S+, writing to (\S+) ", output(other)).group(1)
    assert scratch.startswith(other.logs) and not os.path.exists(scratch)
    assert os.listdir(other.logs) == []


@pytest.mark.long
@pytest.mark.timeout(1800)
def test_two_workers_search_like_one_device(tmp_path):
    started_at = time.time()
    with processes() as started:
        one = launch(started, "search", SEARCH_FLAGS, tmp_path / "one", str(tmp_path / "one_logs"))
        workers = launch_workers(started, "search", SEARCH_FLAGS, tmp_path / "two", str(tmp_path / "two"))
        group = [one, *workers]
        logs = wait_all(group, deadline=1500)
        assert [p.returncode for p in group] == [0, 0, 0], "\n".join(l[-3000:] for l in logs)
    print(f"one device + two workers side by side: {time.time() - started_at:.0f} s")
    assert "2 replica(s)" in logs[1] and "1 replica(s)" in logs[0]
    history = {}
    for name in ("one", "two"):
        with open(tmp_path / name / "genotype_history.json") as f:
            history[name] = json.load(f)
    assert [h["epoch"] for h in history["one"]] == [h["epoch"] for h in history["two"]] == [1, 2]
    for a, b in zip(history["one"], history["two"]):
        for name in ("d_loss", "g_loss", "worst_d_value", "worst_g_loss", "duality_gap"):
            assert b[name] == pytest.approx(a[name], rel=1e-5, abs=1e-5), name
        assert b["genotype"] == a["genotype"]
        for edge, alphas in a["alphas"].items():
            np.testing.assert_allclose(b["alphas"][edge]["alpha"], alphas["alpha"], rtol=0,
                                       atol=1e-5, err_msg=edge)
    assert (tmp_path / "two" / "genotype.json").read_text() == \
        (tmp_path / "one" / "genotype.json").read_text()
    # ... and the second epoch moved the alphas by far more than the tolerance.
    moved = [np.abs(np.subtract(history["one"][1]["alphas"][e]["alpha"], s["alpha"])).max()
             for e, s in history["one"][0]["alphas"].items()]
    assert max(moved) > 1e-4
    for name in ("search_config.json", "search_summary.json", "alpha_history.png", "samples.png"):
        assert (tmp_path / "two" / name).is_file(), name
    assert_only_the_chief_wrote(tmp_path / "two", *workers)


@pytest.mark.long
@pytest.mark.timeout(900)
def test_a_killed_worker_stops_the_survivor_and_a_rerun_resumes(train_runs, tmp_path):
    flags = [*TRAIN_FLAGS, f"--genotype={train_runs['genotype']}"]
    workdir = tmp_path / "run"
    with processes() as started:
        chief, other = launch_workers(started, "train", flags, workdir, str(tmp_path / "first"),
                                      WORKER_TIMEOUT)
        end = time.time() + DEADLINE
        while not checkpoints(workdir)[-1:] >= [2] and chief.poll() is None and time.time() < end:
            time.sleep(0.02)
        other.send_signal(signal.SIGKILL)
        killed_at = time.time()
        chief.wait(timeout=DEADLINE)
        stopped_after = time.time() - killed_at
        other.wait(timeout=60)
    print(f"the chief stopped {stopped_after:.1f} s after worker 1 was killed "
          f"(--worker_timeout={WORKER_TIMEOUT})")
    assert other.returncode == -signal.SIGKILL
    last = checkpoints(workdir)[-1]
    assert 2 <= last < ITERATIONS  # killed mid-run
    error = output(chief).strip().splitlines()[-1]
    assert chief.returncode == 3, output(chief)[-3000:]
    assert error.startswith("error: worker 0 lost worker 1 of the multi-worker run ("), error
    assert f"resume from {workdir}/checkpoints/ckpt-{last}." in error
    assert stopped_after < WORKER_TIMEOUT + 60  # + the survivor's exit on a loaded machine

    # The same command on both workers resumes from the chief's last checkpoint and ends
    # where the uninterrupted one-device run ends.
    with processes() as started:
        group = launch_workers(started, "train", flags, workdir, str(tmp_path / "rerun"))
        logs = wait_all(group)
        assert [p.returncode for p in group] == [0, 0], "\n".join(l[-3000:] for l in logs)
    for log in logs:
        assert f"Resuming from {workdir}/checkpoints/ckpt-{last}." in log
    config, genotype = train_runs["config"], train_runs["genotype"]
    resumed = restored(workdir, config, genotype)
    assert resumed["counters"]["g_iterations_done"] == [ITERATIONS]
    for name in ("d_loss", "g_loss"):
        assert final_losses(workdir)[name] == pytest.approx(
            final_losses(train_runs["base"] / "one")[name], rel=1e-5, abs=1e-5), name
    assert_trained_alike(train_runs["one"], resumed, train_runs["one_earlier"],
                         walk=adam_walk(1e-3, ITERATIONS))


@pytest.mark.parametrize("text, message", [
    (None, "reads the cluster from the TF_CONFIG environment variable, which is not set"),
    ("{cluster", "TF_CONFIG is not JSON"),
    ('{"task": {"type": "worker", "index": 0}}', 'needs a "cluster" and a "task"'),
    ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}', 'no "worker"'),
    ('{"cluster": {"worker": ["host1"]}, "task": {"type": "worker", "index": 0}}',
     "must be a list of host:port addresses"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     "is not in its cluster"),
])
def test_a_bad_tf_config_is_one_clear_error(monkeypatch, text, message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if text is not None:
        monkeypatch.setenv("TF_CONFIG", text)
    with pytest.raises(distribution.StrategyError, match=re.escape(message)):
        distribution.read_tf_config()
    chief_and_workers = ('{"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, '
                         '"task": {"type": "worker", "index": 0}}')
    assert distribution.read_tf_config(chief_and_workers)["task"]["type"] == "worker"


def test_the_cli_without_tf_config_exits_2_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    done = subprocess.run(
        [sys.executable, "-m", "alphagan_tf.train", "--flagfile=configs/demo_train.cfg",
         "--genotype=alphaGAN_s", f"--workdir={tmp_path / 'run'}", "--strategy=multi_worker"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=dict(env, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1].startswith(
        "error: --strategy=multi_worker reads the cluster from the TF_CONFIG environment variable")
    assert not (tmp_path / "run").exists()


def test_the_lost_worker_is_named():
    # What TensorFlow 2.21 reported on loopback: the chief (coordination service) when worker 1
    # was killed, and worker 1 when the chief was killed.
    heartbeats = ("Collective ops is aborted by: Error reported from /job:worker/task:1: The "
                  "following tasks are unhealthy (stopped sending heartbeats):\n"
                  "/job:worker/replica:0/task:1\nThe tasks have crashed.")
    reset = ("Collective ops is aborted by: recvmsg:Connection reset by peer\nAdditional GRPC "
             "error information from remote target /job:worker/replica:0/task:0 while calling "
             "/tensorflow.WorkerService/CompleteInstance")
    assert distribution._lost_tasks(heartbeats) == ["worker 1"]
    # With three workers, the reporter is not the lost one.
    assert distribution._lost_tasks(heartbeats.replace("replica:0/task:1", "replica:0/task:2")) \
        == ["worker 2"]
    assert distribution._lost_tasks(reset) == ["worker 0"]
    # A starved worker whose own heartbeat RPC timed out (nice 19 at load 9, --worker_timeout=5).
    deadline = ("{{function_node __wrapped__CollectiveBcastRecv_device_/job:worker/replica:0/task:1/"
                "device:CPU:0}} Collective ops is aborted by: Deadline Exceeded [Op:X]")
    assert distribution._abort_reason(deadline, "") == "Deadline Exceeded"
    assert distribution._lost_tasks(deadline) == []
