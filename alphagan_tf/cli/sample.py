r"""Write a grid of samples from an exported generator (SavedModel or TFLite).

    python -m alphagan_tf.sample --model=export/alphagan --n=64 --seed=0 --out=grid.png
    python -m alphagan_tf.sample --model=export/alphagan_tflite/generator_none.tflite \
        --n=64 --seed=0 --out=grid_tflite.png

--model is a .tflite file (run with LiteRT), a SavedModel version folder, or a model base
folder (its highest version). The latents are drawn OUTSIDE the model, the same way for
both formats (`alphagan_tf.serving.signatures.latents_for_seed`: stateless Philox, key
[seed, 0], the latents the SavedModel's `generate` signature uses), so one seed gives the
same grid from a SavedModel and from its TFLite conversion (up to the variant's parity:
identical pixels for float32 in practice, see tests/test_tflite.py).
"""

from __future__ import annotations

import os

from absl import app, flags

from alphagan_tf.cli import cli_errors
from alphagan_tf.cli import flags as alphagan_flags
from alphagan_tf.utils.typed_config import require, require_positive

alphagan_flags.define_sample_flags()
FLAGS = flags.FLAGS
flags.adopt_module_key_flags(alphagan_flags)  # --help lists them


def sample_from_flags() -> str:
    """Writes the grid the flags describe; returns the PNG path."""
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.serving.generator_guard import DEFAULT_MAX_BATCH
    from alphagan_tf.serving.samplers import ModelFileError, load_generator, sample_images
    from alphagan_tf.utils.images import save_grid

    if not FLAGS.model:
        raise app.UsageError("--model is required: a .tflite file or a SavedModel folder.")
    seed = FLAGS.seed if FLAGS["seed"].present else 0
    out = FLAGS.out if FLAGS["out"].present else "samples.png"
    batch_size = FLAGS.batch_size if FLAGS["batch_size"].present else 64
    num_threads = FLAGS.num_threads if FLAGS["num_threads"].present else None
    require_positive(FLAGS, "n")
    require(batch_size >= 1, "batch_size", batch_size, "must be an integer >= 1")
    require(FLAGS.columns is None or FLAGS.columns >= 1, "columns", FLAGS.columns,
            "must be an integer >= 1 (or unset: a square grid)")
    require(num_threads is None or num_threads >= 1, "num_threads", num_threads,
            "must be an integer >= 1 (or unset: LiteRT's default)")
    require(not os.path.isdir(out), "out", out, "must be a PNG file path, not a folder")
    max_batch = FLAGS.max_batch if FLAGS["max_batch"].present else DEFAULT_MAX_BATCH
    try:
        generator = load_generator(FLAGS.model, num_threads=num_threads, max_batch=max_batch)
    except (FileNotFoundError, ModelFileError) as e:
        raise app.UsageError(f"--model: {e}") from None
    if generator.max_batch is not None:  # None: a SavedModel without export_info.json
        require(min(FLAGS.n, batch_size) <= generator.max_batch, "batch_size", batch_size,
                f"must be <= {generator.max_batch}, the largest batch {FLAGS.model} accepts "
                "(--max_batch)")
    images = sample_images(generator, FLAGS.n, seed, batch_size=batch_size)
    return save_grid(images, out, columns=FLAGS.columns)


@cli_errors.command
def main(argv):
    print(sample_from_flags())


def run():
    cli_errors.run(main)


if __name__ == "__main__":
    run()
