r"""Time of one retraining iteration, ours and the authors' loop, side by side in one run.

One iteration = n_critic D steps + 1 G step + the EMA update: ours is
`GANTrainer.train_iteration` (built by `gan.train.loop.build_trainer`, float32 and/or
bfloat16); the authors' is their `functions.train` as `train_geno_gan.py` runs it
(../shared/ref/AlphaGAN on CPU, PyTorch float32, their xavier init, Adam, the EMA
list; fed n_critic batches per call so that one call is one iteration), with as
many torch threads as TensorFlow's intra-op threads.

    python bench/train_step.py        # the paper's sizes: gf 256, df 128, G batch 128, D batch 64,
                                      # 32x32, n_critic 5, alphaGAN(s); float32, bfloat16, authors'
    python bench/train_step.py --gf=16 --df=16 --g_batch_size=8 --d_batch_size=4 --n_critic=1 \
        --precision=float32 --iterations=2          # a smoke run (tracing is most of it)
    python bench/train_step.py --genotype=alphaGAN_s,alphaGAN_l --precision=float32
    python bench/train_step.py --no-authors --output_dir=bench/results/train_step

What it prints, per implementation (one row each):
- seconds per iteration: the median of --iterations after one warm-up iteration
  (which traces ours); the implementations alternate (ours float32, ours bfloat16,
  the authors', ours float32, ...) so a change of load hits all alike; and the CPU
  seconds of the process per iteration (all threads);
- GFLOP per iteration: TF's registered op statistics on our traced D and G steps
  (`search_step.graph_flops`), n_critic x D step + G step; the authors' loop does the
  same convolutions and matmuls, so its row uses the same count;
- GFLOP/s achieved, next to a 2048^3 matmul's rate in the same precision and library
  (TF for ours: `search_step.matmul_rate`; torch float32 for theirs) timed right after
  the iterations under the same load: a reference rate, not a ceiling;
- peak memory: the process's peak resident memory during the implementation's timed
  iterations minus its resident memory just before (Linux: /proc/self/clear_refs
  resets the peak), i.e. the iteration's working memory on top of the weights,
  optimizer state and EMA that every implementation keeps resident;
- speed: the authors' seconds per iteration / this row's ("x authors'").

bfloat16 runs emulated on CPUs without AVX512-BF16 or AMX (the bench says which);
there it is several times slower than float32. With --output_dir the table and a
summary.json are written there. Never part of the test run; nothing asserts a timing.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import itertools
import os
import statistics
import sys
import time
import warnings
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# torch's OpenMP threads spin at every barrier by default: on these shared 2-core machines (load
# 4-7) its 2-thread iteration ran 8-10x slower than its 1-thread one; passive waiting removed
# that (measured at gf 128: 92-157 s -> 10-14 s, 1 thread 12 s). TensorFlow's threads (Eigen's
# pool) do not use OpenMP. Set before torch loads; an explicit OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests"))  # authors_reference: the authors' code on CPU

import search_step  # noqa: E402  (bench/search_step.py: graph_flops, matmul_rate, load_average)

from alphagan_tf.utils import files  # noqa: E402
from alphagan_tf.utils import precision as precision_lib  # noqa: E402

AUTHORS = "authors'"
STATUS = "/proc/self/status"
CLEAR_REFS = "/proc/self/clear_refs"


@dataclasses.dataclass
class Row:
    """What was measured on one implementation (seconds, FLOPs, bytes)."""

    name: str
    precision: str
    times: list[float] = dataclasses.field(default_factory=list)
    cpu_times: list[float] = dataclasses.field(default_factory=list)
    flops: int = 0
    matmul_gflops: float = 0.0
    peak_bytes: int | None = None

    @property
    def seconds(self) -> float:
        return statistics.median(self.times)

    @property
    def gflops(self) -> float:
        return self.flops / 1e9 / self.seconds

    def summary(self, authors_seconds: float | None) -> dict:
        return {
            "implementation": self.name, "precision": self.precision,
            "seconds_per_iteration": self.seconds, "times": self.times,
            "cpu_seconds_per_iteration": statistics.median(self.cpu_times),
            "gflop_per_iteration": self.flops / 1e9, "gflops": self.gflops,
            "matmul_gflops": self.matmul_gflops, "share_of_matmul": self.gflops / self.matmul_gflops,
            "peak_working_memory_mib": None if self.peak_bytes is None else self.peak_bytes / 2**20,
            "speed_vs_authors": None if authors_seconds is None else authors_seconds / self.seconds,
        }


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call of `fn`."""
    started, cpu_started = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - started, time.process_time() - cpu_started


