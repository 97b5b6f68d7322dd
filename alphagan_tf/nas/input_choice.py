"""Input choice: a softmax-weighted sum of candidate input tensors.

The continuous relaxation of "read exactly one of these tensors" (e.g. a
TextNAS layer picking one of the previous five layer outputs):

    output = sum_j softmax(alpha)_j * inputs_j

Derivation picks the candidate with the largest alpha
(`nas.architecture.argmax_choice`). This relaxation is our design for TextNAS
(the paper searches with ENAS); it is the mixed op's softmax applied to inputs
instead of operations.
"""

from __future__ import annotations

import keras
from keras import ops

from alphagan_tf.nas.candidate_sum import CandidateSum


@keras.saving.register_keras_serializable(package="alphagan_tf")
class InputChoice(CandidateSum):
    """Softmax-weighted sum of `num_candidates` same-shaped tensors (`CandidateSum`)."""

    logits_name = "alpha"

    @property
    def alpha(self):
        """The architecture weight: one logit per candidate."""
        return self.candidate_logits

    def candidate_weights(self):
        """softmax(alpha): float32 [num_candidates]."""
        return ops.softmax(ops.convert_to_tensor(self.alpha), axis=-1)

    choice_weights = candidate_weights
