r"""Export a fixed generator: a SavedModel version for TF Serving, or a TFLite file.

    python -m alphagan_tf.export --checkpoint=TRAIN_WORKDIR --export_dir=export/alphagan
    python -m alphagan_tf.export --checkpoint=TRAIN_WORKDIR --which=best --export_dir=export/alphagan
    python -m alphagan_tf.export --checkpoint=TRAIN_WORKDIR --format=tflite --quantize=float16 \
        --export_dir=export/alphagan_tflite
    python -m alphagan_tf.export --checkpoint=TRAIN_WORKDIR --serving_precision=bfloat16 \
        --export_dir=export/alphagan_bf16  # convs in bfloat16 inside; same float32/uint8 interface
    python -m alphagan_tf.export --genotype=alphaGAN_s --gf=16 --bottom_width=2 \
        --export_dir=/tmp/export/tiny      # random weights: tests and benchmarks

SavedModel: writes `<export_dir>/<N>/` with N = highest existing version + 1, atomically
(built in a hidden temporary folder, then renamed; a failure leaves earlier versions and no
partial version), with signatures `serving_default` (z -> images) and `generate`
(seed, count -> images), warmup requests and assets.extra/export_info.json. Prints the path.

TFLite: writes `<export_dir>/generator_<quantize>.tflite` (or --tflite_path): z in, float
images in [-1, 1] out; --quantize=none|float16|dynamic|int8 (int8: full-integer ops,
float32 input/output, calibrated on --calibration_samples latents).

The generator is the EMA generator of a training workdir (--checkpoint, --which), or a
randomly initialised one of --genotype with --gf/--latent_dim/--bottom_width/--seed.
"""

from __future__ import annotations

import os

from absl import app, flags

from alphagan_tf.cli import cli_errors
from alphagan_tf.cli import flags as alphagan_flags
from alphagan_tf.utils.typed_config import require, require_positive

alphagan_flags.define_export_flags()
FLAGS = flags.FLAGS
flags.adopt_module_key_flags(alphagan_flags)  # --help lists them


def generator_from_flags():
    """--checkpoint (EMA weights of a training workdir) or --genotype (random init).

    Returns:
        (generator, source info dict for export_info.json).
    """
    has_checkpoint = FLAGS["checkpoint"].present and FLAGS.checkpoint
    has_genotype = FLAGS["genotype"].present and FLAGS.genotype
    if bool(has_checkpoint) == bool(has_genotype):
        raise app.UsageError(
            "Give exactly one of --checkpoint=TRAIN_WORKDIR (trained EMA generator) or "
            "--genotype=NAME|PATH (random weights). Received: "
            f"checkpoint={FLAGS.checkpoint if has_checkpoint else None!r}, "
            f"genotype={FLAGS.genotype if has_genotype else None!r}"
        )
    if has_checkpoint:
        # here, not at the top: the command's --help and import stay without TensorFlow
        from alphagan_tf.gan.train.loop import load_trained_generator

        which = FLAGS.which if FLAGS["which"].present else "latest"
        try:
            generator = load_trained_generator(FLAGS.checkpoint, which=which)
        except FileNotFoundError as e:
            raise app.UsageError(f"--checkpoint: {e}") from None
        return generator, {"source": {"checkpoint": os.path.abspath(FLAGS.checkpoint),
                                      "which": which, "weights": "ema_generator"}}

    # here, not at the top: the command's --help and import stay without TensorFlow
    import keras

    from alphagan_tf.gan.space.generator import Generator
    from alphagan_tf.gan.space.genotypes import GenotypeError, load_genotype

    try:
        genotype = load_genotype(FLAGS.genotype)
    except (GenotypeError, FileNotFoundError) as e:
        raise app.UsageError(f"--genotype: {e}") from None
    size = alphagan_flags.generator_config_from_flags()  # --gf, --latent_dim, ... >= 1
    seed = FLAGS.seed if FLAGS["seed"].present else 0
    keras.utils.set_random_seed(seed)
    generator = Generator.from_genotype(
        genotype, gf=size.gf, latent_dim=size.latent_dim, bottom_width=size.bottom_width
    )
    return generator, {"source": {"genotype": FLAGS.genotype, "weights": f"random (seed {seed})"}}


def export_from_flags() -> str:
    """Runs the export the flags describe; returns the version folder or .tflite path."""
    if not FLAGS.export_dir and not (FLAGS.format == "tflite" and FLAGS.tflite_path):
        raise app.UsageError("--export_dir is required (e.g. export/alphagan).")
    require_positive(FLAGS, "max_batch", "calibration_samples")
    if FLAGS.format == "tflite" and FLAGS.serving_precision != "float32":
        raise app.UsageError(
            "--serving_precision is the SavedModel's: TFLite chooses its precision with "
            f"--quantize (none|float16|dynamic|int8). Received: --serving_precision="
            f"{FLAGS.serving_precision} with --format=tflite")
    if FLAGS.export_dir:
        # here, not at the top: the command's --help and import stay without TensorFlow
        from alphagan_tf.utils.workdir import check_writable_folder

        check_writable_folder(FLAGS.export_dir, flag="export_dir")
    if FLAGS.format == "tflite" and FLAGS.tflite_path:
        require(not os.path.isdir(FLAGS.tflite_path), "tflite_path", FLAGS.tflite_path,
                "must be a file path, not a folder")
    generator, info = generator_from_flags()
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.utils.guards import nonfinite_variables

    diverged = nonfinite_variables(generator.variables)
    if diverged:  # a diverged run's weights would serve black or NaN images
        raise app.UsageError(
            f"--checkpoint: the generator holds non-finite weights ({len(diverged)} variables, "
            f"e.g. {diverged[0]}); it diverged in training and is not exported.")
    if FLAGS.format == "savedmodel":
        # here, not at the top: the command's --help and import stay without TensorFlow
        from alphagan_tf.serving.savedmodel import export_saved_model

        if FLAGS.serving_precision != "float32":
            # here, not at the top: the command's --help and import stay without TensorFlow
            from alphagan_tf.utils import precision

            precision.warn_if_emulated(FLAGS.serving_precision, flag="serving_precision")
            generator = generator.in_precision(FLAGS.serving_precision)

        # here, not at the top: the command's --help and import stay without TensorFlow
        from alphagan_tf.serving.warmup import DEFAULT_WARMUP_BATCH_SIZES

        warmup_sizes = sorted({min(b, FLAGS.max_batch) for b in DEFAULT_WARMUP_BATCH_SIZES})
        path = export_saved_model(
            generator, FLAGS.export_dir, max_batch=FLAGS.max_batch,
            warmup_batch_sizes=warmup_sizes, extra_info=info,
        )
    else:
        # here, not at the top: the command's --help and import stay without TensorFlow
        from alphagan_tf.serving.tflite import convert_to_tflite, write_tflite

        path = FLAGS.tflite_path or os.path.join(
            FLAGS.export_dir, f"generator_{FLAGS.quantize}.tflite"
        )
        model = convert_to_tflite(
            generator, FLAGS.quantize, calibration_samples=FLAGS.calibration_samples
        )
        write_tflite(model, path)
    return path


@cli_errors.command
def main(argv):
    print(export_from_flags())


def run():
    cli_errors.run(main)


if __name__ == "__main__":
    run()
