"""The served functions of an exported generator, and the latents of a seed.

Two signatures, both returning

    images:       uint8   [batch, H, W, 3]  (round((x + 1) * 127.5), clipped to [0, 255])
    images_float: float32 [batch, H, W, 3]  in [-1, 1] (the generator's tanh output)

- ``serving_default``: ``z`` float32 [batch, latent_dim] -> images of those latents.
  Latents are standard normal; a ``z`` with any ``|z| > MAX_ABS_LATENT`` (1e4) is refused,
  not clipped (the generator's activations grow with ``|z|`` and overflow to NaN near
  float32's maximum, e.g. z = 3e38; up to 1e4 they stay finite with a margin of many
  orders of magnitude). As a last guard, an output that is not finite is refused too.
- ``generate``: ``seed`` int64 scalar, ``count`` int32 scalar -> ``count`` images of the
  latents ``latents_for_seed(seed, count, latent_dim)``: deterministic for a seed, and
  identical to ``serving_default`` on those latents.

Random numbers come from the stateless Philox generator (`tf.random.stateless_normal`
with ``alg="philox"``, key ``[seed, 0]``), so the same seed gives the same latents inside the
graph (``generate``) and outside it (`latents_for_seed`, used by the sample CLI for every
format, TFLite included, whose models take the latent as input).

Bad input is rejected by asserts that run before the generator, so it fails with an
`InvalidArgumentError` whose message names the input, what was expected and what was
received, rather than an error from deep inside the network. The checks are runtime ops on
purpose: a serving signature's placeholder shape [None, latent_dim] is not enforced by every
caller (TF Serving's C++ session and TF2's loaded signatures feed any shape). ``seed`` and
``count`` are therefore declared with an unknown shape in the SignatureDef: declared scalar,
grappler folds their rank checks away under TF2's loader (`tf.saved_model.load`), which
then used count=[2, 3] as 5; declared unknown, a seed or count that is not a scalar is
refused under every loader (TF Serving, the TF1 session loader, saved_model_cli, TF2).
"""

from __future__ import annotations

import keras
import tensorflow as tf

SERVING_DEFAULT = "serving_default"
GENERATE = "generate"
INPUT_Z = "z"
INPUT_SEED = "seed"
INPUT_COUNT = "count"
OUTPUT_IMAGES = "images"
OUTPUT_IMAGES_FLOAT = "images_float"
DEFAULT_MAX_BATCH = 1024
MAX_ABS_LATENT = 1e4  # serving_default refuses larger |z| (module docstring)
RNG_ALGORITHM = "philox"


def latents_for_seed(seed: int | tf.Tensor, count: int | tf.Tensor, latent_dim: int) -> tf.Tensor:
    """The standard-normal latents of a seed: float32 [count, latent_dim].

    Stateless Philox with key [seed, 0]: the same numbers eagerly, inside a `tf.function`
    and inside an exported graph.
    """
    seed = tf.cast(seed, tf.int64)
    count = tf.cast(count, tf.int32)
    return tf.random.stateless_normal(
        tf.stack([count, tf.constant(latent_dim, tf.int32)]),
        seed=tf.stack([seed, tf.constant(0, tf.int64)]),
        dtype=tf.float32,
        alg=RNG_ALGORITHM,
    )


def images_to_uint8(images: tf.Tensor) -> tf.Tensor:
    """float images in [-1, 1] -> uint8 in [0, 255], as `utils.images.to_uint8` (half to even)."""
    return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def _check(condition: tf.Tensor, *data) -> tf.Operation:
    return tf.debugging.Assert(condition, list(data), summarize=16)


