"""A TextNAS architecture as three fixed-shape integer arrays (what a compiled step takes).

A `TextArchitecture` is a tuple of Python objects; a compiled (`tf.function`)
step needs tensors of one shape for every architecture of L layers, so that it
is traced once:

    ops:    int32 [L]     index into `architecture.OPS`
    inputs: int32 [L]     the output layer i reads, -1 = the stem (as in the JSON)
    skips:  int32 [L, L]  skips[i, j] = 1 when layer j's output is added into
                          layer i (only j < i; the rest of the matrix is 0)

Pure numpy (no TensorFlow); `decode` validates through `TextArchitecture`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from alphagan_tf.textnas.space.architecture import OPS, LayerChoice, TextArchitecture


@dataclasses.dataclass(frozen=True)
class EncodedArchitecture:
    """The three arrays of one architecture (see the module docstring)."""

    ops: np.ndarray
    inputs: np.ndarray
    skips: np.ndarray

    @property
    def num_layers(self) -> int:
        return int(self.ops.shape[0])

    def as_tuple(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.ops, self.inputs, self.skips


def encode(architecture: TextArchitecture) -> EncodedArchitecture:
    """The arrays of `architecture`."""
    num_layers = architecture.num_layers
    skips = np.zeros((num_layers, num_layers), np.int32)
    for i, layer in enumerate(architecture.layers):
        skips[i, list(layer.skips)] = 1
    return EncodedArchitecture(
        ops=np.array([OPS.index(op) for op in architecture.ops], np.int32),
        inputs=np.array([layer.input for layer in architecture.layers], np.int32),
        skips=skips,
    )


def decode(ops, inputs, skips) -> TextArchitecture:
    """The `TextArchitecture` of the three arrays (ValueError naming what is wrong).

    Args:
        ops: int [L], each in [0, len(OPS)).
        inputs: int [L], layer i's in [max(-1, i - 5), i - 1].
        skips: 0/1 [L, L], non-zero only below the diagonal.
    """
    ops = np.asarray(ops)
    inputs = np.asarray(inputs)
    skips = np.asarray(skips)
    num_layers = ops.shape[0] if ops.ndim == 1 else -1
    if ops.ndim != 1 or inputs.shape != ops.shape or skips.shape != (num_layers, num_layers):
        raise ValueError(
            "an encoded architecture needs ops [L], inputs [L] and skips [L, L]. Received: "
            f"shapes {ops.shape}, {inputs.shape}, {skips.shape}"
        )
    if np.any((ops < 0) | (ops >= len(OPS))):
        raise ValueError(f"ops must be indices in [0, {len(OPS) - 1}]. Received: {ops.tolist()}")
    if np.any(np.triu(skips) != 0):
        raise ValueError("skips must be zero on and above the diagonal (a layer adds only "
                         f"earlier layers). Received: rows {np.flatnonzero(np.triu(skips).any(1)).tolist()}")
    return TextArchitecture(layers=tuple(
        LayerChoice(op=OPS[int(ops[i])], input=int(inputs[i]),
                    skips=tuple(int(j) for j in np.flatnonzero(skips[i])))
        for i in range(num_layers)
    ))
