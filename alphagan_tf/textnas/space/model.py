"""The fixed TextNAS network built from a derived architecture (no alphas).

    ids -> Stem -> layer 0 .. layer L-1 -> ClassifierHead -> logits

Layer i reads the output chosen by `architecture.layers[i].input` (-1 = stem),
applies its operation, adds the outputs of its skip sources and applies masked
batch normalisation (always, with or without skips: the supernet does the same,
so the two agree on what a layer is).
"""

from __future__ import annotations

import dataclasses

import keras
from keras import ops

from alphagan_tf.nas.tracking import track_layers
from alphagan_tf.textnas.space.architecture import TextArchitecture
from alphagan_tf.textnas.space.layers import (
    POOLINGS,
    ClassifierHead,
    ExplicitMask,
    MaskedBatchNorm,
    Stem,
)
from alphagan_tf.textnas.space.operations import make_op
from alphagan_tf.utils.typed_config import (
    TypedConfig,
    require,
    require_fraction,
    require_positive,
)


def check_network_fields(config) -> None:
    """The network fields of a NetworkConfig, search or train config (ConfigError naming the field).

    Every config that sets them checks them when built, before a run writes anything.
    """
    require_positive(config, "units", "embedding_dim")
    require_fraction(config, "embedding_dropout", "output_dropout", "word_dropout", closed=False)
    require(config.pooling in POOLINGS, "pooling", config.pooling, f"must be one of {POOLINGS}")


@dataclasses.dataclass(frozen=True)
class NetworkConfig(TypedConfig):
    """Sizes shared by the search network and the fixed network.

    Attributes:
        vocab_size: token ids (0 = padding, 1 = unknown).
        num_classes: 2 (SST-2) or 5 (SST-5).
        units: hidden width H of every layer.
        embedding_dim: embedding width.
        embedding_dropout: dropout rate on the embeddings.
        output_dropout: dropout rate before the classifier.
        pooling: the head's pooling over tokens, one of `layers.POOLINGS`.
        word_dropout: share of real tokens replaced by the unknown word in training.
    """

    vocab_size: int
    num_classes: int
    units: int = 128
    embedding_dim: int = 128
    embedding_dropout: float = 0.5
    output_dropout: float = 0.5
    pooling: str = "mean"
    word_dropout: float = 0.0

    def __post_init__(self):
        require(isinstance(self.vocab_size, int) and self.vocab_size >= 2, "vocab_size",
                self.vocab_size, "must be an integer >= 2 (padding and unknown ids)")
        require(isinstance(self.num_classes, int) and self.num_classes >= 2, "num_classes",
                self.num_classes, "must be an integer >= 2")
        check_network_fields(self)


@keras.saving.register_keras_serializable(package="alphagan_tf")
class FixedLayer(ExplicitMask, keras.layers.Layer):
    """One layer of the fixed network: op(input) + sum(skips), then masked BN.

    Args:
        op_name: one of `architecture.OPS`.
        units: width H.
        num_skips: how many skip tensors the call receives.
    """

    def __init__(self, op_name: str, units: int, num_skips: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.op_name = op_name
        self.units = int(units)
        self.num_skips = int(num_skips)
        self.supports_masking = True
        self.op = make_op(op_name, self.units)
        self.norm = MaskedBatchNorm(name="bn")

    def build(self, input_shape):
        self.op.build(input_shape)
        self.norm.build(input_shape)
        self.built = True

    def call(self, inputs, skips=(), mask=None, training=None):
        if len(skips) != self.num_skips:
            raise ValueError(f"FixedLayer expects {self.num_skips} skips. Received: {len(skips)}")
        y = self.op(inputs, mask=mask, training=training)
        for s in skips:
            y = y + s
        return self.norm(y, mask=mask, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "op_name": self.op_name, "units": self.units,
                "num_skips": self.num_skips}


@keras.saving.register_keras_serializable(package="alphagan_tf")
class TextClassifier(keras.Model):
    """The fixed network of a `TextArchitecture`.

    Call args:
        ids: int32 [B, T] token ids, 0 = padding (any T >= 1).
        training: dropout and batch statistics when True.

    Returns:
        logits float32 [B, num_classes].
    """

    def __init__(self, architecture: TextArchitecture | dict, network: NetworkConfig | dict,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(architecture, dict):
            architecture = TextArchitecture.from_dict(architecture)
        if isinstance(network, dict):
            network = NetworkConfig.from_dict(network)
        self.architecture = architecture
        self.network = network
        self.stem = Stem(network.vocab_size, network.embedding_dim, network.units,
                         dropout=network.embedding_dropout, word_dropout=network.word_dropout,
                         name="stem")
        self.text_layers = track_layers(self, "text_layer", [
            FixedLayer(layer.op, network.units, len(layer.skips), name=f"layer_{i}")
            for i, layer in enumerate(architecture.layers)
        ])
        self.head = ClassifierHead(architecture.num_layers, network.num_classes,
                                   dropout=network.output_dropout, pooling=network.pooling,
                                   name="head")

    @classmethod
    def from_architecture(cls, architecture: TextArchitecture, network: NetworkConfig,
                          **kwargs) -> "TextClassifier":
        """Builds and initialises the network (all weights exist on return)."""
        model = cls(architecture, network, **kwargs)
        model(ops.ones((1, 2), dtype="int32"), training=False)
        return model

    def call(self, ids, training=None):
        mask = ops.not_equal(ids, 0)
        outputs = [self.stem(ids, training=training)]  # outputs[j + 1] = layer j
        for layer, choice in zip(self.text_layers, self.architecture.layers):
            x = outputs[choice.input + 1]
            skips = [outputs[s + 1] for s in choice.skips]
            outputs.append(layer(x, skips=skips, mask=mask, training=training))
        return self.head(outputs[1:], mask=mask, training=training)

    def get_config(self):
        return {**super().get_config(), "architecture": self.architecture.to_dict(),
                "network": self.network.to_dict()}
