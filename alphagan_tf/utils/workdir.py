"""One run harness: the workdir every training loop (GAN search and retraining,
TextNAS search and training) writes into and resumes from.

    run = Workdir.open(path, config, "search_config.json", resumable=("epochs",))
    manager, restored = run.checkpoints(checkpoint, max_to_keep=3)  # newest readable, or None
    ...
    run.check(f"epoch {e}", {"d_loss": d, ...}, model.variables)  # DivergenceError
    run.write_json("history.json", history)
    run.save(manager, step)
    run.write_json("results.json", results)

What it guarantees:
- **Nothing written before the run has started well.** `open` only checks; the
  folder, the config JSON and any `pinned` files (e.g. the genotype being
  retrained) are written at the first `save` or `write_*`, after the data and the
  players were built. A run that fails on bad input leaves the workdir as it was.
- **No stale or contradictory files.** A rerun in a workdir that holds a
  checkpoint must have the stored config, except the `resumable` keys (schedule
  keys such as the number of epochs), or it is refused with a `WorkdirError`
  naming every differing key; the config file is then rewritten with the new
  schedule. Without a checkpoint the old files are simply replaced.
- **No non-finite checkpoint.** `check` (or `save` given values) checks losses and
  variables first and raises `guards.DivergenceError` naming the step and the last good checkpoint.
- **One writer per run.** In a multi-worker run only the chief writes the workdir
  (`chief=False` for the others): every worker restores the chief's checkpoints,
  and a non-chief worker's writes (its checkpoints, which TensorFlow's
  multi-worker rule has every worker save, summaries, files) go to a temporary
  folder that `close` (or the process's exit) deletes.
- **A corrupt checkpoint does not block the run.** `checkpoints` tries the newest
  checkpoint first; one that cannot be read is moved, untouched, to
  `checkpoints/unreadable/` (never deleted) with a warning, and the next older one
  is tried.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import tempfile
from typing import Any, Callable, Iterable, Mapping, Sequence

import keras
import tensorflow as tf
from absl import logging

from alphagan_tf.utils import files, guards
from alphagan_tf.utils.typed_config import ConfigError, TypedConfig

CHECKPOINTS = "checkpoints"
UNREADABLE = "unreadable"  # where checkpoints that cannot be read are set aside, untouched


class WorkdirError(RuntimeError):
    """The workdir cannot hold this run (a file, unwritable, or another run's checkpoint)."""


def _match_all(status) -> None:
    status.assert_existing_objects_matched()


class Workdir:
    """A run's folder; build it with `Workdir.open` (module docstring)."""

    def __init__(self, path: str, config: TypedConfig, config_name: str,
                 pinned: Mapping[str, str] | None = None, verbose: bool = True,
                 chief: bool = True):
        self.path = path
        self.chief = chief
        self._scratch: str | None = None
        self.config = config
        self.config_name = config_name
        self.pinned = dict(pinned or {})
        self.verbose = verbose
        self._started = False
        self._writer = None
        self.last_saved: str | None = None
        self.learning_rates: dict[str, tuple[Any, float]] = {}

    @classmethod
    def open(cls, path: str, config: TypedConfig, config_name: str,
             resumable: Sequence[str] = (), pinned: Mapping[str, str] | None = None,
             verbose: bool = True, chief: bool = True) -> "Workdir":
        """Checks that `path` can hold a run of `config`; writes nothing.

        Args:
            path: the workdir (created at the first write).
            config: the run's validated config.
            config_name: its file in the workdir (e.g. "search_config.json").
            resumable: dotted config keys a rerun may change (e.g. "epochs",
                "train.g_iterations"); any other difference with a checkpointed
                run's stored config is refused.
            pinned: {file name: text} written with the config and, when the workdir
                holds a checkpoint, required to equal what is there (e.g. the
                retrained genotype).
            verbose: print what a resume changes.
            chief: whether this process writes the workdir (False: a multi-worker run's
                other workers, whose writes go to a temporary folder).

        Raises:
            WorkdirError: `path` is a file, not writable, or holds a checkpointed
                run with another configuration.
        """
        check_writable_folder(path)
        run = cls(path, config, config_name, pinned, verbose, chief)
        if run.has_checkpoint():
            run._check_resumable(resumable)
        return run

    # --- files ---------------------------------------------------------------------------

    def file(self, *names: str) -> str:
        """A path in the workdir (to read; writes go through `written` and the write methods)."""
        return os.path.join(self.path, *names)

    @property
    def write_path(self) -> str:
        """Where this process writes: the workdir, or a non-chief worker's temporary folder."""
        if self.chief:
            return self.path
        if self._scratch is None:
            self._scratch = tempfile.mkdtemp(prefix="alphagan_worker_")
            atexit.register(shutil.rmtree, self._scratch, ignore_errors=True)
            if self.verbose:
                print(f"Not the chief: reading {self.path}, writing to {self._scratch} "
                      "(deleted at the end).")
        return self._scratch

    def written(self, *names: str) -> str:
        """The path this process writes `names` to (for a writer such as a CheckpointManager)."""
        return os.path.join(self.write_path, *names)

    def close(self) -> None:
        """Deletes a non-chief worker's temporary folder (a no-op for the chief)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
            self._started = False

    def has_checkpoint(self) -> bool:
        return bool(glob.glob(self.file(CHECKPOINTS, "ckpt-*.index"))) or bool(
            glob.glob(self.file(CHECKPOINTS, "ckpt-*.data-*")))

    def _check_resumable(self, resumable: Sequence[str]) -> None:
        config_path = self.file(self.config_name)
        try:
            stored = type(self.config).read(config_path, missing="")
        except FileNotFoundError:  # written by a version that kept no config file
            logging.warning("%s holds checkpoints but no %s: the settings cannot be compared; "
                            "the checkpoint's structure still is.", self.path, self.config_name)
            return
        except (ConfigError, ValueError) as error:
            raise WorkdirError(f"--workdir={self.path}: its {self.config_name} cannot be "
                               f"read ({error}); choose another --workdir.") from None
        changed = [key for key in stored.differences(self.config)
                   if not any(key == r or key.startswith(f"{r}.") for r in resumable)]
        for name, text in self.pinned.items():
            old = files.read_text(self.file(name))
            if old is not None and old.strip() != text.strip():
                changed.append(name)
        if changed:
            old, new = _flat(stored.to_dict()), _flat(self.config.to_dict())
            details = ", ".join(
                f"{key} {old.get(key)!r} -> {new.get(key)!r}" if key in new else key
                for key in changed)
            raise WorkdirError(
                f"--workdir={self.path} holds a checkpoint of a run with other settings "
                f"({details}); it cannot be resumed with these. Use a new --workdir, or the "
                f"stored settings ({config_path})."
                + (f" Settings a resume may change: {', '.join(resumable)}." if resumable else "")
            )

    def _start(self) -> None:
        """The first write: the folder, the config and the pinned files."""
        if self._started:
            return
        os.makedirs(self.write_path, exist_ok=True)
        files.write_json_atomic(self.written(self.config_name), self.config.to_dict())
        for name, text in self.pinned.items():
            files.write_text_atomic(self.written(name), text)
        self._started = True

    def write_json(self, name: str, data: Any) -> str:
        self._start()
        return files.write_json_atomic(self.written(name), data)

    def write_text(self, name: str, text: str) -> str:
        self._start()
        return files.write_text_atomic(self.written(name), text)

    def read_json(self, name: str, default: Any = None) -> Any:
        return files.read_json(self.file(name), default)

    def output(self, name: str) -> str:
        """A path for a writer that is not JSON/text (a PNG, weights): the workdir exists."""
        self._start()
        return self.written(name)

    @property
    def writer(self):
        """The run's TensorBoard writer (WORKDIR/tensorboard), created at first use."""
        if self._writer is None:
            self._start()
            self._writer = tf.summary.create_file_writer(self.written("tensorboard"))
        return self._writer

    # --- checkpoints ---------------------------------------------------------------------

    def checkpoints(self, checkpoint: tf.train.Checkpoint, max_to_keep: int,
                    verify: Callable[[Any, str], None] | None = None,
                    subdir: str = CHECKPOINTS,
                    learning_rates: Mapping[str, tuple[Any, float]] | None = None,
                    ) -> tuple[tf.train.CheckpointManager, str | None]:
        """The run's CheckpointManager, after restoring its newest readable checkpoint.

        Args:
            checkpoint: what to save and restore.
            max_to_keep: checkpoints kept (>= 2 lets a corrupt newest one fall back).
            verify: called with (restore status, path); default: every existing object
                matched. Its AssertionError, and a ValueError of the restore (another
                run's structure or shapes), are not a damaged file: they are raised as a
                WorkdirError and nothing is set aside.
            subdir: the checkpoints' folder in the workdir.
            learning_rates: {name: (optimizer, rate from the run's config)}. A checkpoint
                holds each optimizer's learning rate; after a restore the config's rate is
                put back in force (a rerun with a lower rate trains at the lower rate),
                with a line saying what changed. Rates of a schedule are left alone.

        Returns:
            (manager, the restored checkpoint's path or None for a new run).

        Raises:
            WorkdirError: checkpoints exist but none can be read (they are set aside and
                the state file emptied, so that a rerun starts over), or the newest
                readable one holds another structure.
        """
        directory = self.file(subdir)
        self.learning_rates = dict(learning_rates or {})
        unreadable_folder = os.path.join(directory, UNREADABLE)
        set_aside_before = _saved_checkpoints(unreadable_folder) if os.path.isdir(unreadable_folder) else []
        try:
            path, unreadable = restore_newest_readable(checkpoint, directory, verify, self.verbose)
        except CheckpointMismatchError as error:
            raise WorkdirError(f"--workdir={self.path}: {error}; use a new --workdir.") from None
        if unreadable and self.chief:  # the others leave the chief's files alone
            _set_aside(unreadable, unreadable_folder)
            kept = [c for c in _saved_checkpoints(directory)]
            _write_state(directory, kept)
        if path is None and unreadable:
            raise WorkdirError(
                f"--workdir={self.path}: none of its checkpoints can be read "
                f"({', '.join(unreadable)}; moved to {unreadable_folder}). "
                "Rerun the same command to start over (they stay in that folder), or use a "
                "new --workdir.")
        manager = tf.train.CheckpointManager(checkpoint, self.written(subdir), max_to_keep=max_to_keep)
        if path is None:
            if set_aside_before and self.verbose:
                print(f"Starting over: no readable checkpoint in {directory} "
                      f"({len(set_aside_before)} set aside in {unreadable_folder}).")
            return manager, None
        self.last_saved = path
        self._put_learning_rates_in_force(path)
        return manager, path

    def _put_learning_rates_in_force(self, restored: str) -> None:
        """Each optimizer's learning rate := the config's (a checkpoint restores its own)."""
        step = _checkpoint_number(restored)
        for name, (optimizer, rate) in self.learning_rates.items():
            variable = learning_rate_variable(optimizer)
            if variable is None:  # a schedule computes its rate from the config
                continue
            old = float(variable.numpy())
            variable.assign(rate)
            new = float(variable.numpy())
            if old != new:
                message = f"{name} learning rate changed from {old:.6g} to {new:.6g} at step {step}."
                logging.info(message)
                if self.verbose:
                    print(message)

    def write_learning_rates(self, step: int, others: Mapping[str, Any] | None = None) -> None:
        """TensorBoard: the learning rate in force of every optimizer of `checkpoints`'
        `learning_rates` and of `others` ({name: optimizer}), as learning_rate/NAME."""
        optimizers = {name: optimizer for name, (optimizer, _) in self.learning_rates.items()}
        optimizers.update(others or {})
        if not optimizers:
            return
        with self.writer.as_default(step=step):
            for name, optimizer in optimizers.items():
                tf.summary.scalar(f"learning_rate/{name}", current_learning_rate(optimizer))

    def check(self, where: str, values: Mapping[str, float] | None = None,
              variables: Iterable[tf.Variable] = ()) -> None:
        """`guards.check_finite`, naming this run's last good checkpoint."""
        guards.check_finite(where, values or {}, variables, self.last_saved)

    def save(self, manager: tf.train.CheckpointManager, number: int, where: str | None = None,
             values: Mapping[str, float] | None = None,
             variables: Iterable[tf.Variable] = ()) -> str:
        """Checks `values` and `variables` (if given), then saves checkpoint `number`.

        Raises:
            guards.DivergenceError: a non-finite value; nothing is saved.
        """
        if values or variables:
            self.check(where or f"step {number}", values, variables)
        self._start()
        try:
            saved = manager.save(checkpoint_number=number)
        except (OSError, tf.errors.OpError) as error:
            folder = manager.directory
            for temporary in glob.glob(os.path.join(folder, f"ckpt-{number}_temp*")):
                shutil.rmtree(temporary, ignore_errors=True)
            reason = (str(error).strip().splitlines() or [type(error).__name__])[-1]
            raise WorkdirError(
                f"Could not write checkpoint {number} to {folder} ({reason}): is the disk "
                f"holding it full or read-only? The last intact checkpoint is "
                f"{self.last_saved or 'none (this run saved none yet)'}; rerun to resume from it."
            ) from None
        self.last_saved = saved
        return self.last_saved


class CheckpointMismatchError(ValueError):
    """A checkpoint holds another structure than the objects restoring it (not a damaged file)."""


def restore_newest_readable(checkpoint: tf.train.Checkpoint, directory: str,
                            verify: Callable[[Any, str], None] | None = None,
                            verbose: bool = True) -> tuple[str | None, list[str]]:
    """Restores the newest checkpoint of `directory` that can be read, falling back to older ones.

    Used by every run (through `Workdir.checkpoints`, which also sets the damaged ones aside)
    and by the commands that only read a run (export, evaluate, sample), which move nothing.

    Returns:
        (the restored path or None, the damaged paths tried before it, newest first).

    Raises:
        CheckpointMismatchError: the newest readable checkpoint holds another structure.
    """
    unreadable = []
    for path in reversed(_saved_checkpoints(directory)):
        try:
            status = checkpoint.restore(path)
            (verify or (lambda s, p: _match_all(s)))(status, path)
        except (AssertionError, ValueError) as error:  # unmatched objects, other shapes
            raise CheckpointMismatchError(
                f"{path} holds another model than this run builds "
                f"({(str(error).splitlines() or [''])[0]})") from None
        except (tf.errors.OpError, IndexError, KeyError) as error:  # damaged files
            message = (str(error).splitlines() or [type(error).__name__])[0]
            logging.warning("Checkpoint %s cannot be read (%s): trying an older one.", path, message)
            if verbose:
                print(f"warning: checkpoint {path} cannot be read ({message}); trying an older one.")
            unreadable.append(path)
            continue
        return path, unreadable
    return None, unreadable


def learning_rate_variable(optimizer) -> tf.Variable | None:
    """The variable holding a Keras optimizer's learning rate (through a LossScaleOptimizer),
    or None when the rate comes from a schedule."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    rate = getattr(inner, "_learning_rate", None)
    return rate if isinstance(rate, (tf.Variable, keras.Variable)) else None


def current_learning_rate(optimizer) -> float:
    """The rate the optimizer's next step uses (a schedule's current value included)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return float(keras.ops.convert_to_numpy(inner.learning_rate))


