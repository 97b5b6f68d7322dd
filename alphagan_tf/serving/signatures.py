"""The served functions of an exported generator, and the latents of a seed.

Two signatures, both returning

    images:       uint8   [batch, H, W, 3]  (round((x + 1) * 127.5), clipped to [0, 255])
    images_float: float32 [batch, H, W, 3]  in [-1, 1] (the generator's tanh output)

- ``serving_default``: ``z`` float32 [batch, latent_dim] -> images of those latents.
  Latents are standard normal; a ``z`` with any ``|z| > MAX_ABS_LATENT`` (1e4), a NaN or an
  infinity, or more than ``max_batch`` rows is refused, not clipped; an output that is not
  finite is refused too (`generator_guard`: the rule every runner shares, and its reasons).
- ``generate``: ``seed`` int64 scalar, ``count`` int32 scalar -> ``count`` images of the
  latents ``latents_for_seed(seed, count, latent_dim)``: deterministic for a seed, and
  identical to ``serving_default`` on those latents.

Random numbers come from the stateless Philox generator (`tf.random.stateless_normal`
with ``alg="philox"``, key ``[seed, 0]``), so the same seed gives the same latents inside the
graph (``generate``) and outside it (`latents_for_seed`, used by the sample CLI for every
format, TFLite included, whose models take the latent as input).

Bad input is rejected by the guard's asserts, which run before the generator, so it fails with an
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

from alphagan_tf.serving import generator_guard as guard
from alphagan_tf.serving.generator_guard import (  # the guarded names, served as such
    INPUT_COUNT,
    INPUT_SEED,
    INPUT_Z,
    OUTPUT_IMAGES_FLOAT,
)

SERVING_DEFAULT = "serving_default"
GENERATE = "generate"
OUTPUT_IMAGES = "images"
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


def make_serving_functions(
    generator: keras.Model, max_batch: int = guard.DEFAULT_MAX_BATCH
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
    max_batch = guard.check_max_batch(max_batch)
    latent_dim = int(generator.latent_dim)

    def outputs(z):
        # float32 from a bfloat16 generator too
        images = guard.checked_images(tf.cast(generator(z, training=False), tf.float32))
        return {OUTPUT_IMAGES: images_to_uint8(images), OUTPUT_IMAGES_FLOAT: images}

    @tf.function(
        input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name=INPUT_Z)],
        autograph=False,
    )
    def serve(z):
        return outputs(guard.checked_latents(z, latent_dim, max_batch))

    @tf.function(
        input_signature=[  # unknown shapes: the scalar checks run under every loader
            tf.TensorSpec(None, tf.int64, name=INPUT_SEED),
            tf.TensorSpec(None, tf.int32, name=INPUT_COUNT),
        ],
        autograph=False,
    )
    def generate(seed, count):
        seed, count = guard.checked_seed_and_count(seed, count, max_batch)
        return outputs(latents_for_seed(seed, count, latent_dim))

    return {SERVING_DEFAULT: serve, GENERATE: generate}
