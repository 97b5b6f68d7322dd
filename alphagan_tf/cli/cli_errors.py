"""One clean error line for every mistake a user can make.

Every command runs through this module: its `run()` is `run(main)` (TensorFlow's logs
quieted, then absl's app.run with a flag parser that reports a bad flag as one line) and
its `main` is decorated with `@command`. The errors that mean "your input cannot work"
(a flag that does not parse, a bad flag value, positional arguments, a missing dataset or
file, a workdir holding another run, a diverged run, sizes that run out of memory) print
one `error: ...` line on stderr and return exit status 2 (bad input or environment: disk,
memory, missing data), 1 (the run diverged) or 3 (a multi-worker run lost a worker: rerun
to resume), with no traceback and nothing written; an unexpected internal error still
shows its traceback.

A `ConfigError` raised by a typed config names its field, which is also the flag
that sets it, so the line reads `error: --gf: must be an integer >= 1. Received: 0`.
A flag absl cannot parse reads the same way:
`error: --n: invalid literal for int() with base 10: 'abc'. Received: abc`.
"""

from __future__ import annotations

import functools
import re
import sys
from typing import Callable

from absl import app, flags

from alphagan_tf.cli import quiet

BAD_INPUT = 2  # exit status of a user error
DIVERGED = 1  # exit status of a run stopped by its divergence guard
WORKER_LOST = 3  # exit status of a multi-worker run that lost a worker (rerun to resume)


# Where the user-error types are defined. Only modules already imported are consulted: an
# exception of a module never imported cannot have been raised, and the genotype CLI stays
# free of TensorFlow.
USER_ERRORS = {
    "alphagan_tf.utils.typed_config": ("ConfigError",),
    "alphagan_tf.data.sources": ("DataSourceError", "DatasetUnavailableError"),
    "alphagan_tf.gan.space.genotypes": ("GenotypeError",),
    "alphagan_tf.metrics.features": ("WeightsNotFoundError",),
    "alphagan_tf.utils.distribution": ("StrategyError",),
    "alphagan_tf.utils.workdir": ("WorkdirError",),
    "alphagan_tf.serving.samplers": ("ModelFileError",),
    "alphagan_tf.serving.generator_guard": ("GeneratorInputError",),
    "alphagan_tf.utils.json_input": ("JSONInputError",),
    "alphagan_tf.interop.checkpoint": ("CheckpointError", "TorchMissingError"),
    "alphagan_tf.tuner.objective": ("ObjectiveConfigError",),
    "alphagan_tf.tuner.cluster": ("ClusterError",),
}
# Out of memory: the sizes asked for do not fit this machine (the configs refuse what can
# never fit, gan/space/memory.py; what fits alone but not together still ends here).
OUT_OF_MEMORY_ERRORS = {"tensorflow.python.framework.errors_impl": ("ResourceExhaustedError",)}
DIVERGENCE_ERRORS = {"alphagan_tf.utils.guards": ("DivergenceError",)}
LOST_WORKER_ERRORS = {"alphagan_tf.utils.distribution": ("WorkerLostError",)}


def _loaded(table: dict[str, tuple[str, ...]]) -> tuple[type[BaseException], ...]:
    return tuple(getattr(sys.modules[module], name) for module, names in table.items()
                 if module in sys.modules for name in names)


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types that are the user's input, not a bug."""
    return (app.UsageError, FileNotFoundError, FileExistsError, NotADirectoryError,
            IsADirectoryError, PermissionError, MemoryError, *_loaded(USER_ERRORS),
            *_loaded(OUT_OF_MEMORY_ERRORS))


def error_line(error: BaseException) -> str:
    """The one line shown for a user error."""
    if isinstance(error, (MemoryError, *_loaded(OUT_OF_MEMORY_ERRORS))):
        return out_of_memory_line(error)
    message = str(error).strip() or type(error).__name__
    if isinstance(error, OSError) and error.filename and error.strerror:
        message = f"{error.strerror}: {error.filename!r}"
    key = getattr(error, "key", None)  # a ConfigError's field = its flag
    if isinstance(key, str) and message.startswith(f"{key}:"):
        message = f"--{message}"
    return "error: " + " ".join(message.split())


def out_of_memory_line(error: BaseException) -> str:
    """TensorFlow's multi-line OOM report (or numpy's MemoryError) -> one line and the remedy."""
    message = " ".join(str(error).split())
    match = re.search(r"OOM when allocating tensor with shape\[[^\]]*\] and type \w+", message)
    what = match.group(0) if match else (message or type(error).__name__)
    return f"error: out of memory ({what}): lower the model's sizes or the batch sizes"


def flag_error_line(error: flags.Error) -> str:
    """absl's "flag --NAME=VALUE: WHAT" -> "error: --NAME: WHAT. Received: VALUE"."""
    message = " ".join(str(error).split())
    match = re.fullmatch(r"flag --([\w.-]+)=(.*?): (.*)", message)
    if match:
        name, value, what = match.groups()
        return f"error: --{name}: {what.rstrip('.')}. Received: {value}"
    return f"error: {message}"


def report_errors(body: Callable[[], object]) -> int:
    """Runs `body`; returns its int status (else 0), or prints one error line and returns
    2 (bad input) / 1 (diverged) / 3 (a lost worker)."""
    try:
        status = body()
    except _loaded(DIVERGENCE_ERRORS) as error:
        print(error_line(error), file=sys.stderr)
        return DIVERGED
    except _loaded(LOST_WORKER_ERRORS) as error:
        print(error_line(error), file=sys.stderr)
        return WORKER_LOST
    except user_errors() as error:
        print(error_line(error), file=sys.stderr)
        return BAD_INPUT
    return status if isinstance(status, int) and not isinstance(status, bool) else 0


def command(main: Callable[[list[str]], object]) -> Callable[[list[str]], int]:
    """Decorates a command's `main(argv)`: positional arguments are refused, and the body runs
    through `report_errors`, so `main` returns the exit status (also when called in-process)."""

    @functools.wraps(main)
    def checked_main(argv: list[str]) -> int:
        def body():
            if len(argv) > 1:
                raise app.UsageError(f"unexpected arguments (flags take --name=value). "
                                     f"Received: {' '.join(argv[1:])}")
            return main(argv)

        return report_errors(body)

    return checked_main


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a flag it cannot parse reported as one line, exit 2."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        print(flag_error_line(error), file=sys.stderr)
        sys.exit(BAD_INPUT)


def run(main: Callable[[list[str]], int]) -> None:
    """A command's `run()`: TensorFlow's logs quieted (alphagan_tf/quiet.py; before the command
    imports TensorFlow), then absl's app.run of `main` with `parse_flags`."""
    quiet.quiet_tensorflow()
    list_flags_in_help(main.__module__)
    app.run(main, flags_parser=parse_flags)


def list_flags_in_help(module_name: str) -> None:
    """absl's --help lists the key flags of the module named sys.argv[0]: make the command
    module's its, also when a short `python -m` path, a console script or `alphagan` started it."""
    if module_name != "__main__" and sys.argv:
        for flag in flags.FLAGS.get_key_flags_for_module(module_name):
            flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
