"""Time of one AlphaGAN search iteration at the paper's widths, and what it costs.

One iteration = 1 D step + 1 G step (inner level), the worst-case copy with
1 D_worst + 1 G_worst step, and 1 alpha step (outer level): the work of one
search step of the reference implementation. Prints seconds per iteration
(median of --iterations after warm-up), the FLOPs of each compiled step (TF's
registered op statistics on the traced graphs: convolutions, their gradients,
matmuls), the achieved GFLOP/s next to a 2048^3 matmul's in the same precision
timed under the same load (a reference rate, not a ceiling: oneDNN's large
convolutions can run faster than this matmul), peak resident memory, and the
tracing time.

    python bench/search_step.py                        # gf 256, df 128, batch 16, 32x32
    python bench/search_step.py --no-fuse_convs        # every candidate conv on its own
    python bench/search_step.py --jit_compile          # XLA
    python bench/search_step.py --depthwise_gradient=tf   # TF's own depthwise kernel gradient
    python bench/search_step.py --gf=16 --df=16 --batch_size=8 --steps_per_call=1,20  # loops
    python bench/search_step.py --gf=64 --iterations=5 # smaller
    python bench/search_step.py --precision=float32,bfloat16   # side by side, one process
    python bench/search_step.py --precision=float32,bfloat16 --profile  # + time per op type

With --steps_per_call (several values) it times whole epochs of the schedule instead
(--epoch_steps inner D steps with their G steps, as many worst-case steps and alpha
steps) through `BilevelSearcher.run_epoch`, which runs that many steps per compiled call,
alternating the values on one searcher, and prints steps per second side by side: the
host round trips a call saves are a larger share of a small model's step.

With several --precision values every searcher is built first and their
iterations alternate (float32, bfloat16, float32, ...), so a change of load on
the machine hits every precision alike; the load average is printed with the
figures. `--profile` then runs one more iteration per precision under the TF
profiler and prints where its time went, by op type and by kind of op
(`op_type_times`, `OP_KINDS`).

Never part of the test run; nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

from alphagan_tf.utils import precision as precision_lib


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


# Kinds of TF op types (oneDNN's "_MklNative..." / "_MklFused..." names included), for the
# profile's summary; an op type in none of them counts as "other".
OP_KINDS = {
    "depthwise convolutions": ("Depthwise",),
    "convolutions, matmuls": ("Conv2D", "Conv3D", "MatMul", "Einsum"),
    "elementwise": (
        "Mul", "Add", "Sub", "RealDiv", "Div", "Relu", "Cast", "Neg", "Rsqrt", "Sqrt",
        "Square", "Maximum", "Minimum", "Exp", "Log", "Select", "Sigmoid", "Tanh", "Pow",
        "SquaredDifference", "Softplus", "Abs", "Sign", "Reciprocal", "BatchNorm",
    ),
    "reductions, broadcasts": ("Sum", "Mean", "Max", "Min", "Prod", "Tile", "BroadcastTo"),
    "data movement (slices, pads, concats, transposes)": (
        "Slice", "Pad", "Concat", "Transpose", "Pack", "Unpack", "Split", "Reshape", "Gather",
        "Identity", "MirrorPad",
    ),
    "optimizer updates": ("Apply", "Assign"),
}


def op_kind(op_type: str) -> str:
    """The `OP_KINDS` key `op_type` belongs to (first fragment it contains), or "other"."""
    for kind, fragments in OP_KINDS.items():
        if any(fragment in op_type for fragment in fragments):
            return kind
    return "other"


def op_type_times(logdir: str) -> dict[str, tuple[float, int]]:
    """{op type: (milliseconds, calls)} of the TF profiler trace written under `logdir`.

    Reads the XSpace protobuf (`*.xplane.pb`) the profiler writes: op events are
    named "<node name>:<op type>" on the executor threads; their durations are
    wall time per op (ops run in parallel on the inter-op threads, so the sum can
    exceed the step's time).
    """
    import glob

    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))
    if not files:
        raise FileNotFoundError(f"No *.xplane.pb under {logdir}: the profiler wrote no trace.")
    space = xplane_pb2.XSpace()
    with open(files[-1], "rb") as f:
        space.ParseFromString(f.read())
    times: dict[str, list] = {}
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                node, _, op_type = name.rpartition(":")
                if not node or node.endswith(":") or not op_type:  # "ExecutorState::Process"
                    continue
                entry = times.setdefault(op_type, [0.0, 0])
                entry[0] += event.duration_ps / 1e9
                entry[1] += 1
    return {op_type: (ms, calls) for op_type, (ms, calls) in times.items()}


def print_profile(times: dict[str, tuple[float, int]], top: int = 12) -> None:
    """The `top` op types by time, and the time per `op_kind`, with their shares."""
    total = sum(ms for ms, _ in times.values()) or 1.0
    print(f"op time {total:.0f} ms (summed over ops; by op type, top {top}):")
    for op_type, (ms, calls) in sorted(times.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"  {op_type:<44}{ms:9.1f} ms {100 * ms / total:5.1f} % {calls:6d} calls")
    kinds: dict[str, float] = {}
    for op_type, (ms, _) in times.items():
        kind = op_kind(op_type)
        kinds[kind] = kinds.get(kind, 0.0) + ms
    print("by kind:")
    for kind, ms in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:<52}{ms:9.1f} ms {100 * ms / total:5.1f} %")


def precision_list(text: str) -> list[str]:
    """--precision: one value or a comma-separated list of `precision_lib.PRECISIONS`."""
    try:
        return [precision_lib.validate(p.strip()) for p in text.split(",")]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def matmul_rate(precision: str, n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an n^3 matmul in `precision` (median of `repeats`).

    A reference rate for the step's GFLOP/s under the same load, not a ceiling:
    on AMX hosts a large bfloat16 convolution can run faster than this matmul.
    """
    import tensorflow as tf

    dtype = tf.dtypes.as_dtype(precision)
    a = tf.cast(tf.random.uniform([n, n], -1.0, 1.0), dtype)
    b = tf.cast(tf.random.uniform([n, n], -1.0, 1.0), dtype)
    matmul = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.matmul(x, y)[:1, :1], tf.float32)))
    matmul(a, b).numpy()  # trace and warm up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        matmul(a, b).numpy()
        times.append(time.perf_counter() - started)
    return 2 * n**3 / statistics.median(times) / 1e9


