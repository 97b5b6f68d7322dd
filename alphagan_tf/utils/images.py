"""Image grids: the picture people look at instead of reading losses."""

from __future__ import annotations

import math

import numpy as np

from alphagan_tf.utils import files


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float images in [-1, 1] -> uint8 in [0, 255] (rounded, clipped)."""
    images = np.asarray(images, dtype=np.float32)
    return np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """Tile images into one picture.

    Args:
        images: uint8 [N, H, W, C] or float [N, H, W, C] in [-1, 1].
        columns: images per row; default ceil(sqrt(N)).
        padding: pixels of black between tiles.

    Returns:
        uint8 [rows * (H + p) + p, columns * (W + p) + p, C].
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C]. Received: shape={images.shape}")
    if images.dtype != np.uint8:
        images = to_uint8(images)
    n, h, w, c = images.shape
    columns = columns or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / columns)
    grid = np.zeros(
        (rows * (h + padding) + padding, columns * (w + padding) + padding, c), np.uint8
    )
    for i in range(n):
        r, col = divmod(i, columns)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = images[i]
    return grid


def save_png(image: np.ndarray, path: str, scale: int = 1) -> str:
    """Write a uint8 [H, W, C] picture as PNG atomically (tmp file + rename)."""
    # here: image grids are saved without TensorFlow
    import tensorflow as tf

    image = np.asarray(image, np.uint8)
    if scale > 1:
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    return files.write_bytes_atomic(path, tf.io.encode_png(image).numpy())


def save_grid(images: np.ndarray, path: str, columns: int | None = None) -> str:
    """Tile images and write them as a PNG; small images are upscaled for viewing."""
    grid = make_grid(images, columns)
    scale = max(1, 256 // max(1, images.shape[1] * 4))
    return save_png(grid, path, scale=min(scale, 4))
