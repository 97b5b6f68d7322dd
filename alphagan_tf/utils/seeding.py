"""Seeding a run: Python, NumPy, Keras and TensorFlow from one integer.

`keras.utils.set_random_seed` also clears TensorFlow's kernel cache, and with it
every instantiated `tf.function`: the next call of each compiled search step
optimises and instantiates its graph again (about 30 s for the steps of a small
supernet on 2 CPU cores, twice that under a two-replica strategy). A run calls
this once per process, where nothing is lost; tests and notebooks that run
several searches with one set of compiled steps would pay it on every run. So
when TensorFlow's global seed already is `seed`, its seed is left as it is
(the seeds of random ops created with an explicit op seed, as our data
pipelines do, are unchanged) and only Python's, NumPy's and Keras' generators
are reset.
"""

from __future__ import annotations

import random

import keras
import numpy as np
import tensorflow as tf


def tensorflow_global_seed():
    """TensorFlow's global seed; None when unset (or when its private API moved)."""
    try:
        # private TensorFlow / Keras modules: only where needed
        from tensorflow.python.eager import context

        return context.global_seed()
    except (ImportError, AttributeError):  # private API moved: always reseed
        return None


def seed_everything(seed: int) -> None:
    """As keras.utils.set_random_seed(seed), keeping compiled steps if TF's seed is `seed` already."""
    if tensorflow_global_seed() != seed:
        keras.utils.set_random_seed(seed)
        return
    seed_host(seed)


def seed_host(seed: int) -> None:
    """Python's, NumPy's and Keras' generators only (what builds weights); TF's seed untouched."""
    # private TensorFlow / Keras modules: only where needed
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator
    from keras.src.utils import rng_utils

    global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
