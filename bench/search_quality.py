"""What the search is worth: retrain genotypes on several seeds, score them by standard FID/KID.

Every genotype of the comparison (the differentiable search's, random search with
weight sharing's, the published alphaGAN_l / alphaGAN_s and uniformly random ones)
is retrained with one recipe (a `python -m alphagan_tf.train` flagfile) on every
seed, and each retrained EMA generator is scored on the same latents by FID and
KID against the held-out test split and against the train split of an .npz
(x_train / x_test, uint8). Then per genotype: mean and sd over seeds, and a paired
comparison with a reference genotype (the same seed retrained both ways).

    python bench/search_quality.py --npz=../shared/data/cifar10_sample.npz \\
        --genotypes=search=runs/search_sample_cifar10/genotype.json,random_ws=runs/rws/genotype.json,alphaGAN_l,alphaGAN_s \\
        --random_genotypes=3 --seeds=0,1,2 --train_flagfile=configs/quality_train_cifar10.cfg \\
        --feature_extractor=inception --inception_path=runs/fid_inception --workdir=runs/search_quality

Resumable: each (genotype, seed) is its own train workdir under WORKDIR/runs/ with a
result.json once scored; rerunning the command skips what is done and resumes a
half-trained run from its checkpoint. Writes WORKDIR/summary.json, summary.md
(the tables) and quality.png (FID per genotype, seeds as points).

Never part of the test run's timings; nothing here asserts a figure.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

from alphagan_tf.utils import files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LATENT_SEED = 1234  # the same latents score every generator
METRICS = ("fid_test", "kid_test", "fid_train", "kid_train")


# --------------------------------------------------------------------------- genotypes


def random_genotype(seed: int):
    """A genotype with one op per edge drawn uniformly (numpy's PCG64 on `seed`)."""
    from alphagan_tf.gan.space import genotypes

    rng = np.random.default_rng(seed)
    ops = [str(rng.choice(genotypes.candidates_for(kind))) for _, kind in genotypes.EDGES]
    return genotypes.genotype_from_ops(ops)


def parse_genotypes(text: str) -> list[tuple[str, str]]:
    """'label=path_or_name,alphaGAN_l' -> [(label, path_or_name), ("alphaGAN_l", "alphaGAN_l")]."""
    entries = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        label, _, source = item.partition("=")
        entries.append((label, source or label) if source else (label, label))
    labels = [label for label, _ in entries]
    if len(set(labels)) != len(labels):
        raise ValueError(f"--genotypes: labels must be unique. Received: {labels}")
    return entries


def write_genotypes(workdir: str, named: list[tuple[str, str]], random_count: int,
                    random_seed: int) -> dict[str, str]:
    """Every genotype of the comparison as WORKDIR/genotypes/LABEL.json (label -> path).

    A file already there is kept, so a resumed bench retrains exactly what it
    started with.
    """
    from alphagan_tf.gan.space.genotypes import load_genotype

    folder = os.path.join(workdir, "genotypes")
    os.makedirs(folder, exist_ok=True)
    paths = {}
    wanted = [(label, lambda s=source: load_genotype(s)) for label, source in named]
    wanted += [(f"random_{i}", lambda i=i: random_genotype(random_seed + i))
               for i in range(random_count)]
    for label, make in wanted:
        path = os.path.join(folder, f"{label}.json")
        if not os.path.exists(path):
            make().save(path)
        paths[label] = path
    return paths


# --------------------------------------------------------------------------- statistics


def summarize(results: list[dict], metric: str) -> dict[str, dict]:
    """label -> {"n", "mean", "sd", "values": {seed: value}} of one metric."""
    table: dict[str, dict] = {}
    for result in results:
        entry = table.setdefault(result["label"], {"values": {}})
        entry["values"][int(result["seed"])] = float(result[metric])
    for entry in table.values():
        values = np.array(list(entry["values"].values()), dtype=np.float64)
        entry["n"] = int(values.size)
        entry["mean"] = float(values.mean())
        entry["sd"] = float(values.std(ddof=1)) if values.size > 1 else math.nan
    return table


def paired_difference(values: dict[int, float], reference: dict[int, float]) -> dict:
    """Per-seed differences values - reference on the seeds both have.

    Returns {"seeds", "differences", "mean", "sd", "t", "seeds_for_t2"}: t is the
    paired t statistic mean / (sd / sqrt(n)) (NaN below 2 seeds or when sd is 0);
    seeds_for_t2 = ceil((2 sd / mean)^2) (at least 2), the seeds at which the same
    mean and sd would give |t| = 2 (a rough two-sided 5-10% level at these sample sizes).
    """
    seeds = sorted(set(values) & set(reference))
    differences = np.array([values[s] - reference[s] for s in seeds], dtype=np.float64)
    n = differences.size
    mean = float(differences.mean()) if n else math.nan
    sd = float(differences.std(ddof=1)) if n > 1 else math.nan
    t = mean / (sd / math.sqrt(n)) if n > 1 and sd > 0 else math.nan
    # Seeds a paired comparison needs for |t| = 2 if the mean and sd stay as measured.
    seeds_needed = (max(2, math.ceil((2 * sd / abs(mean)) ** 2)) if n > 1 and mean != 0
                    else math.nan)
    return {"seeds": seeds, "differences": differences.tolist(), "mean": mean, "sd": sd, "t": t,
            "seeds_for_t2": seeds_needed}


def markdown_tables(results: list[dict], reference: str) -> str:
    """The summary tables: every metric's mean (sd) per genotype, then the paired FIDs."""
    labels = list(dict.fromkeys(r["label"] for r in results))
    tables = {metric: summarize(results, metric) for metric in METRICS}
    scale = {"fid_test": 1.0, "fid_train": 1.0, "kid_test": 1e3, "kid_train": 1e3}
    lines = ["| genotype | seeds | FID test | KID test x1e3 | FID train | KID train x1e3 |",
             "|---|---:|---:|---:|---:|---:|"]
    for label in labels:
        cells = []
        for metric in METRICS:
            entry = tables[metric][label]
            cells.append(f"{entry['mean'] * scale[metric]:.2f} ({entry['sd'] * scale[metric]:.2f})")
        lines.append(f"| {label} | {tables['fid_test'][label]['n']} | " + " | ".join(cells) + " |")
    if reference in tables["fid_test"]:
        seeds = sorted({int(r["seed"]) for r in results})
        lines += ["", f"Paired with `{reference}` (same seed): FID test of the genotype minus "
                  f"FID test of `{reference}`; t = mean / (sd / sqrt(n)); the last column: seeds "
                  "for |t| = 2 at the measured mean and sd.", "",
                  "| genotype | " + " | ".join(f"seed {s}" for s in seeds)
                  + " | mean | sd | t | seeds for abs(t)=2 |",
                  "|---|" + "---:|" * (len(seeds) + 4)]
        ref_values = tables["fid_test"][reference]["values"]
        for label in labels:
            if label == reference:
                continue
            values = tables["fid_test"][label]["values"]
            paired = paired_difference(values, ref_values)
            per_seed = [f"{values[s] - ref_values[s]:+.2f}" if s in values and s in ref_values
                        else "" for s in seeds]
            lines.append(f"| {label} | " + " | ".join(per_seed)
                         + f" | {paired['mean']:+.2f} | {paired['sd']:.2f} | {paired['t']:.2f}"
                         + f" | {paired['seeds_for_t2']:.0f} |")
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: str) -> None:
    """FID test per genotype: seeds as points, the mean as a bar."""
    from matplotlib.figure import Figure

    table = summarize(results, "fid_test")
    labels = list(table)
    figure = Figure(figsize=(1.2 * len(labels) + 2, 4))
    axes = figure.subplots()
    for i, label in enumerate(labels):
        values = list(table[label]["values"].values())
        axes.bar(i, table[label]["mean"], color="#c6dbef", width=0.6)
        axes.scatter([i] * len(values), values, color="#08519c", zorder=3, s=18)
    axes.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    axes.set_ylabel("FID (test split), lower is better")
    axes.set_title("Retrained genotypes: seeds as points, mean as bar")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


