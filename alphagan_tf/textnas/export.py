"""`python -m alphagan_tf.textnas.export`: the command in alphagan_tf/cli/textnas_export.py."""

from alphagan_tf.cli.textnas_export import run

if __name__ == "__main__":
    run()
