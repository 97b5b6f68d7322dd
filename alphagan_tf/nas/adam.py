"""Adam as PyTorch computes it (`torch.optim.Adam`), the optimizer of the AlphaGAN papers.

Keras' Adam and PyTorch's differ in where epsilon goes. With bias corrections
c1 = 1 - beta1^t and c2 = 1 - beta2^t, PyTorch steps

    w <- w - lr / c1 * m / (sqrt(v / c2) + eps)                       (eps 1e-8)

and Keras steps w <- w - lr * sqrt(c2) / c1 * m / (sqrt(v) + eps) (eps 1e-7),
i.e. its epsilon is eps / sqrt(c2) in PyTorch's terms: 3.2 times larger on the
first step at beta2 = 0.9, and 10 times larger by default. The moments are the
same. This optimizer is Keras' Adam with PyTorch's epsilon placement and
default (1e-8), so that one step of ours equals one step of the authors' code
(a parity test compares it with `torch.optim.Adam`). Everything else (state,
checkpoints, loss scaling wrappers, tf.distribute) is Keras' Adam.

The update is TensorFlow's fused `ResourceApplyAdam` kernel, one op per variable
(Keras' update is ~35 graph nodes per variable: 7000 of the 20000 nodes of a
supernet generator step, and TensorFlow optimises every node again whenever it
instantiates the step). The fused kernel places epsilon as Keras does, so it is
given PyTorch's in its terms: eps * sqrt(c2), which is the same update exactly
(lr * sqrt(c2) / c1 * m / (sqrt(v) + eps * sqrt(c2)) = lr / c1 * m / (sqrt(v / c2) + eps)).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="alphagan_tf")
class PyTorchAdam(keras.optimizers.Adam):
    """keras.optimizers.Adam with `torch.optim.Adam`'s update (epsilon after bias correction).

    Args: as keras.optimizers.Adam (no amsgrad); `epsilon` defaults to PyTorch's 1e-8.
    """

    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8, **kwargs):
        if kwargs.get("amsgrad"):
            raise ValueError("PyTorchAdam does not implement amsgrad. Received: amsgrad=True")
        super().__init__(
            learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **kwargs
        )

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        # convert_to_tensor(dtype=): ops.cast of a Python float goes through float32.
        beta_1 = ops.convert_to_tensor(self.beta_1, dtype=dtype)
        beta_2 = ops.convert_to_tensor(self.beta_2, dtype=dtype)
        beta_2_power = ops.power(beta_2, step)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(m), v=_handle(v),
            beta1_power=ops.power(beta_1, step), beta2_power=beta_2_power,
            lr=ops.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            # PyTorch's epsilon (after the bias correction) in the kernel's terms.
            epsilon=ops.convert_to_tensor(self.epsilon, dtype=dtype) * ops.sqrt(1 - beta_2_power),
            grad=ops.cast(gradient, dtype),
        )

    def moments(self, variable) -> tuple:
        """(first, second) moment variables of `variable` (PyTorch's exp_avg, exp_avg_sq)."""
        index = self._get_variable_index(variable)
        return self._momentums[index], self._velocities[index]


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable (the local copy under tf.distribute)."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle
