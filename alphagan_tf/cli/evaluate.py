r"""Evaluate a trained or exported generator (IS, FID, KID), or precompute real statistics.

    python -m alphagan_tf.evaluate --checkpoint=TRAIN_WORKDIR --num_samples=50000
    python -m alphagan_tf.evaluate --saved_model=export/alphagan --real_stats=stats.npz \
        --num_samples=50000 --out=evaluation.json
    python -m alphagan_tf.evaluate --make_stats --dataset=stl10 --out=stl10_48.npz \
        --feature_extractor=inception --inception_path=DIR
    python -m alphagan_tf.evaluate --make_stats --dataset=npz:data.npz --image_size=32 \
        --feature_extractor=classifier:/path/to/classifier --out=stats.npz

Evaluation samples the generator (the EMA generator of a training workdir, or the
`serving_default` signature of an exported SavedModel) on seeded latents, --eval_batch_size
images at a time (never all --num_samples in memory), with a progress bar; prints IS, FID and
KID and writes them with what was evaluated to a JSON file (--out; default
<checkpoint>/evaluation_<which>.json, or ./evaluation.json for --saved_model).

The real statistics come from --real_stats (an .npz of --make_stats, or the field's standard
mu/sigma files: TTUR's fid_stats_cifar10_train.npz, pytorch-fid's and clean-fid's, accepted
with a warning that their extractor and preprocessing cannot be checked), else from the
training workdir's cache (real_stats_<extractor>.npz, written by train), else they are
computed from --dataset (for --checkpoint: the training dataset by default) and, for
--checkpoint, cached. A file made with another feature extractor or at another image size
than the generator's is an error naming both.

--make_stats writes the mean, covariance and a KID subset of the features of --dataset's
images with the configured feature extractor (--feature_extractor inception |
classifier:PATH) into --out, for --real_stats of later runs, with the extractor, image size,
image count and dataset it was made from. The images are resized to the size of the
generator it is for (--checkpoint / --saved_model), else to --image_size, else to the
dataset's protocol size (32 for cifar10, 48 for stl10).

Exit status 2, with what to do, when the Inception / classifier weights, the dataset, the
checkpoint or the statistics file are missing or do not fit.
"""

from __future__ import annotations

import os
import time

from absl import app, flags

from alphagan_tf.cli import cli_errors
from alphagan_tf.cli import flags as alphagan_flags
from alphagan_tf.utils.typed_config import require, require_positive

alphagan_flags.define_evaluate_flags()
FLAGS = flags.FLAGS
flags.adopt_module_key_flags(alphagan_flags)  # --help lists them


class _Generator:
    """A generator to evaluate: `generate(z)` -> images in [-1, 1], and what it is."""

    def __init__(self, generate, latent_dim: int, image_size: int, source: dict):
        self.generate = generate
        self.latent_dim = latent_dim
        self.image_size = image_size
        self.source = source


def _flag(name: str, default):
    """A flag another command's group may have defined with its own default."""
    return FLAGS[name].value if FLAGS[name].present else default


def _check_sources() -> None:
    """Usage errors of an evaluation before anything is loaded."""
    if bool(FLAGS.checkpoint) == bool(FLAGS.saved_model):
        raise app.UsageError(
            "Give exactly one of --checkpoint=TRAIN_WORKDIR or --saved_model=DIR. Received: "
            f"checkpoint={FLAGS.checkpoint!r}, saved_model={FLAGS.saved_model!r}"
        )
    if FLAGS.saved_model and not FLAGS.real_stats and not FLAGS["dataset"].present:
        raise app.UsageError(
            "--saved_model needs the real statistics: --real_stats=PATH.npz (make them with "
            "--make_stats) or --dataset=SPEC to compute them now."
        )
    require(FLAGS.num_samples >= 2, "num_samples", FLAGS.num_samples, "must be an integer >= 2")
    require_positive(FLAGS, "eval_batch_size")
    _check_out()


def _check_out() -> None:
    out = _flag("out", None)
    if out:
        require(not os.path.isdir(out), "out", out, "must be a file path, not a folder")


def generator_from_flags() -> _Generator:
    """--checkpoint (EMA weights of a training workdir) or --saved_model (serving_default)."""
    if FLAGS.checkpoint:
        # here, not at the top: the command's --help and import stay without TensorFlow
        import tensorflow as tf

        from alphagan_tf.gan.train.loop import load_trained_generator

        which = _flag("which", "latest")
        generator = load_trained_generator(FLAGS.checkpoint, which=which)
        latent_dim = int(generator.latent_dim)
        size = int(generator(tf.zeros([1, latent_dim]), training=False).shape[1])
        return _Generator(
            lambda z: generator(z, training=False), latent_dim, size,
            {"checkpoint": os.path.abspath(FLAGS.checkpoint), "which": which,
             "weights": "ema_generator"},
        )
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.serving.samplers import SavedModelGenerator

    model = SavedModelGenerator(FLAGS.saved_model)
    return _Generator(model, model.latent_dim, model.image_shape[0],
                      {"saved_model": os.path.abspath(model.path), "signature": "serving_default"})


def _feature_extractor():
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.metrics import generator_eval

    feature_fn = generator_eval.feature_extractor_from_spec(
        FLAGS.feature_extractor, FLAGS.inception_path
    )
    if feature_fn is None:
        raise app.UsageError(
            "--feature_extractor=none computes nothing here: use inception or "
            "classifier:/path/to/SavedModel."
        )
    return feature_fn


def _data_kwargs() -> dict:
    return dict(data_dir=FLAGS.data_dir, manual_dir=FLAGS.manual_dir, download=FLAGS.download)


