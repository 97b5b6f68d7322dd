"""Seeded random draws of the sampling searches (random-WS, ENAS), as pure functions.

Every draw of a sampling search is a pure function of (seed, stream, index):
the stream says what the draw is for (a training step, a derivation sample,
...) and the index counts draws of that stream. A resumed search that knows its
step counters therefore draws exactly what an uninterrupted one draws, with no
random-generator state to checkpoint.

    stream_seed(seed, stream, index)  -> int64 [2], a stateless seed
    seed_state(stream_seed)           -> one int, e.g. for random.Random
    uniform_choices(stream_seed, sizes) -> int32 [len(sizes)]: one index per
                                         decision, uniform over its `sizes[i]` options

Pure numpy, no TensorFlow.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def stream_seed(seed: int, stream: int, index: int) -> np.ndarray:
    """The stateless seed (int64 [2]) of draw `index` of `stream`."""
    return np.array([seed, stream * (1 << 40) + index], np.int64)


def seed_state(seed: np.ndarray) -> int:
    """One well-mixed integer from a stateless seed (`np.random.SeedSequence`)."""
    return int(np.random.SeedSequence([int(s) for s in seed]).generate_state(1)[0])


def uniform_choices(seed: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """One index per decision, each uniform over its options, independent.

    Args:
        seed: a stateless seed (`stream_seed`).
        sizes: the number of options of each decision (every entry >= 1).

    Returns:
        int32 [len(sizes)]: entry i in [0, sizes[i]).
    """
    sizes = np.asarray(sizes, np.int64)
    if sizes.ndim != 1 or (sizes < 1).any():
        raise ValueError(f"sizes must be a list of counts >= 1. Received: {sizes.tolist()}")
    rng = np.random.default_rng(seed_state(seed))
    return rng.integers(0, sizes).astype(np.int32)
