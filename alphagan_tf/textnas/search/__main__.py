"""`python -m alphagan_tf.textnas.search`: the command in alphagan_tf/cli/textnas_search.py."""

from alphagan_tf.cli.textnas_search import run

run()
