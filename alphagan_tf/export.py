"""`python -m alphagan_tf.export`: the command in alphagan_tf/cli/export.py."""

from alphagan_tf.cli.export import run

if __name__ == "__main__":
    run()
