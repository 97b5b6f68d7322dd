"""Masked building blocks shared by the TextNAS search network and fixed network.

Masks: `mask` is bool [batch, time], True on real tokens (ids != 0). Every
layer here returns zeros at padded positions, so a sequence padded to 16 or to
32 gives the same values on its real tokens (the tests check this).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from alphagan_tf.nas.candidate_sum import weighted_sum


def float_mask(mask, like) -> "keras.KerasTensor":
    """bool [B, T] -> float [B, T, 1] in the dtype of `like` (ones if mask is None)."""
    if mask is None:
        return ops.ones_like(like[..., :1])
    return ops.expand_dims(ops.cast(mask, like.dtype), -1)


#: Pooling over time of the classifier head.
POOLINGS = ("mean", "max", "mean_max")


def masked_pool(x, mask, pooling: str = "mean"):
    """Pools float [B, T, C] over the real tokens of bool mask [B, T] -> [B, C] (2C for mean_max).

    "max" ignores padding (padded positions never win; an all-padding row gives 0).
    """
    m = float_mask(mask, x)
    outputs = []
    if pooling in ("mean", "mean_max"):
        outputs.append(ops.sum(x * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0))
    if pooling in ("max", "mean_max"):
        peak = ops.max(x * m + (1.0 - m) * -1e9, axis=1)
        outputs.append(peak * ops.minimum(ops.sum(m, axis=1), 1.0))
    if not outputs:
        raise ValueError(f"pooling must be one of {POOLINGS}. Received: {pooling!r}")
    return outputs[0] if len(outputs) == 1 else ops.concatenate(outputs, axis=-1)


class ExplicitMask:
    """Mixin: the layer takes `mask=` explicitly and attaches no Keras mask.

    Masks travel as explicit arguments in this package; not attaching them to
    outputs keeps Keras from propagating them into layers that do not take one.
    """

    def compute_mask(self, inputs, mask=None):
        return None


def _replica_sum(x):
    """`x` summed over the replicas of a `tf.distribute` step (itself outside one, or with one)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return x
    return context.all_reduce(tf.distribute.ReduceOp.SUM, x)


