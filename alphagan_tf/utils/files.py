"""Writing results so that a kill at any moment leaves old files intact."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Iterator


def write_bytes_atomic(path: str, data: bytes) -> str:
    """Write `data` to `path` via a temporary file and an atomic rename.

    A failure (e.g. `path` is a folder) leaves `path` as it was and no temporary file.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.isfile(tmp):
            os.remove(tmp)
        raise
    return path


def write_text_atomic(path: str, text: str) -> str:
    """Write text to `path` via a temporary file and an atomic rename."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str, data: Any) -> str:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str, default: Any = None) -> Any:
    if not os.path.exists(path):
        return default
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_text(path: str, default: str | None = None) -> str | None:
    if not os.path.exists(path):
        return default
    with open(path, encoding="utf-8") as f:
        return f.read()


@contextlib.contextmanager
def exclusive_lock(path: str) -> Iterator[None]:
    """Holds an exclusive lock on the file `path` (created) for the `with` block.

    Processes of one machine that would each write the same result (e.g. the
    workers of a distributed tuning run preparing a shared cache) take turns;
    the later ones then find the result written. POSIX `flock`: advisory, one host.
    """
    # fcntl: POSIX only
    import fcntl

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
