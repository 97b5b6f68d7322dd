"""`python -m alphagan_tf.train`: the command in alphagan_tf/cli/train.py."""

from alphagan_tf.cli.train import run

if __name__ == "__main__":
    run()
