"""The device-dependent choices a GAN run makes before it traces its steps."""

from __future__ import annotations

from alphagan_tf.gan.space import depthwise
from alphagan_tf.utils import distribution
from alphagan_tf.utils.typed_config import require


def validate_device_fields(config) -> None:
    """A run config's `deterministic` (True, False or None: by device) and `depthwise_gradient`."""
    require(config.deterministic in (True, False, None), "deterministic", config.deterministic,
            "must be true, false or unset (on for CPU, off for GPUs)")
    require(config.depthwise_gradient in depthwise.KERNEL_GRADIENTS, "depthwise_gradient",
            config.depthwise_gradient, f"must be one of {depthwise.KERNEL_GRADIENTS}")


def apply_device_choices(config, verbose: int = 1) -> None:
    """Op determinism (`config.deterministic`, auto by device) and the depthwise kernel
    gradient (`config.depthwise_gradient`) for the steps traced from now on; prints which."""
    determinism = distribution.set_determinism(config.deterministic)
    depthwise.set_kernel_gradient(config.depthwise_gradient)
    if verbose:
        kernel = depthwise.resolved_kernel_gradient(config.depthwise_gradient)
        print(f"{determinism} Depthwise kernel gradient: {kernel} ({config.depthwise_gradient}).")
