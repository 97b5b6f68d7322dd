"""`python -m alphagan_tf.tune`: the command in alphagan_tf/cli/tune.py."""

from alphagan_tf.cli.tune import run

if __name__ == "__main__":
    run()
