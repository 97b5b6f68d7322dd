"""Which part of a distributed KerasTuner run this process is: KerasTuner's environment variables.

KerasTuner runs a tuning job over several processes or machines as one chief and
N workers (keras.io/guides/keras_tuner/distributed_tuning). Three environment
variables, set for every process, say which:

    KERASTUNER_TUNER_ID     "chief" for the chief; a unique id for each worker ("tuner0", ...)
    KERASTUNER_ORACLE_IP    the address the chief serves its oracle on (gRPC), reachable
                            from every worker
    KERASTUNER_ORACLE_PORT  its port

The chief runs the oracle only (it hands out the trials and records their results,
no trial runs there); each worker asks it for a trial, retrains it, reports the
metrics and asks again until the oracle answers that the search is over.

`tuning_role()` reads them: "single" (none set: the one-process run), "chief" or
"worker" (KerasTuner's own rule: an id containing "chief" is the chief).
`role_environment(tuner_id, ip, port)` is what a launcher sets for one process.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence


TUNER_ID = "KERASTUNER_TUNER_ID"
ORACLE_IP = "KERASTUNER_ORACLE_IP"
ORACLE_PORT = "KERASTUNER_ORACLE_PORT"
CHIEF = "chief"


class ClusterError(ValueError):
    """KerasTuner's environment variables set in a way that cannot work (a user error)."""


def tuning_role(environ: Mapping[str, str] | None = None) -> str:
    """"single", "chief" or "worker", from KerasTuner's environment variables.

    Raises:
        ClusterError: KERASTUNER_ORACLE_IP set without the port or the id (KerasTuner
            would fail later with a less clear message), or a port that is not a number.
    """
    environ = os.environ if environ is None else environ
    if ORACLE_IP not in environ:
        return "single"
    missing = [name for name in (TUNER_ID, ORACLE_PORT) if not environ.get(name)]
    if missing:
        raise ClusterError(
            f"Distributed tuning: {ORACLE_IP} is set, so {TUNER_ID} and {ORACLE_PORT} must be "
            f"set too (missing: {', '.join(missing)}). Set all three on every process, or none "
            "for a one-process run."
        )
    if not environ[ORACLE_PORT].isdigit():
        raise ClusterError(
            f"Distributed tuning: {ORACLE_PORT} must be a port number. "
            f"Received: {environ[ORACLE_PORT]!r}"
        )
    return CHIEF if CHIEF in environ[TUNER_ID] else "worker"


def role_environment(tuner_id: str, ip: str, port: int) -> dict[str, str]:
    """The three variables of one process of a distributed tuning run."""
    return {TUNER_ID: tuner_id, ORACLE_IP: ip, ORACLE_PORT: str(port)}


def describe(environ: Mapping[str, str] | None = None) -> str:
    """One line naming this process's part, for the logs."""
    environ = os.environ if environ is None else environ
    role = tuning_role(environ)
    if role == "single":
        return "one-process tuning"
    return f"distributed tuning: {role} {environ[TUNER_ID]}, oracle at " \
           f"{environ[ORACLE_IP]}:{environ[ORACLE_PORT]}"


def visible_gpus(environ: Mapping[str, str] | None = None) -> list[str]:
    """The GPU ids this host lets a process use: CUDA_VISIBLE_DEVICES when set, else the GPUs
    TensorFlow finds (an empty list on a CPU-only host)."""
    environ = os.environ if environ is None else environ
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    import tensorflow as tf  # only to count the GPUs

    return [str(i) for i in range(len(tf.config.list_physical_devices("GPU")))]


def gpu_environment(tuner_id: str, worker_index: int, gpus: Sequence[str],
                    workers: int) -> tuple[dict[str, str], str]:
    """(variables, a few words saying what `tuner_id` gets) for sharing a host's GPUs among a run.

    The chief runs only the oracle: no GPU. Worker i gets GPU i mod len(gpus) alone
    (CUDA_VISIBLE_DEVICES); when there are more workers than GPUs, the processes sharing a
    GPU also get memory growth (TF_FORCE_GPU_ALLOW_GROWTH), so that none takes all its memory.
    """
    if not gpus:
        return {}, "CPU (no GPU visible)"
    if tuner_id == CHIEF:
        return {"CUDA_VISIBLE_DEVICES": ""}, "no GPU (it runs the oracle only)"
    gpu = gpus[worker_index % len(gpus)]
    env = {"CUDA_VISIBLE_DEVICES": gpu}
    shared = workers > len(gpus)
    if shared:
        env["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    return env, f"GPU {gpu}" + (" (shared, memory growth on)" if shared else "")
