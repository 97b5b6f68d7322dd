"""Time of one AlphaGAN search iteration at the paper's widths, and what it costs.

One iteration = 1 D step + 1 G step (inner level), the worst-case copy with
1 D_worst + 1 G_worst step, and 1 alpha step (outer level): the work of one
search step of the reference implementation. Prints seconds per iteration
(median of --iterations after warm-up), the FLOPs of each compiled step (TF's
registered op statistics on the traced graphs: convolutions, their gradients,
matmuls), the achieved GFLOP/s, peak resident memory, and the tracing time.

    python bench/search_step.py                        # gf 256, df 128, batch 16, 32x32
    python bench/search_step.py --no-fuse_convs        # every candidate conv on its own
    python bench/search_step.py --jit_compile          # XLA
    python bench/search_step.py --no-fast_depthwise_gradient  # TF's own depthwise kernel gradient
    python bench/search_step.py --gf=64 --iterations=5 # smaller

Never part of the test run; nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time


def graph_flops(concrete_function) -> int:
    """FLOPs of one run of a traced step, from TF's registered op statistics."""
    import tensorflow as tf

    graph = concrete_function.graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(graph, options=options)
    total = profile.total_float_ops
    # Functions called inside the step (e.g. by the optimizer) hold the rest.
    for function in graph._functions.values():  # noqa: SLF001 - read only
        inner = tf.compat.v1.profiler.profile(function.graph, options=options)
        total += inner.total_float_ops
    return int(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gf", type=int, default=256)
    parser.add_argument("--df", type=int, default=128)
    parser.add_argument("--latent_dim", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--bottom_width", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--fuse_convs", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--jit_compile", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--mixed_precision", action=argparse.BooleanOptionalAction, default=False)
    parser.add_argument("--fast_depthwise_gradient", action=argparse.BooleanOptionalAction,
                        default=True, help="gan/depthwise.py's kernel gradient for k >= 5")
    args = parser.parse_args()

    import tensorflow as tf

    from alphagan_tf.gan import depthwise

    if not args.fast_depthwise_gradient:  # A/B switch of this benchmark only
        depthwise.FAST_KERNEL_GRADIENT_MIN_SIZE = 1 << 30

    from alphagan_tf.gan.search_loop import SearchRunConfig, build_searcher
    from alphagan_tf.gan.generator_config import GeneratorConfig
    from alphagan_tf.gan.searcher import SearchConfig

    config = SearchRunConfig(
        search=SearchConfig(
            inner_steps=1, worst_steps=1, outer_steps=1, n_critic=1,
            batch_size=args.batch_size, jit_compile=args.jit_compile,
        ),
        model=GeneratorConfig(gf=args.gf, df=args.df, latent_dim=args.latent_dim,
                              bottom_width=args.bottom_width),
        fuse_convs=args.fuse_convs,
        mixed_precision=args.mixed_precision,
    )
    size = config.image_size
    print(
        f"search iteration: gf {args.gf}, df {args.df}, batch {args.batch_size}, {size}x{size}, "
        f"fuse_convs={args.fuse_convs}, jit_compile={args.jit_compile}, "
        f"mixed_precision={args.mixed_precision}, "
        f"fast_depthwise_gradient={args.fast_depthwise_gradient}, "
        f"threads intra {tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()}"
    )
    started = time.perf_counter()
    searcher = build_searcher(config)
    built = time.perf_counter() - started
    real = tf.random.uniform([args.batch_size, size, size, 3], -1.0, 1.0)

    def iteration():
        searcher.d_step(real)
        searcher.g_step()
        searcher.make_worst_players()
        searcher.worst_d_step(real)
        searcher.worst_g_step()
        return searcher.arch_step(real, worst_value)["duality_gap"].numpy()

    # DG's second term, V(G_worst, D), is measured once per epoch (not in every alpha
    # step): timed on its own below, not part of the iteration.
    worst_value = searcher.worst_value_step(real)

    started = time.perf_counter()
    iteration()  # traces every step
    warmup = time.perf_counter() - started
    times, cpu_times = [], []
    for _ in range(args.iterations):
        started, cpu_started = time.perf_counter(), time.process_time()
        iteration()
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu_started)

    per_step = {}
    steps = {
        "d_step": (real,), "g_step": (), "worst_d_step": (real,),
        "worst_g_step": (), "arch_step": (real, worst_value), "worst_value_step": (real,),
    }
    for name, step_args in steps.items():
        step = getattr(searcher, name)
        per_step[name] = graph_flops(step.get_concrete_function(*step_args))
        step_times = []
        for _ in range(2):
            started = time.perf_counter()
            step(*step_args)
            step_times.append(time.perf_counter() - started)
        per_step[name] = (per_step[name], min(step_times))
    copy_started = time.perf_counter()
    searcher.make_worst_players()
    copy_time = time.perf_counter() - copy_started

    once_per_epoch = per_step.pop("worst_value_step")
    total_flops = sum(f for f, _ in per_step.values())
    median = statistics.median(times)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'step':<14}{'GFLOP':>10}{'seconds':>10}{'GFLOP/s':>10}")
    for name, (flops, seconds) in per_step.items():
        print(f"{name:<14}{flops / 1e9:>10.1f}{seconds:>10.2f}{flops / 1e9 / seconds:>10.1f}")
    print(f"{'worst copy':<14}{'':>10}{copy_time:>10.2f}")
    print(f"{'worst_value':<14}{once_per_epoch[0] / 1e9:>10.1f}{once_per_epoch[1]:>10.2f}"
          "   (V(G_worst, D): once per epoch, not in the iteration)")
    print(
        f"iteration: {median:.2f} s (median of {args.iterations}: "
        f"{', '.join(f'{t:.2f}' for t in times)}), {total_flops / 1e12:.2f} TFLOP, "
        f"{total_flops / 1e9 / median:.0f} GFLOP/s achieved"
    )
    # CPU seconds of this process (all threads): robust to other load on the machine;
    # on an otherwise idle 2-core machine, wall ~= CPU / 2.
    print(f"CPU time per iteration: {statistics.median(cpu_times):.2f} s (all threads)")
    print(f"build {built:.1f} s, first iteration (tracing + graph optimisation) {warmup:.1f} s")
    print(f"peak resident memory: {peak_mib:.0f} MiB")


if __name__ == "__main__":
    main()
