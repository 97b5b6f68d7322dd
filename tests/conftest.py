"""Shared test fixtures.

Real data for tests lives outside the project in ../shared/data (not committed);
tests that use it skip cleanly when it is absent.
"""

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# tools/ (outside the package: the TF Serving stand-in the serving tests talk to).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

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


@pytest.fixture(scope="module", autouse=True)
def _tensorflow_seed():
    """Each test module starts with TensorFlow's global seed 0, set before its fixtures.

    Set once per module, not per test: setting it clears TF's kernel cache, and with it
    every instantiated tf.function, so each test of a module sharing one traced supernet
    paid ~30 s to instantiate its steps again (the product's random ops take explicit
    seeds; `utils/seeding.py`). A module whose runs use another seed reseeds as the
    product does, once.
    """
    import tensorflow as tf

    from alphagan_tf.utils import seeding

    if seeding.tensorflow_global_seed() != 0:
        tf.random.set_seed(0)
    yield


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from seed 0 for Python, NumPy and Keras (weight initialisers)."""
    from alphagan_tf.utils import seeding

    seeding.seed_host(0)
    yield
