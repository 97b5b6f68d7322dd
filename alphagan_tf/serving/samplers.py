"""Sampling from an exported generator, whatever its format.

Both runners map latents to float images, so the same latents give the same grid from a
SavedModel and from a TFLite file (within the TFLite variant's parity bound):

- `SavedModelGenerator`: the ``serving_default`` signature of a SavedModel (TF2 loader).
- `tflite.TFLiteGenerator`: a .tflite file run by LiteRT.

`sample_images` draws the latents OUTSIDE the model with `signatures.latents_for_seed`
(stateless Philox, key [seed, 0]): the latents of `generate(seed, count)` inside the
SavedModel, so its ``generate`` signature gives the very same images.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from alphagan_tf.serving import generator_guard as guard
from alphagan_tf.serving import savedmodel
from alphagan_tf.serving.signatures import (
    GENERATE,
    INPUT_COUNT,
    INPUT_SEED,
    INPUT_Z,
    OUTPUT_IMAGES_FLOAT,
    SERVING_DEFAULT,
    latents_for_seed,
)
from alphagan_tf.serving.tflite import TFLiteGenerator


class ModelFileError(ValueError):
    """A file or folder is not an exported generator (named by `load_generator` callers' flag)."""


class SavedModelGenerator:
    """Runs an exported SavedModel's signatures with the TF2 loader.

    Args:
        path: a version folder, or a model base folder (its highest version is used).

    Call args:
        z: float32 [batch, latent_dim].

    Returns:
        images: float32 [batch, H, W, 3] in [-1, 1].

    Attributes:
        max_batch: the largest batch its signatures accept (export_info.json; None when
            the version has none: the graph's own checks still apply).
    """

    def __init__(self, path: str):
        self.path = savedmodel.resolve_saved_model_dir(path)
        self.model = tf.saved_model.load(self.path)
        if SERVING_DEFAULT not in self.model.signatures:
            raise ModelFileError(
                f"{self.path} has no {SERVING_DEFAULT!r} signature. "
                f"Received signatures: {sorted(self.model.signatures)}"
            )
        self.serving_default = self.model.signatures[SERVING_DEFAULT]
        inputs = self.serving_default.structured_input_signature[1]
        if set(inputs) != {INPUT_Z}:  # e.g. a TextNAS classifier (sentences)
            raise ModelFileError(
                f"{self.path} is not an exported generator: its {SERVING_DEFAULT!r} takes "
                f"{sorted(inputs)}, not [{INPUT_Z!r}]."
            )
        spec = inputs[INPUT_Z]
        self.latent_dim = int(spec.shape[-1])
        out = self.serving_default.structured_outputs[OUTPUT_IMAGES_FLOAT]
        self.image_shape = tuple(int(d) for d in out.shape[1:])
        self.max_batch = (savedmodel.read_export_info(self.path) or {}).get("max_batch")

    def __call__(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z)
        if z.dtype != np.float32:
            raise ValueError(f"z must be float32. Received: dtype={z.dtype}")
        return self.serving_default(**{INPUT_Z: z})[OUTPUT_IMAGES_FLOAT].numpy()

    def generate(self, seed: int, count: int) -> dict[str, np.ndarray]:
        """The ``generate`` signature: {"images": uint8, "images_float": float32}."""
        outputs = self.model.signatures[GENERATE](
            **{INPUT_SEED: tf.constant(seed, tf.int64), INPUT_COUNT: tf.constant(count, tf.int32)}
        )
        return {k: v.numpy() for k, v in outputs.items()}


def load_generator(
    path: str, num_threads: int | None = None, max_batch: int = guard.DEFAULT_MAX_BATCH
):
    """A .tflite file -> `TFLiteGenerator`; a SavedModel (or base) folder -> `SavedModelGenerator`.

    `num_threads` and `max_batch` are the TFLite runner's (a SavedModel has its own bound).

    Raises:
        FileNotFoundError: `path` is neither.
        ModelFileError: `path` is a file but not a generator's TFLite model, or a
            SavedModel without the ``serving_default`` signature.
    """
    if path.endswith(".tflite") or os.path.isfile(path):
        max_batch = guard.check_max_batch(max_batch)  # before: its error is no file's fault
        try:
            return TFLiteGenerator(path, num_threads=num_threads, max_batch=max_batch)
        except ValueError as error:  # LiteRT: "The model is not a valid Flatbuffer buffer"
            raise ModelFileError(f"{path} is not a generator's TFLite model: {error}") from None
    return SavedModelGenerator(path)


def sample_images(generator, n: int, seed: int, batch_size: int = 64) -> np.ndarray:
    """`n` images of the latents `latents_for_seed(seed, n)`, in batches.

    Args:
        generator: a `SavedModelGenerator` or `TFLiteGenerator` (anything with
            `latent_dim` mapping float32 z [b, latent_dim] to images).
        n: number of images (>= 1).
        seed: latent seed.
        batch_size: latents per call; the latents do not depend on it.

    Returns:
        float32 [n, H, W, 3] in [-1, 1].
    """
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be >= 1. Received: n={n}, batch_size={batch_size}")
    z = latents_for_seed(seed, n, generator.latent_dim).numpy()
    return np.concatenate(
        [generator(z[i : i + batch_size]) for i in range(0, n, batch_size)], axis=0
    )