def _dataset() -> str:
    """--dataset, or for --checkpoint without it the training workdir's dataset."""
    if FLAGS.checkpoint and not FLAGS["dataset"].present and os.path.exists(
        os.path.join(FLAGS.checkpoint, "train_config.json")
    ):
        # here, not at the top: the command's --help and import stay without TensorFlow
        from alphagan_tf.gan.train.config import read_train_config

        return read_train_config(FLAGS.checkpoint).data.dataset
    return FLAGS.dataset


def _make_stats_image_size(dataset: str, generator: _Generator | None) -> int:
    """The generator's size, else --image_size, else the dataset's protocol size."""
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.data import sources

    given = FLAGS.image_size
    if generator is not None:
        if given is not None and given != generator.image_size:
            raise app.UsageError(
                f"--image_size={given} but the generator to score makes "
                f"{generator.image_size}x{generator.image_size} images; drop --image_size "
                "(statistics are made at the generator's size)."
            )
        return generator.image_size
    if given is not None:
        require_positive(FLAGS, "image_size")
        return given
    size = sources.protocol_image_size(dataset)
    if size is None:
        raise app.UsageError(
            f"--make_stats: --dataset={dataset} has no protocol image size (cifar10: 32, "
            "stl10: 48); give --image_size=S, the side of the generator's images, or the "
            "generator itself (--checkpoint=WORKDIR or --saved_model=DIR)."
        )
    return size


def make_stats_from_flags() -> str:
    """--make_stats: real statistics of --dataset into --out; returns the path written."""
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.metrics import generator_eval

    out = _flag("out", None)
    if not out:
        raise app.UsageError("--make_stats needs --out=PATH.npz (where to write the statistics).")
    _check_out()
    if FLAGS.checkpoint and FLAGS.saved_model:
        raise app.UsageError(
            "Give at most one of --checkpoint and --saved_model (the generator the statistics "
            f"are for). Received: checkpoint={FLAGS.checkpoint!r}, saved_model={FLAGS.saved_model!r}"
        )
    feature_fn = _feature_extractor()
    generator = generator_from_flags() if FLAGS.checkpoint or FLAGS.saved_model else None
    dataset = _dataset()
    image_size = _make_stats_image_size(dataset, generator)
    stats = generator_eval.real_statistics(
        feature_fn, dataset=dataset, image_size=image_size,
        max_examples=FLAGS.max_examples, batch_size=FLAGS.eval_batch_size, **_data_kwargs(),
    )
    path = stats.save(out)
    print(f"Real statistics of {stats.count} images of {dataset} "
          f"({image_size}x{image_size}, features {feature_fn.name}, "
          f"dim {stats.mu.shape[0]}) written to {path}")
    return path


def real_stats_from_flags(feature_fn, generator: _Generator):
    """--real_stats, else the training workdir's cache, else computed from the dataset."""
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.metrics import generator_eval

    cache_path = None
    if FLAGS.checkpoint:
        cache_path = generator_eval.real_stats_cache_path(FLAGS.checkpoint, feature_fn)
    dataset = _dataset()
    return generator_eval.real_statistics(
        feature_fn, dataset=dataset, image_size=generator.image_size,
        stats_path=FLAGS.real_stats, cache_path=cache_path, max_examples=FLAGS.max_examples,
        batch_size=FLAGS.eval_batch_size, **_data_kwargs(),
    )


def evaluate_from_flags() -> dict:
    """Evaluates the generator the flags name; writes and returns the report."""
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.metrics import generator_eval
    from alphagan_tf.utils import files

    _check_sources()
    feature_fn = _feature_extractor()  # first: missing weights fail before anything slow
    generator = generator_from_flags()
    real_stats = real_stats_from_flags(feature_fn, generator)
    seed = _flag("seed", 0)
    started = time.time()
    metrics = generator_eval.evaluate_generator(
        generator.generate, feature_fn, real_stats, num_samples=FLAGS.num_samples,
        batch_size=FLAGS.eval_batch_size, latent_dim=generator.latent_dim, seed=seed,
    )
    report = {
        "metrics": metrics,
        "generator": generator.source,
        "image_size": generator.image_size,
        "feature_extractor": feature_fn.name,
        "real_stats": {"path": FLAGS.real_stats, "dataset": real_stats.dataset,
                       "count": real_stats.count},
        "num_samples": FLAGS.num_samples,
        "seed": seed,
        "seconds": round(time.time() - started, 2),
    }
    out = _flag("out", None) or (
        os.path.join(FLAGS.checkpoint, f"evaluation_{generator.source['which']}.json")
        if FLAGS.checkpoint else "evaluation.json"
    )
    files.write_json_atomic(out, report)
    print(format_metrics(metrics))
    print(f"written to {out}")
    return report


def format_metrics(metrics: dict) -> str:
    """The printed summary: IS mean +- std, FID, KID mean +- std (those present)."""
    lines = []
    if "inception_score_mean" in metrics:
        lines.append(f"IS  {metrics['inception_score_mean']:.4f} +- "
                     f"{metrics['inception_score_std']:.4f}")
    if "fid" in metrics:
        lines.append(f"FID {metrics['fid']:.4f}")
    if "kid_mean" in metrics:
        std = metrics.get("kid_std")
        lines.append(f"KID {metrics['kid_mean']:.6f}" + (f" +- {std:.6f}" if std is not None else ""))
    return "\n".join(lines) + f"\n({metrics['num_samples']} samples)"


@cli_errors.command
def main(argv):
    # A missing extractor (WeightsNotFoundError) or a statistics file that does not fit
    # (StatisticsError) is one line with what to do, the same words as every command's.
    if FLAGS.make_stats:
        make_stats_from_flags()
    else:
        evaluate_from_flags()


def run():
    cli_errors.run(main)


if __name__ == "__main__":
    run()
