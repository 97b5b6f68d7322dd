"""TF Serving warmup records: `assets.extra/tf_serving_warmup_requests`.

TF Serving replays these requests when it loads a version, before the version serves,
so the first real request does not pay for graph optimisation and memory allocation. The
file is a TFRecord of `PredictionLog` protos, each holding a `PredictRequest` for the
``serving_default`` signature with a batch of latents (one record per batch size).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from alphagan_tf.serving.signatures import INPUT_Z, SERVING_DEFAULT

WARMUP_FILENAME = "tf_serving_warmup_requests"
WARMUP_DIR = "assets.extra"
DEFAULT_WARMUP_BATCH_SIZES = (1, 16)


def warmup_requests(
    model_name: str,
    latent_dim: int,
    batch_sizes: Sequence[int] = DEFAULT_WARMUP_BATCH_SIZES,
    seed: int = 0,
) -> list:
    """`PredictionLog` protos of ``serving_default`` requests, one per batch size.

    Args:
        model_name: the name TF Serving serves the model under (the request's model_spec).
        latent_dim: z's size.
        batch_sizes: rows of z of each request.
        seed: numpy seed of the latents (their values do not matter for warmup).
    """
    # tensorflow-serving-api: an optional dependency (the [serving] extra)
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    rng = np.random.default_rng(seed)
    logs = []
    for batch in batch_sizes:
        if batch < 1:
            raise ValueError(f"warmup batch sizes must be >= 1. Received: {list(batch_sizes)}")
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = SERVING_DEFAULT
        z = rng.standard_normal((batch, latent_dim)).astype(np.float32)
        request.inputs[INPUT_Z].CopyFrom(tf.make_tensor_proto(z))
        logs.append(
            prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
        )
    return logs


def write_warmup_requests(
    saved_model_dir: str,
    model_name: str,
    latent_dim: int,
    batch_sizes: Sequence[int] = DEFAULT_WARMUP_BATCH_SIZES,
) -> str:
    """Writes `<saved_model_dir>/assets.extra/tf_serving_warmup_requests`; returns its path."""
    # here: the CLI reads this module's constants without TensorFlow
    import tensorflow as tf

    path = os.path.join(saved_model_dir, WARMUP_DIR, WARMUP_FILENAME)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for log in warmup_requests(model_name, latent_dim, batch_sizes):
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(saved_model_dir: str) -> list:
    """The `PredictionLog` protos of a SavedModel's warmup file (for checks and tests)."""
    # tensorflow-serving-api: an optional dependency (the [serving] extra)
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(saved_model_dir, WARMUP_DIR, WARMUP_FILENAME)
    logs = []
    for record in tf.data.TFRecordDataset(path):
        logs.append(prediction_log_pb2.PredictionLog.FromString(record.numpy()))
    return logs