def _runtime_shape(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(shape, rank) of `x` as computed when the graph runs.

    `tf.shape` / `tf.rank` fold to constants when the signature's static shape is known,
    which would skip the checks for a caller that feeds another shape (TF Serving does).
    """
    shape = tf.raw_ops.Shape(input=x, out_type=tf.int32)
    rank = tf.reduce_sum(tf.cast(tf.greater_equal(shape, 0), tf.int32))
    return shape, rank


def checked_latents(z: tf.Tensor, latent_dim: int, max_batch: int) -> tf.Tensor:
    """`z` after runtime checks of its rank, latent size, batch size and magnitude.

    Raises (when run):
        InvalidArgumentError: "z must be float32 [batch, latent_dim] with 1 <= batch <= max.
            Received: shape=" followed by the shape fed; "z must be finite"; or
            "z must satisfy |z| <= 10000 ... Received: max |z| =" and the largest |z|.
    """
    expected = (
        f"{INPUT_Z} must be float32 [batch, {latent_dim}] with 1 <= batch <= {max_batch}. "
        "Received: shape="
    )
    shape, rank = _runtime_shape(z)
    # Padded so that the indexing below is in bounds whatever the rank fed.
    dims = tf.concat([shape, tf.zeros([2], tf.int32)], axis=0)
    batch, size = dims[0], dims[1]
    valid = tf.reduce_all(
        tf.stack([tf.equal(rank, 2), tf.equal(size, latent_dim), batch >= 1, batch <= max_batch])
    )
    with tf.control_dependencies([_check(valid, expected, shape)]):
        z = tf.debugging.assert_all_finite(z, f"{INPUT_Z} must be finite")
    largest = tf.reduce_max(tf.abs(z))
    in_range = _check(
        largest <= MAX_ABS_LATENT,
        f"{INPUT_Z} must satisfy |z| <= {MAX_ABS_LATENT:g} (latents are standard normal; "
        "larger ones overflow the generator). Received: max |z| =", largest,
    )
    with tf.control_dependencies([in_range]):
        return tf.identity(z)


def checked_seed_and_count(
    seed: tf.Tensor, count: tf.Tensor, max_batch: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """`seed` and `count` after runtime checks: scalars, and 1 <= count <= max_batch.

    Raises (when run):
        InvalidArgumentError naming `seed` or `count`, what was expected and what was received.
    """
    seed_shape, seed_rank = _runtime_shape(seed)
    count_shape, count_rank = _runtime_shape(count)
    scalars_ok = [
        _check(
            tf.equal(seed_rank, 0),
            f"{INPUT_SEED} must be an int64 scalar. Received: shape=",
            seed_shape,
        ),
        _check(
            tf.equal(count_rank, 0),
            f"{INPUT_COUNT} must be an int32 scalar. Received: shape=",
            count_shape,
        ),
    ]
    # Every op below is well defined whatever shape was fed, so the asserts are the only
    # thing that can fail (control dependencies alone do not order them: grappler drops a
    # reshape to [] of an input whose signature shape is already []).
    with tf.control_dependencies(scalars_ok):
        seed = tf.reduce_sum(tf.reshape(seed, [-1])[:1])
        count = tf.reduce_sum(tf.reshape(count, [-1])[:1])
    count_ok = _check(
        tf.logical_and(count >= 1, count <= max_batch),
        f"{INPUT_COUNT} must be in [1, {max_batch}]. Received: count=",
        count,
    )
    with tf.control_dependencies([count_ok]):
        # Clipped too, so nothing larger than max_batch is allocated while the assert runs.
        return tf.identity(seed), tf.clip_by_value(count, 1, max_batch)


def make_serving_functions(
    generator: keras.Model, max_batch: int = DEFAULT_MAX_BATCH
) -> dict[str, tf.types.experimental.GenericFunction]:
    """The `tf.function`s to export, by signature name.

    Args:
        generator: a built fixed `Generator` (its attribute `latent_dim` gives z's size);
            it is called with training=False (batch-norm moving statistics).
        max_batch: the largest batch (rows of z, or count) accepted.

    Returns:
        {"serving_default": fn(z), "generate": fn(seed, count)}, each with an input
        signature and returning {"images": uint8, "images_float": float32}.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1. Received: max_batch={max_batch}")
    latent_dim = int(generator.latent_dim)

    def outputs(z):
        images = tf.debugging.assert_all_finite(
            tf.cast(generator(z, training=False), tf.float32),  # a bfloat16 generator's too
            f"{OUTPUT_IMAGES_FLOAT} are not finite: the generator overflowed on this {INPUT_Z}")
        return {OUTPUT_IMAGES: images_to_uint8(images), OUTPUT_IMAGES_FLOAT: images}

    @tf.function(
        input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name=INPUT_Z)],
        autograph=False,
    )
    def serve(z):
        return outputs(checked_latents(z, latent_dim, max_batch))

    @tf.function(
        input_signature=[  # unknown shapes: the scalar checks run under every loader
            tf.TensorSpec(None, tf.int64, name=INPUT_SEED),
            tf.TensorSpec(None, tf.int32, name=INPUT_COUNT),
        ],
        autograph=False,
    )
    def generate(seed, count):
        seed, count = checked_seed_and_count(seed, count, max_batch)
        return outputs(latents_for_seed(seed, count, latent_dim))

    return {SERVING_DEFAULT: serve, GENERATE: generate}
