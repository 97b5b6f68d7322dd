"""`python -m alphagan_tf.evaluate`: the command in alphagan_tf/cli/evaluate.py."""

from alphagan_tf.cli.evaluate import run

if __name__ == "__main__":
    run()
