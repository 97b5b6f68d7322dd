"""SavedModel export of a fixed generator, in TF Serving's versioned layout.

    export/<model_name>/            the base path TF Serving is given (models.config)
        1/  2/  ...                 one SavedModel per version; TF Serving serves the highest
            saved_model.pb  variables/
            assets.extra/tf_serving_warmup_requests   PredictionLog records (warmup.py)
            assets.extra/export_info.json             what was exported, from where

`export_saved_model` writes version N = (highest existing) + 1 atomically: the SavedModel is
built in a hidden folder inside the base (``.tmp-<N>-<pid>``: TF Serving only looks at
numeric names) and renamed to ``<N>`` once complete. A failure removes the temporary folder,
so no half-written version appears and earlier versions are never touched.

The SavedModel is written with `keras.export.ExportArchive` (one endpoint per signature,
`write_out`): a `tf.Module` holding a Keras 3 model writes a SavedModel that the TF1 session
loader (`tf.compat.v1.saved_model.loader.load`, what TF Serving and `saved_model_cli run`
use) cannot restore ("Could not find variable ..."). The model is not `track`ed: the
archive saves the variables its endpoints use, and tracking the model as well would store
every weight a second time (measured: variables file 2.0x the weights, 1.01x without). Signatures are
described in `signatures.py`; only the fixed generator's variables (its EMA weights when
it comes from `load_trained_generator`) are in the graph: no alpha, no discriminator.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Mapping, Sequence

import keras
import tensorflow as tf

from alphagan_tf.serving import signatures as sig
from alphagan_tf.serving import warmup
from alphagan_tf.serving.generator_guard import DEFAULT_MAX_BATCH, check_max_batch
from alphagan_tf.utils import files

EXPORT_INFO_FILENAME = "export_info.json"
_RENAME_ATTEMPTS = 5


def existing_versions(base_dir: str) -> list[int]:
    """Numeric version folders of a model base folder, ascending ([] if there is none)."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(
        int(name)
        for name in os.listdir(base_dir)
        if name.isdigit() and os.path.isdir(os.path.join(base_dir, name))
    )


def next_version(base_dir: str) -> int:
    """1 + the highest existing version (1 for a new base folder)."""
    versions = existing_versions(base_dir)
    return versions[-1] + 1 if versions else 1


def resolve_saved_model_dir(path: str) -> str:
    """A SavedModel folder, or a base folder -> its highest version.

    Raises:
        FileNotFoundError: `path` holds neither saved_model.pb nor a numeric version.
    """
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    for version in reversed(existing_versions(path)):
        candidate = os.path.join(path, str(version))
        if os.path.exists(os.path.join(candidate, "saved_model.pb")):
            return candidate
    raise FileNotFoundError(
        "Expected a SavedModel folder (with saved_model.pb) or a model base folder with "
        f"numeric versions. Received: {path!r}"
    )


def _check_fixed_generator(generator: keras.Model) -> None:
    arch = getattr(generator, "arch_variables", None)
    if arch:
        raise TypeError(
            "Only the fixed generator is exported: build it with Generator.from_genotype "
            "(or load it with load_trained_generator); this model holds architecture weights. "
            f"Received: {type(generator).__name__} with {len(arch)} architecture variables"
        )
    if not hasattr(generator, "latent_dim"):
        raise TypeError(
            "The generator must have a `latent_dim` attribute (alphagan_tf Generator). "
            f"Received: {type(generator).__name__}"
        )


def write_saved_model(
    generator: keras.Model, path: str, max_batch: int = DEFAULT_MAX_BATCH
) -> str:
    """Writes the two signatures of `generator` as a SavedModel at `path` (not versioned).

    Args:
        generator: a built fixed `Generator`.
        path: a folder that must not exist yet or be empty.
        max_batch: the largest batch the signatures accept.

    Returns:
        `path`.
    """
    _check_fixed_generator(generator)
    if os.path.exists(path) and os.listdir(path):
        raise FileExistsError(f"The SavedModel folder must be new or empty. Received: {path!r}")
    archive = keras.export.ExportArchive()
    # No archive.track(generator): the endpoints' variables are tracked by write_out, and
    # tracking the model too would save every weight twice (as Keras and as tf variables).
    functions = sig.make_serving_functions(generator, max_batch=max_batch)
    # serving_default first: TF Serving's default signature.
    for name in (sig.SERVING_DEFAULT, sig.GENERATE):
        archive.add_endpoint(name=name, fn=functions[name])
    archive.write_out(path, verbose=False)
    return path


