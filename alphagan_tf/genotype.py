"""`python -m alphagan_tf.genotype`: the command in alphagan_tf/cli/genotype.py."""

from alphagan_tf.cli.genotype import run

if __name__ == "__main__":
    run()