def memory_kib() -> dict[str, int]:
    """VmRSS and VmHWM (peak resident) of `STATUS` (/proc/self/status), in KiB."""
    values = {}
    with open(STATUS, encoding="ascii") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    return values


def reset_peak() -> bool:
    """Resets the process's peak resident memory to the current one (`CLEAR_REFS`); False where
    it cannot."""
    try:
        with open(CLEAR_REFS, "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def working_memory(fn: Callable[[], object]) -> tuple[float, float, int | None]:
    """`timed(fn)` and the peak resident bytes during it above those before it (None: unknown)."""
    resettable = reset_peak()
    before = memory_kib()["VmRSS"] if resettable else None
    wall, cpu = timed(fn)
    if before is None:
        return wall, cpu, None
    return wall, cpu, 1024 * max(0, memory_kib()["VmHWM"] - before)


def torch_matmul_rate(torch, n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an n^3 float32 matmul in torch (median of `repeats`), as `matmul_rate` for TF."""
    a = torch.rand(n, n) * 2 - 1
    b = torch.rand(n, n) * 2 - 1
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - started)
    return 2 * n**3 / statistics.median(times) / 1e9


def format_table(rows: list[Row]) -> str:
    """The side-by-side table (markdown), speeds against the authors' row when there is one."""
    authors = next((r.seconds for r in rows if r.name.startswith(AUTHORS)), None)
    lines = [
        "| implementation | s/iteration | CPU s/iteration | GFLOP/iteration | GFLOP/s "
        "| matmul GFLOP/s | % of matmul | peak working memory | x authors' |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        s = row.summary(authors)
        memory = "n/a" if s["peak_working_memory_mib"] is None else f"{s['peak_working_memory_mib']:.0f} MiB"
        speed = "" if s["speed_vs_authors"] is None else f"{s['speed_vs_authors']:.2f}"
        lines.append(
            f"| {row.name} {row.precision} | {s['seconds_per_iteration']:.3f} "
            f"| {s['cpu_seconds_per_iteration']:.3f} | {s['gflop_per_iteration']:.1f} "
            f"| {s['gflops']:.1f} | {s['matmul_gflops']:.0f} | {100 * s['share_of_matmul']:.0f}% "
            f"| {memory} | {speed} |"
        )
    return "\n".join(lines)


class Ours:
    """Our trainer at one precision: `train_iteration` on a fixed real batch."""

    def __init__(self, args, genotype: str, precision: str, per_call: int = 1):
        import tensorflow as tf

        from alphagan_tf.gan.space.generator_config import GeneratorConfig
        from alphagan_tf.gan.train.config import TrainRunConfig
        from alphagan_tf.gan.train.loop import build_trainer
        from alphagan_tf.gan.space.genotypes import load_genotype
        from alphagan_tf.gan.train.config import TrainConfig

        config = TrainRunConfig(
            train=TrainConfig(n_critic=args.n_critic, g_batch_size=args.g_batch_size,
                              d_batch_size=args.d_batch_size),
            genotype=genotype, precision=precision,
            model=GeneratorConfig(gf=args.gf, df=args.df, latent_dim=args.latent_dim,
                                  bottom_width=args.bottom_width),
        )
        self.key = f"ours {genotype}"  # the FLOPs are the same for any steps per call
        self.per_call = per_call  # G iterations per compiled call (--steps_per_call)
        self.row = Row(self.key + (f", {per_call} per call" if per_call > 1 else ""), precision)
        started = time.perf_counter()
        self.trainer = build_trainer(config, load_genotype(genotype))
        size = config.image_size
        self.real = tf.random.uniform([args.d_batch_size, size, size, 3], -1.0, 1.0, seed=1)
        self.batches = iter(tf.data.Dataset.from_tensors(self.real).repeat())
        self.built = time.perf_counter() - started
        self.warmup, _ = timed(self.iteration)  # traces the steps

    def iteration(self):
        """`per_call` G iterations in one call (GANTrainer.run_iterations)."""
        return self.trainer.run_iterations(self.batches, self.per_call)

    def count_flops(self, n_critic: int) -> int:
        import tensorflow as tf

        logger = tf.get_logger()
        level = logger.level
        logger.setLevel("ERROR")  # the v1 profiler's deprecation warnings
        try:
            d_step = search_step.graph_flops(self.trainer.d_step.get_concrete_function(self.real))
            g_step = search_step.graph_flops(self.trainer.g_step.get_concrete_function())
        finally:
            logger.setLevel(level)
        return n_critic * d_step + g_step

    def matmul_rate(self) -> float:
        return search_step.matmul_rate(self.row.precision)


class Authors:
    """The authors' `functions.train`, one call = one iteration (n_critic batches, G step at the last)."""

    def __init__(self, args, genotype: str, threads: int):
        import authors_reference as ar
        from alphagan_tf.gan.space.genotypes import load_genotype

        ref = ar.load()
        # Its EMA update uses add_(Number, Tensor), which torch deprecates on every call.
        warnings.filterwarnings("ignore", message="This overload of add_ is deprecated")
        self.torch = torch = ref.torch
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        self.args = ar.args(
            gf_dim=args.gf, df_dim=args.df, latent_dim=args.latent_dim,
            bottom_width=args.bottom_width, gen_batch_size=args.g_batch_size,
            dis_batch_size=args.d_batch_size, n_critic=args.n_critic, loss_type="hinge_loss",
            print_freq=100, max_epoch=1,
        )
        self.row = Row(f"{AUTHORS} {genotype}", "float32")
        self.key = f"ours {genotype}"  # whose graphs' FLOPs this row takes
        self.per_call = 1
        self.functions = ref.functions
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # it prints debug lines
            self.g = ref.alphagan_network.Network_gen_Auto(
                self.args, ar.reference_genotype(load_genotype(genotype)))
        self.d = ref.alphagan_network.Discriminator(self.args)
        ar.retraining_init(self.g)
        ar.retraining_init(self.d)
        betas = (self.args.beta1, self.args.beta2)
        self.g_opt = torch.optim.Adam(self.g.parameters(), self.args.g_lr, betas)
        self.d_opt = torch.optim.Adam(self.d.parameters(), self.args.d_lr, betas)
        self.average = ref.functions.copy_params(self.g)
        size = 8 * args.bottom_width
        real = torch.rand(args.d_batch_size, 3, size, size) * 2 - 1
        self.loader = [(real, torch.zeros(args.d_batch_size))] * args.n_critic
        # From global step 1 its G step follows the n_critic-th D step of each call.
        self.writer_dict = {"writer": _NullWriter(), "train_global_steps": 1}
        self.built = time.perf_counter() - started
        self.warmup, _ = timed(self.iteration)

    def iteration(self):
        with contextlib.redirect_stdout(io.StringIO()):
            self.functions.train(self.args, self.g, self.d, self.g_opt, self.d_opt, self.average,
                                 self.loader, 0, self.writer_dict, False, None)

    def matmul_rate(self) -> float:
        return torch_matmul_rate(self.torch)


class _NullWriter:
    def add_scalar(self, *args, **kwargs):
        pass


def _list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gf", type=int, default=256)
    parser.add_argument("--df", type=int, default=128)
    parser.add_argument("--latent_dim", type=int, default=128)
    parser.add_argument("--bottom_width", type=int, default=4)
    parser.add_argument("--g_batch_size", type=int, default=128)
    parser.add_argument("--d_batch_size", type=int, default=64)
    parser.add_argument("--n_critic", type=int, default=5)
    parser.add_argument("--genotype", type=_list, default=["alphaGAN_s"],
                        help="one or more (comma-separated) presets or genotype files")
    parser.add_argument("--precision", type=search_step.precision_list,
                        default=["float32", "bfloat16"],
                        help=f"ours: one or more (comma-separated) of {', '.join(precision_lib.PRECISIONS)}")
    parser.add_argument("--authors", action=argparse.BooleanOptionalAction, default=True,
                        help="time the authors' loop too (needs torch and ../shared/ref/AlphaGAN)")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations each (median)")
    parser.add_argument("--steps_per_call", type=lambda v: [int(x) for x in v.split(",")],
                        default=[1], help="ours: one or more (comma-separated) numbers of G "
                        "iterations per compiled call (--steps_per_call of train), each a row")
    parser.add_argument("--threads", type=int, default=0,
                        help="TF intra- and inter-op threads and torch's threads (0: TF's "
                             "defaults, the cores; torch as many as TF's intra-op threads)")
    parser.add_argument("--output_dir", default=None,
                        help="write summary.json and table.md there")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    import tensorflow as tf

    if args.threads:  # before TensorFlow runs anything
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    native = precision_lib.cpu_has_native_bfloat16()
    bfloat16_note = {True: "native (AVX512-BF16 or AMX)", False: "EMULATED on this CPU (no "
                     "AVX512-BF16 or AMX): several times slower than float32",
                     None: "unknown CPU support"}[native]
    size = 8 * args.bottom_width
    header = (
        f"retraining iteration: n_critic {args.n_critic} D steps (batch {args.d_batch_size}) + "
        f"1 G step (batch {args.g_batch_size}) + EMA; gf {args.gf}, df {args.df}, latent "
        f"{args.latent_dim}, {size}x{size}; {threads} threads (TF intra-op; torch the same, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')})"
        + (f"; bfloat16: {bfloat16_note}" if "bfloat16" in args.precision else "")
    )
    print(header, flush=True)
    benches = []
    for genotype in args.genotype:
        for precision, per_call in itertools.product(args.precision, args.steps_per_call):
            benches.append(Ours(args, genotype, precision, per_call))
            print(f"built {benches[-1].row.name} {precision}: {benches[-1].built:.1f} s, first "
                  f"iteration (tracing) {benches[-1].warmup:.1f} s", flush=True)
        if args.authors:
            import pytest

            try:
                benches.append(Authors(args, genotype, threads))
            except pytest.skip.Exception as skipped:
                print(f"authors' loop not timed: {skipped}")
                args.authors = False
            else:
                print(f"built {benches[-1].row.name}: {benches[-1].built:.1f} s, first iteration "
                      f"{benches[-1].warmup:.1f} s", flush=True)
    flops = {}
    for bench in benches:
        if isinstance(bench, Ours) and bench.key not in flops:
            flops[bench.key] = bench.count_flops(args.n_critic)
    for bench in benches:
        bench.row.flops = flops[bench.key]

    for i in range(args.iterations):  # alternating: the same load for every implementation
        for bench in benches:
            wall, cpu, peak = working_memory(bench.iteration)
            wall, cpu = wall / bench.per_call, cpu / bench.per_call  # per G iteration
            bench.row.times.append(wall)
            bench.row.cpu_times.append(cpu)
            if peak is not None:
                bench.row.peak_bytes = max(bench.row.peak_bytes or 0, peak)
            print(f"  iteration {i + 1}: {bench.row.name} {bench.row.precision} {wall:.2f} s",
                  flush=True)
    load = search_step.load_average()
    rates = {}
    for bench in benches:  # right after the iterations: the same load
        key = (type(bench).__name__, bench.row.precision)
        if key not in rates:
            rates[key] = bench.matmul_rate()
        bench.row.matmul_gflops = rates[key]
    rows = [bench.row for bench in benches]
    table = format_table(rows)
    footer = (f"({load}; x authors': the authors' seconds per iteration / the row's; FLOPs "
              "counted on our graphs, the same for the authors' row)")
    print(table)
    print(footer)
    if args.output_dir:
        authors = next((r.seconds for r in rows if r.name.startswith(AUTHORS)), None)
        summary = {
            "command": "python bench/train_step.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "sizes": {k: getattr(args, k) for k in ("gf", "df", "latent_dim", "bottom_width",
                                                     "g_batch_size", "d_batch_size", "n_critic")},
            "threads": threads, "bfloat16": bfloat16_note, "load": load,
            "rows": [row.summary(authors) for row in rows],
        }
        files.write_json_atomic(os.path.join(args.output_dir, "summary.json"), summary)
        files.write_text_atomic(os.path.join(args.output_dir, "table.md"),
                                f"{header}\n\n{table}\n\n{footer}\n")
        print(f"wrote {args.output_dir}/summary.json and table.md")


if __name__ == "__main__":
    main()
