"""Shared test fixtures.

Real data for tests lives outside the project in ../shared/data (not committed);
tests that use it skip cleanly when it is absent.
"""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def cifar10_sample_path() -> pathlib.Path:
    path = SHARED_DATA / "cifar10_sample.npz"
    if not path.exists():
        pytest.skip(f"shared CIFAR-10 sample not found at {path}")
    return path


@pytest.fixture(scope="session")
def sst_dir() -> pathlib.Path:
    path = SHARED_DATA / "sst"
    if not (path / "train.txt").exists():
        pytest.skip(f"shared SST treebank not found at {path}")
    return path


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from seed 0 for Python, NumPy and Keras (weight initialisers).

    TensorFlow's global seed is set once per process: setting it again clears TF's
    kernel cache, and with it every instantiated tf.function, so each test of a module
    sharing one traced supernet paid ~30 s to instantiate its steps again (the
    product's code gives its random ops explicit seeds: `utils/seeding.py`).
    """
    import tensorflow as tf

    from alphagan_tf.utils import seeding

    if seeding.tensorflow_global_seed() is None:
        tf.random.set_seed(0)
    seeding.seed_host(0)
    yield
