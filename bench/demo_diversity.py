r"""Digit classes and diversity of the demo's samples (search supernet and retrained G).

    python -m alphagan_tf.cli.demo_classifier --out=runs/demo_classifier     # < 1 min
    python bench/demo_diversity.py --classifier=runs/demo_classifier \
        --search=runs/demo_search --train=runs/demo_train

For each workdir given, rebuilds the generator from its last checkpoint, draws the 64
fixed latents its `samples.png` shows (search: the supernet, stateless seed
[seed, 1234]; retraining: the EMA generator, [seed, 4321], and the trained
generator it averages) and prints, for inference
mode (moving batch-norm statistics: what samples.png shows) and training mode (batch
statistics): the number of digit classes the demo classifier predicts among the 64
(all predictions, and those with softmax >= 0.9), the class histogram, and the
diversity ratio (mean pairwise L2 distance of the samples / that of 64 real demo
digits; `alphagan_tf.metrics.diversity`). --grid_dir writes the grids as PNGs.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from alphagan_tf.metrics import diversity  # noqa: E402
from alphagan_tf.utils import images  # noqa: E402

SAMPLES = 64
CONFIDENT = 0.9


def search_checkpoints(workdir: str) -> list[str]:
    """Every checkpoint a search workdir keeps (--keep_checkpoints), oldest first."""
    state = tf.train.get_checkpoint_state(os.path.join(workdir, "checkpoints"))
    return list(state.all_model_checkpoint_paths) if state else []


def search_generator(workdir: str, checkpoint: str | None = None):
    """The supernet of a search workdir at a checkpoint (default: the last), and its latents."""
    from alphagan_tf.gan.space.search_generator import SearchGenerator
    from alphagan_tf.gan.search.config import read_search_config

    config = read_search_config(workdir)
    latent_dim = config.model.latent_dim
    generator = SearchGenerator(
        gf=config.model.gf, latent_dim=latent_dim, bottom_width=config.model.bottom_width,
        fuse_convs=config.fuse_convs,
    )
    generator(tf.zeros([2, latent_dim]), training=False)
    checkpoint = checkpoint or tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    if checkpoint is None:
        raise FileNotFoundError(f"{workdir}: no checkpoint")
    tf.train.Checkpoint(generator=generator).restore(checkpoint).expect_partial()
    latents = tf.random.stateless_normal([SAMPLES, latent_dim], seed=[config.seed, 1234])
    return generator, latents


def trained_generator(workdir: str, live: bool = False):
    """The EMA generator (or with `live`, the trained one) of a training workdir, and latents."""
    from alphagan_tf.gan.train.loop import load_trained_generator
    from alphagan_tf.gan.train.config import read_train_config

    config = read_train_config(workdir)
    generator = load_trained_generator(workdir)
    if live:  # the same structure, restored from the checkpoint's `generator` instead
        checkpoint = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
        tf.train.Checkpoint(generator=generator).restore(checkpoint).expect_partial()
    latents = tf.random.stateless_normal(
        [SAMPLES, config.model.latent_dim], seed=[config.seed, 4321]
    )
    return generator, latents


def report(name: str, fake: np.ndarray, real: np.ndarray, classify) -> dict:
    logits = classify(fake)["logits"]
    classes = diversity.check_classes(logits)
    histogram = np.array(classes.histogram)
    confident = diversity.class_histogram(logits, min_confidence=CONFIDENT)
    check = diversity.check_diversity(fake, real)
    result = {
        "classes": classes.classes,
        "confident_classes": diversity.distinct_classes(confident),
        "confident_samples": int(confident.sum()),
        "histogram": histogram.tolist(),
        "ratio": check.ratio,
        "collapsed": check.collapsed,
    }
    print(
        f"{name:28s} classes {result['classes']:2d}/10  confident (p>={CONFIDENT}) "
        f"{result['confident_classes']:2d}/10 ({result['confident_samples']} of {len(fake)})  "
        f"histogram {result['histogram']}  diversity ratio {check.ratio:.3f}"
        + ("  COLLAPSED" if check.collapsed else "")
        + (f"  FEWER THAN {classes.minimum} CLASSES" if classes.collapsed else "")
    )
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classifier", required=True, help="demo_classifier SavedModel dir")
    parser.add_argument("--search", action="append", default=[], help="search workdir(s)")
    parser.add_argument("--train", action="append", default=[], help="training workdir(s)")
    parser.add_argument("--real_seed", type=int, default=0, help="which 64 real digits")
    parser.add_argument("--grid_dir", default=None, help="write the sample grids here")
    parser.add_argument(
        "--every_checkpoint", action="store_true",
        help="search workdirs: every kept checkpoint (one per epoch), not only the last",
    )
    args = parser.parse_args(argv)

    from alphagan_tf.data.pipeline import scale_images
    from alphagan_tf.data.sources import load_demo
    from alphagan_tf.metrics.features import ClassifierFeatures

    classify = ClassifierFeatures(args.classifier)
    digits = load_demo(16)
    pick = np.random.default_rng(args.real_seed).choice(len(digits), SAMPLES, replace=False)
    real = scale_images(digits[pick]).numpy()
    others = np.setdiff1d(np.arange(len(digits)), pick)
    other = scale_images(digits[np.random.default_rng(args.real_seed + 1).choice(
        others, SAMPLES, replace=False)]).numpy()
    report("real digits (another 64)", other, real, classify)

    runs = []
    for workdir in args.search:
        kept = search_checkpoints(workdir) if args.every_checkpoint else [None]
        runs += [(f"search {os.path.basename(c) if c else ''}".strip(), workdir,
                  lambda w, c=c: search_generator(w, c)) for c in kept]
    runs += [("train EMA", w, trained_generator) for w in args.train]
    runs += [("train live G", w, lambda w: trained_generator(w, live=True)) for w in args.train]
    for kind, workdir, load in runs:
        generator, latents = load(workdir)
        for mode, training in (("inference", False), ("training", True)):
            fake = np.asarray(generator(latents, training=training), np.float64)
            report(f"{kind} {mode}", fake, real, classify)
            if args.grid_dir:
                tag = kind.replace(" ", "_")
                name = f"{os.path.basename(os.path.normpath(workdir))}_{tag}_{mode}.png"
                images.save_grid(fake, os.path.join(args.grid_dir, name))
        print(f"  ({workdir})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
