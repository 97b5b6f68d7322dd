"""Every command of alphagan_tf, in one table.

Each command is a module with a `run()` (`cli_errors.run` of its `main`), started
three ways: `python -m MODULE`, its console script (`SCRIPT`, registered by
setup.py from this table) or `alphagan NAME` (`python -m alphagan_tf NAME`;
cli/alphagan.py). `alphagan` alone lists them. Every way starts through
`quiet.quiet_tensorflow()` (TensorFlow's start-up log hidden unless asked for).
This module imports nothing of the package: setup.py reads it without importing it.

Flags: every command defines only the flags it reads (an unknown flag, e.g.
one meant for another command, is an error before any work starts), so a
flagfile serves one command: `configs/demo.cfg` the search, `demo_train.cfg`
the retraining; `sst2.cfg` the TextNAS search, `train_sst2.cfg` its retraining.
Names are Keras' (`learning_rate`, `beta_1`, `beta_2`) prefixed by what they
tune (`arch_learning_rate`, `search_learning_rate`).
"""

from __future__ import annotations

import dataclasses


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
    Command("search", "alphagan_tf.cli.search", "AlphaGAN architecture search (writes genotype.json)"),
    Command("train", "alphagan_tf.cli.train", "retrain a genotype as a fixed generator"),
    Command("evaluate", "alphagan_tf.cli.evaluate", "IS / FID / KID of a checkpoint or SavedModel"),
    Command("export", "alphagan_tf.cli.export", "SavedModel (TF Serving) and TFLite of a generator"),
    Command("sample", "alphagan_tf.cli.sample", "an image grid from a checkpoint or export"),
    Command("genotype", "alphagan_tf.cli.genotype", "draw or print a genotype"),
    Command("convert", "alphagan_tf.cli.convert", "the authors' PyTorch checkpoint -> a training workdir"),
    Command("tune", "alphagan_tf.cli.tune", "KerasTuner searches over the same genotypes"),
    Command("tune-launch", "alphagan_tf.cli.tune_launch",
            "a distributed tune's chief and N workers on one machine"),
    Command("classifier", "alphagan_tf.cli.classifier",
            "train a feature classifier for offline FID/IS (any image .npz)"),
    Command("demo-classifier", "alphagan_tf.cli.demo_classifier",
            "the demo digits' feature classifier"),
    Command("inception", "alphagan_tf.cli.inception",
            "the FID Inception as a SavedModel, from its TorchScript weights"),
    Command("textnas-search", "alphagan_tf.cli.textnas_search", "TextNAS search on SST"),
    Command("textnas-train", "alphagan_tf.cli.textnas_train", "retrain a TextNAS architecture"),
    Command("textnas-derive", "alphagan_tf.cli.textnas_derive",
            "derive an architecture from a search's probabilities"),
    Command("textnas-export", "alphagan_tf.cli.textnas_export", "SavedModel / TFLite of a TextNAS model"),
)

# The short `python -m` paths kept for the commands the README starts that way: each is a
# three-line module that runs its command (alphagan_tf/search.py, alphagan_tf/textnas/search/__main__.py).
SHORT_MODULES: dict[str, str] = {
    **{f"alphagan_tf.{name}": f"alphagan_tf.cli.{name}"
       for name in ("search", "train", "evaluate", "export", "sample", "convert", "genotype", "tune")},
    **{f"alphagan_tf.textnas.{name}": f"alphagan_tf.cli.textnas_{name}"
       for name in ("search", "train", "derive", "export")},
}


def console_scripts() -> list[str]:
    """setup.py's console_scripts entries."""
    return [f"{c.script}={c.module}:run" for c in COMMANDS]


def find(name: str) -> Command:
    """The command called `name` (its NAME, console script, module or short module)."""
    name = SHORT_MODULES.get(name, name)
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
