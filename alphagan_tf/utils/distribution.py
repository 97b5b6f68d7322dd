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
"""

from __future__ import annotations

import logging
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
        return tf.distribute.OneDeviceStrategy(devices[0] if devices else "/cpu:0")
    return tf.distribute.MirroredStrategy(devices or None)


def validate_fields(config) -> None:
    """A run config's `strategy`, `devices` and `cpu_devices`, checked with `require`."""
    require(config.strategy in STRATEGIES, "strategy", config.strategy,
            f"must be one of {STRATEGIES}")
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
    """Under "mirrored", the tensorflow logger shows warnings only.

    MirroredStrategy logs an INFO line for every all-reduce it traces (~1300 in
    one demo search epoch), burying the progress bar; its warnings still show.
    """
    if strategy == "mirrored":
        logging.getLogger("tensorflow").setLevel(logging.WARNING)
