"""Every ordinary mistake is one `error: ...` line, exit status 2, no traceback, and the
workdir exactly as it was (issue 19). The commands' `main` runs in-process on parsed flags."""

import json
import os

import numpy as np
import pytest
from absl import flags

from alphagan_tf import search, train

FLAGS = flags.FLAGS
TINY_SEARCH = ["--dataset=demo", "--bottom_width=1", "--gf=4", "--df=4", "--latent_dim=4",
               "--batch_size=4", "--epochs=1", "--inner_steps=1", "--worst_steps=1",
               "--outer_steps=1", "--n_critic=1"]
TINY_TRAIN = ["--dataset=demo", "--genotype=alphaGAN_s", "--bottom_width=1", "--gf=4", "--df=4",
              "--latent_dim=4", "--g_batch_size=4", "--d_batch_size=4", "--g_iterations=1",
              "--n_critic=1", "--feature_extractor=none"]


def _listing(path):
    if not os.path.exists(path):
        return None
    if os.path.isfile(path):
        return ("file", open(path, "rb").read())
    return sorted((os.path.relpath(os.path.join(d, f), path), os.path.getmtime(os.path.join(d, f)))
                  for d, _, names in os.walk(path) for f in names)


def _run(command, args, capsys):
    FLAGS.unparse_flags()
    try:
        FLAGS(["prog", *args])
        status = command.main(["prog"])
    finally:
        FLAGS.unparse_flags()
    err = capsys.readouterr().err
    return status, [line for line in err.splitlines() if line.strip()]


@pytest.fixture
def workdir(tmp_path):
    path = tmp_path / "run"
    path.mkdir()
    (path / "notes.txt").write_text("the user's own file")  # must stay untouched
    return str(path)


@pytest.fixture
def files(tmp_path):
    text = tmp_path / "text.npz"
    text.write_text("not an archive")
    few = tmp_path / "few.npz"
    np.savez(few, x_train=np.zeros((3, 8, 8, 3), np.uint8))
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    corrupt = tmp_path / "corrupt_folder"
    corrupt.mkdir()
    (corrupt / "a.png").write_bytes(b"not a png")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    return {"text": str(text), "few": str(few), "empty": str(empty), "corrupt": str(corrupt),
            "file": str(a_file), "dir": str(tmp_path)}


SEARCH_TRIALS = [
    ("--batch_size=0", "--batch_size: must be an integer >= 1. Received: 0"),
    ("--inner_steps=0", "--inner_steps: must be an integer >= 1"),
    ("--gf=0", "--gf: must be an integer >= 1. Received: 0"),
    ("--latent_dim=0", "--latent_dim: must be an integer >= 1"),
    ("--epochs=0", "--epochs: must be an integer >= 1"),
    ("--g_lr=-0.001", "--g_lr: must be a finite number > 0. Received: -0.001"),
    ("--arch_learning_rate=nan", "--arch_learning_rate: must be a finite number > 0. Received: nan"),
    ("--beta_2=1.5", "--beta_2: must be in [0, 1)"),
    ("--dataset=bogus", "--dataset: Unknown dataset spec"),
    ("--dataset=npz:/nonexistent.npz", "npz dataset file not found: '/nonexistent.npz'"),
    ("--dataset=npz:{text}", "as an .npz file"),
    ("--dataset=npz:{few}", "needs at least 2 * batch_size = 8 images. Received: 3 images"),
    ("--dataset=folder:{empty}", "No images"),
    ("--dataset=folder:{corrupt}", "Could not decode image"),
    ("--workdir={file}", "is a file, not a folder"),
]


