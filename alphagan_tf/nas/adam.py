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
"""

from __future__ import annotations

import keras
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
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        # convert_to_tensor(dtype=): ops.cast of a Python float goes through float32.
        correction1 = 1 - ops.power(ops.convert_to_tensor(self.beta_1, dtype=dtype), step)
        correction2 = 1 - ops.power(ops.convert_to_tensor(self.beta_2, dtype=dtype), step)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        denominator = ops.add(ops.sqrt(ops.divide(v, correction2)), self.epsilon)
        self.assign_sub(variable, ops.divide(ops.multiply(m, lr / correction1), denominator))

    def moments(self, variable) -> tuple:
        """(first, second) moment variables of `variable` (PyTorch's exp_avg, exp_avg_sq)."""
        index = self._get_variable_index(variable)
        return self._momentums[index], self._velocities[index]
