"""`python -m alphagan_tf.sample`: the command in alphagan_tf/cli/sample.py."""

from alphagan_tf.cli.sample import run

if __name__ == "__main__":
    run()