@pytest.mark.parametrize("flag, message", SEARCH_TRIALS, ids=[t[0].split("=")[0] + "=" + t[0].split("=")[1][:12] for t in SEARCH_TRIALS])
def test_search_bad_input_is_one_error_line_and_nothing_written(flag, message, workdir, files, capsys):
    flag = flag.format(**files)
    target = flag.split("=", 1)[1] if flag.startswith("--workdir") else workdir
    before = _listing(target)
    status, lines = _run(search, [*TINY_SEARCH, f"--workdir={workdir}", flag], capsys)
    assert status == 2, lines
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in lines[0]
    assert _listing(target) == before


TRAIN_TRIALS = [
    ("--ema_decay=1.5", "--ema_decay: must be in [0, 1]. Received: 1.5"),
    ("--g_iterations=0", "--g_iterations: must be an integer >= 1"),
    ("--n_critic=0", "--n_critic: must be an integer >= 1"),
    ("--g_lr=nan", "--g_lr: must be a finite number > 0. Received: nan"),
    ("--d_lr=-1", "--d_lr: must be a finite number > 0"),
    ("--checkpoint_every=0", "--checkpoint_every: must be an integer >= 1"),
    ("--genotype={dir}", "not a folder (a search workdir holds genotype.json)"),
    ("--genotype=alphaGAN_x", "alphaGAN_x"),
]


@pytest.mark.parametrize("flag, message", TRAIN_TRIALS, ids=[t[0].split("=")[0] for t in TRAIN_TRIALS])
def test_train_bad_input_is_one_error_line_and_nothing_written(flag, message, workdir, files, capsys):
    before = _listing(workdir)
    status, lines = _run(train, [*TINY_TRAIN, f"--workdir={workdir}", flag.format(**files)], capsys)
    assert status == 2, lines
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert _listing(workdir) == before


def _checkpointed_workdir(workdir, argv):
    """A retraining workdir as a run with `argv` leaves it: its config, genotype, a checkpoint."""
    import tensorflow as tf

    from alphagan_tf.gan.genotypes import load_genotype

    FLAGS.unparse_flags()
    try:
        FLAGS(["prog", *argv])
        config = train.config_from_flags()
    finally:
        FLAGS.unparse_flags()
    with open(os.path.join(workdir, "train_config.json"), "w") as f:
        json.dump(config.to_dict(), f)
    with open(os.path.join(workdir, "genotype.json"), "w") as f:
        f.write(load_genotype(config.genotype).to_json())
    tf.train.Checkpoint(v=tf.Variable(1.0)).write(os.path.join(workdir, "checkpoints", "ckpt-1"))


def test_train_resumed_with_another_size_is_refused_naming_the_key(workdir, capsys):
    _checkpointed_workdir(workdir, [*TINY_TRAIN, f"--workdir={workdir}"])
    before = _listing(workdir)
    status, lines = _run(train, [*TINY_TRAIN, f"--workdir={workdir}", "--gf=8",
                                 "--genotype=alphaGAN_l", "--g_iterations=2"], capsys)
    assert status == 2 and len(lines) == 1, lines
    assert "model.gf 4 -> 8" in lines[0] and "genotype.json" in lines[0], lines
    assert "g_iterations" not in lines[0].split("Settings a resume may change")[0]  # resumable
    assert "new --workdir" in lines[0]
    assert _listing(workdir) == before


def test_a_diverged_retrain_stops_with_exit_1_and_saves_no_checkpoint(workdir, capsys):
    status, lines = _run(train, [*TINY_TRAIN, f"--workdir={workdir}", "--g_lr=1e30",
                                 "--d_lr=1e30", "--g_iterations=6", "--checkpoint_every=1"],
                         capsys)
    assert status == 1, lines
    assert len(lines) == 1 and lines[0].startswith("error: training diverged at G iteration"), lines
    import tensorflow as tf
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    if latest:  # the checkpoints saved before the divergence are finite
        reader = tf.train.load_checkpoint(latest)
        values = [reader.get_tensor(n) for n, d in reader.get_variable_to_dtype_map().items()
                  if d.is_floating]
        assert all(np.isfinite(v).all() for v in values)
