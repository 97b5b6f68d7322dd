"""The run harness (utils/workdir.py): nothing written before a run starts, config checks on
resume, checkpoint fallback past a corrupt newest checkpoint, no non-finite checkpoint."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.utils.guards import DivergenceError
from alphagan_tf.utils.typed_config import TypedConfig
from alphagan_tf.utils.workdir import Workdir, WorkdirError


@dataclasses.dataclass(frozen=True)
class ToyConfig(TypedConfig):
    width: int = 4
    epochs: int = 2


def _open(path, config=ToyConfig(), **kwargs):
    return Workdir.open(str(path), config, "toy_config.json", resumable=("epochs",),
                        verbose=False, **kwargs)


def _listing(path):
    return sorted(os.path.relpath(os.path.join(d, f), path)
                  for d, _, names in os.walk(path) for f in names)


def _train(path, steps, config=ToyConfig(), keep=3, start_value=0.0):
    """A toy run: v += 1 per step, a checkpoint per step. Returns (run, v, restored)."""
    run = _open(path, config)
    v = tf.Variable(start_value, name="v")
    manager, restored = run.checkpoints(tf.train.Checkpoint(v=v), max_to_keep=keep)
    done = int(v.numpy())
    for step in range(done + 1, steps + 1):
        v.assign_add(1.0)
        run.save(manager, step, values={"loss": float(v.numpy())}, variables=[v])
    return run, v, restored


def test_open_writes_nothing_and_refuses_a_file_or_unwritable_path(tmp_path, monkeypatch):
    run = _open(tmp_path / "new")
    assert not os.path.exists(tmp_path / "new")  # created at the first write only
    run.write_json("results.json", {"a": 1})
    assert _listing(tmp_path / "new") == ["results.json", "toy_config.json"]
    assert json.load(open(tmp_path / "new" / "toy_config.json")) == {"width": 4, "epochs": 2}
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(WorkdirError, match="is a file"):
        _open(tmp_path / "a_file")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access  # root ignores permission bits: say "not writable" for this folder
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked)
                        else real_access(p, mode))
    with pytest.raises(WorkdirError, match=f"{locked} is not writable"):
        _open(locked / "run" / "deeper")  # the nearest existing parent is checked
    assert os.listdir(locked) == []


def test_a_resume_may_change_only_resumable_keys(tmp_path):
    _train(tmp_path, 2)
    before = _listing(tmp_path)
    with pytest.raises(WorkdirError) as error:
        _open(tmp_path, ToyConfig(width=8, epochs=5))
    assert "width 4 -> 8" in str(error.value) and "epochs" not in str(error.value).split("(")[1]
    assert "new --workdir" in str(error.value)
    assert _listing(tmp_path) == before
    _, v, restored = _train(tmp_path, 5, ToyConfig(epochs=5))  # more epochs: resumable
    assert restored.endswith("ckpt-2") and float(v.numpy()) == 5.0
    assert json.load(open(tmp_path / "toy_config.json"))["epochs"] == 5  # rewritten


def test_without_a_checkpoint_a_failed_run_s_files_are_replaced(tmp_path):
    _open(tmp_path, ToyConfig(width=99)).write_json("partial.json", {})  # failed before any checkpoint
    run = _open(tmp_path, ToyConfig(width=4))  # no refusal: nothing to resume
    run.write_json("results.json", {})
    assert json.load(open(tmp_path / "toy_config.json"))["width"] == 4


def test_pinned_files_must_match_a_checkpointed_run(tmp_path):
    run = _open(tmp_path, pinned={"genotype.json": "A"})
    v = tf.Variable(1.0)
    manager, _ = run.checkpoints(tf.train.Checkpoint(v=v), max_to_keep=2)
    run.save(manager, 1)
    assert (tmp_path / "genotype.json").read_text() == "A"
    with pytest.raises(WorkdirError, match="genotype.json"):
        _open(tmp_path, pinned={"genotype.json": "B"})
    _open(tmp_path, pinned={"genotype.json": "A\n"})  # same text


@pytest.mark.parametrize("damage", ["truncate_data", "delete_index"])
def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, damage):
    _train(tmp_path, 3)
    ckpt = tmp_path / "checkpoints"
    if damage == "truncate_data":
        data = next(p for p in ckpt.iterdir() if p.name.startswith("ckpt-3.data"))
        data.write_bytes(data.read_bytes()[:3])
    else:
        (ckpt / "ckpt-3.index").unlink()
    _, v, restored = _train(tmp_path, 5)
    assert restored.endswith("ckpt-2")
    assert float(v.numpy()) == 5.0  # 2 restored + 3 more steps
    kept_aside = sorted(p.name for p in (ckpt / "unreadable").iterdir())
    assert kept_aside and all(name.startswith("ckpt-3.") for name in kept_aside)
    assert tf.train.latest_checkpoint(str(ckpt)).endswith("ckpt-5")
    reader = tf.train.load_checkpoint(str(ckpt / "ckpt-3"))  # rewritten by the resumed run
    assert reader.get_tensor("v/.ATTRIBUTES/VARIABLE_VALUE") == 3.0


def test_no_readable_checkpoint_is_one_error_and_nothing_is_deleted(tmp_path):
    _train(tmp_path, 1)
    (tmp_path / "checkpoints" / "ckpt-1.index").write_bytes(b"garbage")
    with pytest.raises(WorkdirError, match="none of its checkpoints can be read"):
        _train(tmp_path, 2)
    assert (tmp_path / "checkpoints" / "unreadable" / "ckpt-1.index").read_bytes() == b"garbage"


def _state_paths(folder):
    state = tf.train.get_checkpoint_state(str(folder))
    return [os.path.basename(p) for p in state.all_model_checkpoint_paths] if state else []


def test_after_a_fallback_the_state_file_lists_what_remains_and_rotation_goes_on(tmp_path):
    _train(tmp_path, 3)
    ckpt = tmp_path / "checkpoints"
    (ckpt / "ckpt-3.index").write_bytes(b"garbage")
    _, v, restored = _train(tmp_path, 2 + 4)  # restores ckpt-2, then saves ckpt-3..6
    assert restored.endswith("ckpt-2") and float(v.numpy()) == 6.0
    assert _state_paths(ckpt) == ["ckpt-4", "ckpt-5", "ckpt-6"]  # keep 3: ckpt-1..3 rotated out
    on_disk = sorted(p.name.split(".")[0] for p in ckpt.glob("ckpt-*.index"))
    assert on_disk == ["ckpt-4", "ckpt-5", "ckpt-6"]


def test_when_no_checkpoint_can_be_read_a_rerun_starts_over(tmp_path, capsys):
    _train(tmp_path, 2)
    ckpt = tmp_path / "checkpoints"
    for index in ckpt.glob("ckpt-*.index"):
        index.write_bytes(b"garbage")
    with pytest.raises(WorkdirError, match="Rerun the same command to start over"):
        _train(tmp_path, 3)
    assert _state_paths(ckpt) == [] and not (ckpt / "checkpoint").exists()
    run = Workdir.open(str(tmp_path), ToyConfig(), "toy_config.json", resumable=("epochs",))
    v = tf.Variable(0.0, name="v")
    manager, restored = run.checkpoints(tf.train.Checkpoint(v=v), max_to_keep=3)
    assert restored is None and "Starting over: no readable checkpoint" in capsys.readouterr().out
    run.save(manager, 1)
    assert sorted(p.name for p in (ckpt / "unreadable").glob("*.index")) == ["ckpt-1.index", "ckpt-2.index"]
    assert _state_paths(ckpt) == ["ckpt-1"]


def test_a_resume_puts_the_config_learning_rate_in_force_and_says_so(tmp_path, capsys):
    import keras

    def run_with(rate, steps):
        run = Workdir.open(str(tmp_path), ToyConfig(), "toy_config.json", resumable=("epochs",))
        v = tf.Variable([1.0], name="v")
        adam, scaled = keras.optimizers.Adam(rate), keras.optimizers.LossScaleOptimizer(
            keras.optimizers.Adam(rate))
        adam.build([v]), scaled.build([v])
        decayed = keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(rate, 10, 0.5))
        decayed.build([v])
        checkpoint = tf.train.Checkpoint(v=v, adam=adam, scaled=scaled, decayed=decayed)
        manager, restored = run.checkpoints(checkpoint, 3, learning_rates={
            "adam": (adam, rate), "scaled": (scaled, rate), "decayed": (decayed, rate)})
        for step in range(1, steps + 1):
            run.save(manager, step)
        return adam, scaled

    run_with(5e-3, 2)
    capsys.readouterr()
    adam, scaled = run_with(1e-4, 0)
    assert float(adam.learning_rate) == pytest.approx(1e-4)
    assert float(scaled.inner_optimizer.learning_rate) == pytest.approx(1e-4)
    out = capsys.readouterr().out
    assert "adam learning rate changed from 0.005 to 0.0001 at step 2." in out
    assert "scaled learning rate changed from 0.005 to 0.0001 at step 2." in out
    assert "decayed" not in out  # a schedule is rebuilt from the config, nothing to put back


def test_a_failed_save_removes_its_temporary_folder_and_names_the_last_checkpoint(tmp_path):
    """A real write failure: the process may write files of at most 4 KiB (RLIMIT_FSIZE), so
    the checkpoint of a 64 KiB variable cannot be written, as on a full disk."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import dataclasses, resource, signal
        import tensorflow as tf
        from alphagan_tf.utils.typed_config import TypedConfig
        from alphagan_tf.utils.workdir import Workdir, WorkdirError

        @dataclasses.dataclass(frozen=True)
        class C(TypedConfig):
            epochs: int = 1

        run = Workdir.open({str(tmp_path)!r}, C(), "c.json", verbose=False)
        small, big = tf.Variable([1.0]), tf.Variable(tf.zeros([16384]))
        manager, _ = run.checkpoints(tf.train.Checkpoint(small=small), 3)
        run.save(manager, 1)
        big_manager = tf.train.CheckpointManager(tf.train.Checkpoint(big=big), manager.directory, 3)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            run.save(big_manager, 2)
        except WorkdirError as error:
            print("ERROR", error)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    message = out.stdout.split("ERROR ", 1)[1]
    assert message.startswith("Could not write checkpoint 2 to ")
    assert "disk" in message and message.rstrip().endswith("ckpt-1; rerun to resume from it.")
    leftovers = [p.name for p in (tmp_path / "checkpoints").iterdir()]
    assert not [name for name in leftovers if "_temp" in name], leftovers
    assert tf.train.load_checkpoint(str(tmp_path / "checkpoints" / "ckpt-1")).get_tensor(
        "small/.ATTRIBUTES/VARIABLE_VALUE").tolist() == [1.0]


