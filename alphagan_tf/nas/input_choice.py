"""Input choice: a softmax-weighted sum of candidate input tensors.

The continuous relaxation of "read exactly one of these tensors" (e.g. a
TextNAS layer picking one of the previous five layer outputs):

    output = sum_j softmax(beta)_j * inputs_j

`beta` (one logit per candidate) is the layer's only architecture weight.
Derivation picks the candidate with the largest beta
(`nas.architecture.argmax_choice`). This relaxation is our design for TextNAS
(the paper searches with ENAS); it is the mixed op's softmax applied to inputs
instead of operations.
"""

from __future__ import annotations

import keras
from keras import ops

from alphagan_tf.nas.architecture import ArchitectureLayer
from alphagan_tf.nas.mixed_op import alpha_initializer


@keras.saving.register_keras_serializable(package="alphagan_tf")
class InputChoice(ArchitectureLayer):
    """Softmax-weighted sum of `num_candidates` same-shaped tensors.

    Args:
        num_candidates: how many tensors the call receives (>= 1).
        alpha_stddev: standard deviation of the logit initialisation.

    Call args:
        inputs: list of `num_candidates` tensors of one shape.

    Returns:
        a tensor of that shape.
    """

    def __init__(self, num_candidates: int, alpha_stddev: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        if num_candidates < 1:
            raise ValueError(f"num_candidates must be >= 1. Received: {num_candidates}")
        self.num_candidates = int(num_candidates)
        self.alpha_stddev = float(alpha_stddev)
        self.supports_masking = True

    def build(self, input_shape):
        self.alpha = self.add_weight(
            name="alpha",
            shape=(self.num_candidates,),
            initializer=alpha_initializer(self.alpha_stddev),
            trainable=True,
        )
        self.built = True

    @property
    def arch_variables(self) -> list:
        return [self.alpha]

    def choice_weights(self):
        """softmax(alpha): float32 [num_candidates]."""
        return ops.softmax(ops.convert_to_tensor(self.alpha), axis=-1)

    def call(self, inputs):
        if len(inputs) != self.num_candidates:
            raise ValueError(
                f"InputChoice expects {self.num_candidates} inputs. Received: {len(inputs)}"
            )
        weights = self.choice_weights()
        output = None
        for j, x in enumerate(inputs):
            term = weights[j] * x
            output = term if output is None else output + term
        return output

    def compute_mask(self, inputs, mask=None):
        return None  # masks travel as explicit arguments

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "num_candidates": self.num_candidates,
                "alpha_stddev": self.alpha_stddev}
