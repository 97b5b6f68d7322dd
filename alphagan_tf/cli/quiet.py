"""Quiet commands: the first lines a command prints are its own, not TensorFlow's start-up log.

Every command starts through `quiet_tensorflow()`: `cli_errors.run` (every command's `run()`,
so `python -m MODULE` and the console scripts), the `alphagan NAME` dispatcher before it imports
the command, and `quiet_if_command()` at the top of a command module that imports TensorFlow
when it is imported (metrics/inception.py). It must run before TensorFlow is first imported:
TensorFlow reads TF_CPP_MIN_LOG_LEVEL once, when its C++ library loads.

Unless the user asks, a command
- sets TF_CPP_MIN_LOG_LEVEL=2: TensorFlow's C++ INFO and WARNING lines are not written;
- filters its stderr at the file-descriptor level (a forked process reads a pipe that is the
  command's fd 2 and forwards every line but the `HARMLESS_LINES`: CUDA probing on a host without
  a GPU, grappler's remapper giving up on a graph, absl's notice ahead of the first C++ line);
  every other line, C++ errors and Python tracebacks included, is forwarded in order;
- shows the `tensorflow` logger's warnings only, and absl's INFO lines of alphagan_tf only
  (TensorFlow's "Sharding callback duration", tfds' "Load dataset info" are dropped).

The user asks by setting TF_CPP_MIN_LOG_LEVEL (or TF_CPP_MAX_VLOG_LEVEL, TF_CPP_VMODULE) in the
environment, which is then respected as given (no filter), or by raising absl's `--verbosity`
(`-v`) above its default (-1, WARNING): `--verbosity=0` (INFO) or more shows TensorFlow's C++
lines from INFO up (unless TF_CPP_MIN_LOG_LEVEL says otherwise) and every module's Python INFO.

The filter process ignores the terminal's signals (Ctrl-C reaches it too) and ends when every writer of the pipe has closed it, so what a command writes
just before it dies (an abort, os._exit, SIGKILL) still shows; at a normal exit the command waits
for it (at most `EXIT_WAIT_SECONDS`), so its last lines come before the shell's prompt. The
command's process id, exit status and signals are its own; child processes inherit the filtered
stderr and, through the environment, the quiet level.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import signal
import sys
import threading
import time
from typing import Iterable, Mapping, Sequence

from alphagan_tf.cli import commands

QUIET_LEVEL = "2"  # TF_CPP_MIN_LOG_LEVEL: errors and fatal errors only
# Set next to TF_CPP_MIN_LOG_LEVEL by a quieted command, so that a command it starts (tune-launch's
# workers) knows the level came from a command, not from the user.
QUIET_MARK = "ALPHAGAN_TF_QUIET_LOG_LEVEL"
EXIT_WAIT_SECONDS = 2.0  # the longest a command waits at exit for its filter to drain

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A C++ log line of TensorFlow 2.21 (absl): "E0000 00:00:1796684641.901580   23628 file.cc:52] ".
# Never F (fatal).
_CPP = rb"[IWE]\d{4} [\d:.]+\s+\d+ \S+:\d+\] "
ABSL_NOTICE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
HARMLESS_LINES = (
    # Once per TensorFlow library, ahead of its first C++ line.
    re.escape(ABSL_NOTICE),
    # CUDA probing on a host without a GPU driver (303: no libcuda), logged before
    # TF_CPP_MIN_LOG_LEVEL applies. On a host with a driver, cuInit's errors (no device visible,
    # a version mismatch) are real and show.
    _CPP + rb"Could not find cuda drivers on your machine, GPU will not be used\.",
    _CPP + rb"failed call to cuInit: .*UNKNOWN ERROR \(303\)",
    # Grappler: the remapper cannot rewrite a graph and leaves it as it was.
    _CPP + rb"remapper failed: INVALID_ARGUMENT: Mutation::Apply error: fanout '.*' exist for "
           rb"missing node '.*'\.?",
)
_HARMLESS = re.compile(b"|".join(b"(?:%s)" % pattern for pattern in HARMLESS_LINES))
# A line is held back (not yet forwarded) only while it can still become a harmless one.
_HARMLESS_START = re.compile(rb"[IWE]\d{0,4}|[IWE]\d{4} .*")
_MAX_HELD = 1 << 16

_quieted = False


def is_harmless(line: bytes) -> bool:
    """Whether a stderr line (without its newline) is one of `HARMLESS_LINES`."""
    return _HARMLESS.fullmatch(line.rstrip(b"\r")) is not None


def _may_become_harmless(start: bytes) -> bool:
    return ABSL_NOTICE.startswith(start) or _HARMLESS_START.fullmatch(start) is not None


class LineFilter:
    """Drops the harmless lines of a byte stream fed in arbitrary chunks.

    A line is forwarded as soon as it cannot be a harmless one: a prompt or a `\\r` progress bar
    without a newline passes at once; only the start of a line that looks like a C++ log line or
    absl's notice waits for its newline (at most 64 KiB).
    """

    def __init__(self) -> None:
        self._held = b""  # the start of a line that may still be dropped
        self._passing = False  # the current line's start was forwarded: forward the rest

    def feed(self, data: bytes) -> bytes:
        """The bytes of `data` (after what came before) to forward now."""
        data, self._held = self._held + data, b""
        out = []
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            if end < 0:  # an unfinished line
                rest = data[start:]
                if self._passing or len(rest) > _MAX_HELD or not _may_become_harmless(rest):
                    out.append(rest)
                    self._passing = True
                else:
                    self._held = rest
                break
            if self._passing or not is_harmless(data[start:end]):
                out.append(data[start:end + 1])
            self._passing = False
            start = end + 1
        return b"".join(out)

    def close(self) -> bytes:
        """An unfinished last line, unless harmless."""
        held, self._held = self._held, b""
        return b"" if not held or is_harmless(held) else held


def filter_lines(chunks: Iterable[bytes]) -> bytes:
    """All of a stream (given in chunks) without its harmless lines."""
    line_filter = LineFilter()
    return b"".join(line_filter.feed(chunk) for chunk in chunks) + line_filter.close()


def forward(source_fd: int, target_fd: int) -> None:
    """Copies `source_fd` to `target_fd` until end of file, without the harmless lines; stops when
    `target_fd` cannot be written (the writers then see a broken pipe, as they would have)."""
    line_filter = LineFilter()
    while True:
        data = os.read(source_fd, 1 << 16)
        out = line_filter.feed(data) if data else line_filter.close()
        if not _write_all(target_fd, out) or not data:
            return


def _write_all(fd: int, data: bytes) -> bool:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        return False
    return True


def requested_verbosity(argv: Sequence[str]) -> int | None:
    """The value of absl's `--verbosity` / `-v` in `argv` (a command line, program first) or in its
    flagfiles; None when it is not given (or does not parse: absl reports that later)."""
    # here, not at the top: the command's --help and import stay without TensorFlow
    from absl import flags

    args = list(argv[1:])
    try:
        args = flags.FLAGS.read_flags_from_files(args, force_gnu=False)
    except (flags.Error, OSError):
        pass  # a flagfile that cannot be read: absl's parse reports it
    value = None
    words = iter(args)
    for word in words:
        if word == "--":
            break
        match = re.fullmatch(r"--?(?:verbosity|v)(?:=(.*))?", word)
        if match:
            text = match.group(1) if match.group(1) is not None else next(words, "")
            try:
                value = int(text)  # the last one counts, as in absl
            except ValueError:
                pass
    return value


def user_sets_cpp_logs(environ: Mapping[str, str]) -> bool:
    """Whether the user set TensorFlow's C++ logging in `environ` (not a quieted command that
    started this one)."""
    if "TF_CPP_MAX_VLOG_LEVEL" in environ or "TF_CPP_VMODULE" in environ:
        return True
    level = environ.get("TF_CPP_MIN_LOG_LEVEL")
    return level is not None and level != environ.get(QUIET_MARK)


def quiet_tensorflow(argv: Sequence[str] | None = None) -> None:
    """Quiets TensorFlow's logs for a command started with `argv` (default sys.argv), unless the
    user asked for them (module docstring). Idempotent; call it before TensorFlow is imported."""
    global _quieted
    if _quieted:
        return
    _quieted = True
    verbosity = requested_verbosity(sys.argv if argv is None else argv)
    asked = verbosity is not None and verbosity >= 0  # absl's INFO (0) or DEBUG (1 and up)
    if not user_sets_cpp_logs(os.environ):
        if asked:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        else:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = os.environ[QUIET_MARK] = QUIET_LEVEL
            filter_stderr()
    if not asked:
        quiet_python_logs()


def quiet_python_logs() -> None:
    """The `tensorflow` logger shows warnings and errors; absl's handler drops the INFO (and
    DEBUG) records of every module outside alphagan_tf."""
    # here, not at the top: the command's --help and import stay without TensorFlow
    from absl import logging as absl_logging

    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    absl_logging.get_absl_handler().addFilter(own_info_only)


def own_info_only(record: logging.LogRecord) -> bool:
    """A logging filter: warnings and errors of anyone; INFO and DEBUG of alphagan_tf only."""
    return record.levelno >= logging.WARNING or os.path.abspath(record.pathname).startswith(
        _PACKAGE_DIR + os.sep)


def started_as_command() -> bool:
    """Whether this process is a command: `python -m MODULE` (or `-m alphagan_tf`) of the command
    table, a console script or `alphagan`."""
    modules = {c.module for c in commands.COMMANDS} | set(commands.SHORT_MODULES) | {"alphagan_tf"}
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name.removesuffix(".__main__") in modules:
        return True
    # While `python -m` imports the module's packages, __main__ is not the module yet.
    argv = list(getattr(sys, "orig_argv", ()))
    if "-m" in argv[:-1] and argv[argv.index("-m") + 1] in modules:
        return True
    script = re.sub(r"(-script\.pyw?|\.exe)$", "", os.path.basename(sys.argv[0] if sys.argv else ""))
    return script == "alphagan" or script in {c.script for c in commands.COMMANDS}


def quiet_if_command() -> None:
    """`quiet_tensorflow()` when this process is a command; for the top of a command module that
    imports TensorFlow when imported (its `run()` comes too late)."""
    if started_as_command():
        quiet_tensorflow()


def filter_stderr() -> None:
    """Routes fd 2 through a forked filter process (`forward`). Skipped where there is no fork or
    when other Python threads run (forking them is unsafe)."""
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return
    try:
        real_stderr = os.dup(2)
    except OSError:  # no stderr to filter
        return
    for stream in (sys.stdout, sys.stderr):
        _flush(stream)
    read_end, write_end = os.pipe()
    signals = [getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
               if hasattr(signal, name)]
    # Blocked across the fork: the filter ignores them before it can receive one.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for fd in (read_end, write_end, real_stderr):
            os.close(fd)
        return
    if pid == 0:
        _run_filter(read_end, write_end, signals, mask)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    atexit.register(_stop_filter, os.getpid(), pid, real_stderr)


def _run_filter(read_end: int, write_end: int, signals: list[int], mask) -> None:
    """The forked filter process: forwards the pipe to the real stderr, then exits."""
    try:
        for number in signals:
            signal.signal(number, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(write_end)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)  # holds neither the command's stdin nor its stdout
        os.dup2(null, 1)
        os.closerange(3, read_end)  # the command's files (its copy of stderr among them)
        os.closerange(read_end + 1, 1 << 16)
        forward(read_end, 2)
    finally:
        os._exit(0)


def _stop_filter(owner: int, pid: int, real_stderr: int) -> None:
    """At exit: fd 2 back to the real stderr, which closes this process's end of the pipe; then
    waits (bounded) until the filter has forwarded everything and ended."""
    if os.getpid() != owner:  # a forked child of the command exits
        return
    for stream in (sys.stdout, sys.stderr):
        _flush(stream)
    os.dup2(real_stderr, 2)
    os.close(real_stderr)
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            return
        time.sleep(0.002)


def _flush(stream) -> None:
    try:
        stream.flush()
    except (AttributeError, OSError, ValueError):
        pass