# --------------------------------------------------------------------------- real features


def load_npz_split(npz: str, split: str, limit: int | None) -> np.ndarray:
    with np.load(npz) as data:
        images = data[f"x_{split}"]
    return images[:limit] if limit else images


def feature_activations(feature_fn, images_or_sampler, count: int, batch_size: int,
                        label: str) -> np.ndarray:
    """[count, D] pool features of an image array or of sampler(n) batches."""
    import keras

    rows = []
    progbar = keras.utils.Progbar(count, unit_name="image")
    done = 0
    while done < count:
        n = min(batch_size, count - done)
        if callable(images_or_sampler):
            batch = images_or_sampler(n)
        else:
            batch = images_or_sampler[done:done + n]
        rows.append(np.asarray(feature_fn(batch)["pool"], dtype=np.float32))
        done += n
        progbar.update(done)
    print(f"  {label}: {count} images", flush=True)
    return np.concatenate(rows)


def real_activations(args, feature_fn, split: str, limit: int | None) -> np.ndarray:
    """Cached WORKDIR/real_{split}_{n}_{extractor}.npy features of the npz's split."""
    images = load_npz_split(args.npz, split, limit)
    path = os.path.join(args.workdir, f"real_{split}_{len(images)}_{feature_fn.name}.npy")
    if os.path.exists(path):
        return np.load(path)
    activations = feature_activations(feature_fn, images, len(images), args.batch_size,
                                      f"real {split}")
    np.save(path, activations)
    return activations


