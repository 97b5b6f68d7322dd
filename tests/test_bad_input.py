"""Every ordinary mistake is one `error: ...` line, exit status 2, no traceback, and the
workdir exactly as it was (issue 19). The commands' `main` runs in-process on parsed flags."""

import json
import os

import numpy as np
import pytest
from absl import flags

from alphagan_tf.cli import search, train

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
        status = command.main(FLAGS(["prog", *args]))  # positional arguments reach main
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

    from alphagan_tf.gan.space.genotypes import load_genotype

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


# --- every other command: (module, its flags, the message expected in the one error line) ---
# Output paths point into `workdir` (or `files`), whose listing must not change.
W = "{workdir}"
OTHER_TRIALS = [
    ("evaluate", ["--checkpoint=" + W, "--num_samples=0"], "--num_samples: must be an integer >= 2. Received: 0"),
    ("evaluate", ["--checkpoint=" + W, "--eval_batch_size=0"], "--eval_batch_size: must be an integer >= 1"),
    ("evaluate", ["--checkpoint=" + W, "--saved_model=" + W], "exactly one of --checkpoint"),
    ("evaluate", ["--checkpoint=" + W, "--feature_extractor=bogus"],
     "--feature_extractor: must be inception, classifier:/path/to/SavedModel or none. Received: 'bogus'"),
    ("evaluate", ["--checkpoint=" + W, "--feature_extractor=classifier:{empty}"],
     "No classifier SavedModel at"),
    ("evaluate", ["--checkpoint=" + W, "--out={dir}"], "--out: must be a file path, not a folder"),
    ("evaluate", ["--checkpoint=" + W, "stray"], "unexpected arguments"),
    ("export", ["--genotype=alphaGAN_s", "--gf=0", f"--export_dir={W}/x"], "--gf: must be an integer >= 1. Received: 0"),
    ("export", ["--genotype=alphaGAN_s", "--latent_dim=0", f"--export_dir={W}/x"], "--latent_dim: must be an integer >= 1"),
    ("export", ["--genotype=alphaGAN_s", "--max_batch=0", f"--export_dir={W}/x"], "--max_batch: must be an integer >= 1"),
    ("export", ["--genotype=alphaGAN_s", "--gf=4", "--latent_dim=4", "--bottom_width=1", "--max_batch=3000000000",
                f"--export_dir={W}/x"], "--max_batch: must be an integer in [1, 2147483647]. Received: 3000000000"),
    ("export", ["--genotype=alphaGAN_x", f"--export_dir={W}/x"], "--genotype: Genotype must be a preset name"),
    ("export", ["--genotype={dir}", f"--export_dir={W}/x"], "not a folder (a search workdir holds genotype.json)"),
    ("export", ["--checkpoint=" + W, f"--export_dir={W}/x"], "train_config.json is missing"),
    ("export", ["--genotype=alphaGAN_s", f"--export_dir={W}/notes.txt"], "is a file, not a folder"),
    ("sample", ["--model=" + W, f"--out={W}/g.png"], "--model: Expected a SavedModel folder"),
    ("sample", ["--model={text}", f"--out={W}/g.png"], "is not a generator's TFLite model"),
    ("sample", ["--model={text}", "--max_batch=0", f"--out={W}/g.png"],
     "--max_batch: must be an integer in [1, 2147483647]. Received: 0"),
    ("sample", ["--model=" + W, "--n=0", f"--out={W}/g.png"], "--n: must be an integer >= 1. Received: 0"),
    ("sample", ["--model=" + W, "--batch_size=0", f"--out={W}/g.png"], "--batch_size: must be an integer >= 1"),
    ("sample", ["--model=" + W, "--columns=0", f"--out={W}/g.png"], "--columns: must be an integer >= 1"),
    ("sample", ["--model=" + W, "--out=" + W], "--out: must be a PNG file path, not a folder"),
    ("tune", ["--workdir=" + W, "--max_trials=0"], "--max_trials: must be an integer >= 1. Received: 0"),
    ("tune", ["--workdir=" + W, "--hyperband_factor=1"], "--hyperband_factor: must be an integer >= 2"),
    ("tune", ["--workdir=" + W, "--g_iterations=0"], "--g_iterations: must be an integer >= 1"),
    ("tune", ["--workdir=" + W, "--feature_extractor=bogus"], "--feature_extractor: must be inception"),
    ("tune", ["--workdir=" + W, "--feature_extractor=none"], "The tuning objective is FID"),
    ("tune", [f"--workdir={W}/notes.txt"], "is a file, not a folder"),
    ("convert", ["--pytorch_checkpoint={text}", "--genotype=alphaGAN_s", f"--out={W}/c", "--bottom_width=0"],
     "--bottom_width: must be an integer >= 1. Received: 0"),
    ("convert", ["--pytorch_checkpoint={text}", "--genotype=alphaGAN_x", f"--out={W}/c"], "--genotype: Genotype must be"),
    ("textnas.search", ["--workdir=" + W, "--search_layers=0"], "--search_layers: must be an integer >= 1. Received: 0"),
    ("textnas.search", ["--workdir=" + W, "--search_units=0"], "--search_units: must be an integer >= 1. Received: 0"),
    ("textnas.search", ["--workdir=" + W, "--search_warmup_epochs=3"], "--search_warmup_epochs: must be in [0, epochs - 1]"),
    ("textnas.search", ["--workdir=" + W, "--held_out_fraction=1"], "--held_out_fraction: must be in (0, 1)"),
    ("textnas.search", ["--workdir=" + W, "--search_learning_rate=nan"], "--search_learning_rate: must be a finite number > 0"),
    ("textnas.search", ["--workdir=" + W, "--algorithm=enas", "--controller_skip_target=1.5"],
     "--controller_skip_target: must be in (0, 1). Received: 1.5"),
    ("textnas.search", ["--workdir=" + W, "--max_length=0"], "--max_length: must be an integer >= 1"),
    ("textnas.train", ["--workdir=" + W, "--architecture=textnas_paper", "--train_units=0"],
     "--train_units: must be an integer >= 1. Received: 0"),
    ("textnas.train", ["--workdir=" + W, "--architecture=textnas_paper", "--train_embedding_dropout=1.5"],
     "--train_embedding_dropout: must be in [0, 1). Received: 1.5"),
    ("textnas.train", ["--workdir=" + W, "--architecture=textnas_paper", "--train_label_smoothing=1"],
     "--train_label_smoothing: must be in [0, 1)"),
    ("textnas.train", ["--workdir=" + W, "--architecture=textnas_paper", "--train_patience=-1"],
     "--train_patience: must be a finite number >= 0"),
    ("textnas.train", ["--workdir={empty}/t", "--architecture=textnas_paper", "--export_dir=" + W],
     "--export_dir: must be new or empty"),
    ("textnas.derive", ["--workdir=" + W, f"--derived_path={W}/d.json"], "probabilities.json does not exist"),
    ("textnas.derive", ["--workdir=" + W, f"--derived_path={W}/d.json", "--search_max_skips=-1"],
     "--search_max_skips: must be an integer >= 0. Received: -1"),
    ("textnas.export", ["--train_dir=" + W, f"--export_dir={W}/e"], "model_config.json not found"),
    ("textnas.export", ["--train_dir={empty}", "--export_dir=" + W], "--export_dir: must be new or empty"),
]


