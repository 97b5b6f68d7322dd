"""The documentation runs: every command line in README.md, docs/**/*.md, export/README.md and
the configs' header comments names an existing command and only flags that command defines,
every config or repository path it names exists, every relative link and image resolves, and
the README's two set-up commands are the ones .ci/run runs.

The flags each command defines are collected in ONE subprocess (`python tests/test_docs.py`):
for each command it forks, imports the command's module and calls its `run()` with absl's
`app.run` replaced, so the command defines its flags exactly as when started and never runs.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEMO_COMMAND = "pip install -e . && python -m alphagan_tf.search --flagfile=configs/demo.cfg"
# absl's own flags, handled by its parser rather than defined in FLAGS.
ABSL_SPECIAL_FLAGS = {"flagfile", "help", "helpfull", "helpshort", "helpxml", "undefok"}
COMMAND = re.compile(r"python -m (alphagan_tf[\w.<>]*)|(?<![\w/.=-])alphagan-([a-z][\w-]*)"
                     r"|(?<![\w/.=-])alphagan(?: +([\w-]+))?(?![\w-])")
SCRIPT = re.compile(r"python ((?:bench|export|tests)/[\w/.-]+\.py)")
END_OF_COMMAND = re.compile(r"`| #|&&|\|\||;|\|")
REPO_PATH = re.compile(r"(?<![\w/.$-])((?:configs|bench|docs|tests|export/clients)/[\w./-]*\w)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")


# ---- where command lines are -------------------------------------------------------------

def code_of_markdown(text: str) -> list[tuple[int, str, bool]]:
    """(line number, code, fenced?) of every fenced code line (continuations joined), then of
    every inline code span."""
    found, fenced, prose = [], False, []
    lines = text.split("\n")
    pending, start = "", 0
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            start = start or number
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            found.append((start, pending + line, True))
            pending, start = "", 0
        else:
            prose.append((number, line))
    paragraph = "\n".join(line for _, line in prose)
    numbers = [number for number, _ in prose]
    for span in re.finditer(r"`([^`]+)`", paragraph):
        line = numbers[paragraph.count("\n", 0, span.start())]
        found.append((line, span.group(1).replace("\n", " "), False))
    return found


def config_header(text: str) -> list[tuple[int, str]]:
    """(line number, text) of a config's leading comment lines."""
    header = []
    for number, line in enumerate(text.split("\n"), 1):
        if not line.startswith("#"):
            break
        header.append((number, line.lstrip("# ")))
    return header


def documented_code() -> list[tuple[str, int, str]]:
    """(file, line, code) of every documentation file and config header of the repository."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), ROOT / "export/README.md"]:
        found += [(str(path.relative_to(ROOT)), n, code) for n, code, _ in code_of_markdown(path.read_text())]
    for path in sorted((ROOT / "configs").glob("*.cfg")):
        found += [(str(path.relative_to(ROOT)), n, code) for n, code in config_header(path.read_text())]
    return found


# ---- one rule each ------------------------------------------------------------------------

def command_errors(code: str, defined: dict[str, dict], where: str = "") -> list[str]:
    """Every command in `code` exists and is given only flags it defines."""
    errors = []
    for match in COMMAND.finditer(code):
        rest = END_OF_COMMAND.split(code[match.end():], 1)[0].split()
        name = match.group(1) or match.group(2) or match.group(3)
        if name in (None, "alphagan_tf") or re.search(r"(^|\.)([A-Z_]+|<\w+>)$", name):
            continue  # `alphagan` alone (the list of commands) or a placeholder (`alphagan NAME`)
        command = command_name(name)
        if command is None:
            errors.append(f"{where}`{code.strip()}`: no command {name!r} in alphagan_tf/cli/commands.py")
            continue
        for flag in flags_of(rest, command):
            ok = defined[flag[0]]
            bare = flag[1]
            if bare in ok["flags"] or bare in ABSL_SPECIAL_FLAGS or (
                    bare.startswith("no") and bare[2:] in ok["booleans"]):
                continue
            errors.append(f"{where}`{code.strip()}`: {flag[0]} defines no flag --{bare}")
    return errors


def command_name(name: str) -> str | None:
    from alphagan_tf.cli import commands

    try:
        return commands.find(name).name
    except KeyError:
        return None


def flags_of(tokens: list[str], command: str) -> list[tuple[str, str]]:
    """(command, flag name) of each --flag; after a bare `--`, tune-launch's go to tune."""
    found = []
    for token in tokens:
        if token == "--":
            if command != "tune-launch":
                break
            command = "tune"
        elif token.startswith("--") and re.match(r"--[A-Za-z]", token):
            found.append((command, token[2:].split("=", 1)[0]))
    return found


def path_errors(code: str, where: str = "") -> list[str]:
    """Every repository path a command line names (flagfiles, configs, scripts) exists."""
    if not (COMMAND.search(code) or SCRIPT.search(code)):
        return []
    return [f"{where}`{code.strip()}`: {path} does not exist"
            for path in REPO_PATH.findall(code) if not (ROOT / path).exists()]


