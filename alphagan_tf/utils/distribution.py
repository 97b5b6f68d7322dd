"""Which devices a search or a retraining runs on: `tf.distribute` strategies by name.

    make_strategy("default")                    the one device TensorFlow picks
    make_strategy("mirrored")                   MirroredStrategy over all GPUs (or the CPU)
    make_strategy("mirrored", ["/cpu:0", "/cpu:1"])
    make_strategy("one_device", ["/gpu:1"])

`split_cpu(n)` turns the host CPU into n logical devices, so that a
MirroredStrategy can be exercised (and tested) on a machine without GPUs. It
must run before TensorFlow initialises its devices, i.e. before the first op.

A run config names its devices in three fields, `strategy`, `devices` and
`cpu_devices` (the flags of the same names): `validate_fields` checks them,
`strategy_from_config` builds the strategy (`prepare_cpu` first).
How a step uses the strategy's replicas: `utils/data_parallel.py`.

Several hosts ("multi_worker", the last section): `multi_worker_strategy()` is
one `tf.distribute.MultiWorkerMirroredStrategy` per process, built from the
TF_CONFIG environment variable, whose coordination service drops a worker that
stopped sending heartbeats for `worker_timeout` seconds; `report_lost_workers`
turns the error the survivors then get into a `WorkerLostError` naming it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import zlib
from typing import Sequence

import tensorflow as tf

from alphagan_tf.utils.typed_config import require

STRATEGIES = ("default", "mirrored", "one_device")


class StrategyError(ValueError):
    """A strategy, device list or batch that cannot work (a user error, not a bug)."""


def split_cpu(num_devices: int) -> list[str]:
    """Configures the first CPU as `num_devices` logical devices; returns their names.

    A no-op when the CPU is already split that way. Raises ValueError when
    TensorFlow's devices were initialised before with another split.
    """
    if num_devices < 1:
        raise StrategyError(f"num_devices must be >= 1. Received: num_devices={num_devices}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
    current = tf.config.get_logical_device_configuration(cpu)
    if num_devices > 1 and (current is None or len(current) != num_devices):
        try:
            tf.config.set_logical_device_configuration(cpu, wanted)
        except RuntimeError as error:
            raise StrategyError(
                f"Cannot split the CPU into {num_devices} devices: TensorFlow has already "
                "initialised its devices in this process (split the CPU before the first "
                f"TensorFlow op). ({error})"
            ) from None
    names = [d.name for d in tf.config.list_logical_devices("CPU")]
    if len(names) != num_devices and num_devices > 1:
        raise StrategyError(f"Asked for {num_devices} CPU devices, TensorFlow has {names}.")
    return names


def _device_key(name: str) -> tuple[str, int]:
    spec = tf.DeviceSpec.from_string(name)
    return (spec.device_type or "").upper(), spec.device_index or 0


def make_strategy(name: str = "default", devices: Sequence[str] = ()) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy `name` over `devices` (empty: the strategy's default).

    Args:
        name: "default" (no distribution: the current strategy, normally one
            device), "mirrored" (synchronous data parallelism, one replica per
            device) or "one_device".
        devices: device names such as "/gpu:0" or "/cpu:1".
    """
    if name == MULTI_WORKER:
        if devices:
            raise StrategyError("multi_worker takes no --devices: each worker uses its "
                                "host's GPUs, or its CPU.")
        return multi_worker_strategy()
    if name not in STRATEGIES:
        raise StrategyError(f"Unknown strategy {name!r}; expected one of {STRATEGIES}.")
    devices = list(devices)
    known = [d.name for d in tf.config.list_logical_devices()]
    for device in devices:
        if _device_key(device) not in {_device_key(k) for k in known}:
            raise StrategyError(f"Unknown device {device!r}; this process has {known}.")
    if name == "default":
        if devices:
            raise StrategyError("The default strategy takes no devices; use one_device or mirrored.")
        return tf.distribute.get_strategy()
    if name == "one_device":
        if len(devices) > 1:
            raise StrategyError(f"one_device takes one device. Received: {devices}")
        return tf.distribute.OneDeviceStrategy(devices[0] if devices else default_device())
    return tf.distribute.MirroredStrategy(devices or None)


