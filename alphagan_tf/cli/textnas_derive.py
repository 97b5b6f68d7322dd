"""Derive a finished search again, with another skip cap (no TensorFlow needed).

    python -m alphagan_tf.textnas.derive --workdir=SEARCH_DIR --search_max_skips=2 \
        --derived_path=SEARCH_DIR/architecture_max2.json

Reads SEARCH_DIR/probabilities.json (written at the end of a search) and
applies the searcher's derivation (`architecture.derive_architecture`): argmax
op, argmax input, skip gates > 0.5, at most --search_max_skips per layer.
"""

import collections
import json
import os

from absl import app, flags

from alphagan_tf.cli import cli_errors, textnas_flags
from alphagan_tf.utils.typed_config import require

FLAGS = flags.FLAGS
textnas_flags.define_derive_flags()


@cli_errors.command
def main(argv):
    if not FLAGS.workdir or not FLAGS.derived_path:
        raise app.UsageError("--workdir (a finished search) and --derived_path are required.")
    require(FLAGS.search_max_skips >= 0, "search_max_skips", FLAGS.search_max_skips,
            "must be an integer >= 0")
    require(not os.path.isdir(FLAGS.derived_path), "derived_path", FLAGS.derived_path,
            "must be a JSON file path, not a folder")
    path = os.path.join(FLAGS.workdir, "probabilities.json")
    if not os.path.exists(path):
        raise app.UsageError(f"{path} does not exist: --workdir must be a finished search.")
    # here, not at the top: the command's --help and import stay without TensorFlow
    from alphagan_tf.textnas.space.architecture import derive_architecture

    try:
        with open(path, encoding="utf-8") as f:
            probabilities = json.load(f)
        architecture = derive_architecture(probabilities, max_skips=FLAGS.search_max_skips)
    except (ValueError, KeyError, TypeError, AttributeError) as error:  # JSONDecodeError included
        raise app.UsageError(f"{path} is not a search's probabilities.json: "
                             f"{type(error).__name__}: {error}") from None
    architecture.save(FLAGS.derived_path)
    counts = collections.Counter(architecture.ops)
    skips = sum(len(layer.skips) for layer in architecture.layers)
    print(architecture.describe())
    print(f"ops: {dict(counts.most_common())}; {skips} skips; wrote {FLAGS.derived_path}")


def run():
    cli_errors.run(main)


if __name__ == "__main__":
    run()
