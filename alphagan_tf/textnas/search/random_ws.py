"""Random search with weight sharing, ENAS's control: architectures uniform over the space.

Every op, input and skip subset is equally likely (`architecture.random_architecture`) and the
sampler never learns; the shared loop and the derivation: sampling.py.
"""

from __future__ import annotations

import numpy as np

from alphagan_tf.nas.sampling import seed_state
from alphagan_tf.textnas.search.config import SearchResult
from alphagan_tf.textnas.search.sampling import Sampler, run_sampling_search
from alphagan_tf.textnas.space.architecture import random_architecture
from alphagan_tf.textnas.space.encoding import EncodedArchitecture, encode


class UniformSampler(Sampler):
    """Architectures uniform over the space of `num_layers` layers."""

    name = "uniform"

    def __init__(self, num_layers: int):
        self.num_layers = num_layers

    def __call__(self, seed: np.ndarray) -> EncodedArchitecture:
        return encode(random_architecture(self.num_layers, seed_state(seed)))


def run_random_ws_search(config, workdir: str, verbose: bool = True) -> SearchResult:
    """Runs (or resumes) a random-WS search of `config` (a `config.SearchConfig`) in `workdir`."""
    return run_sampling_search(config, workdir, lambda c: UniformSampler(c.num_layers), verbose)
