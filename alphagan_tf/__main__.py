"""`python -m alphagan_tf [COMMAND] [--flags]`: the command table (alphagan_tf/commands.py)."""

from alphagan_tf.commands import run

run()