def load_average() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


class Bench:
    """One searcher at one precision, and what was measured on it."""

    def __init__(self, args, precision: str):
        import tensorflow as tf

        from alphagan_tf.gan.space.generator_config import GeneratorConfig
        from alphagan_tf.gan.search.config import SearchRunConfig
        from alphagan_tf.gan.search.alphagan import build_searcher
        from alphagan_tf.gan.search.config import SearchConfig

        self.precision = precision
        config = SearchRunConfig(
            search=SearchConfig(
                inner_steps=1, worst_steps=1, outer_steps=1, n_critic=1,
                batch_size=args.batch_size, jit_compile=args.jit_compile,
            ),
            model=GeneratorConfig(gf=args.gf, df=args.df, latent_dim=args.latent_dim,
                                  bottom_width=args.bottom_width),
            fuse_convs=args.fuse_convs, precision=precision,
        )
        size = config.image_size
        started = time.perf_counter()
        self.searcher = build_searcher(config)
        self.built = time.perf_counter() - started
        self.real = tf.random.uniform([args.batch_size, size, size, 3], -1.0, 1.0)
        # DG's second term, V(G_worst, D), is measured once per epoch (not in every alpha
        # step): timed on its own below, not part of the iteration.
        self.worst_value = self.searcher.worst_value_step(self.real)
        self.times, self.cpu_times = [], []
        started = time.perf_counter()
        self.iteration()  # traces every step
        self.warmup = time.perf_counter() - started

    def iteration(self):
        searcher, real = self.searcher, self.real
        searcher.d_step(real)
        searcher.g_step()
        searcher.make_worst_players()
        searcher.worst_d_step(real)
        searcher.worst_g_step()
        return searcher.arch_step(real, self.worst_value)["duality_gap"].numpy()

    def timed_iteration(self) -> None:
        started, cpu_started = time.perf_counter(), time.process_time()
        self.iteration()
        self.times.append(time.perf_counter() - started)
        self.cpu_times.append(time.process_time() - cpu_started)

    def report(self, iterations: int) -> float:
        """Prints the per-step table and the iteration line; returns the median seconds."""
        searcher, real = self.searcher, self.real
        per_step = {}
        steps = {
            "d_step": (real,), "g_step": (), "worst_d_step": (real,),
            "worst_g_step": (), "arch_step": (real, self.worst_value), "worst_value_step": (real,),
        }
        for name, step_args in steps.items():
            step = getattr(searcher, name)
            flops = graph_flops(step.get_concrete_function(*step_args))
            step_times = []
            for _ in range(2):
                started = time.perf_counter()
                step(*step_args)
                step_times.append(time.perf_counter() - started)
            per_step[name] = (flops, min(step_times))
        copy_started = time.perf_counter()
        searcher.make_worst_players()
        copy_time = time.perf_counter() - copy_started

        once_per_epoch = per_step.pop("worst_value_step")
        self.total_flops = sum(f for f, _ in per_step.values())
        median = statistics.median(self.times)
        print(f"--- precision {self.precision} ({load_average()})")
        print(f"{'step':<14}{'GFLOP':>10}{'seconds':>10}{'GFLOP/s':>10}")
        for name, (flops, seconds) in per_step.items():
            print(f"{name:<14}{flops / 1e9:>10.1f}{seconds:>10.2f}{flops / 1e9 / seconds:>10.1f}")
        print(f"{'worst copy':<14}{'':>10}{copy_time:>10.2f}")
        print(f"{'worst_value':<14}{once_per_epoch[0] / 1e9:>10.1f}{once_per_epoch[1]:>10.2f}"
              "   (V(G_worst, D): once per epoch, not in the iteration)")
        print(
            f"iteration: {median:.2f} s (median of {iterations}: "
            f"{', '.join(f'{t:.2f}' for t in self.times)}), {self.total_flops / 1e12:.2f} TFLOP, "
            f"{self.total_flops / 1e9 / median:.0f} GFLOP/s achieved"
        )
        # CPU seconds of this process (all threads): robust to other load on the machine;
        # on an otherwise idle 2-core machine, wall ~= CPU / 2.
        print(f"CPU time per iteration: {statistics.median(self.cpu_times):.2f} s (all threads)")
        print(f"build {self.built:.1f} s, first iteration (tracing + graph optimisation) "
              f"{self.warmup:.1f} s")
        return median

    def profile(self, logdir: str) -> dict[str, tuple[float, int]]:
        """Op-type times of one iteration under the TF profiler (see `op_type_times`)."""
        import tensorflow as tf

        tf.profiler.experimental.start(logdir)
        try:
            self.iteration()
        finally:
            tf.profiler.experimental.stop()
        return op_type_times(logdir)


