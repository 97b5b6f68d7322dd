"""Depthwise conv gradients: TensorFlow's kernels against `gan/space/depthwise.py`'s, per precision.

    python bench/depthwise.py [--precision=float32,bfloat16] [--sizes=32,16,8]
        [--kernel_sizes=3,5,7] [--batch=16] [--channels=256] [--repeats=10]

For every precision, feature-map size and kernel size it prints milliseconds per
call (median of --repeats, each op its own tf.function) of:
- the kernel gradient: TF's DepthwiseConv2dNativeBackpropFilter, ours per example
  (the batch known when traced, the product's case) and ours with the batch
  merged into the channels (the batch unknown when traced);
- the input gradient: TF's DepthwiseConv2dNativeBackpropInput and the forward
  conv with the flipped kernel (what `depthwise_conv2d_same` runs);
- the forward conv, for scale;
and the largest difference of each of ours from TF's result (relative to its
largest entry). Speeds only compare side by side in one run.
"""

from __future__ import annotations

import argparse
import statistics
import time


def _median_ms(fn, *args, repeats: int) -> float:
    fn(*args)  # trace
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args).numpy()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--precision", default="float32,bfloat16")
    parser.add_argument("--sizes", default="32,16,8", help="feature-map sides.")
    parser.add_argument("--kernel_sizes", default="3,5,7")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    for precision in precisions:
        if precision not in ("float32", "bfloat16", "float16"):
            parser.error(f"--precision: must be float32, bfloat16 or float16. Received: {precision!r}")

    import tensorflow as tf

    from alphagan_tf.gan.space.depthwise import depthwise_kernel_gradient

    strides = [1, 1, 1, 1]
    header = (f"{'precision':<9} {'HxW':>5} {'k':>2} | kernel grad: {'TF':>6} {'ours':>6} "
              f"{'merged':>6} (diff) | input grad: {'TF':>6} {'flip':>6} (diff) | forward")
    print(f"batch {args.batch}, {args.channels} channels, ms per call (median of {args.repeats})")
    print(header)
    for precision in precisions:
        dtype = tf.as_dtype(precision)
        for side in (int(s) for s in args.sizes.split(",")):
            shape = [args.batch, side, side, args.channels]
            x = tf.cast(tf.random.normal(shape, seed=1), dtype)
            dy = tf.cast(tf.random.normal(shape, seed=2), dtype)
            for k in (int(s) for s in args.kernel_sizes.split(",")):
                kernel = tf.cast(tf.random.normal([k, k, args.channels, 1], seed=3), dtype)
                tf_kernel_grad = tf.function(lambda a, b, k=k: tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
                    input=a, filter_sizes=[k, k, args.channels, 1], out_backprop=b,
                    strides=strides, padding="SAME"))
                ours = tf.function(lambda a, b, k=k: depthwise_kernel_gradient(a, b, k))
                unknown_batch = tf.TensorSpec([None, *shape[1:]], dtype)  # -> the merged path
                merged = tf.function(lambda a, b, k=k: depthwise_kernel_gradient(a, b, k),
                                     input_signature=[unknown_batch, unknown_batch])
                tf_input_grad = tf.function(lambda b, w=kernel: tf.nn.depthwise_conv2d_backprop_input(
                    shape, w, b, strides, "SAME"))
                flipped = tf.function(lambda b, w=kernel: tf.nn.depthwise_conv2d(
                    b, tf.reverse(w, [0, 1]), strides, "SAME"))
                forward = tf.function(lambda a, w=kernel: tf.nn.depthwise_conv2d(a, w, strides, "SAME"))

                def diff(mine, theirs):
                    mine, theirs = tf.cast(mine, tf.float32), tf.cast(theirs, tf.float32)
                    return float(tf.reduce_max(tf.abs(mine - theirs)) / tf.reduce_max(tf.abs(theirs)))

                reference = tf_kernel_grad(x, dy)
                kernel_diff = max(diff(ours(x, dy), reference), diff(merged(x, dy), reference))
                input_diff = diff(flipped(dy), tf_input_grad(dy))
                ms = [_median_ms(f, x, dy, repeats=args.repeats) for f in (tf_kernel_grad, ours, merged)]
                ms += [_median_ms(f, dy, repeats=args.repeats) for f in (tf_input_grad, flipped)]
                ms += [_median_ms(forward, x, repeats=args.repeats)]
                print(f"{precision:<9} {side:>2}x{side:<2} {k:>2} | {'':>12} {ms[0]:6.1f} {ms[1]:6.1f} "
                      f"{ms[2]:6.1f} ({kernel_diff:.0e}) | {'':>11} {ms[3]:6.1f} {ms[4]:6.1f} "
                      f"({input_diff:.0e}) | {ms[5]:6.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