def gpus_visible() -> bool:
    """Whether TensorFlow sees a GPU in this process."""
    return bool(tf.config.list_physical_devices("GPU"))


def default_device() -> str:
    """The device `one_device` runs on without --devices: the first GPU, else the CPU."""
    return "/gpu:0" if gpus_visible() else "/cpu:0"


def set_determinism(requested: bool | None) -> str:
    """Turns TensorFlow's op determinism on or off for this run; returns the line saying which.

    Args:
        requested: True or False (--deterministic / --nodeterministic), or None: on when no GPU
            is visible (the CPU's kernels are deterministic at little cost), off on GPUs (op
            determinism restricts cuDNN to its deterministic kernels, slower, and raises
            UnimplementedError for ops that have none).
    """
    on = (not gpus_visible()) if requested is None else bool(requested)
    if on:
        tf.config.experimental.enable_op_determinism()
    else:
        _disable_op_determinism()
    why = ("--deterministic" if requested else "--nodeterministic") if requested is not None else (
        "default off on GPUs; --deterministic to turn it on" if gpus_visible()
        else "default on CPU; --nodeterministic to turn it off")
    return f"Op determinism: {'on' if on else 'off'} ({why})."


def _disable_op_determinism() -> None:
    """Op determinism off (it is a process-wide setting a test may have turned on)."""
    from tensorflow.python.framework import config as framework_config  # no public switch-off

    framework_config.disable_op_determinism()


def validate_fields(config, strategies: Sequence[str] = STRATEGIES) -> None:
    """A run config's `strategy`, `devices` and `cpu_devices`, checked with `require`.

    Args:
        strategies: the strategy names the config accepts (`GAN_STRATEGIES` adds
            multi_worker).
    """
    strategies = tuple(strategies)
    require(config.strategy in strategies, "strategy", config.strategy,
            f"must be one of {strategies}")
    require(isinstance(config.devices, tuple) and all(isinstance(d, str) for d in config.devices),
            "devices", config.devices, "must be a list of device names such as /gpu:0")
    require(isinstance(config.cpu_devices, int) and config.cpu_devices >= 0, "cpu_devices",
            config.cpu_devices, "must be an integer >= 0")


def prepare_cpu(cpu_devices: int) -> None:
    """split_cpu(cpu_devices) when more than one device is asked (0 or 1: the CPU as it is).

    Call before the first TensorFlow op of the process.
    """
    if cpu_devices > 1:
        split_cpu(cpu_devices)


def strategy_from_config(config) -> tf.distribute.Strategy:
    """The strategy of a run config's `strategy`, `devices`, `cpu_devices` (splitting the CPU first)."""
    prepare_cpu(config.cpu_devices)
    return make_strategy(config.strategy, config.devices)


def quiet_all_reduce_logs(strategy: str) -> None:
    """Under "mirrored" (and "multi_worker"), the tensorflow logger shows warnings only.

    MirroredStrategy logs an INFO line for every all-reduce it traces (~1300 in
    one demo search epoch), burying the progress bar; its warnings still show.
    """
    if strategy in ("mirrored", "multi_worker"):
        logging.getLogger("tensorflow").setLevel(logging.WARNING)


# --- Several hosts: MultiWorkerMirroredStrategy from TF_CONFIG ----------------------------------

MULTI_WORKER = "multi_worker"
# What the GAN search and retraining accept (`validate_fields(config, GAN_STRATEGIES)`).
GAN_STRATEGIES = (*STRATEGIES, MULTI_WORKER)
# Seconds without a heartbeat after which the coordination service declares a worker lost
# (`--worker_timeout`). Heartbeats come from a background thread: a worker busy with a long
# step, an evaluation or a checkpoint still sends them.
DEFAULT_WORKER_TIMEOUT = 60
# Seconds the workers wait for each other at the start (every worker must have started by then).
REGISTER_TIMEOUT = 900
TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')
_COORDINATED_JOBS = ("chief", "worker")

_multi_worker: tf.distribute.Strategy | None = None


class WorkerLostError(RuntimeError):
    """A worker of a multi-worker run died or stopped answering: the run stopped (rerun to resume)."""