def compare_steps_per_call(args, precision: str) -> None:
    """Steps per second of whole epochs at each --steps_per_call value, alternating, side by side."""
    import dataclasses

    import numpy as np
    import tensorflow as tf

    from alphagan_tf.gan.space.generator_config import GeneratorConfig
    from alphagan_tf.gan.search.config import SearchRunConfig
    from alphagan_tf.gan.search.alphagan import build_searcher
    from alphagan_tf.gan.search.config import SearchConfig

    n = args.epoch_steps
    schedule = SearchConfig(inner_steps=n, worst_steps=n, outer_steps=n, n_critic=5,
                            batch_size=args.batch_size, jit_compile=args.jit_compile)
    config = SearchRunConfig(
        search=schedule, fuse_convs=args.fuse_convs, precision=precision,
        model=GeneratorConfig(gf=args.gf, df=args.df, latent_dim=args.latent_dim,
                              bottom_width=args.bottom_width))
    searcher = build_searcher(config)
    size = config.image_size
    images = np.random.default_rng(0).uniform(-1, 1, (64, size, size, 3)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices(images).repeat().batch(args.batch_size, drop_remainder=True)
    weight, arch = iter(data), iter(data)
    times = {k: [] for k in args.steps_per_call}
    for k in args.steps_per_call:  # warm-up: traces the loops and the steps
        searcher.config = dataclasses.replace(schedule, steps_per_call=k)
        searcher.run_epoch(weight, arch)
    for _ in range(args.iterations):
        for k in args.steps_per_call:
            searcher.config = dataclasses.replace(schedule, steps_per_call=k)
            started = time.perf_counter()
            searcher.run_epoch(weight, arch)
            times[k].append(time.perf_counter() - started)
    first = args.steps_per_call[0]
    print(f"epochs of {3 * n} schedule steps ({n} D steps with {n // schedule.n_critic} G steps, {n} "
          f"worst-case pairs, {n} alpha steps), median of {args.iterations}, {precision} "
          f"({load_average()}):")
    for k, seconds in times.items():
        median = statistics.median(seconds)
        print(f"  steps_per_call {k:>3}: {median:6.3f} s/epoch  {3 * n / median:7.1f} steps/s  "
              f"{statistics.median(times[first]) / median:.2f} x steps_per_call {first}")


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
    parser.add_argument("--precision", type=precision_list, default=["float32"],
                        help=f"one or more (comma-separated) of {', '.join(precision_lib.PRECISIONS)}")
    parser.add_argument("--mixed_precision", action="store_true",
                        help="old name of --precision=float16")
    parser.add_argument("--depthwise_gradient", default="auto", choices=["auto", "fast", "tf"],
                        help="gan/space/depthwise.py's kernel gradient (auto: fast on CPU, tf on GPU)")
    parser.add_argument("--steps_per_call", type=lambda t: [int(v) for v in t.split(",")],
                        default=None, help="time epochs of the schedule at these values (1,20)")
    parser.add_argument("--epoch_steps", type=int, default=20,
                        help="--steps_per_call: inner, worst-case and alpha steps per epoch")
    parser.add_argument("--profile", action="store_true",
                        help="profile one more iteration per precision: time per op type and kind")
    parser.add_argument("--profile_dir", default=None,
                        help="where the profiler traces go (default: a temporary directory; "
                             "TensorBoard's profile plugin reads them)")
    args = parser.parse_args()
    precisions = ["float16"] if args.mixed_precision else args.precision

    import tensorflow as tf

    from alphagan_tf.gan.space import depthwise

    depthwise.set_kernel_gradient(args.depthwise_gradient)

    size = 8 * args.bottom_width
    print(
        f"search iteration: gf {args.gf}, df {args.df}, batch {args.batch_size}, {size}x{size}, "
        f"fuse_convs={args.fuse_convs}, jit_compile={args.jit_compile}, "
        f"precision={','.join(precisions)}, "
        f"depthwise_gradient={args.depthwise_gradient} "
        f"({depthwise.resolved_kernel_gradient(args.depthwise_gradient)}), "
        f"threads intra {tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()}"
    )
    if args.steps_per_call:
        return compare_steps_per_call(args, precisions[0])
    benches = [Bench(args, p) for p in precisions]
    for _ in range(args.iterations):  # alternating: the same load for every precision
        for bench in benches:
            bench.timed_iteration()
    medians = {bench.precision: bench.report(args.iterations) for bench in benches}
    peaks = {p: matmul_rate(p) for p in precisions}  # right after the iterations: same load
    if args.profile:
        import tempfile

        profile_dir = args.profile_dir or tempfile.mkdtemp(prefix="search_step_profile_")
        for bench in benches:
            print(f"--- profile of one iteration, precision {bench.precision} ({load_average()})")
            print_profile(bench.profile(os.path.join(profile_dir, bench.precision)))
        print(f"profiler traces: {profile_dir}")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak_mib:.0f} MiB (all searchers)")
    first = precisions[0]
    print(f"side by side ({load_average()}); matmul: a 2048^3 matmul in that precision, same load:")
    for bench in benches:
        seconds, peak = medians[bench.precision], peaks[bench.precision]
        achieved = bench.total_flops / 1e9 / seconds
        print(f"  {bench.precision:<9} {seconds:6.2f} s/iteration  {achieved:6.0f} GFLOP/s  "
              f"{seconds / medians[first]:.2f} x {first}  "
              f"(matmul {peak:5.0f} GFLOP/s, step at {100 * achieved / peak:3.0f}% of it; "
              f"matmul time {peaks[first] / peak:.2f} x {first})")


if __name__ == "__main__":
    main()
