"""The command table: every command starts as `python -m`, as its console script and as `alphagan NAME`."""

import concurrent.futures
import importlib.metadata
import os
import shutil
import subprocess
import sys

import pytest

from alphagan_tf.cli import commands

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _run(argv, timeout=300):
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=ENV)
    return done.returncode, done.stdout, done.stderr


def _run_all(argvs):
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(_run, argvs))


def test_the_table_names_every_command_module_once():
    modules = [c.module for c in commands.COMMANDS]
    names = [c.name for c in commands.COMMANDS]
    assert len(set(modules)) == len(modules) == len(set(names)) == 16
    on_disk = set()
    for folder, _, files in os.walk(os.path.join(ROOT, "alphagan_tf")):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    if "cli_errors.run(main)" in f.read():
                        relative = os.path.relpath(os.path.join(folder, name[:-3]), ROOT)
                        on_disk.add(relative.replace(os.sep, "."))
    assert on_disk == set(modules)  # a new command must be added to the table
    assert commands.find("alphagan-train").module == "alphagan_tf.cli.train"
    assert commands.find("alphagan_tf.textnas.derive").name == "textnas-derive"
    with pytest.raises(KeyError):
        commands.find("serch")


def test_every_console_script_is_registered_with_its_module():
    try:
        scripts = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")}
    except Exception:  # pragma: no cover
        scripts = {}
    if "alphagan-search" not in scripts:
        pytest.skip("alphagan_tf is not pip-installed here (pip install -e .)")
    for command in commands.COMMANDS:
        assert scripts.get(command.script) == f"{command.module}:run", command.script
    assert scripts.get("alphagan") == "alphagan_tf.cli.alphagan:run"


def test_every_command_help_works_three_ways():
    argvs = [[sys.executable, "-m", c.module, "--help"] for c in commands.COMMANDS]
    installed = shutil.which("alphagan-search") is not None
    if installed:
        argvs += [[shutil.which(c.script), "--help"] for c in commands.COMMANDS]
    argvs += [[sys.executable, "-m", "alphagan_tf", "textnas-derive", "--help"],
              [sys.executable, "-m", "alphagan_tf"],
              [sys.executable, "-m", "alphagan_tf", "serch"]]
    results = _run_all(argvs)
    for argv, (code, stdout, stderr) in zip(argvs[:-2], results[:-2]):
        # absl's --help exits with status 1 after printing the usage and the flags.
        assert code in (0, 1) and "Try --helpfull" in stdout, (argv, stderr[-2000:])
        assert "Traceback" not in stderr, (argv, stderr[-2000:])
    code, stdout, _ = results[-2]
    assert code == 0
    for command in commands.COMMANDS:
        assert command.name in stdout and command.module in stdout
    code, _, stderr = results[-1]
    assert code == 2 and "unknown command 'serch'" in stderr and "textnas-search" in stderr
    if not installed:
        pytest.skip("console scripts not installed (pip install -e .): checked python -m only")
