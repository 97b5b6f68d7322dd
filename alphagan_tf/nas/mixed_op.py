"""The mixed operation: a softmax-weighted sum of candidate operations.

This is the continuous relaxation at the heart of DARTS-style search, shared by
the AlphaGAN generator space and the TextNAS space:

    output = sum_i softmax(alpha)_i * op_i(x)

`alpha` (one logit per candidate) is created in `build()` and is the only
architecture weight of the layer.

Sampled path (weight-sharing searches, e.g. random-WS): `call(x, choice=k)`
with an integer scalar tensor k runs candidate k only (`keras.ops.switch`: the
others are not executed, get zero gradients and keep their batch statistics);
alpha is not used. One traced step then serves every choice. Candidates are ordinary Keras layers; the
mixed op serializes them with Keras' own machinery, so any registered layer can
be a candidate.

A candidate whose class sets `accepts_output_scale = True` takes its weight as
`call(..., output_scale=w_i)` and returns w_i * op_i(x) itself, where it can do
so with less work than a multiplication of its output (folded into a kernel or a
batch norm, or applied to a smaller input); the sum is the same.
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

from alphagan_tf.nas.architecture import ArchitectureLayer
from alphagan_tf.nas.tracking import track_layers


def alpha_initializer(stddev: float = 1e-3) -> keras.initializers.Initializer:
    """The paper's alpha init: 1e-3 * N(0, 1)."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=stddev)


@keras.saving.register_keras_serializable(package="alphagan_tf")
class MixedOp(ArchitectureLayer):
    """Softmax-weighted sum of candidate layers, weighted by a trainable alpha.

    Args:
        candidates: the candidate layers, in the order of `op_names`.
        op_names: a name per candidate; names link alphas to genotypes.
        alpha_stddev: standard deviation of the alpha initialisation.

    Call args:
        inputs: any tensor every candidate accepts; all candidates must return
            tensors of one shape.
        training: passed to every candidate.
        mask: passed to candidates that accept a mask (TextNAS).
        choice: None (the softmax-weighted sum) or an int32 scalar tensor: run
            only that candidate (the sampled path, see the module docstring).
    """

    def __init__(
        self,
        candidates: Sequence[keras.layers.Layer],
        op_names: Sequence[str],
        alpha_stddev: float = 1e-3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if len(candidates) != len(op_names):
            raise ValueError(
                "MixedOp needs one name per candidate. "
                f"Received: {len(candidates)} candidates, op_names={list(op_names)}"
            )
        if not candidates:
            raise ValueError("MixedOp needs at least one candidate. Received: []")
        # Each candidate is also an attribute, so tf.train.Checkpoint saves it.
        self.candidates = track_layers(self, "candidate", candidates)
        self.op_names = list(op_names)
        self.alpha_stddev = float(alpha_stddev)

    def build(self, input_shape):
        self.alpha = self.add_weight(
            name="alpha",
            shape=(len(self.candidates),),
            initializer=alpha_initializer(self.alpha_stddev),
            trainable=True,
            autocast=False,  # softmax(alpha) stays float32 under mixed precision
        )
        for candidate in self.candidates:
            if not candidate.built:
                candidate.build(input_shape)
        self.built = True

    @property
    def arch_variables(self) -> list:
        return [self.alpha]

    def op_weights(self):
        """softmax(alpha): float32 [num_candidates]."""
        return ops.softmax(ops.convert_to_tensor(self.alpha), axis=-1)

    def _run_candidate(self, i, inputs, training, mask):
        candidate = self.candidates[i]
        if mask is not None and getattr(candidate, "supports_masking", False):
            return candidate(inputs, training=training, mask=mask)
        return candidate(inputs, training=training)

    def call(self, inputs, training=None, mask=None, choice=None):
        if choice is not None:
            return ops.switch(choice, [
                lambda x, i=i: self._run_candidate(i, x, training, mask)
                for i in range(len(self.candidates))
            ], inputs)
        weights = self.op_weights()
        output = None
        for i in range(len(self.candidates)):
            term = self._weighted_candidate(i, inputs, weights[i], training, mask)
            output = term if output is None else output + term
        return output

    def _weighted_candidate(self, i, inputs, weight, training, mask=None, **call_kwargs):
        """weight * candidate i(inputs): by the candidate itself if it `accepts_output_scale`."""
        candidate = self.candidates[i]
        if getattr(candidate, "accepts_output_scale", False) and mask is None:
            return candidate(inputs, training=training, output_scale=weight, **call_kwargs)
        branch = self._run_candidate(i, inputs, training, mask)
        return ops.cast(weight, branch.dtype) * branch

    def compute_output_shape(self, input_shape):
        return self.candidates[0].compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "candidates": [keras.saving.serialize_keras_object(c) for c in self.candidates],
            "op_names": list(self.op_names),
            "alpha_stddev": self.alpha_stddev,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["candidates"] = [
            keras.saving.deserialize_keras_object(c) for c in config["candidates"]
        ]
        return cls(**config)
