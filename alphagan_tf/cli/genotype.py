r"""Draw or print an AlphaGAN genotype.

    python -m alphagan_tf.genotype --genotype=alphaGAN_l --out=arch.png
    python -m alphagan_tf.genotype --genotype=runs/search/genotype.json --print

--genotype takes a preset name (alphaGAN_l, alphaGAN_s) or a genotype JSON file
(format in alphagan_tf/gan/space/genotypes.py). --out writes a PNG of the three cells
with their chosen ops and the cross-cell skips; --print prints the genotype
table, its JSON and the size of the search space. No TensorFlow is imported.

This is a standalone tool: its flags are defined here, not in
alphagan_tf/cli/flags.py, so do not import this module from another CLI; library
code draws with `alphagan_tf.gan.space.genotype_plot.draw_genotype`.
"""

from __future__ import annotations

import os

from absl import app, flags

from alphagan_tf.cli import cli_errors
from alphagan_tf.utils.typed_config import require, require_positive

FLAGS = flags.FLAGS

flags.DEFINE_string("genotype", "alphaGAN_l", "Preset name (alphaGAN_l, alphaGAN_s) or genotype JSON path.")
flags.DEFINE_string("out", None, "Write a PNG drawing of the genotype to this path.")
flags.DEFINE_bool("print", False, "Print the genotype table, its JSON and the search-space size.")
flags.DEFINE_integer("bottom_width", 4, "Bottom width, for the feature-map sizes in the drawing (4: 32x32, 6: 48x48).")
flags.DEFINE_integer("gf", 256, "Generator channels, for the labels of the drawing.")
flags.DEFINE_string("title", None, "Title of the drawing (default: a summary line).")


@cli_errors.command
def main(argv):
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.gan.space.genotypes import GenotypeError, load_genotype, space_size

    try:
        genotype = load_genotype(FLAGS.genotype)
    except (GenotypeError, FileNotFoundError) as e:
        raise app.UsageError(f"--genotype: {e}") from None
    if not FLAGS.out and not FLAGS.print:
        raise app.UsageError("Nothing to do: give --out=PATH.png and/or --print.")
    require_positive(FLAGS, "gf", "bottom_width")
    if FLAGS.out:
        require(not os.path.isdir(FLAGS.out), "out", FLAGS.out, "must be a PNG file path, not a folder")
    if FLAGS.print:
        size = space_size()
        print(f"genotype: {FLAGS.genotype}")
        print(genotype.table())
        print(genotype.to_json())
        print(f"search space: {size:,} architectures ({size:.3g})")
    if FLAGS.out:
        # here, not at the top: the command's --help and import stay without TensorFlow
        from alphagan_tf.gan.space.genotype_plot import draw_genotype

        title = FLAGS.title or f"{FLAGS.genotype}: generator cells and cross-cell skips"
        path = draw_genotype(
            genotype, FLAGS.out, title=title, bottom_width=FLAGS.bottom_width, gf=FLAGS.gf
        )
        print(f"wrote {path}")


def run():
    cli_errors.run(main)


if __name__ == "__main__":
    run()
