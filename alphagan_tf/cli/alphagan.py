"""`alphagan NAME [flags]` (and `python -m alphagan_tf NAME`): runs a command of the table."""

from __future__ import annotations

import importlib
import sys

from alphagan_tf.cli import commands, quiet


def main(argv: list[str] | None = None) -> int:
    """`alphagan NAME [flags]`: runs the command NAME as if started as its own script."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(commands.usage())
        return 0
    try:
        command = commands.find(argv[1])
    except KeyError:
        print(f"error: unknown command {argv[1]!r} (the commands are listed below).\n\n"
              f"{commands.usage()}", file=sys.stderr)
        return 2
    sys.argv = [command.script, *argv[2:]]
    quiet.quiet_tensorflow()  # before the import: some commands import TensorFlow when imported
    importlib.import_module(command.module).run()
    return 0


def run() -> None:
    sys.exit(main())