def score(generated: np.ndarray, real: np.ndarray) -> tuple[float, float]:
    from alphagan_tf.metrics.fid import frechet_distance_from_activations
    from alphagan_tf.metrics.kid import kernel_inception_distance_from_activations

    kid, _ = kernel_inception_distance_from_activations(real, generated)
    return frechet_distance_from_activations(real, generated), kid


# --------------------------------------------------------------------------- runs


def train_command(args, genotype_path: str, seed: int, run_dir: str) -> list[str]:
    return [sys.executable, "-m", "alphagan_tf.train", f"--flagfile={args.train_flagfile}",
            f"--genotype={genotype_path}", f"--seed={seed}", f"--workdir={run_dir}",
            "--feature_extractor=none", *args.train_flag]


def run_timed(command: list[str], log_path: str, threads: int, name: str) -> tuple[float, float]:
    """Runs `command` in ROOT (output appended to log_path); returns its wall and CPU seconds.

    threads > 0 sets TF's intra-op threads of the process (inter-op 1). A non-zero exit
    raises RuntimeError naming `name` and the log.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if threads:
        env["TF_NUM_INTRAOP_THREADS"] = str(threads)
        env["TF_NUM_INTEROP_THREADS"] = "1"
    start = time.time()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{name}: training failed (exit {code}); see {log_path}")
    return time.time() - start, usage.ru_utime + usage.ru_stime


def train(args, label: str, genotype_path: str, seed: int) -> dict:
    """Runs (or resumes) one retraining as a subprocess; returns its wall and CPU seconds."""
    run_dir = os.path.join(args.workdir, "runs", f"{label}_seed{seed}")
    os.makedirs(run_dir, exist_ok=True)
    timing_path = os.path.join(run_dir, "bench_timing.json")
    if (timing := read_timing(args, label, seed)) is not None:
        return timing
    wall_s, cpu_s = run_timed(train_command(args, genotype_path, seed, run_dir),
                              os.path.join(run_dir, "train.log"), args.threads_per_job,
                              f"{label} seed {seed}")
    timing = {"train_wall_s": wall_s, "train_cpu_s": cpu_s}
    files.write_json_atomic(timing_path, timing)
    return timing


def evaluate(args, feature_fn, real: dict, label: str, seed: int, timing: dict) -> dict:
    """Scores one trained run's EMA generator; caches result.json in its workdir."""
    from alphagan_tf.gan.train.loop import load_trained_generator
    from alphagan_tf.gan.train.config import read_train_config

    run_dir = os.path.join(args.workdir, "runs", f"{label}_seed{seed}")
    result_path = os.path.join(run_dir, "result.json")
    if os.path.exists(result_path):
        return read_result(args, label, seed)
    start = time.process_time(), time.time()
    generator = load_trained_generator(run_dir)
    latent_dim = read_train_config(run_dir).model.latent_dim
    rng = np.random.default_rng(LATENT_SEED)

    def sampler(n):
        z = rng.standard_normal((n, latent_dim)).astype(np.float32)
        return generator(z, training=False)

    generated = feature_activations(feature_fn, sampler, args.num_samples, args.batch_size,
                                    f"{label} seed {seed}")
    result = {"label": label, "seed": seed, "num_samples": args.num_samples, **timing}
    for split, activations in real.items():
        result[f"fid_{split}"], result[f"kid_{split}"] = score(generated, activations)
    result["eval_cpu_s"] = time.process_time() - start[0]
    result["eval_wall_s"] = time.time() - start[1]
    files.write_json_atomic(result_path, result)  # a second scorer never reads half a file
    return result


def read_timing(args, label: str, seed: int) -> dict | None:
    """The timing of a finished retraining (None while it is not finished)."""
    run_dir = os.path.join(args.workdir, "runs", f"{label}_seed{seed}")
    timing_path = os.path.join(run_dir, "bench_timing.json")
    if not (os.path.exists(os.path.join(run_dir, "train_summary.json"))
            and os.path.exists(timing_path)):
        return None
    with open(timing_path) as f:
        return json.load(f)


