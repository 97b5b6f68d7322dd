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
    import keras

    keras.utils.set_random_seed(0)
    yield
