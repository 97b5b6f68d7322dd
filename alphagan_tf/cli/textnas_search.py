"""TextNAS search on SST: `python -m alphagan_tf.textnas.search --flagfile=configs/sst2.cfg --workdir=DIR`.

Runs on one device (`--strategy` is textnas.train's).

`--algorithm` chooses how: darts (the softmax relaxation, our design), enas
(TextNAS's own: an LSTM controller trained by REINFORCE on shared weights) or
random_ws (the same shared-weight training on uniform samples: the control).
Writes DIR/architecture.json (plus checkpoints, TensorBoard scalars); rerunning
the same command resumes from the last checkpoint, or derives again when the
search is finished.
"""

from absl import app, flags

from alphagan_tf.cli import cli_errors, textnas_flags

FLAGS = flags.FLAGS
textnas_flags.define_search_flags()


@cli_errors.command
def main(argv):
    if not FLAGS.workdir:
        raise app.UsageError("--workdir is required.")
    # Here, not at the top: the command's --help and import stay without TensorFlow.
    from alphagan_tf.textnas.search import darts, enas, random_ws
    from alphagan_tf.textnas.train.classification import set_threads

    set_threads(FLAGS.num_threads)
    config = textnas_flags.search_config_from_flags()
    # The one place the algorithm is chosen.
    run_search = {"darts": darts.run_search, "enas": enas.run_enas_search,
                  "random_ws": random_ws.run_random_ws_search}[config.algorithm]
    run_search(config, FLAGS.workdir)


def run():
    cli_errors.run(main)


if __name__ == "__main__":
    run()
