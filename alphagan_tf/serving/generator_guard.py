"""The one guard in front of every way of running a generator: what it refuses, and why.

A generator maps standard-normal latents to images. Whatever runs it refuses the same
inputs with the same words:

    z       float32 [batch, latent_dim] with 1 <= batch <= max_batch   (`--max_batch`, 1024)
            finite, and every |z| <= MAX_ABS_LATENT (1e4)
    seed    an int64 scalar; count an int32 scalar in [1, max_batch]  (the `generate` signature)
    images  finite (the last guard: the generator overflowed)

Why these numbers: latents are standard normal, so |z| > 1e4 is never a latent; the
generator's activations grow with |z| and overflow to NaN near float32's maximum (z = 3e38
gives black images), while up to 1e4 they stay finite with a margin of many orders of
magnitude (tests/test_export.py). The batch bound keeps one request from exhausting memory
(batch 100000 through TFLite allocated 6.9 GB before failing). z is refused, not clipped.

The rule has two forms, one per kind of runner, both with the messages of this module:

- graph ops (`checked_latents`, `checked_seed_and_count`, `checked_images`), inside the
  SavedModel's signatures (`signatures.py`): TF Serving, the TF1 session loader and
  `tf.saved_model.load` all feed the graph directly, so the checks must be in it. The REST /
  gRPC stand-in (`tools/local_server.py`) runs those signatures, so it refuses with them too.
- numpy checks (`check_latents`, `check_images`), around the LiteRT interpreter
  (`tflite.TFLiteGenerator`): TFLite has no Assert builtin, so the .tflite file cannot hold them.

The messages name the input, what was expected and what was received, e.g.
``z must satisfy |z| <= 10000 (latents are standard normal; larger ones overflow the
generator). Received: max |z| = 3e+38``.
"""

from __future__ import annotations

import numpy as np

# The inputs and the output the guard speaks of, by the names the served signatures use.
INPUT_Z = "z"
INPUT_SEED = "seed"
INPUT_COUNT = "count"
OUTPUT_IMAGES_FLOAT = "images_float"

DEFAULT_MAX_BATCH = 1024  # `--max_batch`
MAX_ABS_LATENT = 1e4  # larger |z| are refused (module docstring)
INT32_MAX = 2**31 - 1  # count is int32, so no larger max_batch can be asked for