def test_a_non_finite_value_saves_nothing_and_names_the_last_good_checkpoint(tmp_path):
    run, v, _ = _train(tmp_path, 2)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=v), str(tmp_path / "checkpoints"), 3)
    v.assign(np.nan)
    with pytest.raises(DivergenceError) as error:
        run.save(manager, 3, "epoch 3", values={"loss": 1.0}, variables=[v])
    message = str(error.value)
    assert "epoch 3" in message and "1 variable(s)" in message and "ckpt-2" in message
    with pytest.raises(DivergenceError, match="non-finite g_loss"):
        run.check("G iteration 7", {"g_loss": float("inf"), "d_loss": 0.5})
    assert not os.path.exists(tmp_path / "checkpoints" / "ckpt-3.index")


def test_a_pinned_discriminator_loss_warns_once_after_patience():
    from alphagan_tf.utils.guards import PinnedLossMonitor

    monitor = PinnedLossMonitor("d_loss", patience=4)
    healthy = [monitor.update(f"it {i}", v) for i, v in enumerate([1.3, 0.9, 2.0, 1.1, 0.0, 0.7])]
    assert healthy == [None] * 6  # visits to 0 or 2 that do not stay
    dead = [monitor.update(f"it {i}", 2.0 + 1e-5 * i) for i in range(6)]
    assert dead[:3] == [None] * 3 and "it 3: d_loss has stayed at 2 for 4" in dead[3]
    assert dead[4:] == [None, None]  # once
    fresh = PinnedLossMonitor(patience=3)
    mixed = [fresh.update("x", v) for v in (0.0, 2.0, 0.0, 2.0)]  # alternating is not pinned
    assert mixed == [None] * 4


def test_a_checkpoint_of_another_shape_is_refused_not_set_aside(tmp_path):
    _train(tmp_path, 2)
    run = _open(tmp_path)
    other = tf.Variable(tf.zeros([3]), name="v")
    with pytest.raises(WorkdirError, match="holds another model"):
        run.checkpoints(tf.train.Checkpoint(v=other), max_to_keep=3)
    assert not os.path.exists(tmp_path / "checkpoints" / "unreadable")
    assert os.path.exists(tmp_path / "checkpoints" / "ckpt-2.index")
