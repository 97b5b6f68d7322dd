"""Start a distributed tuning run on this machine: one chief and N workers, for trying it out.

    python -m alphagan_tf.cli.tune_launch --workers=2 -- --flagfile=configs/tune_demo.cfg --max_trials=4

Everything after `--` is the `python -m alphagan_tf.tune` command line, the same for
every process. The launcher picks a free port on --ip, starts the chief
(KERASTUNER_TUNER_ID=chief) and the workers (tuner0, tuner1, ...) with KerasTuner's
three variables (`cluster.role_environment`), writes each one's output to
<logdir>/<id>.log, and waits:

- all exit 0: the chief's report (the end of chief.log) is printed, exit status 0;
- one exits non-zero: the others are stopped (SIGTERM, then SIGKILL after --grace_seconds),
  the end of its log is printed, and the launcher exits with that status (1 when it was
  killed by a signal), e.g. the chief's 1 = no trial completed, 2 = a configuration error;
- Ctrl-C / SIGTERM: every process is stopped, exit status 130 / 143.

The processes are stopped in every case before the launcher exits (a `finally`). On
several machines, run `alphagan_tf.tune` yourself with the variables (README, "Scaling out").
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Sequence

from alphagan_tf.tuner.cluster import CHIEF, gpu_environment, role_environment, visible_gpus

POLL_SECONDS = 0.5
TAIL_LINES = 25


def free_port(ip: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at `ip` now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def tail(path: str, lines: int = TAIL_LINES) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


class Cluster:
    """The chief and worker processes of one run; `stop()` ends those still running.

    Args:
        tune_args: the `alphagan_tf.tune` arguments (the same for every process).
        workers: number of workers.
        ip, port: the chief's oracle address.
        logdir: where <id>.log goes.
    """

    def __init__(self, tune_args: Sequence[str], workers: int, ip: str, port: int, logdir: str):
        self.tune_args = list(tune_args)
        self.ids = [CHIEF] + [f"tuner{i}" for i in range(workers)]
        self.ip, self.port, self.logdir = ip, port, logdir
        self.processes: dict[str, subprocess.Popen] = {}

    def log(self, tuner_id: str) -> str:
        return os.path.join(self.logdir, f"{tuner_id}.log")

    def start(self) -> None:
        os.makedirs(self.logdir, exist_ok=True)
        command = [sys.executable, "-m", "alphagan_tf.tune", *self.tune_args]
        gpus = visible_gpus()
        for index, tuner_id in enumerate(self.ids):
            devices, device = gpu_environment(tuner_id, index - 1, gpus, len(self.ids) - 1)
            env = {**os.environ, **role_environment(tuner_id, self.ip, self.port), **devices,
                   "PYTHONUNBUFFERED": "1"}
            with open(self.log(tuner_id), "w", encoding="utf-8") as log:
                self.processes[tuner_id] = subprocess.Popen(
                    command, env=env, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL)
            print(f"started {tuner_id} (pid {self.processes[tuner_id].pid}): {device}, "
                  f"log {self.log(tuner_id)}", flush=True)

    def wait(self) -> tuple[str | None, int]:
        """Blocks until all exited 0 -> (None, 0), or one failed -> (its id, its status)."""
        while True:
            codes = {i: p.poll() for i, p in self.processes.items()}
            failed = [i for i, code in codes.items() if code not in (None, 0)]
            if failed:
                return failed[0], codes[failed[0]]
            if all(code == 0 for code in codes.values()):
                return None, 0
            time.sleep(POLL_SECONDS)

    def stop(self, grace_seconds: float) -> None:
        """SIGTERM to every running process, SIGKILL to those still running after the grace."""
        running = [p for p in self.processes.values() if p.poll() is None]
        for p in running:
            p.terminate()
        deadline = time.monotonic() + grace_seconds
        for p in running:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _raise_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def launch(tune_args: Sequence[str], workers: int, ip: str, port: int, logdir: str,
           grace_seconds: float = 10.0) -> int:
    """Runs the chief and `workers` workers until done; returns the exit status (module docstring)."""
    port = port or free_port(ip)
    cluster = Cluster(tune_args, workers, ip, port, logdir)
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm)
    # Ctrl-C / SIGINT must stop the run even when this process inherited SIGINT ignored: a
    # command started in the background by a non-interactive shell (`... &` in a script, or
    # under nohup in one) gets SIG_IGN, and Python then never raises KeyboardInterrupt.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    print(f"distributed tuning: chief + {workers} workers, oracle at {ip}:{port}", flush=True)
    try:
        cluster.start()
        failed, code = cluster.wait()
    except KeyboardInterrupt:
        print("interrupted: stopping every process.", file=sys.stderr)
        return 130
    finally:
        cluster.stop(grace_seconds)
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    if failed is not None:
        print(f"error: {failed} exited with status {code}; stopped the others. "
              f"The end of {cluster.log(failed)}:\n{tail(cluster.log(failed))}", file=sys.stderr)
        return code if 0 < code < 128 else 1  # e.g. 2: a configuration error
    print(tail(cluster.log(CHIEF)), end="")
    return 0
