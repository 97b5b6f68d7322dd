"""TFLite conversion of a fixed generator, and a LiteRT runner for the result.

The TFLite model maps latents to images; random numbers stay outside (the stateless RNG
ops are not TFLite builtins), so callers draw z themselves, e.g. with
`signatures.latents_for_seed` as the sample CLI does for every format:

    signature "serving_default":  z float32 [batch, latent_dim] (dynamic batch)
                               -> images_float float32 [batch, H, W, 3] in [-1, 1]

Quantisation modes (`QUANTIZE_MODES`):

- ``none``: float32 weights and ops.
- ``float16``: float16 weights, dequantised to float32 at load; float32 ops.
- ``dynamic``: int8 weights; ops with int8 kernels quantise activations on the fly.
- ``int8``: full-integer ops (``TFLITE_BUILTINS_INT8``): weights and activations int8,
  activation ranges calibrated on `calibration_samples` latents of `calibration_seed`
  (the representative dataset). Input and output stay float32 (a quantise op after z and a
  dequantise op before the images), so every variant is called the same way.

Models are run with LiteRT (`ai_edge_litert.interpreter.Interpreter`; tf.lite.Interpreter
is deprecated): `TFLiteGenerator`.
"""

from __future__ import annotations

import os
import tempfile
from typing import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf

from alphagan_tf.serving import generator_guard as guard
from alphagan_tf.serving.signatures import (
    INPUT_Z,
    OUTPUT_IMAGES_FLOAT,
    SERVING_DEFAULT,
    latents_for_seed,
)
from alphagan_tf.utils import files

QUANTIZE_MODES = ("none", "float16", "dynamic", "int8")
DEFAULT_CALIBRATION_SAMPLES = 128


def _representative_latents(
    latent_dim: int, samples: int, seed: int
) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The int8 representative dataset: one [1, latent_dim] latent per step."""
    z = latents_for_seed(seed, samples, latent_dim).numpy()

    def dataset():
        for row in z:
            yield [row[None, :]]

    return dataset


def _check_quantize(quantize: str, calibration_samples: int) -> None:
    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"quantize must be one of {QUANTIZE_MODES}. Received: {quantize!r}")
    if quantize == "int8" and calibration_samples < 1:
        raise ValueError(f"calibration_samples must be >= 1. Received: {calibration_samples}")


def write_conversion_source(generator: keras.Model, path: str) -> str:
    """Writes the SavedModel the converter reads: z -> images_float, nothing else.

    Written with `keras.export.ExportArchive`: converting the concrete function of a Keras 3
    model directly leaves its variables as uninitialised READ_VARIABLE ops (NaN images).
    No input checks here (the Assert op is not a TFLite builtin): `TFLiteGenerator` runs the
    same guard (`generator_guard`) around the interpreter.
    """
    if getattr(generator, "arch_variables", None):
        raise TypeError(
            "Only the fixed generator is converted (Generator.from_genotype). "
            f"Received: {type(generator).__name__} with architecture variables"
        )
    latent_dim = int(generator.latent_dim)

    @tf.function(
        input_signature=[tf.TensorSpec([None, latent_dim], tf.float32, name=INPUT_Z)],
        autograph=False,
    )
    def serve(z):
        return {OUTPUT_IMAGES_FLOAT: generator(z, training=False)}

    archive = keras.export.ExportArchive()  # no track(): see savedmodel.write_saved_model
    archive.add_endpoint(name=SERVING_DEFAULT, fn=serve)
    archive.write_out(path, verbose=False)
    return path


def convert_saved_model(
    source_dir: str,
    latent_dim: int,
    quantize: str = "none",
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
    calibration_seed: int = 1234,
) -> bytes:
    """Converts a `write_conversion_source` SavedModel; returns the TFLite model bytes.

    Args:
        source_dir: the SavedModel folder.
        latent_dim: z's size (for the int8 representative dataset).
        quantize: one of `QUANTIZE_MODES`.
        calibration_samples: int8 only: latents in the representative dataset.
        calibration_seed: int8 only: their seed (`latents_for_seed`).
    """
    _check_quantize(quantize, calibration_samples)
    converter = tf.lite.TFLiteConverter.from_saved_model(source_dir, [SERVING_DEFAULT])
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative_latents(
            latent_dim, calibration_samples, calibration_seed
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32
    return converter.convert()


def convert_to_tflite(
    generator: keras.Model,
    quantize: str = "none",
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
    calibration_seed: int = 1234,
) -> bytes:
    """The TFLite model of `generator` (inference mode): z in, float images out.

    Args:
        generator: a built fixed `Generator`.
        quantize: one of `QUANTIZE_MODES`.
        calibration_samples: int8 only: latents in the representative dataset.
        calibration_seed: int8 only: their seed (`latents_for_seed`).

    Returns:
        The model bytes (write them with `write_tflite`).
    """
    _check_quantize(quantize, calibration_samples)
    with tempfile.TemporaryDirectory(prefix="alphagan_tflite_") as tmp:
        source = write_conversion_source(generator, os.path.join(tmp, "source"))
        return convert_saved_model(
            source, int(generator.latent_dim), quantize, calibration_samples, calibration_seed
        )


def write_tflite(model: bytes, path: str) -> str:
    """Writes model bytes to `path` atomically (temporary file + rename)."""
    return files.write_bytes_atomic(path, model)


class TFLiteGenerator:
    """Runs a converted generator with LiteRT, behind the SavedModel's guard.

    Args:
        path: a .tflite file written by `convert_to_tflite`.
        num_threads: interpreter threads (None: LiteRT's default).
        max_batch: the largest batch accepted (the file does not hold one: `--max_batch`).

    Call args:
        z: float32 [batch, latent_dim], 1 <= batch <= max_batch, finite, |z| <= 1e4.

    Returns:
        images: float32 [batch, H, W, 3] in [-1, 1].

    Raises:
        GeneratorInputError: z breaks a rule of `generator_guard` (checked before the
            interpreter runs), or the images are not finite.
    """

    def __init__(
        self, path: str, num_threads: int | None = None,
        max_batch: int = guard.DEFAULT_MAX_BATCH,
    ):
        # LiteRT: an optional dependency (the [tflite] extra)
        from ai_edge_litert.interpreter import Interpreter

        self.max_batch = guard.check_max_batch(max_batch)
        if not os.path.exists(path):
            raise FileNotFoundError(f"TFLite model not found. Received: {path!r}")
        self.path = path
        self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
        signatures = self.interpreter.get_signature_list()
        if SERVING_DEFAULT not in signatures:
            raise ValueError(
                f"{path} has no {SERVING_DEFAULT!r} signature (not written by "
                f"alphagan_tf.serving.tflite). Received signatures: {sorted(signatures)}"
            )
        self.runner = self.interpreter.get_signature_runner(SERVING_DEFAULT)
        z_details = self.runner.get_input_details()[INPUT_Z]
        self.latent_dim = int(z_details["shape_signature"][-1])
        out = self.runner.get_output_details()[OUTPUT_IMAGES_FLOAT]
        self.image_shape = tuple(int(d) for d in out["shape_signature"][1:])

    def __call__(self, z: np.ndarray) -> np.ndarray:
        z = guard.check_latents(z, self.latent_dim, self.max_batch)
        return guard.check_images(self.runner(**{INPUT_Z: z})[OUTPUT_IMAGES_FLOAT])
