r"""gRPC client of the exported generator (TF Serving's PredictionService) -> PNG grid.

    python export/clients/grpc_client.py --target=127.0.0.1:8500 --model=alphagan \
        --seed=0 --count=16 --out=grid.png
    python export/clients/grpc_client.py --signature=serving_default --latent_dim=128 \
        --seed=0 --count=16 --out=grid.png

--signature=generate (default) sends the scalars seed (int64) and count (int32) and the
server draws the latents; --signature=serving_default draws them here and sends z float32
[count, latent_dim]. Both use stateless Philox with key [seed, 0] (as
`alphagan_tf.serving.signatures.latents_for_seed`), so for one seed both signatures, and
`python -m alphagan_tf.sample --seed`, give the same images.

Standalone on purpose (copy it to a client machine): needs tensorflow-serving-api, grpcio,
numpy and tensorflow (for the tensor protos and PNG encoding), not alphagan_tf.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np


def latents(seed: int, count: int, latent_dim: int) -> np.ndarray:
    """float32 [count, latent_dim]: the latents the server's `generate` uses for `seed`."""
    import tensorflow as tf

    return tf.random.stateless_normal(
        [count, latent_dim],
        seed=tf.constant([seed, 0], tf.int64),
        dtype=tf.float32,
        alg="philox",
    ).numpy()


def predict(
    target: str,
    model_name: str = "alphagan",
    signature: str = "generate",
    seed: int = 0,
    count: int = 16,
    latent_dim: int | None = None,
    outputs: tuple[str, ...] = ("images",),
    timeout: float = 30.0,
) -> dict[str, np.ndarray]:
    """One Predict call; returns the requested outputs as numpy arrays.

    Args:
        target: "host:port" of the gRPC endpoint.
        model_name: the served model's name (models.config).
        signature: "generate" (seed, count) or "serving_default" (z, drawn here).
        seed, count: which and how many images.
        latent_dim: z's size, needed for serving_default.
        outputs: output aliases to return ("images" uint8, "images_float" float32).
        timeout: seconds before the call fails with DEADLINE_EXCEEDED.

    Raises:
        grpc.RpcError: the server's status, e.g. INVALID_ARGUMENT with the model's message.
    """
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    if signature == "generate":
        request.inputs["seed"].CopyFrom(tf.make_tensor_proto(seed, dtype=tf.int64))
        request.inputs["count"].CopyFrom(tf.make_tensor_proto(count, dtype=tf.int32))
    elif signature == "serving_default":
        if not latent_dim:
            raise ValueError("serving_default needs latent_dim (the model's z size).")
        request.inputs["z"].CopyFrom(tf.make_tensor_proto(latents(seed, count, latent_dim)))
    else:
        raise ValueError(
            f"signature must be 'generate' or 'serving_default'. Received: {signature!r}"
        )
    request.output_filter.extend(outputs)
    options = [("grpc.max_receive_message_length", 64 << 20)]
    with grpc.insecure_channel(target, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=timeout)
    return {alias: tf.make_ndarray(response.outputs[alias]) for alias in outputs}


def tile(images: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """uint8 [N, H, W, C] -> one uint8 picture, `columns` per row (default: square)."""
    n, h, w, c = images.shape
    columns = columns or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / columns)
    grid = np.zeros((rows * (h + padding) + padding, columns * (w + padding) + padding, c), np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = image
    return grid


def write_png(picture: np.ndarray, path: str) -> str:
    import tensorflow as tf

    tf.io.write_file(path, tf.io.encode_png(picture))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="127.0.0.1:8500", help="gRPC host:port.")
    parser.add_argument("--model", default="alphagan", help="Served model name.")
    parser.add_argument("--signature", default="generate", choices=["generate", "serving_default"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--latent_dim", type=int, default=128, help="For serving_default.")
    parser.add_argument("--columns", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--out", default="grid.png")
    args = parser.parse_args(argv)
    images = predict(
        args.target, args.model, args.signature, args.seed, args.count, args.latent_dim,
        timeout=args.timeout,
    )["images"]
    print(write_png(tile(images, args.columns), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
