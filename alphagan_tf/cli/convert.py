r"""Bring a generator trained with the authors' PyTorch code to this project.

    python -m alphagan_tf.convert --pytorch_checkpoint=logs/.../Model/checkpoint.pth \
        --genotype=alphaGAN_l --bottom_width=4 --out=runs/authors_alphagan_l

The checkpoint `train_geno_gan.py` writes (generator, discriminator, EMA
generator, both Adam states) becomes a training workdir of ours, so that

    python -m alphagan_tf.export --checkpoint=runs/authors_alphagan_l --export_dir=export/alphagan
    python -m alphagan_tf.evaluate --checkpoint=runs/authors_alphagan_l ...
    python -m alphagan_tf.train --workdir=runs/authors_alphagan_l ...     (continues training)

work on it. gf, df and latent_dim are read off the tensors; --genotype and
--bottom_width must be those of the authors' run (a wrong one is an error naming
every tensor that does not fit). The file is read with torch.load(weights_only=True):
nothing in it is executed. Needs torch: pip install -e '.[torch]'.
"""

from __future__ import annotations

import json

from absl import app, flags

from alphagan_tf.cli import cli_errors
from alphagan_tf.cli import flags as alphagan_flags
from alphagan_tf.utils.typed_config import require_positive

alphagan_flags.define_convert_flags()
FLAGS = flags.FLAGS
flags.adopt_module_key_flags(alphagan_flags)


def convert_from_flags() -> dict:
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.gan.space.genotypes import GenotypeError, load_genotype
    from alphagan_tf.interop.checkpoint import CheckpointError, TorchMissingError
    from alphagan_tf.interop.import_checkpoint import import_training_checkpoint

    for name in ("pytorch_checkpoint", "genotype", "out"):
        if not FLAGS[name].value:
            raise app.UsageError(f"--{name} is required.")
    require_positive(FLAGS, "bottom_width")
    try:
        genotype = load_genotype(FLAGS.genotype)
    except (GenotypeError, FileNotFoundError) as e:
        raise app.UsageError(f"--genotype: {e}") from None
    try:
        return import_training_checkpoint(
            FLAGS.pytorch_checkpoint, genotype, FLAGS.bottom_width, FLAGS.out
        )
    except (CheckpointError, TorchMissingError) as e:
        raise app.UsageError(str(e)) from None


@cli_errors.command
def main(argv) -> None:
    summary = convert_from_flags()
    print(json.dumps(summary, indent=2))
    print(f"Wrote the training workdir {FLAGS.out}.")


def run() -> None:
    cli_errors.run(main)


if __name__ == "__main__":
    run()