def read_tf_config(text: str | None = None) -> dict:
    """TF_CONFIG (default: the environment variable), checked; raises StrategyError in one line.

    The format (README "Scaling out"): {"cluster": {"worker": ["host:port", ...]} (optionally
    a "chief" job of one address), "task": {"type": "worker", "index": i}} with i this
    process's position in its job's list.
    """
    text = os.environ.get("TF_CONFIG") if text is None else text
    hint = f"e.g. TF_CONFIG='{TF_CONFIG_EXAMPLE}' on the first host, index 1 on the second"
    if not text or not text.strip():
        raise StrategyError("--strategy=multi_worker reads the cluster from the TF_CONFIG "
                            f"environment variable, which is not set ({hint}).")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise StrategyError(f"TF_CONFIG is not JSON ({error}); {hint}.") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise StrategyError(f'TF_CONFIG needs a "cluster" and a "task" object; {hint}.')
    jobs = {job: cluster.get(job) for job in _COORDINATED_JOBS if job in cluster}
    if not jobs:
        raise StrategyError(f'TF_CONFIG\'s cluster has no "worker" (or "chief") job; {hint}.')
    for job, addresses in jobs.items():
        if (not isinstance(addresses, list) or not addresses or not all(
                isinstance(a, str) and re.fullmatch(r"[^\s:]+:\d+", a) for a in addresses)):
            raise StrategyError(f"TF_CONFIG's {job!r} job must be a list of host:port addresses. "
                                f"Received: {addresses!r}")
    if "chief" in jobs and len(jobs["chief"]) != 1:
        raise StrategyError(f"TF_CONFIG's 'chief' job has one address. Received: {jobs['chief']!r}")
    kind, index = task.get("type"), task.get("index")
    if kind not in jobs or not isinstance(index, int) or not 0 <= index < len(jobs[kind]):
        raise StrategyError(
            f"TF_CONFIG's task {task!r} is not in its cluster: \"type\" must be one of "
            f"{sorted(jobs)} and \"index\" this process's position in that job's list.")
    return config


def _task_name(job: str, index: int) -> str:
    return f"/job:{job}/replica:0/task:{index}"


def _configure_heartbeats(config: dict, worker_timeout: float) -> None:
    """The coordination service MultiWorkerMirroredStrategy would start, with our timeouts.

    The strategy configures it with TensorFlow's defaults unless one is configured already
    (there is no public API for the heartbeat timeout in TF 2.21).
    """
    # private TensorFlow / Keras modules: only where needed
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    cluster = config["cluster"]
    jobs = [job for job in _COORDINATED_JOBS if job in cluster]
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=_task_name(jobs[0], 0),
        heartbeat_timeout_in_ms=int(worker_timeout * 1000),
        cluster_register_timeout_in_ms=REGISTER_TIMEOUT * 1000,
        coordinated_jobs=[coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(cluster[job]))
                          for job in jobs],
    )


def multi_worker_strategy(worker_timeout: float = DEFAULT_WORKER_TIMEOUT) -> tf.distribute.Strategy:
    """This process's MultiWorkerMirroredStrategy (built at the first call, from TF_CONFIG).

    Must first be called before the process's first TensorFlow op (the CLIs call it at
    their start); later calls return the same strategy. Every worker's replicas (its GPUs,
    or its CPU) take part in each step: the global batch is split over all of them.

    Args:
        worker_timeout: seconds without a heartbeat after which a worker counts as lost.

    Raises:
        StrategyError: TF_CONFIG missing or malformed, or TensorFlow already started.
    """
    global _multi_worker
    if _multi_worker is None:
        if worker_timeout <= 0:
            raise StrategyError(f"--worker_timeout must be > 0 seconds. Received: {worker_timeout}")
        config = read_tf_config()
        _configure_heartbeats(config, worker_timeout)
        try:
            _multi_worker = tf.distribute.MultiWorkerMirroredStrategy()
        except (RuntimeError, ValueError) as error:
            raise StrategyError(
                f"Cannot start the multi-worker strategy: {str(error).splitlines()[0]} (it must "
                "be created before the first TensorFlow op of the process).") from None
        except tf.errors.OpError as error:  # not every worker registered in time (untested)
            raise StrategyError(
                f"The workers of TF_CONFIG did not all start within {REGISTER_TIMEOUT} s "
                f"({_abort_reason(str(error), type(error).__name__)}): start the same "
                "command on every host of the cluster.") from None
    return _multi_worker


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(config) -> bool:
    """Whether this process writes the run's files: always, except a multi-worker run's non-chief workers.

    Builds the multi-worker strategy (`config.strategy` "multi_worker") if not built yet.
    """
    if config.strategy != MULTI_WORKER:
        return True
    return bool(multi_worker_strategy().extended.should_checkpoint)


