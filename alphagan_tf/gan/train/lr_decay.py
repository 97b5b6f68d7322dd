"""Linear learning-rate decay of the retraining: the reference's `--lr_decay`, off by default.

The authors' `train_geno_gan.py` with `--lr_decay` (none of its published commands
passes it) decays both players' learning rates linearly from lr to lr / 100
(`functions.LinearLrDecay`). It counts D steps: the decay runs from
`start_d_step` (there 260 epochs of data, 260 x len(loader) D steps) to
`end_d_step` (max_iter x n_critic), and after each G step it sets

    lr = lr_0 - (lr_0 - lr_0 / 100) / (end - start) * (counter - start)

if start < counter < end, else leaves lr as it was (so past the end it keeps the
last value set, not lr_0 / 100). Its counter at a G step is the D steps done
before it, and its G step follows the D step it counts; with ours (n_critic D
steps, then the G step) the counter after i G iterations is i * n_critic, so the
learning rate of every step of iteration i + 1 is

    lr(i) = lr_0                                  if s(i) <= start
            lr_0 - delta * (s(i) - start)         else,
    s(i) = min(i, (end - 1) // n_critic) * n_critic,

the reference's value after the same D and G steps (tests/test_parity_train.py
runs both loops with the decay on). From its step 0 the reference's first G step
follows its first D step (README, "Where we differ"): its counter at its g-th G
step is (g - 1) x n_critic, so after g G steps its rate is ours after g - 1 (at
the paper's sizes one G iteration of decay is 5 x 1.98e-4 / 46,680 = 2.1e-8).

The rates are computed in float64, with the reference's operations in its order.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

FINAL_FRACTION = 0.01  # the reference decays to lr * 0.01


def linear_decay(
    initial_lr: float,
    g_iterations_done: tf.Variable,
    n_critic: int,
    start_d_step: int,
    end_d_step: int,
) -> Callable[[], tf.Tensor]:
    """The learning rate of the next step as a function of the G iterations done.

    Args:
        initial_lr: lr_0.
        g_iterations_done: int64 variable, the G iterations completed (read at every call).
        n_critic: D steps per G iteration.
        start_d_step: the D-step count where the decay starts (the rate stays lr_0 up to it).
        end_d_step: the D-step count where it would reach lr_0 / 100 (> start_d_step).

    Returns:
        A callable with no arguments (a Keras optimizer's `learning_rate`) returning the
        rate as a float64 scalar.
    """
    if not end_d_step > start_d_step:
        raise ValueError(
            "The learning-rate decay must end after it starts. Received: "
            f"start_d_step={start_d_step}, end_d_step={end_d_step}"
        )
    final_lr = initial_lr * FINAL_FRACTION
    delta = (initial_lr - final_lr) / (end_d_step - start_d_step)
    last_update = (end_d_step - 1) // n_critic  # the last iteration count whose counter < end

    def learning_rate() -> tf.Tensor:
        done = tf.minimum(tf.cast(g_iterations_done, tf.int64), last_update)
        offset = tf.cast(done * n_critic - start_d_step, tf.float64)
        decayed = tf.constant(initial_lr, tf.float64) - delta * offset
        return tf.where(offset > 0, decayed, tf.constant(initial_lr, tf.float64))

    return learning_rate