class GeneratorInputError(ValueError):
    """A generator refused its input (or its output was not finite); the message says which.

    `key` names the setting at fault when it is one (max_batch: the CLIs' `--max_batch`).
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def _latents_rule(latent_dim: int, max_batch: int) -> str:
    return f"{INPUT_Z} must be float32 [batch, {latent_dim}] with 1 <= batch <= {max_batch}."


_FINITE_RULE = f"{INPUT_Z} must be finite."
_MAGNITUDE_RULE = (
    f"{INPUT_Z} must satisfy |z| <= {MAX_ABS_LATENT:g} (latents are standard normal; larger "
    "ones overflow the generator)."
)
_OUTPUT_RULE = f"{OUTPUT_IMAGES_FLOAT} are not finite: the generator overflowed on this {INPUT_Z}."


def check_max_batch(max_batch: int) -> int:
    """`max_batch` itself: an integer in [1, 2**31 - 1] (count, its twin, is int32).

    Raises:
        GeneratorInputError: "max_batch: must be ... Received: VALUE" (key "max_batch").
    """
    if isinstance(max_batch, bool) or not isinstance(max_batch, (int, np.integer)) or not (
        1 <= max_batch <= INT32_MAX
    ):
        raise GeneratorInputError(
            f"max_batch: must be an integer in [1, {INT32_MAX}]. Received: {max_batch!r}",
            key="max_batch",
        )
    return int(max_batch)


# --- numpy: runners without a graph (TFLite) ------------------------------------------------


def check_latents(z: np.ndarray, latent_dim: int, max_batch: int) -> np.ndarray:
    """`z` if a generator of `latent_dim` and `max_batch` accepts it.

    Args:
        z: float32 [batch, latent_dim], 1 <= batch <= max_batch, finite, |z| <= 1e4.

    Raises:
        GeneratorInputError: the first rule `z` breaks (shape and dtype, then finiteness,
            then magnitude), with what was received.
    """
    z = np.asarray(z)
    if z.dtype != np.float32 or z.ndim != 2 or z.shape[1] != latent_dim or not (
        1 <= z.shape[0] <= max_batch
    ):
        raise GeneratorInputError(
            f"{_latents_rule(latent_dim, max_batch)} Received: dtype={z.dtype}, shape={z.shape}"
        )
    finite = np.isfinite(z)
    if not finite.all():
        nans = int(np.isnan(z).sum())
        raise GeneratorInputError(
            f"{_FINITE_RULE} Received: {nans} NaN and {int(z.size - finite.sum()) - nans} "
            "infinite values"
        )
    largest = float(np.abs(z).max())
    if largest > MAX_ABS_LATENT:
        raise GeneratorInputError(f"{_MAGNITUDE_RULE} Received: max |z| = {largest:g}")
    return z


def check_images(images: np.ndarray) -> np.ndarray:
    """`images` if every value is finite.

    Raises:
        GeneratorInputError: naming the output and how many values are not finite.
    """
    finite = np.isfinite(images)
    if not finite.all():
        raise GeneratorInputError(
            f"{_OUTPUT_RULE} Received: {int(images.size - finite.sum())} non-finite values"
        )
    return images


# --- graph ops: the SavedModel's signatures ---------------------------------------------------


def _assert(condition, *data):
    # here: the CLI reads this module's constants without TensorFlow
    import tensorflow as tf

    return tf.debugging.Assert(condition, list(data), summarize=16)


def _runtime_shape(x):
    """(shape, rank) of `x` as computed when the graph runs.

    `tf.shape` / `tf.rank` fold to constants when the signature's static shape is known,
    which would skip the checks for a caller that feeds another shape (TF Serving does).
    """
    # here: the CLI reads this module's constants without TensorFlow
    import tensorflow as tf

    shape = tf.raw_ops.Shape(input=x, out_type=tf.int32)
    rank = tf.reduce_sum(tf.cast(tf.greater_equal(shape, 0), tf.int32))
    return shape, rank


def checked_latents(z, latent_dim: int, max_batch: int):
    """`z` (a float32 tensor) after runtime checks of its rank, size, batch, finiteness, magnitude.

    Raises (when run):
        InvalidArgumentError: "z must be float32 [batch, latent_dim] with 1 <= batch <= max.
            Received: shape=" followed by the shape fed; "z must be finite."; or
            "z must satisfy |z| <= 10000 ... Received: max |z| =" and the largest |z|.
    """
    # here: the CLI reads this module's constants without TensorFlow
    import tensorflow as tf

    shape, rank = _runtime_shape(z)
    # Padded so that the indexing below is in bounds whatever the rank fed.
    dims = tf.concat([shape, tf.zeros([2], tf.int32)], axis=0)
    batch, size = dims[0], dims[1]
    valid = tf.reduce_all(
        tf.stack([tf.equal(rank, 2), tf.equal(size, latent_dim), batch >= 1, batch <= max_batch])
    )
    shape_ok = _assert(valid, f"{_latents_rule(latent_dim, max_batch)} Received: shape=", shape)
    with tf.control_dependencies([shape_ok]):
        z = tf.debugging.assert_all_finite(z, _FINITE_RULE)
    largest = tf.reduce_max(tf.abs(z))
    in_range = _assert(
        largest <= MAX_ABS_LATENT, f"{_MAGNITUDE_RULE} Received: max |z| =", largest
    )
    with tf.control_dependencies([in_range]):
        return tf.identity(z)


def checked_seed_and_count(seed, count, max_batch: int):
    """(seed, count) tensors after runtime checks: scalars, and 1 <= count <= max_batch.

    Raises (when run):
        InvalidArgumentError naming `seed` or `count`, what was expected and what was received.
    """
    # here: the CLI reads this module's constants without TensorFlow
    import tensorflow as tf

    seed_shape, seed_rank = _runtime_shape(seed)
    count_shape, count_rank = _runtime_shape(count)
    scalars_ok = [
        _assert(
            tf.equal(seed_rank, 0), f"{INPUT_SEED} must be an int64 scalar. Received: shape=",
            seed_shape,
        ),
        _assert(
            tf.equal(count_rank, 0), f"{INPUT_COUNT} must be an int32 scalar. Received: shape=",
            count_shape,
        ),
    ]
    # Every op below is well defined whatever shape was fed, so the asserts are the only
    # thing that can fail (control dependencies alone do not order them: grappler drops a
    # reshape to [] of an input whose signature shape is already []).
    with tf.control_dependencies(scalars_ok):
        seed = tf.reduce_sum(tf.reshape(seed, [-1])[:1])
        count = tf.reduce_sum(tf.reshape(count, [-1])[:1])
    count_ok = _assert(
        tf.logical_and(count >= 1, count <= max_batch),
        f"{INPUT_COUNT} must be in [1, {max_batch}]. Received: count=",
        count,
    )
    with tf.control_dependencies([count_ok]):
        # Clipped too, so nothing larger than max_batch is allocated while the assert runs.
        return tf.identity(seed), tf.clip_by_value(count, 1, max_batch)


def checked_images(images):
    """`images` (a float tensor) after a runtime check that every value is finite."""
    # here: the CLI reads this module's constants without TensorFlow
    import tensorflow as tf

    return tf.debugging.assert_all_finite(images, _OUTPUT_RULE)
