"""`python -m alphagan_tf.convert`: the command in alphagan_tf/cli/convert.py."""

from alphagan_tf.cli.convert import run

if __name__ == "__main__":
    run()
