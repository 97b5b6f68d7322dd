"""Make layers held in Python lists reachable by `tf.train.Checkpoint`.

Keras 3 on the TensorFlow backend tracks sublayers stored in a list attribute
for its own purposes (weights, `get_weights`, `.keras` files), but wraps the
list in a Keras `TrackedList`, which TensorFlow's object graph does not follow:
`tf.train.Checkpoint(model=...)` then silently leaves out every weight of those
sublayers (and `restore(...).expect_partial()` hides it). Storing each layer
also under an attribute of its own makes it a checkpoint dependency.
"""

from __future__ import annotations

from typing import Sequence

import keras


def track_layers(
    owner: keras.layers.Layer, prefix: str, layers: Sequence[keras.layers.Layer]
) -> list:
    """Sets every layer as `owner.<prefix>_<i>` and returns them as a list.

    Call it in `owner.__init__` and store the returned list as usual:
    ``self.candidates = track_layers(self, "candidate", candidates)``.
    Keras tracks each layer once (by identity), so weights are not duplicated.
    """
    layers = list(layers)
    for i, layer in enumerate(layers):
        setattr(owner, f"{prefix}_{i}", layer)
    return layers
