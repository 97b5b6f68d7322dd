"""`python -m alphagan_tf.textnas.train`: the command in alphagan_tf/cli/textnas_train.py."""

from alphagan_tf.cli.textnas_train import run

run()
