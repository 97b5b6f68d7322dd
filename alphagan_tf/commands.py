"""Every command of alphagan_tf, in one table.

Each command is a module with a `run()` (`cli_errors.run` of its `main`), started
three ways: `python -m MODULE`, its console script (`SCRIPT`, registered by
setup.py from this table) or `alphagan NAME` (`python -m alphagan_tf NAME`).
`alphagan` alone lists them. Every way starts through `quiet.quiet_tensorflow()`
(TensorFlow's start-up log hidden unless asked for). This module imports nothing
heavy: setup.py reads it without importing the package.

Flags: every command defines only the flags it reads (an unknown flag, e.g.
one meant for another command, is an error before any work starts), so a
flagfile serves one command: `configs/demo.cfg` the search, `demo_train.cfg`
the retraining; `sst2.cfg` the TextNAS search, `train_sst2.cfg` its retraining.
Names are Keras' (`learning_rate`, `beta_1`, `beta_2`) prefixed by what they
tune (`arch_learning_rate`, `search_learning_rate`).
"""

from __future__ import annotations

import dataclasses
import importlib
import sys


@dataclasses.dataclass(frozen=True)
class Command:
    name: str  # `alphagan NAME`
    module: str  # `python -m MODULE`
    summary: str

    @property
    def script(self) -> str:
        """The console script's name."""
        return f"alphagan-{self.name}"


COMMANDS: tuple[Command, ...] = (
    Command("search", "alphagan_tf.search", "AlphaGAN architecture search (writes genotype.json)"),
    Command("train", "alphagan_tf.train", "retrain a genotype as a fixed generator"),
    Command("evaluate", "alphagan_tf.evaluate", "IS / FID / KID of a checkpoint or SavedModel"),
    Command("export", "alphagan_tf.export", "SavedModel (TF Serving) and TFLite of a generator"),
    Command("sample", "alphagan_tf.sample", "an image grid from a checkpoint or export"),
    Command("genotype", "alphagan_tf.genotype", "draw or print a genotype"),
    Command("convert", "alphagan_tf.convert", "the authors' PyTorch checkpoint -> a training workdir"),
    Command("tune", "alphagan_tf.tune", "KerasTuner searches over the same genotypes"),
    Command("tune-launch", "alphagan_tf.tuner.launch",
            "a distributed tune's chief and N workers on one machine"),
    Command("classifier", "alphagan_tf.metrics.classifier",
            "train a feature classifier for offline FID/IS (any image .npz)"),
    Command("demo-classifier", "alphagan_tf.tuner.demo_classifier",
            "the demo digits' feature classifier"),
    Command("inception", "alphagan_tf.metrics.inception",
            "the FID Inception as a SavedModel, from its TorchScript weights"),
    Command("textnas-search", "alphagan_tf.textnas.search", "TextNAS search on SST"),
    Command("textnas-train", "alphagan_tf.textnas.train", "retrain a TextNAS architecture"),
    Command("textnas-derive", "alphagan_tf.textnas.derive",
            "derive an architecture from a search's probabilities"),
    Command("textnas-export", "alphagan_tf.textnas.export", "SavedModel / TFLite of a TextNAS model"),
)


def console_scripts() -> list[str]:
    """setup.py's console_scripts entries."""
    return [f"{c.script}={c.module}:run" for c in COMMANDS]


def find(name: str) -> Command:
    """The command called `name` (its NAME, console script or module)."""
    for command in COMMANDS:
        if name in (command.name, command.script, command.module):
            return command
    raise KeyError(name)


def usage() -> str:
    width = max(len(c.name) for c in COMMANDS)
    lines = ["usage: alphagan COMMAND [--flags] (or alphagan-COMMAND, or python -m MODULE)", ""]
    lines += [f"  {c.name:<{width}}  {c.summary}  [{c.module}]" for c in COMMANDS]
    lines += ["", "alphagan COMMAND --help lists a command's flags."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`alphagan NAME [flags]`: runs the command NAME as if started as its own script."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(usage())
        return 0
    try:
        command = find(argv[1])
    except KeyError:
        print(f"error: unknown command {argv[1]!r} (the commands are listed below).\n\n{usage()}",
              file=sys.stderr)
        return 2
    sys.argv = [command.script, *argv[2:]]
    from alphagan_tf import quiet  # here: setup.py reads this module without the package

    quiet.quiet_tensorflow()  # before the import: some commands import TensorFlow when imported
    importlib.import_module(command.module).run()
    return 0


def run() -> None:
    sys.exit(main())
