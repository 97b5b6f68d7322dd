"""One clean error line for every mistake a user can make.

The training commands (`search`, `train`, `textnas.search`, `textnas.train`) run
their body through `report_errors` (the others still raise absl's UsageError with
their own checks): the errors that mean "your input cannot work" (a bad flag value,
a missing dataset or file, a workdir holding another run, a diverged run) print one
`error: ...` line on stderr and return exit status 2 (bad input) or 1 (the run
diverged), with no traceback; an unexpected internal error still shows its traceback.

A `ConfigError` raised by a typed config names its field, which is also the flag
that sets it, so the line reads `error: --gf: must be an integer >= 1. Received: 0`.
"""

from __future__ import annotations

import sys
from typing import Callable


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types that are the user's input, not a bug (imported lazily)."""
    from alphagan_tf.data.sources import DataSourceError, DatasetUnavailableError
    from alphagan_tf.gan.genotypes import GenotypeError
    from alphagan_tf.metrics.features import WeightsNotFoundError
    from alphagan_tf.utils.distribution import StrategyError
    from alphagan_tf.utils.typed_config import ConfigError
    from alphagan_tf.utils.workdir import WorkdirError

    return (ConfigError, DataSourceError, DatasetUnavailableError, GenotypeError,
            WeightsNotFoundError, StrategyError, WorkdirError, FileNotFoundError,
            NotADirectoryError, IsADirectoryError, PermissionError)


def error_line(error: BaseException) -> str:
    """The one line shown for a user error."""
    from alphagan_tf.utils.typed_config import ConfigError

    message = str(error).strip() or type(error).__name__
    if isinstance(error, (FileNotFoundError, PermissionError, IsADirectoryError,
                          NotADirectoryError)) and error.filename and error.strerror:
        message = f"{error.strerror}: {error.filename!r}"
    if isinstance(error, ConfigError) and error.key and message.startswith(f"{error.key}:"):
        message = f"--{message}"
    return "error: " + " ".join(message.split("\n"))


def report_errors(body: Callable[[], object]) -> int:
    """Runs `body`; returns 0, or prints one error line and returns 2 (bad input) / 1 (diverged)."""
    from alphagan_tf.utils.guards import DivergenceError

    try:
        body()
    except DivergenceError as error:
        print(error_line(error), file=sys.stderr)
        return 1
    except user_errors() as error:
        print(error_line(error), file=sys.stderr)
        return 2
    return 0
