"""TF-GAN's own metric functions, loaded on TensorFlow >= 2.16.

Why this module exists: tensorflow-gan 2.1.0 (the last release) cannot be
imported on TF >= 2.16. `import tensorflow_gan` runs the package __init__,
which imports the whole library, including `tensorflow_gan/python/train.py`
whose `RunTrainOpsHook(tf.estimator.SessionRunHook)` fails with
"AttributeError: module 'tensorflow' has no attribute 'estimator'" (tf.estimator
was removed in TF 2.16). The metric maths does not need any of that: the files
`tensorflow_gan/python/eval/classifier_metrics.py` and `eval_utils.py` import
only tensorflow, numpy and tensorflow_probability.

What it does: it finds the installed package without importing it, puts
temporary stub parent packages (`tensorflow_gan`, `.python`, `.python.eval`)
in `sys.modules`, executes those two files from the installed package by path
(importlib), and removes the stubs again, so nothing named `tensorflow_gan` is
left behind and a later real import behaves as before. TF-GAN's code is used
unmodified.

Under TF2 eager (checked with TF 2.21 and tensorflow-probability 0.25) the
three `*_from_activations` / `*_from_logits` functions run as they are (no
tf.compat.v1 graph or session is needed); the wrappers here feed float64
tensors and return Python floats. They are the reference that
tests/test_metrics.py checks `alphagan_tf.metrics.{fid,inception_score,kid}`
against.

Importing this module raises ImportError (ModuleNotFoundError when the package
is absent) if tensorflow-gan or tensorflow-probability is not installed:
`pip install tensorflow-gan==2.1.0 tensorflow-probability` (both are in the
project's `[test]` extra).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

import numpy as np

_PACKAGE = "tensorflow_gan"
_STUBS = ("tensorflow_gan", "tensorflow_gan.python", "tensorflow_gan.python.eval")
# Where the loaded files live in sys.modules; private names, never "tensorflow_gan...".
_PRIVATE_PREFIX = "alphagan_tf.metrics._tfgan_eval."


def _load_classifier_metrics() -> types.ModuleType:
    spec = importlib.util.find_spec(_PACKAGE)  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "tensorflow-gan is not installed; it is only needed as the reference "
            "for the metric tests: pip install tensorflow-gan==2.1.0",
            name=_PACKAGE,
        )
    root = list(spec.submodule_search_locations)[0]
    eval_dir = os.path.join(root, "python", "eval")
    import tensorflow  # noqa: F401  (fail here, clearly, if TF itself is missing)

    saved = {name: sys.modules.get(name) for name in _STUBS}
    try:
        for name in _STUBS:
            stub = types.ModuleType(name)
            stub.__path__ = [os.path.join(root, *name.split(".")[1:])]
            sys.modules[name] = stub
        eval_utils = _exec_file(os.path.join(eval_dir, "eval_utils.py"), "eval_utils")
        # classifier_metrics.py does `from tensorflow_gan.python.eval import eval_utils`.
        sys.modules["tensorflow_gan.python.eval"].eval_utils = eval_utils
        sys.modules["tensorflow_gan.python.eval.eval_utils"] = eval_utils
        module = _exec_file(os.path.join(eval_dir, "classifier_metrics.py"), "classifier_metrics")
    except ImportError:
        raise
    except Exception as error:  # an incompatible future TF / TF-GAN
        raise ImportError(
            f"Could not load TF-GAN's metric functions from {eval_dir}: {error!r}"
        ) from error
    finally:
        sys.modules.pop("tensorflow_gan.python.eval.eval_utils", None)
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    return module


def _exec_file(path: str, short_name: str) -> types.ModuleType:
    name = _PRIVATE_PREFIX + short_name
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"Cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


classifier_metrics = _load_classifier_metrics()
"""TF-GAN 2.1.0's `tensorflow_gan/python/eval/classifier_metrics.py`, unmodified."""


def _tensor(values):
    import tensorflow as tf

    return tf.constant(np.asarray(values, dtype=np.float64))


def classifier_score_from_logits(logits: np.ndarray) -> float:
    """TF-GAN's Inception Score of one split: exp(E[KL(p(y|x) || p(y))]).

    Args:
        logits: [N, C] logits.
    """
    return float(classifier_metrics.classifier_score_from_logits(_tensor(logits)))


def frechet_classifier_distance_from_activations(
    activations1: np.ndarray, activations2: np.ndarray
) -> float:
    """TF-GAN's FID between [N1, D] and [N2, D] activations."""
    return float(
        classifier_metrics.frechet_classifier_distance_from_activations(
            _tensor(activations1), _tensor(activations2)
        )
    )


def kernel_classifier_distance_and_std_from_activations(
    activations1: np.ndarray, activations2: np.ndarray, max_block_size: int = 1024
) -> tuple[float, float]:
    """TF-GAN's KID block estimator: (mean, standard error)."""
    mean, std = classifier_metrics.kernel_classifier_distance_and_std_from_activations(
        _tensor(activations1), _tensor(activations2), max_block_size=max_block_size
    )
    return float(mean), float(std)