def export_info(generator: keras.Model, max_batch: int, extra: Mapping[str, Any] | None) -> dict:
    """The JSON written next to the warmup records: what the version holds."""
    genotype = getattr(generator, "genotype", None)
    side = int(generator.compute_output_shape((None, generator.latent_dim))[1])
    return {
        "signatures": {
            sig.SERVING_DEFAULT: {
                "inputs": {sig.INPUT_Z: f"float32 [batch, {generator.latent_dim}]"},
                "outputs": {
                    sig.OUTPUT_IMAGES: f"uint8 [batch, {side}, {side}, 3]",
                    sig.OUTPUT_IMAGES_FLOAT: f"float32 [batch, {side}, {side}, 3] in [-1, 1]",
                },
            },
            sig.GENERATE: {
                "inputs": {sig.INPUT_SEED: "int64 []", sig.INPUT_COUNT: "int32 []"},
                "outputs": "as serving_default, for z = latents_for_seed(seed, count)",
                "rng": "tf.random.stateless_normal, alg=philox, seed=[seed, 0]",
            },
        },
        "max_batch": int(max_batch),
        "latent_dim": int(generator.latent_dim),
        "image_size": side,
        "gf": getattr(generator, "gf", None),
        "compute_dtype": str(getattr(generator, "compute_dtype", "float32")),
        "bottom_width": getattr(generator, "bottom_width", None),
        "genotype": genotype.to_dict() if genotype is not None else None,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        **dict(extra or {}),
    }


def export_saved_model(
    generator: keras.Model,
    base_dir: str,
    model_name: str | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    warmup_batch_sizes: Sequence[int] = warmup.DEFAULT_WARMUP_BATCH_SIZES,
    extra_info: Mapping[str, Any] | None = None,
) -> str:
    """Writes a new numbered version of the model under `base_dir`, atomically.

    Args:
        generator: a built fixed `Generator` (EMA weights for a trained one).
        base_dir: the model's base folder, e.g. "export/alphagan" (created if missing).
        model_name: the name in the warmup requests (default: the base folder's name,
            as in export/models.config).
        max_batch: the largest batch (rows of z, count) the signatures accept.
        warmup_batch_sizes: batch sizes of the warmup requests (each <= max_batch).
        extra_info: more entries for assets.extra/export_info.json (e.g. the checkpoint).

    Returns:
        The new version folder `<base_dir>/<N>`.
    """
    _check_fixed_generator(generator)
    max_batch = check_max_batch(max_batch)  # before anything is written
    if not warmup_batch_sizes or max(warmup_batch_sizes) > max_batch or min(warmup_batch_sizes) < 1:
        raise ValueError(
            f"warmup_batch_sizes must be in [1, max_batch={max_batch}] (TF Serving refuses a "
            f"version whose warmup fails). Received: {list(warmup_batch_sizes)}"
        )
    base_dir = os.path.abspath(base_dir)
    model_name = model_name or os.path.basename(base_dir.rstrip(os.sep))
    os.makedirs(base_dir, exist_ok=True)
    version = next_version(base_dir)
    tmp_dir = os.path.join(base_dir, f".tmp-{version}-{os.getpid()}")
    try:
        write_saved_model(generator, tmp_dir, max_batch=max_batch)
        warmup.write_warmup_requests(tmp_dir, model_name, generator.latent_dim, warmup_batch_sizes)
        info = export_info(generator, max_batch, extra_info)
        info["model_name"] = model_name
        files.write_json_atomic(os.path.join(tmp_dir, warmup.WARMUP_DIR, EXPORT_INFO_FILENAME), info)
        for _ in range(_RENAME_ATTEMPTS):
            target = os.path.join(base_dir, str(version))
            try:
                os.rename(tmp_dir, target)  # fails if another export took this number
                return target
            except OSError:
                if not os.path.exists(target):
                    raise
                version = next_version(base_dir)
        raise FileExistsError(
            f"Could not claim a new version number under {base_dir} after "
            f"{_RENAME_ATTEMPTS} attempts (concurrent exports?)."
        )
    finally:
        if os.path.exists(tmp_dir):
            shutil.rmtree(tmp_dir, ignore_errors=True)


def read_export_info(saved_model_dir: str) -> dict | None:
    """assets.extra/export_info.json of a version folder (None if absent)."""
    return files.read_json(os.path.join(saved_model_dir, warmup.WARMUP_DIR, EXPORT_INFO_FILENAME))
