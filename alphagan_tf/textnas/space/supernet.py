"""The TextNAS search network: every choice relaxed, every candidate computed.

Relaxation (our design; TextNAS itself searches with ENAS, see the spec):
- operation: `nas.MixedOp` over the 8 candidates, softmax(alpha_op);
- input: `nas.InputChoice` over the previous <= 5 outputs (stem included),
  softmax(alpha_input); layer 0 has a single candidate (the stem) and no alpha;
- skip connections: `nas.SigmoidGates` over layers 0 .. i-1, each kept with
  weight sigmoid(g_j); layer 0 has none.

Layer i output = MaskedBN( MixedOp(InputChoice(candidates)) + SigmoidGates(skips) ).
Derivation: argmax op, argmax input, skips whose gate > 0.5.

Sampled path (ENAS-style weight sharing, `call(ids, architecture=...)`): the same
weights run as ONE discrete architecture given as tensors (`encoding.py`):
layer i reads its chosen input, runs only its chosen candidate
(`tf.switch_case`: the other seven are not executed, their weights get zero
gradients and their batch statistics are not updated), adds its chosen skips
and applies its batch normalisation. The alphas are not used on this path.

`arch_variables` order: for layer 0 .. L-1: [op alpha, input alpha (layers >= 1),
skip gate logits (layers >= 1)].
"""

from __future__ import annotations

import functools
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from alphagan_tf.nas.architecture import (
    ArchitectureLayer,
    softmax,
    weight_variables_excluding,
)
from alphagan_tf.nas.gates import SigmoidGates
from alphagan_tf.nas.input_choice import InputChoice
from alphagan_tf.nas.mixed_op import MixedOp
from alphagan_tf.nas.tracking import track_layers
from alphagan_tf.textnas.space.architecture import (
    OPS,
    TextArchitecture,
    derive_architecture,
    input_candidates,
    skip_candidates,
)
from alphagan_tf.textnas.space.layers import ClassifierHead, ExplicitMask, MaskedBatchNorm, Stem
from alphagan_tf.textnas.space.model import NetworkConfig
from alphagan_tf.textnas.space.operations import make_op


@keras.saving.register_keras_serializable(package="alphagan_tf")
class MaskedMixedOp(ExplicitMask, MixedOp):
    """`nas.MixedOp` that declares it takes `mask=` (which it passes to its candidates).

    Without `supports_masking`, Keras warns on every call that an explicit mask
    "will be destroyed"; the mixing itself is unchanged.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.supports_masking = True


@keras.saving.register_keras_serializable(package="alphagan_tf")
class SearchLayer(ExplicitMask, ArchitectureLayer):
    """Layer `layer_index` of the search network.

    Args:
        layer_index: position i (decides how many inputs and skips it sees).
        units: width H.
        alpha_stddev: initialisation of every architecture logit.

    Call args:
        inputs: list of the candidate inputs (`input_candidates(i)`, oldest first),
            each float [B, T, H].
        skips: list of the outputs of layers 0 .. i-1.
        mask: bool [B, T].
        choice: None (the relaxed layer) or one discrete choice as tensors
            (op index int32 [], input position int32 [] into `inputs`,
            skip indicators [i] (0/1)): only that path is computed.
    """

    def __init__(self, layer_index: int, units: int, alpha_stddev: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.layer_index = int(layer_index)
        self.units = int(units)
        self.alpha_stddev = float(alpha_stddev)
        self.num_inputs = len(input_candidates(self.layer_index))
        self.num_skips = len(skip_candidates(self.layer_index))
        self.supports_masking = True
        self.mixed_op = MaskedMixedOp([make_op(name, self.units) for name in OPS], OPS,
                                alpha_stddev=alpha_stddev, name="mixed_op")
        self.input_choice = (
            InputChoice(self.num_inputs, alpha_stddev, name="input_choice")
            if self.num_inputs > 1 else None
        )
        self.skip_gates = (
            SigmoidGates(self.num_skips, alpha_stddev, name="skip_gates")
            if self.num_skips else None
        )
        self.norm = MaskedBatchNorm(name="bn")

    def build(self, input_shape):
        shape = input_shape[0]
        if self.input_choice is not None:
            self.input_choice.build([shape] * self.num_inputs)
        self.mixed_op.build(shape)
        if self.skip_gates is not None:
            self.skip_gates.build([shape] * self.num_skips)
        self.norm.build(shape)
        self.built = True

    @property
    def arch_variables(self) -> list:
        out = list(self.mixed_op.arch_variables)
        if self.input_choice is not None:
            out += self.input_choice.arch_variables
        if self.skip_gates is not None:
            out += self.skip_gates.arch_variables
        return out

    def call(self, inputs, skips=(), mask=None, training=None, choice=None):
        if choice is not None:
            return self._sampled_call(inputs, skips, mask, training, *choice)
        x = inputs[0] if self.input_choice is None else self.input_choice(list(inputs))
        y = self.mixed_op(x, training=training, mask=mask)
        if self.skip_gates is not None:
            y = y + self.skip_gates(list(skips))
        return self.norm(y, mask=mask, training=training)

    def _run_candidate(self, index: int, x, mask, training):
        return self.mixed_op.candidates[index](x, training=training, mask=mask)

    def _sampled_call(self, inputs, skips, mask, training, op_index, input_position, skip_row):
        x = inputs[0] if len(inputs) == 1 else tf.gather(tf.stack(list(inputs)), input_position)
        y = tf.switch_case(op_index, [
            functools.partial(self._run_candidate, k, x, mask, training)
            for k in range(len(OPS))
        ])
        if self.num_skips:
            weights = tf.cast(skip_row, y.dtype)
            y = tf.add_n([y] + [weights[j] * skips[j] for j in range(self.num_skips)])
        return self.norm(y, mask=mask, training=training)

    def probabilities(self) -> dict[str, Any]:
        """softmax / sigmoid values of this layer's architecture weights (numpy)."""
        out = {"op": dict(zip(OPS, softmax(ops.convert_to_numpy(self.mixed_op.alpha)).tolist()))}
        candidates = input_candidates(self.layer_index)
        if self.input_choice is not None:
            p = softmax(ops.convert_to_numpy(self.input_choice.alpha)).tolist()
            out["input"] = {str(c): v for c, v in zip(candidates, p)}
        else:
            out["input"] = {str(candidates[0]): 1.0}
        if self.skip_gates is not None:
            g = 1.0 / (1.0 + np.exp(-ops.convert_to_numpy(self.skip_gates.logits)))
            out["skips"] = {str(j): float(v) for j, v in enumerate(g)}
        else:
            out["skips"] = {}
        return out

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "layer_index": self.layer_index, "units": self.units,
                "alpha_stddev": self.alpha_stddev}


