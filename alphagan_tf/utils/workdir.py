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

import tensorflow as tf
from absl import logging

from alphagan_tf.utils import files, guards
from alphagan_tf.utils.typed_config import ConfigError, TypedConfig

CHECKPOINTS = "checkpoints"


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
                    subdir: str = CHECKPOINTS) -> tuple[tf.train.CheckpointManager, str | None]:
        """The run's CheckpointManager, after restoring its newest readable checkpoint.

        Args:
            checkpoint: what to save and restore.
            max_to_keep: checkpoints kept (>= 2 lets a corrupt newest one fall back).
            verify: called with (restore status, path); default: every existing object
                matched. Its AssertionError, and a ValueError of the restore (another
                run's structure or shapes), are not a damaged file: they are raised as a
                WorkdirError and nothing is set aside.
            subdir: the checkpoints' folder in the workdir.

        Returns:
            (manager, the restored checkpoint's path or None for a new run).

        Raises:
            WorkdirError: checkpoints exist but none can be read, or the newest readable
                one holds another structure.
        """
        directory = self.file(subdir)
        manager = tf.train.CheckpointManager(checkpoint, self.written(subdir), max_to_keep=max_to_keep)
        candidates = _saved_checkpoints(directory)
        unreadable = []
        for path in reversed(candidates):
            try:
                status = checkpoint.restore(path)
                (verify or (lambda s, p: _match_all(s)))(status, path)
            except (AssertionError, ValueError) as error:  # unmatched objects, other shapes
                raise WorkdirError(
                    f"--workdir={self.path}: {path} holds another model than this run builds "
                    f"({(str(error).splitlines() or [''])[0]}); use a new --workdir.") from None
            except (tf.errors.OpError, IndexError, KeyError) as error:  # damaged files
                message = (str(error).splitlines() or [type(error).__name__])[0]
                logging.warning("Checkpoint %s cannot be read (%s): set aside, trying an older one.",
                                path, message)
                if self.verbose:
                    print(f"warning: checkpoint {path} cannot be read ({message}); moved to "
                          f"{os.path.join(directory, 'unreadable')}, trying an older one.")
                unreadable.append(path)
                continue
            if unreadable and self.chief:  # the others leave the chief's files alone
                _set_aside(unreadable, os.path.join(directory, "unreadable"))
                kept = [c for c in candidates if c not in unreadable]
                tf.compat.v1.train.update_checkpoint_state(
                    directory, path, all_model_checkpoint_paths=kept)
                manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep)
            self.last_saved = path
            return manager, path
        if unreadable:
            if self.chief:
                _set_aside(unreadable, os.path.join(directory, "unreadable"))
            raise WorkdirError(
                f"--workdir={self.path}: none of its checkpoints can be read "
                f"({', '.join(unreadable)}; moved to {os.path.join(directory, 'unreadable')}). "
                "Rerun to start over, or use a new --workdir.")
        return manager, None

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
        self.last_saved = manager.save(checkpoint_number=number)
        return self.last_saved


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

    def number(prefix: str) -> int:
        tail = os.path.basename(prefix).rsplit("-", 1)[-1]
        return int(tail) if tail.isdigit() else -1

    return sorted(prefixes, key=number)


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
