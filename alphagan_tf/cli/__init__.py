"""Every command of alphagan_tf: flags -> typed config -> one library call (commands.py lists them)."""

from alphagan_tf.cli import quiet

quiet.quiet_if_command()  # a command module may import TensorFlow when imported: quiet it first
