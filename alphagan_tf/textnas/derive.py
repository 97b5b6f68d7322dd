"""`python -m alphagan_tf.textnas.derive`: the command in alphagan_tf/cli/textnas_derive.py."""

from alphagan_tf.cli.textnas_derive import run

if __name__ == "__main__":
    run()
