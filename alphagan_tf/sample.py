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

from absl import app, flags

from alphagan_tf import flags as alphagan_flags

alphagan_flags.define_sample_flags()
FLAGS = flags.FLAGS
flags.adopt_module_key_flags(alphagan_flags)  # --help lists them


def sample_from_flags() -> str:
    """Writes the grid the flags describe; returns the PNG path."""
    from alphagan_tf.serving.samplers import load_generator, sample_images
    from alphagan_tf.utils.images import save_grid

    if not FLAGS.model:
        raise app.UsageError("--model is required: a .tflite file or a SavedModel folder.")
    if FLAGS.n < 1:
        raise app.UsageError(f"--n must be >= 1. Received: {FLAGS.n}")
    seed = FLAGS.seed if FLAGS["seed"].present else 0
    out = FLAGS.out if FLAGS["out"].present else "samples.png"
    batch_size = FLAGS.batch_size if FLAGS["batch_size"].present else 64
    num_threads = FLAGS.num_threads if FLAGS["num_threads"].present else None
    try:
        generator = load_generator(FLAGS.model, num_threads=num_threads)
    except FileNotFoundError as e:
        raise app.UsageError(f"--model: {e}") from None
    images = sample_images(generator, FLAGS.n, seed, batch_size=batch_size)
    return save_grid(images, out, columns=FLAGS.columns)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments. Received: {argv[1:]}")
    print(sample_from_flags())


def run():
    app.run(main)


if __name__ == "__main__":
    run()
