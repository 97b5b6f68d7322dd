r"""REST client of the exported generator (TF Serving's predict API) -> PNG grid.

    python export/clients/rest_request.py --url=http://127.0.0.1:8501/v1/models/alphagan:predict \
        --seed=0 --count=16 --out=grid.png

The same requests with curl (the JSON files are next to this script):

    curl -s -X POST -d @export/clients/generate_request.json \
        http://127.0.0.1:8501/v1/models/alphagan:predict
    # {"outputs": {"images": [[[[r, g, b], ...]]], "images_float": [...]}}
    curl -s -X POST -d @export/clients/z_request.json \
        http://127.0.0.1:8501/v1/models/alphagan:predict
    # {"predictions": [{"images": ..., "images_float": ...}, ...]}

Request bodies (TF Serving's two formats):

- columnar, for `generate` (scalar inputs):
  {"signature_name": "generate", "inputs": {"seed": 0, "count": 4}}
- row, for `serving_default` (one latent per instance):
  {"signature_name": "serving_default", "instances": [[z_1 ... z_128], ...]}

--signature=serving_default draws the latents here with numpy
(`default_rng(seed).standard_normal`): other numbers than the Philox latents of
`generate` for the same seed (use the gRPC client for identical latents).
Standard library, numpy and Pillow only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import urllib.error
import urllib.request

import numpy as np


def generate_body(seed: int, count: int) -> dict:
    """The columnar body of the `generate` signature."""
    return {"signature_name": "generate", "inputs": {"seed": int(seed), "count": int(count)}}


def z_body(z: np.ndarray) -> dict:
    """The row-format body of `serving_default`: one instance per latent."""
    return {"signature_name": "serving_default", "instances": np.asarray(z, np.float32).tolist()}


def post(url: str, body: dict, timeout: float = 30.0) -> dict:
    """POSTs the JSON body; returns the parsed reply.

    Raises:
        RuntimeError: the server answered with an error (its "error" message).
    """
    request = urllib.request.Request(
        url, data=json.dumps(body).encode("utf-8"), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return json.loads(reply.read())
    except urllib.error.HTTPError as e:
        message = e.read().decode("utf-8", "replace")
        try:
            message = json.loads(message).get("error", message)
        except json.JSONDecodeError:
            pass
        raise RuntimeError(f"HTTP {e.code} from {url}: {message}") from None


def images_from_reply(reply: dict, output: str = "images") -> np.ndarray:
    """The uint8 images [N, H, W, 3] of a columnar ("outputs") or row ("predictions") reply."""
    if "outputs" in reply:
        values = reply["outputs"]
        values = values[output] if isinstance(values, dict) else values
    elif "predictions" in reply:
        values = [p[output] if isinstance(p, dict) else p for p in reply["predictions"]]
    else:
        raise ValueError(f"Not a predict reply. Received keys: {sorted(reply)}")
    return np.asarray(values, dtype=np.uint8)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8501/v1/models/alphagan:predict")
    parser.add_argument("--signature", default="generate", choices=["generate", "serving_default"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--latent_dim", type=int, default=128, help="For serving_default.")
    parser.add_argument("--columns", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--out", default="grid.png")
    args = parser.parse_args(argv)
    if args.signature == "generate":
        body = generate_body(args.seed, args.count)
    else:
        rng = np.random.default_rng(args.seed)
        body = z_body(rng.standard_normal((args.count, args.latent_dim), dtype=np.float32))
    images = images_from_reply(post(args.url, body, args.timeout))
    from PIL import Image

    Image.fromarray(tile(images, args.columns)).save(args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