def _trial_id(trial):
    module, args, _ = trial
    return module + ":" + next((a.split("=")[0] for a in reversed(args) if "=" in a), args[-1])


@pytest.mark.parametrize("module, args, message", OTHER_TRIALS, ids=[f"{_trial_id(t)}-{i}" for i, t in enumerate(OTHER_TRIALS)])
def test_every_command_reports_bad_input_in_one_line_and_writes_nothing(module, args, message, workdir, files, capsys):
    import importlib

    command = importlib.import_module(f"alphagan_tf.cli.{module.replace('.', '_')}")
    watched = {path: _listing(path) for path in (workdir, files["dir"])}
    status, lines = _run(command, [a.format(workdir=workdir, **files) for a in args], capsys)
    assert status == 2, lines
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in lines[0]
    assert {path: _listing(path) for path in watched} == watched


@pytest.mark.parametrize("argv, line", [
    (["--max_batch=abc"], "error: --max_batch: invalid literal for int() with base 10: 'abc'. Received: abc"),
    (["--format=onnx"], "error: --format: value should be one of <savedmodel|tflite>. Received: onnx"),
    (["--no_such_flag=1"], "error: Unknown command line flag 'no_such_flag'"),
    # train's --eval_samples below the Inception Score's 10 splits was a traceback, exit 1
    (["--eval_samples=5"], "error: --eval_samples: 5 is not integer >= 10. Received: 5"),
])
def test_a_flag_absl_cannot_parse_is_one_error_line_with_exit_2(argv, line, capsys):
    from alphagan_tf.cli import cli_errors, export  # noqa: F401  (defines --max_batch, --format)

    FLAGS.unparse_flags()
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli_errors.parse_flags(["prog", *argv])
    finally:
        FLAGS.unparse_flags()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [line]