def link_errors(path: pathlib.Path, text: str) -> list[str]:
    """Every relative markdown link and image of a page resolves."""
    errors = []
    for match in LINK.finditer(text):
        target = (match.group(1) or match.group(2)).split("#", 1)[0]
        if target and not re.match(r"[a-z]+:", target) and not (path.parent / target).exists():
            errors.append(f"{path.relative_to(ROOT)}: link {target} does not resolve")
    return errors


def setup_commands_errors(readme: str, ci_script: str) -> list[str]:
    """README's first two commands: the demo, then exactly what .ci/run runs."""
    ci = [line.strip() for line in ci_script.split("\n") if line.strip().startswith("pip install")]
    fenced = [code.strip() for _, code, is_fenced in code_of_markdown(readme) if is_fenced and code.strip()]
    expected = [DEMO_COMMAND, ci[-1] if ci else "(no pip install line in .ci/run)"]
    return [] if fenced[:2] == expected else [f"README's first commands {fenced[:2]} != {expected}"]


# ---- the flags each command defines -------------------------------------------------------

def _flags_per_command() -> dict[str, dict]:
    """In this process: fork per command, define its flags through its run(), report them."""
    from absl import app, flags

    from alphagan_tf.cli import commands

    class Defined(Exception):
        pass

    def stop(*args, **kwargs):
        raise Defined

    result = {}
    for command in commands.COMMANDS:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: import, define, report, exit
            os.close(read)
            try:
                app.run = stop
                try:
                    __import__(command.module, fromlist=["run"]).run()
                    report = {"error": "run() returned without reaching absl.app.run"}
                except Defined:
                    names = list(flags.FLAGS)
                    report = {"flags": names, "booleans": [n for n in names if flags.FLAGS[n].boolean]}
            except BaseException as error:  # noqa: BLE001: reported to the parent
                report = {"error": repr(error)}
            with os.fdopen(write, "w") as pipe:
                json.dump(report, pipe)
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            result[command.name] = json.load(pipe)
        os.waitpid(pid, 0)
    return result


@pytest.fixture(scope="module")
def defined() -> dict[str, dict]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}  # also: no stderr filter process
    out = subprocess.run([sys.executable, __file__], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=120, check=True).stdout
    per_command = json.loads(out)
    failed = {name: d["error"] for name, d in per_command.items() if "error" in d}
    assert not failed, f"could not collect the flags of: {failed}"
    return {name: {"flags": set(d["flags"]), "booleans": set(d["booleans"])} for name, d in per_command.items()}


# ---- the tests ----------------------------------------------------------------------------

def test_every_documented_command_exists_and_takes_only_its_flags(defined):
    errors = [e for file, line, code in documented_code()
              for e in command_errors(code, defined, f"{file}:{line}: ")]
    assert not errors, "\n".join(errors)


def test_every_path_in_a_documented_command_exists():
    errors = [e for file, line, code in documented_code() for e in path_errors(code, f"{file}:{line}: ")]
    assert not errors, "\n".join(errors)


def test_every_relative_link_and_image_resolves():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), ROOT / "export/README.md"]
    errors = [e for page in pages for e in link_errors(page, page.read_text())]
    assert not errors, "\n".join(errors)


def test_readme_sets_up_with_the_demo_and_the_command_ci_runs():
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci/run").read_text()
    assert setup_commands_errors(readme, ci) == []


def test_readme_is_a_short_guide_without_history():
    lines = (ROOT / "README.md").read_text().split("\n")
    assert len(lines) - 1 <= 300, f"README.md has {len(lines) - 1} lines"
    for line in lines:
        assert not re.search(r"\b20\d\d-\d\d-\d\d\b|\b[Ii]ssue \d+|(?<![\w/])#\d+\b", line), line
        assert not re.search(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b", line), line
    starts = {heading: number for number, heading in enumerate(lines, 1) if heading.startswith("## ")}
    for section in ("## Reproduce the paper on GPUs", "## Retrain and evaluate with the standard FID",
                    "## Export and serve"):
        assert starts.get(section, 10**6) <= 150, f"{section!r} starts at line {starts.get(section)}"


def test_the_checker_fails_on_a_misspelt_flag_an_unknown_command_and_a_missing_path(defined):
    readme = "```bash\npython -m alphagan_tf.search --flagfile=configs/demo.cfg \\\n    --lerning_rate=1\n```\n"
    (line, code, _), = code_of_markdown(readme)
    assert command_errors(code, defined) == [f"`{code.strip()}`: search defines no flag --lerning_rate"]
    assert line == 2
    assert command_errors("alphagan-serch --gf=4", defined)[0].endswith("no command 'serch' in alphagan_tf/cli/commands.py")
    assert command_errors("alphagan tune-launch --workers=2 -- --max_trial=4", defined) == [
        "`alphagan tune-launch --workers=2 -- --max_trial=4`: tune defines no flag --max_trial"]
    assert command_errors("python -m alphagan_tf.train --nojit_compile --helpfull", defined) == []
    assert path_errors("python -m alphagan_tf.train --flagfile=configs/no_such.cfg") == [
        "`python -m alphagan_tf.train --flagfile=configs/no_such.cfg`: configs/no_such.cfg does not exist"]
    assert link_errors(ROOT / "docs/x.md", "[a](results/none.md) [b](https://x.org)") == [
        "docs/x.md: link results/none.md does not resolve"]


if __name__ == "__main__":
    json.dump(_flags_per_command(), sys.stdout)
