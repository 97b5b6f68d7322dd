"""Numeric precision of a run: float32, bfloat16 or float16 compute, float32 state.

`--precision` (every command that trains, and the benches) picks one of
`PRECISIONS`. The networks are built under the matching Keras dtype policy
(`dtype_policy`): "float32", "mixed_bfloat16" or "mixed_float16", whose layers
compute in the low precision and keep float32 variables. Only float16 needs
loss scaling (its exponent range is float32's minus 8 bits); bfloat16 has
float32's exponent range and trains without it (`uses_loss_scaling`).

What stays float32 under bfloat16 and float16, and where:

- alphas and their softmax: `nas.mixed_op.MixedOp` (alpha made with
  `autocast=False`, `op_weights()` a float32 softmax; the fused kernel of
  `gan.normal_mixed_op` is summed in the kernels' float32 and cast once);
- spectral-norm power iterations: `gan.spectral_norm` (u, v `autocast=False`,
  the iteration and sigma computed in float32, the normalised kernel cast last);
- batch-norm statistics: `gan.batch_norm.BatchNormalization` (moments, the
  moving mean / variance and the normalisation in float32, the output cast back);
- losses: `to_float32` of the logits in the steps (`gan.searcher`,
  `gan.trainer`, `textnas.training.classification_loss_fn`), so every loss,
  the duality gap and the game values are float32;
- EMA weights and every other variable, and optimizer state: the mixed
  policies' variable dtype is float32, and Keras optimizers make their slots in
  the variable's dtype (`gan.ema.WeightEMA` averages float32 variables).

A checkpoint therefore holds the same float32 tensors whatever the precision
it was trained in, so a run can resume, be exported (float32 SavedModel and
TFLite) or be evaluated under any precision.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from alphagan_tf.utils.typed_config import require

# keras / tensorflow are imported where used: the CLIs' flag modules import this one.

PRECISIONS = ("float32", "bfloat16", "float16")
FLAG_HELP = (
    "Compute precision: float32, bfloat16 (float32 variables, alphas, batch-norm statistics, "
    "spectral norms, losses and optimizer state; no loss scaling; fast where the CPU has "
    "AVX512-BF16/AMX, and on A100/H100/TPU) or float16 (the same, with dynamic loss scaling; GPUs)."
)
_KERAS_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


def validate(precision: str) -> str:
    """`precision` if it is one of `PRECISIONS`; else one ValueError listing them."""
    require(precision in PRECISIONS, "precision", precision,
            f"must be one of {', '.join(PRECISIONS)}")
    return precision


def keras_policy(precision: str) -> str:
    """The Keras dtype policy name networks are built under for `precision`."""
    return _KERAS_POLICIES[validate(precision)]


def compute_dtype(precision: str) -> str:
    """The dtype layers compute in ("float32", "bfloat16" or "float16")."""
    return validate(precision)


def cpu_has_native_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> bool | None:
    """Whether the CPU computes bfloat16 natively (AVX512-BF16 or AMX); None if unknown.

    Without them (e.g. AMD Zen 3, Intel before Cooper Lake) oneDNN / Eigen emulate
    bfloat16: measured on this project's AMD EPYC (AVX2 only), a 5x5 conv's forward +
    backward pass at batch 16, 32x32x256 took 21x its float32 time (README, "Precision").
    """
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return None
    if not flags:
        return None
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def warn_if_emulated(precision: str, flag: str = "precision") -> bool:
    """Logs a warning when bfloat16 will run emulated (no GPU, no native CPU support).

    `flag` names the flag in the message. Returns whether it warned.
    """
    if validate(precision) != "bfloat16" or cpu_has_native_bfloat16() is not False:
        return False
    # here: the flags read this module without TensorFlow
    import tensorflow as tf
    from absl import logging

    if tf.config.list_physical_devices("GPU"):
        return False
    logging.warning(
        f"--{flag}=bfloat16 on a CPU without AVX512-BF16 or AMX (see lscpu) and no GPU: "
        "bfloat16 is emulated here and several times SLOWER than float32 (convolution "
        "gradients ~10-20x). It is numerically sound; use float32 for speed on this machine."
    )
    return True


def uses_loss_scaling(precision: str) -> bool:
    """Only float16 needs a (dynamic) loss scale."""
    return validate(precision) == "float16"


@contextlib.contextmanager
def dtype_policy(precision: str) -> Iterator[None]:
    """Layers created inside compute in `precision` (float32 variables); restores the policy."""
    # here: the flags read this module without TensorFlow
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(keras_policy(precision))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def with_loss_scaling(optimizer, enabled: bool, name: str | None = None):
    """`optimizer` wrapped in a dynamic `LossScaleOptimizer` when `enabled`, else itself.

    Either way the step calls `optimizer.scale_loss(loss)` before the gradient
    (a plain Keras optimizer returns the loss unchanged) and applies as usual.
    """
    if not enabled:
        return optimizer
    # here: the flags read this module without TensorFlow
    import keras

    return keras.optimizers.LossScaleOptimizer(optimizer, name=name or f"{optimizer.name}_loss_scale")


def to_float32(x):
    """x as float32 if it is float16 / bfloat16 / float32; float64 stays float64 (parity tests)."""
    # here: the flags read this module without TensorFlow
    import keras
    import tensorflow as tf

    return tf.cast(x, keras.backend.result_type(x.dtype, "float32"))
