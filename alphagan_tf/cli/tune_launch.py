"""`alphagan tune-launch`: a distributed tune's chief and N workers on this machine.

    python -m alphagan_tf.cli.tune_launch --workers=2 -- --flagfile=configs/tune_demo.cfg --max_trials=4

What it starts and its exit statuses: alphagan_tf/tuner/launch.py.
"""

from __future__ import annotations

from absl import flags

from alphagan_tf.cli import cli_errors
from alphagan_tf.tuner.launch import launch


def define_flags() -> None:
    flags.DEFINE_integer("workers", 2, "Worker processes (each runs trials).", lower_bound=1)
    flags.DEFINE_string("ip", "127.0.0.1", "Address the chief serves its oracle on.")
    flags.DEFINE_integer("port", 0, "Port of the chief's oracle (0: a free one, picked now).",
                         lower_bound=0)
    flags.DEFINE_string("logdir", "runs/tune_logs", "Where <id>.log of every process goes.")
    flags.DEFINE_float("grace_seconds", 10.0,
                       "How long a process has to exit after SIGTERM before SIGKILL.")



def main(argv) -> int:
    # Not cli_errors.command: the arguments after `--` are the tune command's, not refused.
    f = flags.FLAGS
    return cli_errors.report_errors(
        lambda: launch(argv[1:], f.workers, f.ip, f.port, f.logdir, f.grace_seconds))


def run() -> None:
    define_flags()
    cli_errors.run(main)


if __name__ == "__main__":
    run()
