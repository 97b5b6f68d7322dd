"""The command lines: fast --help, light imports, absl's clear flag errors, configs parse."""

import glob
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("tensorflow_hub", "tensorflow_datasets", "keras_tuner", "tensorflow")


def run(*args, timeout=120):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_importing_the_package_and_the_search_cli_imports_nothing_heavy():
    code = ("import sys, alphagan_tf, alphagan_tf.search, alphagan_tf.train; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    result = run("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_search_help_lists_the_papers_flags_with_defaults():
    result = run("-m", "alphagan_tf.search", "--help")
    assert result.returncode in (0, 1), result.stderr  # absl's --help exits with 1
    for flag, default in (("inner_steps", "20"), ("worst_steps", "20"), ("outer_steps", "20"),
                          ("arch_learning_rate", "0.0003"), ("g_lr", "0.0002"), ("beta_2", "0.9"),
                          ("n_critic", "5"), ("gf", "256"), ("df", "128"), ("batch_size", "64")):
        assert re.search(rf"--{flag}: .*?\(default: '{re.escape(default)}'\)", result.stdout,
                         re.S), flag


def test_missing_flagfile_and_unknown_flag_fail_at_once():
    missing = run("-m", "alphagan_tf.search", "--flagfile=configs/no_such.cfg", "--workdir=/tmp/x")
    assert missing.returncode != 0
    assert "configs/no_such.cfg" in missing.stderr
    unknown = run("-m", "alphagan_tf.search", "--flagfile=configs/demo.cfg", "--inner_stepz=3")
    assert unknown.returncode != 0
    assert "Unknown command line flag 'inner_stepz'" in unknown.stderr
    negative = run("-m", "alphagan_tf.search", "--flagfile=configs/demo.cfg", "--workdir=/tmp/x",
                   "--cpu_devices=-1")
    assert negative.returncode == 2
    assert "error: --cpu_devices: -1 is not a non-negative integer. Received: -1" in negative.stderr


@pytest.mark.parametrize("first,second", [("alphagan_tf.cli.textnas_search", "alphagan_tf.cli.tune"),
                                          ("alphagan_tf.cli.tune", "alphagan_tf.cli.textnas_search")])
def test_the_gan_and_textnas_flags_load_into_one_process_in_either_order(first, second):
    # Both define --workdir, --seed, --arch_weight_decay, --checkpoint_every, --export_dir.
    code = (f"import {first}, {second}; from absl import flags; "
            "flags.FLAGS(['p', '--workdir=/tmp/w', '--seed=3', '--checkpoint_every=7']); "
            "print(flags.FLAGS.workdir, flags.FLAGS.seed, flags.FLAGS.checkpoint_every, "
            "flags.FLAGS.arch_weight_decay)")
    result = run("-c", code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["/tmp/w", "3", "7", "0.001"]


@pytest.mark.parametrize("config", sorted(glob.glob(os.path.join(ROOT, "configs", "*.cfg"))),
                         ids=os.path.basename)
def test_every_config_states_its_command_and_parses(config):
    with open(config, encoding="utf-8") as f:
        first = f.readline()
    match = re.match(r"# (?:[A-Z_]+=\S* )*python -m (alphagan_tf[\w.]*) ", first)
    assert match, f"{config}: the first line must be the exact command"
    module = match.group(1)
    if module == "alphagan_tf.cli.classifier":
        pytest.skip("its own tests parse it")
    # --helpshort prints usage after every flag of the file parsed: an unknown one fails first.
    result = run("-m", module, f"--flagfile={os.path.relpath(config, ROOT)}", "--helpshort")
    assert "error:" not in result.stderr, result.stderr[-2000:]  # a flag that does not parse
    assert result.returncode in (0, 1) and "Try --helpfull" in result.stdout, result.stderr[-2000:]


@pytest.mark.parametrize("module,args,foreign", [
    ("alphagan_tf.textnas.train", ["--flagfile=configs/train_sst2.cfg", "--architecture=random:0"],
     "--search_layers=4"),
    ("alphagan_tf.textnas.search", ["--flagfile=configs/sst2.cfg"], "--train_units=8"),
    ("alphagan_tf.textnas.search", ["--flagfile=configs/sst2.cfg"], "--strategy=mirrored"),
    ("alphagan_tf.textnas.train", ["--flagfile=configs/sst2.cfg", "--architecture=random:0"],
     None),  # the search's flagfile
    ("alphagan_tf.train", ["--flagfile=configs/demo.cfg", "--genotype=alphaGAN_s"], None),
])
def test_a_flag_of_another_command_stops_the_command_before_any_work(tmp_path, module, args,
                                                                       foreign):
    result = run("-m", module, *args, f"--workdir={tmp_path / 'w'}", *([foreign] if foreign else []))
    assert result.returncode != 0
    if foreign:
        assert f"Unknown command line flag '{foreign[2:].split('=')[0]}'" in result.stderr
    else:
        assert "Unknown command line flag" in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "w").exists()
