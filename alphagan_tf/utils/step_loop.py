"""Several steps of a schedule in one compiled call: a tf.while_loop, per-step values out once.

Calling a compiled step from Python once per step costs a host round trip per step (and
one per value read back). A loop function runs `count` steps in one call and returns each
step's values as vectors:

    def steps(batches, count):                       # a tf.function, autograph off
        def step(i):
            return {"d_loss": d_step(batches.get_next()), "g_loss": g_step()}
        return repeat(count, step, ("d_loss", "g_loss"), tf.float32)   # {name: [count]}

`count` is a tensor, so calls of different lengths share one trace. The steps may be
XLA-compiled tf.functions; the loop itself is not (the iterator's get_next cannot be).
"""

from __future__ import annotations

from typing import Callable, Iterator, Mapping, Sequence

import tensorflow as tf


def repeat(count: tf.Tensor, step_fn: Callable[[tf.Tensor], Mapping[str, tf.Tensor]],
           names: Sequence[str], dtype: tf.DType) -> dict[str, tf.Tensor]:
    """Runs step_fn(i) for i in 0..count-1 in a tf.while_loop.

    Args:
        count: int32 scalar, the number of steps.
        step_fn: one step; returns {name: scalar} for every name of `names`.
        names: the values to collect.
        dtype: their dtype in the result.

    Returns:
        {name: [count] tensor of the steps' values, in order}.
    """
    names = tuple(names)

    def body(i, *arrays):
        values = step_fn(i)
        return (i + 1, *(a.write(i, tf.cast(values[n], dtype)) for a, n in zip(arrays, names)))

    arrays = [tf.TensorArray(dtype, size=count) for _ in names]
    _, *arrays = tf.while_loop(lambda i, *_: i < count, body, [tf.constant(0), *arrays])
    return {n: a.stack() for n, a in zip(names, arrays)}


def tf_iterator(batches: Iterator):
    """A tf.data iterator (what the loops call get_next on): itself, or any other iterator of
    batches (a Python generator in tests) wrapped as one."""
    if hasattr(batches, "get_next"):
        return batches
    first = tf.convert_to_tensor(next(batches))

    def generate():
        yield first
        yield from batches

    spec = tf.TensorSpec.from_tensor(first)
    return iter(tf.data.Dataset.from_generator(generate, output_signature=spec))


def chunks(total: int, size: int) -> list[int]:
    """Call lengths covering `total` steps, at most `size` each: chunks(7, 3) == [3, 3, 1]."""
    return [min(size, total - start) for start in range(0, total, size)]