def read_result(args, label: str, seed: int) -> dict | None:
    path = os.path.join(args.workdir, "runs", f"{label}_seed{seed}", "result.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_summary(args, results: list[dict]) -> str:
    """summary.json, summary.md and quality.png of the runs scored so far; returns the tables."""
    tables = markdown_tables(results, args.reference)
    summary = {"args": vars(args), "results": results,
               "fid_test": summarize(results, "fid_test")}
    files.write_json_atomic(os.path.join(args.workdir, "summary.json"), summary)
    files.write_text_atomic(os.path.join(args.workdir, "summary.md"), tables)
    plot(results, os.path.join(args.workdir, "quality.png"))
    return tables


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--npz", required=True, help=".npz with x_train and x_test (uint8).")
    parser.add_argument("--genotypes", default="alphaGAN_l,alphaGAN_s",
                        help="label=path or a published name, comma-separated.")
    parser.add_argument("--random_genotypes", type=int, default=3,
                        help="uniformly random genotypes added as random_0, random_1, ...")
    parser.add_argument("--random_seed", type=int, default=100,
                        help="random_i is drawn with seed random_seed + i.")
    parser.add_argument("--seeds", default="0,1,2", help="retraining seeds, comma-separated.")
    parser.add_argument("--train_flagfile", required=True, help="the retraining recipe.")
    parser.add_argument("--train_flag", action="append", default=[],
                        help="an extra train flag (repeatable), e.g. --train_flag=--g_iterations=2.")
    parser.add_argument("--feature_extractor", default="inception",
                        help="inception (with --inception_path) or classifier:DIR.")
    parser.add_argument("--inception_path", default=None)
    parser.add_argument("--num_samples", type=int, default=1000,
                        help="generated images per run (the same latents for every run).")
    parser.add_argument("--test_real", type=int, default=0, help="test images used (0: all).")
    parser.add_argument("--train_real", type=int, default=2000, help="train images used (0: all).")
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--reference", default="search", help="label of the paired comparisons.")
    parser.add_argument("--jobs", type=int, default=1, help="retrainings run at once.")
    parser.add_argument("--threads_per_job", type=int, default=0,
                        help="TF intra-op threads of each retraining (0: TF's default).")
    parser.add_argument("--score_only", action="store_true",
                        help="only score finished, unscored retrainings (last first): a second "
                        "scorer beside a running bench when scoring is the bottleneck.")
    parser.add_argument("--summary_only", action="store_true",
                        help="only summarize the runs scored so far (no training, no scoring).")
    parser.add_argument("--workdir", required=True)
    args = parser.parse_args(argv)
    args.npz = os.path.abspath(args.npz)
    args.train_flagfile = os.path.abspath(args.train_flagfile)
    args.workdir = os.path.abspath(args.workdir)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    os.makedirs(args.workdir, exist_ok=True)

    from alphagan_tf.metrics.generator_eval import feature_extractor_from_spec

    genotype_paths = write_genotypes(args.workdir, parse_genotypes(args.genotypes),
                                     args.random_genotypes, args.random_seed)
    jobs = [(label, path, seed) for seed in seeds for label, path in genotype_paths.items()]
    if args.summary_only:
        results = [read_result(args, label, seed) for label, _, seed in jobs]
        results = [r for r in results if r is not None]
        print(f"{len(results)} of {len(jobs)} retrainings scored so far", flush=True)
        if results:
            print(write_summary(args, results), end="")
        return 0
    feature_fn = feature_extractor_from_spec(args.feature_extractor, args.inception_path)
    real = {"test": real_activations(args, feature_fn, "test", args.test_real or None),
            "train": real_activations(args, feature_fn, "train", args.train_real or None)}
    if args.score_only:
        # A second scorer beside a running bench: the trained, unscored runs, last first.
        for label, _, seed in reversed(jobs):
            timing = read_timing(args, label, seed)
            if timing is not None and read_result(args, label, seed) is None:
                result = evaluate(args, feature_fn, real, label, seed, timing)
                print(f"{label} seed {seed}: FID test {result['fid_test']:.2f}", flush=True)
        return 0
    print(f"{len(genotype_paths)} genotypes x {len(seeds)} seeds = {len(jobs)} retrainings "
          f"({args.jobs} at once); real features: test {len(real['test'])}, "
          f"train {len(real['train'])}", flush=True)
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(train, args, label, path, seed) for label, path, seed in jobs]
        # Score in job order as trainings finish (the extractor is used by this thread only).
        for (label, path, seed), future in zip(jobs, futures):
            timing = future.result()
            result = evaluate(args, feature_fn, real, label, seed, timing)
            results.append(result)
            print(f"[{len(results)}/{len(jobs)}] {label} seed {seed}: FID test "
                  f"{result['fid_test']:.2f}, KID test {result['kid_test']:.5f}, FID train "
                  f"{result['fid_train']:.2f} (train {result['train_cpu_s']:.0f} CPU-s)",
                  flush=True)
            tables = write_summary(args, results)  # the summary so far, after every run
    print(tables, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