def _checkpoint_number(prefix: str) -> int:
    tail = os.path.basename(prefix).rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def _write_state(directory: str, kept: Sequence[str]) -> None:
    """The state file (`checkpoint`) listing exactly `kept` (oldest first); removed if empty.

    It carries each checkpoint's time (its index file's) after the last preserved one, as a
    CheckpointManager writes it: a manager only rotates out the checkpoints whose recorded
    time is after that one, so without times the kept checkpoints would never be deleted.
    """
    state = os.path.join(directory, "checkpoint")
    if not kept:
        if os.path.exists(state):
            os.remove(state)
        return
    times = [max((os.path.getmtime(f) for f in glob.glob(f"{p}.*")), default=0.0) for p in kept]
    lines = [f'model_checkpoint_path: "{os.path.basename(kept[-1])}"']
    lines += [f'all_model_checkpoint_paths: "{os.path.basename(p)}"' for p in kept]
    lines += [f"all_model_checkpoint_timestamps: {t!r}" for t in times]
    lines.append(f"last_preserved_timestamp: {min(times) - 1.0!r}")
    files.write_text_atomic(state, "\n".join(lines) + "\n")


def _saved_checkpoints(directory: str) -> list[str]:
    """Every checkpoint prefix in `directory`, oldest first: those its state file lists and
    those on disk (a state file can be stale, lack timestamps, or be gone)."""
    state = tf.train.get_checkpoint_state(directory) if os.path.isdir(directory) else None
    listed = list(state.all_model_checkpoint_paths) if state else []
    if state and state.model_checkpoint_path:
        listed.append(state.model_checkpoint_path)
    on_disk = {name[: name.rindex(".data-")] if ".data-" in name else name[: -len(".index")]
               for name in glob.glob(os.path.join(directory, "ckpt-*.index"))
               + glob.glob(os.path.join(directory, "ckpt-*.data-*"))}
    prefixes = {os.path.join(directory, os.path.basename(p)) for p in listed} | on_disk

    existing = {p for p in prefixes if glob.glob(f"{p}.*")}  # a state file may list moved ones
    return sorted(existing, key=_checkpoint_number)


def check_writable_folder(path: str, flag: str = "workdir") -> None:
    """Raises WorkdirError unless `path` is a folder, or can be created, that we may write in.

    Args:
        flag: the flag named in the message (e.g. "export_dir").
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise WorkdirError(f"--{flag}={path} is a file, not a folder: choose another --{flag}.")
    parent = path if os.path.isdir(path) else _existing_parent(path)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise WorkdirError(f"--{flag}={path}: {parent} is not writable: choose another --{flag}.")


def _existing_parent(path: str) -> str:
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    return parent


def _flat(data: Mapping, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _set_aside(paths: Sequence[str], folder: str) -> None:
    """Moves every file of the checkpoints `paths` (prefixes) into `folder`, untouched."""
    os.makedirs(folder, exist_ok=True)
    for prefix in paths:
        for name in glob.glob(f"{prefix}.*"):
            shutil.move(name, os.path.join(folder, os.path.basename(name)))
