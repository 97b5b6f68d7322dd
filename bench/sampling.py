r"""Sampling speed and file size of the exported generator: SavedModel vs each TFLite variant.

    python bench/sampling.py                      # alphaGAN(l) and (s), gf 256, 32x32, 2 threads
    python bench/sampling.py --gf=64 --min_seconds=1 --genotypes=alphaGAN_s   # quick look

For each genotype, a generator with RANDOM weights (speed and size do not depend on the
values) is exported as a SavedModel (the served `serving_default` signature, input checks
included, run with the TF2 loader), again with its convs in bfloat16 inside the graph
(`export --serving_precision=bfloat16`: same float32 weights and interface), and converted
to TFLite none / float16 / dynamic / int8 (run with LiteRT). Images per second are measured at each batch size with `--threads` CPU
threads (TF intra-op threads, LiteRT num_threads): one warm-up call, then calls until
`--min_seconds` have passed (at least `--min_calls`). Also printed: the file size (SavedModel:
saved_model.pb + variables) and the max abs difference of each other variant's images from the
float32 SavedModel's on the same 64 latents (random weights: quantisation or bfloat16
rounding error of an untrained net).

Prints a markdown table; the machine's load average is printed too, since other processes
sharing the cores lower the figures. Not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genotypes", default="alphaGAN_l,alphaGAN_s")
    parser.add_argument("--gf", type=int, default=256)
    parser.add_argument("--latent_dim", type=int, default=128)
    parser.add_argument("--bottom_width", type=int, default=4)
    parser.add_argument("--batch_sizes", default="1,64")
    parser.add_argument("--quantize", default="none,float16,dynamic,int8")
    parser.add_argument("--serving_precisions", default="float32,bfloat16",
                        help="SavedModels to time: float32 (the reference row) and "
                             "`export --serving_precision=bfloat16`'s.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min_seconds", type=float, default=5.0)
    parser.add_argument("--min_calls", type=int, default=2)
    parser.add_argument("--calibration_samples", type=int, default=32)
    return parser.parse_args(argv)


def _folder_size(path: str) -> int:
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(path)
        for name in names
    )


def _images_per_second(fn, z, min_seconds: float, min_calls: int) -> float:
    fn(z)  # warm-up (graph optimisation, allocation)
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        fn(z)
        calls += 1
    return calls * len(z) / (time.perf_counter() - start)


def main(argv=None) -> str:
    args = _parse(argv)
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    from alphagan_tf.gan.space.generator import Generator
    from alphagan_tf.gan.space.genotypes import load_genotype
    from alphagan_tf.serving import savedmodel, tflite
    from alphagan_tf.serving.samplers import SavedModelGenerator
    from alphagan_tf.serving.signatures import latents_for_seed

    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    modes = args.quantize.split(",")
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_sampling_") as tmp:
        for name in args.genotypes.split(","):
            keras.utils.set_random_seed(0)
            generator = Generator.from_genotype(
                load_genotype(name), gf=args.gf, latent_dim=args.latent_dim,
                bottom_width=args.bottom_width,
            )
            params = sum(int(np.prod(w.shape)) for w in generator.trainable_weights)
            saved = savedmodel.write_saved_model(
                generator, os.path.join(tmp, name, "saved_model"), max_batch=max(batch_sizes)
            )
            source = tflite.write_conversion_source(generator, os.path.join(tmp, name, "source"))
            runners = {"SavedModel": (SavedModelGenerator(saved), _folder_size(saved))}
            for low in [p for p in args.serving_precisions.split(",") if p != "float32"]:
                low_saved = savedmodel.write_saved_model(
                    generator.in_precision(low), os.path.join(tmp, name, f"saved_model_{low}"),
                    max_batch=max(batch_sizes))
                runners[f"SavedModel {low}"] = (SavedModelGenerator(low_saved),
                                                _folder_size(low_saved))
            for mode in modes:
                start = time.perf_counter()
                path = tflite.write_tflite(
                    tflite.convert_saved_model(
                        source, args.latent_dim, mode, calibration_samples=args.calibration_samples
                    ),
                    os.path.join(tmp, name, f"generator_{mode}.tflite"),
                )
                print(f"# {name}: converted {mode} in {time.perf_counter() - start:.0f}s",
                      file=sys.stderr, flush=True)
                runners[f"TFLite {mode}"] = (
                    tflite.TFLiteGenerator(path, num_threads=args.threads), os.path.getsize(path)
                )
            z_parity = latents_for_seed(0, 64, args.latent_dim).numpy()
            reference = runners["SavedModel"][0](z_parity)
            for label, (runner, size) in runners.items():
                diff = float(np.abs(runner(z_parity) - reference).max())
                speeds = [
                    _images_per_second(
                        runner, latents_for_seed(1, b, args.latent_dim).numpy(),
                        args.min_seconds, args.min_calls,
                    )
                    for b in batch_sizes
                ]
                rows.append((name, params, label, size, speeds, diff))
                print(f"# {name} {label}: " + ", ".join(f"{s:.1f}" for s in speeds),
                      file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    side = 8 * args.bottom_width
    lines = [
        f"Sampling, gf {args.gf}, {side}x{side}, latent {args.latent_dim}, random weights, "
        f"{args.threads} CPU threads (TF {tf.__version__}, LiteRT); load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after.",
        "",
        "| generator | params | format | file MB | "
        + " | ".join(f"img/s @ batch {b}" for b in batch_sizes)
        + " | max abs diff vs SavedModel |",
        "|---|---:|---|---:|" + "---:|" * len(batch_sizes) + "---:|",
    ]
    for name, params, label, size, speeds, diff in rows:
        lines.append(
            f"| {name} | {params / 1e6:.2f}M | {label} | {size / 2**20:.1f} | "
            + " | ".join(f"{s:.1f}" for s in speeds)
            + f" | {'-' if label == 'SavedModel' else f'{diff:.2g}'} |"
        )
    table = "\n".join(lines)
    print(table)
    return table


if __name__ == "__main__":
    main()
