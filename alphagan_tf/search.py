"""`python -m alphagan_tf.search`: the command in alphagan_tf/cli/search.py."""

from alphagan_tf.cli.search import run

if __name__ == "__main__":
    run()
