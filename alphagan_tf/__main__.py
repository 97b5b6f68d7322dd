"""`python -m alphagan_tf [COMMAND] [--flags]`: the command table (alphagan_tf/cli/commands.py)."""

from alphagan_tf.cli.alphagan import run

run()