def worker_name() -> str:
    """This process's task in a multi-worker run, e.g. "worker 1"; "" otherwise."""
    if _multi_worker is None:
        return ""
    resolver = _multi_worker.cluster_resolver
    return f"{resolver.task_type} {resolver.task_id}"


def check_workers_agree(strategy: tf.distribute.Strategy, step: int, settings: str) -> None:
    """Raises StrategyError unless every worker starts at `step` with the same `settings`.

    A no-op without several workers. Called after the restore: a worker that did not see
    the chief's checkpoints (no shared filesystem) or was started with other flags is
    caught before the first step instead of training something else.
    """
    if not is_multi_worker(strategy):
        return
    mine = tf.constant([[step, zlib.crc32(settings.encode())]], tf.int64)
    rows = tf.function(lambda: strategy.gather(strategy.run(tf.identity, (mine,)), axis=0))().numpy()
    local = len(strategy.extended.worker_devices)  # replicas of each worker
    workers = rows[::local]
    if len({int(s) for s, _ in workers}) > 1:
        raise StrategyError(
            "The workers resumed from different checkpoints (step per worker: "
            f"{[int(s) for s, _ in workers]}): every worker must read the chief's --workdir "
            "(put it on a filesystem all hosts share) and run the same command.")
    if len({int(h) for _, h in workers}) > 1:
        raise StrategyError("The workers were started with different settings: run the same "
                            "command, with the same flags, on every worker.")


def _lost_tasks(message: str) -> list[str]:
    """The tasks other than this one named in a collective's error, e.g. ["worker 1"].

    The coordination service's error names the task that reported it, then the
    unhealthy tasks: only these count.
    """
    message = re.sub(r"\{\{function_node [^}]*\}\}", "", message)  # names this worker's device
    unhealthy = message.find("unhealthy")
    if unhealthy >= 0:
        message = message[unhealthy:]
    found = re.findall(r"/job:(\w+)(?:/replica:\d+)?/task:(\d+)", message)
    names = list(dict.fromkeys(f"{job} {index}" for job, index in found))
    return [name for name in names if name != worker_name()]


def _abort_reason(message: str, default: str) -> str:
    """What aborted the collectives, e.g. "Deadline Exceeded", from a TensorFlow error message."""
    found = re.search(r"aborted by: ([^\n\[]+)", message)
    return (found.group(1) if found else (message.strip().splitlines() or [default])[0]).strip()[:200]


@contextlib.contextmanager
def report_lost_workers(checkpoints: str | None = None):
    """Turns the error of a multi-worker run that lost a worker into a WorkerLostError.

    The error names the lost worker(s) as TensorFlow reports them (its coordination
    service: a task that stopped sending heartbeats; gRPC: a peer that went away) and
    the checkpoint a rerun of the same command on every worker resumes from.

    Args:
        checkpoints: the run's checkpoint folder (for the message).
    """
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.AbortedError, tf.errors.CancelledError) as error:
        if _multi_worker is None:
            raise
        message = str(error)
        lost = _lost_tasks(message)
        why = ("it stopped sending heartbeats" if "heartbeat" in message
               else "its connection closed" if re.search(r"[Cc]onnection|[Ss]ocket", message)
               else _abort_reason(message, type(error).__name__))
        what = (f"lost {' and '.join(lost)} of the multi-worker run ({why})" if lost else
                f"lost contact with the multi-worker run ({why}; a worker died, or this host "
                "was unreachable or too busy to send heartbeats for --worker_timeout seconds)")
        latest = tf.train.latest_checkpoint(checkpoints) if checkpoints else None
        raise WorkerLostError(
            f"{worker_name()} {what}; stopped. Rerun the same command on every worker to "
            f"resume from {latest or 'the start (no checkpoint yet)'}.") from None