@keras.saving.register_keras_serializable(package="alphagan_tf")
class TextNASSupernet(keras.Model):
    """The continuous TextNAS space with L layers.

    Args:
        network: sizes (vocab, classes, width, embedding, dropouts).
        num_layers: L.
        alpha_stddev: initialisation of every architecture logit.

    Call args:
        ids: int32 [B, T], 0 = padding.
        architecture: None (the relaxed network: every candidate, weighted by
            the alphas) or one architecture as tensors `(ops int32 [L],
            inputs int32 [L], skips int [L, L])` (`encoding.py`): the sampled
            path, one candidate per layer.

    Returns:
        logits float32 [B, num_classes].
    """

    def __init__(self, network: NetworkConfig | dict, num_layers: int = 24,
                 alpha_stddev: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        if isinstance(network, dict):
            network = NetworkConfig.from_dict(network)
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1. Received: {num_layers}")
        self.network = network
        self.num_layers = int(num_layers)
        self.alpha_stddev = float(alpha_stddev)
        self.stem = Stem(network.vocab_size, network.embedding_dim, network.units,
                         dropout=network.embedding_dropout, word_dropout=network.word_dropout,
                         name="stem")
        self.search_layers = track_layers(self, "search_layer", [
            SearchLayer(i, network.units, alpha_stddev, name=f"layer_{i}")
            for i in range(self.num_layers)
        ])
        self.head = ClassifierHead(self.num_layers, network.num_classes,
                                   dropout=network.output_dropout, pooling=network.pooling,
                                   name="head")

    @classmethod
    def create(cls, network: NetworkConfig, num_layers: int = 24,
               alpha_stddev: float = 1e-3, **kwargs) -> "TextNASSupernet":
        """Builds and initialises the network (all weights exist on return)."""
        model = cls(network, num_layers, alpha_stddev, **kwargs)
        model(ops.ones((1, 2), dtype="int32"), training=False)
        return model

    def call(self, ids, training=None, architecture=None):
        mask = ops.not_equal(ids, 0)
        outputs = [self.stem(ids, training=training)]  # outputs[j + 1] = layer j
        for i, layer in enumerate(self.search_layers):
            candidates = input_candidates(i)
            inputs = [outputs[j + 1] for j in candidates]
            choice = None
            if architecture is not None:
                op_indices, sources, skips = architecture
                choice = (op_indices[i], sources[i] - candidates[0], skips[i, :i])
            outputs.append(layer(inputs, skips=outputs[1:], mask=mask, training=training,
                                 choice=choice))
        return self.head(outputs[1:], mask=mask, training=training)

    @property
    def arch_variables(self) -> list:
        """Per layer 0 .. L-1: op alpha, input alpha (i >= 1), skip gate logits (i >= 1)."""
        return [v for layer in self.search_layers for v in layer.arch_variables]

    @property
    def weight_variables(self) -> list:
        """Every trainable variable that is not an architecture weight."""
        return weight_variables_excluding(self.trainable_variables, self.arch_variables)

    def architecture(self, max_skips: int = 0) -> TextArchitecture:
        """The derived (discrete) architecture (at most `max_skips` skips a layer; 0 = no cap).

        `derive_architecture` of `probabilities()`: the one derivation, shared with
        `textnas.derive` (which re-derives a finished search from its JSON).
        """
        return derive_architecture(self.probabilities(), max_skips)

    def mean_skip_gate(self):
        """The mean of every skip gate sigmoid(g) of the network: float32 scalar in (0, 1).

        0 when the network has no skip candidates (one layer).
        """
        gates = [layer.skip_gates.gate_values() for layer in self.search_layers
                 if layer.skip_gates is not None]
        if not gates:
            return ops.convert_to_tensor(0.0)
        return ops.mean(ops.concatenate(gates, axis=0))

    def probabilities(self) -> list[dict[str, Any]]:
        """Per layer: op softmax, input softmax, skip gates (for reports)."""
        return [layer.probabilities() for layer in self.search_layers]

    def get_config(self):
        return {**super().get_config(), "network": self.network.to_dict(),
                "num_layers": self.num_layers, "alpha_stddev": self.alpha_stddev}
