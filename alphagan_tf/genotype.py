r"""Draw or print an AlphaGAN genotype.

    python -m alphagan_tf.genotype --genotype=alphaGAN_l --out=arch.png
    python -m alphagan_tf.genotype --genotype=runs/search/genotype.json --print

--genotype takes a preset name (alphaGAN_l, alphaGAN_s) or a genotype JSON file
(format in alphagan_tf/gan/genotypes.py). --out writes a PNG of the three cells
with their chosen ops and the cross-cell skips; --print prints the genotype
table, its JSON and the size of the search space. No TensorFlow is imported.

This is a standalone tool: its flags are defined here, not in
alphagan_tf/flags.py, so do not import this module from another CLI; library
code draws with `alphagan_tf.gan.genotype_plot.draw_genotype`.
"""

from __future__ import annotations

from absl import app, flags

FLAGS = flags.FLAGS

flags.DEFINE_string("genotype", "alphaGAN_l", "Preset name (alphaGAN_l, alphaGAN_s) or genotype JSON path.")
flags.DEFINE_string("out", None, "Write a PNG drawing of the genotype to this path.")
flags.DEFINE_bool("print", False, "Print the genotype table, its JSON and the search-space size.")
flags.DEFINE_integer("bottom_width", 4, "Bottom width, for the feature-map sizes in the drawing (4: 32x32, 6: 48x48).")
flags.DEFINE_integer("gf", 256, "Generator channels, for the labels of the drawing.")
flags.DEFINE_string("title", None, "Title of the drawing (default: a summary line).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments. Received: {argv[1:]}")
    from alphagan_tf.gan.genotypes import GenotypeError, load_genotype, space_size

    try:
        genotype = load_genotype(FLAGS.genotype)
    except (GenotypeError, FileNotFoundError) as e:
        raise app.UsageError(f"--genotype: {e}") from None
    if not FLAGS.out and not FLAGS.print:
        raise app.UsageError("Nothing to do: give --out=PATH.png and/or --print.")
    if FLAGS.print:
        size = space_size()
        print(f"genotype: {FLAGS.genotype}")
        print(genotype.table())
        print(genotype.to_json())
        print(f"search space: {size:,} architectures ({size:.3g})")
    if FLAGS.out:
        from alphagan_tf.gan.genotype_plot import draw_genotype

        title = FLAGS.title or f"{FLAGS.genotype}: generator cells and cross-cell skips"
        path = draw_genotype(
            genotype, FLAGS.out, title=title, bottom_width=FLAGS.bottom_width, gf=FLAGS.gf
        )
        print(f"wrote {path}")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