@keras.saving.register_keras_serializable(package="alphagan_tf")
class MaskedBatchNorm(ExplicitMask, keras.layers.Layer):
    """Batch normalisation over [batch, time] whose statistics skip padding.

    Training: mean and variance are the moments of the real tokens only,
    and the moving averages are updated from them. Inference: moving averages.
    Under a multi-replica `tf.distribute` strategy the moments are those of the
    real tokens of every replica (all-reduced sums): synchronized, as one device
    would compute them on the global batch.
    Padded positions of the output are zero.

    Args:
        momentum: moving-average momentum.
        epsilon: added to the variance.
        center: learn a shift (beta).
        scale: learn a scale (gamma).

    Call args:
        inputs: float [B, T, C].
        mask: bool [B, T] or None (no padding).
        training: batch statistics when True.
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3,
                 center: bool = True, scale: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.supports_masking = True

    def build(self, input_shape):
        channels = input_shape[-1]
        self.gamma = (
            self.add_weight(name="gamma", shape=(channels,), initializer="ones")
            if self.scale else None
        )
        self.beta = (
            self.add_weight(name="beta", shape=(channels,), initializer="zeros")
            if self.center else None
        )
        self.moving_mean = self.add_weight(
            name="moving_mean", shape=(channels,), initializer="zeros", trainable=False
        )
        self.moving_variance = self.add_weight(
            name="moving_variance", shape=(channels,), initializer="ones", trainable=False
        )
        self.built = True

    def call(self, inputs, mask=None, training=None):
        m = float_mask(mask, inputs)
        if training:
            # Sums over every replica's tokens (as one device sees the global batch).
            count = ops.maximum(_replica_sum(ops.sum(m)), 1.0)
            mean = _replica_sum(ops.sum(inputs * m, axis=(0, 1))) / count
            variance = _replica_sum(ops.sum(ops.square((inputs - mean) * m), axis=(0, 1))) / count
            self.moving_mean.assign(
                self.moving_mean * self.momentum + mean * (1.0 - self.momentum)
            )
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
            )
        else:
            mean, variance = self.moving_mean, self.moving_variance
        out = (inputs - mean) * ops.rsqrt(variance + self.epsilon)
        if self.gamma is not None:
            out = out * self.gamma
        if self.beta is not None:
            out = out + self.beta
        return out * m

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale}


@keras.saving.register_keras_serializable(package="alphagan_tf")
class Stem(keras.layers.Layer):
    """(Word dropout), embedding, dropout, 1x1 conv to `units`, masked BN, ReLU.

    Args:
        vocab_size: number of token ids (id 0 = padding).
        embedding_dim: embedding width.
        units: the hidden width H of every layer.
        dropout: rate on the embeddings.
        word_dropout: in training, each real token is replaced by the unknown
            word (id 1) with this probability. A regulariser for embeddings
            learned from scratch (our addition, not in TextNAS); it also
            trains the unknown word's vector, which test words outside the
            training vocabulary map to.

    Call args:
        ids: int32 [B, T], 0 = padding.

    Returns:
        float32 [B, T, units], zero at padding.
    """

    def __init__(self, vocab_size: int, embedding_dim: int, units: int,
                 dropout: float = 0.0, word_dropout: float = 0.0, seed: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= word_dropout < 1.0:
            raise ValueError(f"word_dropout must be in [0, 1). Received: {word_dropout}")
        self.word_dropout = float(word_dropout)
        self.seed = seed
        # Only when used, so that models without word dropout keep their variables.
        self.word_seed = keras.random.SeedGenerator(seed) if self.word_dropout else None
        self.vocab_size = int(vocab_size)
        self.embedding_dim = int(embedding_dim)
        self.units = int(units)
        self.dropout_rate = float(dropout)
        self.embedding = keras.layers.Embedding(
            self.vocab_size, self.embedding_dim,
            embeddings_initializer=keras.initializers.RandomUniform(-0.1, 0.1),
            name="embedding",
        )
        self.dropout = keras.layers.Dropout(self.dropout_rate, name="dropout")
        self.projection = keras.layers.Dense(self.units, name="conv_1x1")
        self.norm = MaskedBatchNorm(name="bn")

    def build(self, input_shape):
        self.embedding.build(input_shape)
        self.projection.build((*input_shape, self.embedding_dim))
        self.norm.build((*input_shape, self.units))
        self.built = True

    def set_embeddings(self, matrix: np.ndarray) -> None:
        """Loads pretrained vectors (float [vocab_size, embedding_dim])."""
        expected = (self.vocab_size, self.embedding_dim)
        if tuple(matrix.shape) != expected:
            raise ValueError(f"embeddings must have shape {expected}. Received: {matrix.shape}")
        self.embedding.embeddings.assign(matrix)

    def call(self, ids, training=None):
        mask = ops.not_equal(ids, 0)
        if training and self.word_dropout:
            dropped = keras.random.uniform(ops.shape(ids), seed=self.word_seed) < self.word_dropout
            ids = ops.where(ops.logical_and(dropped, mask), ops.ones_like(ids), ids)
        x = self.embedding(ids)
        x = x * float_mask(mask, x)
        x = self.dropout(x, training=training)
        x = self.projection(x)
        x = self.norm(x, mask=mask, training=training)
        return ops.relu(x)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.units)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim, "units": self.units,
                "dropout": self.dropout_rate, "word_dropout": self.word_dropout, "seed": self.seed}


@keras.saving.register_keras_serializable(package="alphagan_tf")
class ClassifierHead(ExplicitMask, keras.layers.Layer):
    """Softmax-weighted sum of the layer outputs, masked pooling, dropout, linear.

    The combination weights (one logit per layer, zeros at init) are network
    weights, trained with the rest of the network (not architecture weights).

    Args:
        num_layers: how many layer outputs are combined.
        num_classes: output logits.
        dropout: rate before the linear classifier.
        pooling: over the real tokens: "mean" (TextNAS), "max" (the spec's
            optional max pooling) or "mean_max" (both, concatenated: the
            classifier sees 2 * H features).

    Call args:
        layer_outputs: list of `num_layers` float [B, T, H].
        mask: bool [B, T].

    Returns:
        logits float32 [B, num_classes].
    """

    def __init__(self, num_layers: int, num_classes: int, dropout: float = 0.0,
                 pooling: str = "mean", **kwargs):
        super().__init__(**kwargs)
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}. Received: {pooling!r}")
        self.pooling = pooling
        self.num_layers = int(num_layers)
        self.num_classes = int(num_classes)
        self.dropout_rate = float(dropout)
        self.supports_masking = True
        self.dropout = keras.layers.Dropout(self.dropout_rate, name="dropout")
        self.classifier = keras.layers.Dense(self.num_classes, name="classifier")

    def build(self, input_shape):
        units = input_shape[0][-1]
        self.layer_logits = self.add_weight(
            name="layer_logits", shape=(self.num_layers,), initializer="zeros"
        )
        features = 2 * units if self.pooling == "mean_max" else units
        self.classifier.build((None, features))
        self.built = True

    def combination_weights(self):
        """softmax over the layer logits: float32 [num_layers]."""
        return ops.softmax(ops.convert_to_tensor(self.layer_logits))

    def call(self, layer_outputs, mask=None, training=None):
        if len(layer_outputs) != self.num_layers:
            raise ValueError(
                f"ClassifierHead expects {self.num_layers} layer outputs. "
                f"Received: {len(layer_outputs)}"
            )
        combined = weighted_sum(self.combination_weights(), layer_outputs)
        pooled = masked_pool(combined, mask, self.pooling)
        pooled = self.dropout(pooled, training=training)
        return self.classifier(pooled)

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers,
                "num_classes": self.num_classes, "dropout": self.dropout_rate,
                "pooling": self.pooling}