@pytest.mark.parametrize("args, message", [
    (["--genotype={dir}", "--print"], "--genotype: Genotype must be a preset name"),
    (["--genotype=alphaGAN_s", "--out={dir}"], "--out: must be a PNG file path, not a folder"),
    (["--genotype=alphaGAN_s", "--out={dir}/g.png", "--gf=0"], "--gf: must be an integer >= 1. Received: 0"),
])
def test_genotype_cli_bad_input_is_one_error_line(args, message, files):
    # A subprocess: the genotype CLI defines its own --genotype/--out/--gf (no TensorFlow).
    import subprocess
    import sys

    before = _listing(files["dir"])
    done = subprocess.run([sys.executable, "-m", "alphagan_tf.genotype", *[a.format(**files) for a in args]],
                          capture_output=True, text=True, timeout=120,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert _listing(files["dir"]) == before


def test_a_folder_of_another_kind_is_one_error_line(workdir, tmp_path, capsys):
    """A classifier SavedModel given as a generator, a TextNAS training workdir as a GAN one."""
    import tensorflow as tf

    from alphagan_tf.cli import export, sample

    classifier = tf.Module()
    classifier.serve = tf.function(lambda sentences: {"probabilities": tf.zeros([1, 2])},
                                   input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    other_model = str(tmp_path / "classifier")
    tf.saved_model.save(classifier, other_model, signatures={"serving_default": classifier.serve})
    textnas_run = tmp_path / "textnas_train"
    textnas_run.mkdir()
    (textnas_run / "train_config.json").write_text(json.dumps({"sst_dir": "sst", "train_units": 64}))
    before = _listing(workdir)
    for command, args, message in [
        (sample, [f"--model={other_model}", f"--out={workdir}/g.png"],
         "is not an exported generator: its 'serving_default' takes ['sentences']"),
        (export, [f"--checkpoint={textnas_run}", f"--export_dir={workdir}/x"], "unknown TrainRunConfig key(s)"),
    ]:
        status, lines = _run(command, args, capsys)
        assert status == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
        assert message in lines[0], lines
    assert _listing(workdir) == before


# --- issue 35, finding 5: what gave a traceback and exit 1 ----------------------------------
# Sizes that can only exhaust memory are refused by the configs before anything is built, with
# the lower bound of what they need (gan/space/memory.py); the bytes are those bounds, which a
# machine with that much memory would accept (the trial is then skipped).
GB = 10**9
MEMORY_TRIALS = [
    ("search", [*TINY_SEARCH, "--gf=100000"], 360.1 * GB,
     "--gf: too large for this machine: a generator of gf=100000, latent_dim=4, bottom_width=1 "
     "needs at least 360.1 GB (weights and one image's activations, float32), and this machine has"),
    ("train", [*TINY_TRAIN, "--gf=256", "--bottom_width=4", "--latent_dim=1000000000"], 16.4e3 * GB,
     "--latent_dim: too large for this machine: a generator of gf=256, latent_dim=1000000000, "
     "bottom_width=4 needs at least 16.4 TB"),
    ("export", ["--genotype=alphaGAN_s", "--bottom_width=2000", f"--export_dir={W}/x"], 1.3e3 * GB,
     "--bottom_width: too large for this machine: a generator of gf=256, latent_dim=128, "
     "bottom_width=2000 needs at least 1.3 TB"),
    ("train", [*TINY_TRAIN, "--df=100000"], 2.6e3 * GB,
     "--df: too large for this machine: a discriminator of df=100000, bottom_width=1 needs at least"),
    ("train", [*TINY_TRAIN, "--g_batch_size=100000000"], 262.4 * GB,
     "--g_batch_size: too large for this machine: a training batch of 100000000 images needs at "
     "least 262.4 GB of activations even with the smallest networks"),
    ("search", [*TINY_SEARCH, "--batch_size=100000000"], 262.4 * GB,
     "--batch_size: too large for this machine: a training batch of 100000000 images"),
]


@pytest.mark.parametrize("module, args, need, message", MEMORY_TRIALS,
                         ids=[f"{t[0]}:{t[1][-1].split('=')[0]}" for t in MEMORY_TRIALS])
def test_sizes_that_can_only_exhaust_memory_are_one_error_line(module, args, need, message,
                                                                workdir, capsys):
    import importlib

    from alphagan_tf.gan.space import memory

    if (memory.machine_memory_bytes() or 0) >= need:
        pytest.skip(f"this machine has {memory.machine_memory_bytes()} bytes: the size fits")
    command = importlib.import_module(f"alphagan_tf.cli.{module.replace('.', '_')}")
    args = [a.format(workdir=workdir) for a in args]
    if module != "export":
        args.append(f"--workdir={workdir}")
    before = _listing(workdir)
    status, lines = _run(command, args, capsys)
    assert status == 2, lines
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert _listing(workdir) == before


@pytest.mark.parametrize("content, message", [
    (b'\xff{"cells": []}', "genotype is not UTF-8 text (byte 0xff at offset 0)"),
    (b"[" * 200_000, "genotype nests deeper than 4 levels of objects and arrays (more than the "
                     "parser's limit)"),
    (b'{"cells": [{"normal": [["conv_1x1"]]}]}', "genotype nests deeper than 4 levels of "
                                                  "objects and arrays. Received: 5 levels"),
], ids=["invalid UTF-8", "nested 200k deep", "nested 5 deep"])
def test_a_genotype_file_that_is_not_utf8_or_nests_too_deep_is_one_error_line(
        content, message, workdir, tmp_path, capsys):
    from alphagan_tf.cli import export

    path = tmp_path / "genotype.json"
    path.write_bytes(content)
    before = _listing(workdir)
    for command, args in [
        (train, [*TINY_TRAIN, f"--workdir={workdir}", f"--genotype={path}"]),
        (export, [f"--genotype={path}", f"--export_dir={workdir}/x"]),
    ]:
        status, lines = _run(command, args, capsys)
        assert status == 2, lines
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
        assert str(path) in lines[0]
    assert _listing(workdir) == before


def test_running_out_of_memory_is_one_error_line_with_exit_2(capsys):
    """What fits alone but not together still runs out of memory in TensorFlow: exit 2, one line."""
    import tensorflow as tf

    from alphagan_tf.cli import cli_errors

    def allocate():  # TensorFlow's CPU allocator refuses 4 TB at once (a real OOM error)
        return tf.zeros([10**6, 10**6])

    assert cli_errors.report_errors(allocate) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: out of memory (OOM when allocating tensor with shape[1000000,1000000] and type "
        "float): lower the model's sizes or the batch sizes"]

    def allocate_numpy():
        return np.zeros((10**6, 10**6))

    assert cli_errors.report_errors(allocate_numpy) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: out of memory (Unable to allocate 7.28 TiB for an array with shape (1000000, "
        "1000000) and data type float64): lower the model's sizes or the batch sizes"]


@pytest.mark.parametrize("gf, latent_dim, bottom_width, df", [(16, 16, 1, 16), (64, 128, 4, 128)])
def test_the_memory_bounds_never_exceed_the_real_networks(gf, latent_dim, bottom_width, df):
    """The refusals above are sound only if the bounds are below what the networks hold."""
    from alphagan_tf.gan.space import memory
    from alphagan_tf.gan.space.discriminator import Discriminator
    from alphagan_tf.gan.space.generator import Generator
    from alphagan_tf.gan.space.genotypes import PRESETS

    bound = memory.generator_weights(gf, latent_dim, bottom_width)
    counts = [Generator.from_genotype(genotype, gf=gf, latent_dim=latent_dim,
                                      bottom_width=bottom_width).count_params()
              for genotype in PRESETS.values()]
    # Measured: 0.08-0.56 of alphaGAN_l / _s (the bound takes every edge's cheapest op).
    assert all(0.05 * count <= bound <= count for count in counts), (bound, counts)
    discriminator = Discriminator(df=df)
    discriminator(np.zeros([1, 8 * bottom_width, 8 * bottom_width, 3], np.float32))
    count = sum(int(np.prod(v.shape)) for v in discriminator.trainable_variables)
    assert 0.95 * count <= memory.discriminator_weights(df) <= count, count  # measured 0.96-0.995
