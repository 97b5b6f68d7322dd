"""Quiet commands (alphagan_tf/quiet.py): a command's first lines are its own, not TensorFlow's
start-up log, unless the user asks (TF_CPP_MIN_LOG_LEVEL in the environment, --verbosity).

The commands run as real processes with TF_CPP_MIN_LOG_LEVEL removed from their environment (the
CI runner and conftest.py set it). The sample lines are TensorFlow 2.21's own, as written on this
CPU-only host (the remapper line as TensorFlow writes it on another host's graph).
"""

import concurrent.futures
import json
import logging
import os
import re
import subprocess
import sys
import textwrap

import pytest

from alphagan_tf.cli import commands, quiet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NOTICE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
CUDA_DRIVERS = (b"I0000 00:00:1796685131.121146   26979 cudart_stub.cc:31] Could not find cuda "
                b"drivers on your machine, GPU will not be used.")
CU_INIT = (b"E0000 00:00:1796685137.286865   26979 cuda_platform.cc:52] failed call to cuInit: "
           b"INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")
REMAPPER = (b"E0000 00:00:1754033943.990790   87495 meta_optimizer.cc:967] remapper failed: "
            b"INVALID_ARGUMENT: Mutation::Apply error: fanout 'StatefulPartitionedCall/gradient_tape/"
            b"cnn_model_optimized_1/leaky_relu_1_1/LeakyRelu/LeakyReluGrad' exist for missing node "
            b"'StatefulPartitionedCall/cnn_model_optimized_1/conv2d_1_1/BiasAdd'.")
HARMLESS = (NOTICE, CUDA_DRIVERS, CU_INIT, REMAPPER)
# Errors that must show: an unknown C++ error, cuInit failing on a host with a GPU driver (here:
# no device visible), a fatal line.
UNKNOWN_ERROR = (b"E0000 00:00:1796685141.901580   23628 cuda_executor.cc:1309] could not allocate "
                 b"memory on device 0: RESOURCE_EXHAUSTED: out of memory")
GPU_CU_INIT = (b"E0000 00:00:1796685137.286865   26979 cuda_platform.cc:52] failed call to cuInit: "
               b"INTERNAL: CUDA error: Failed call to cuInit: CUDA_ERROR_NO_DEVICE: no CUDA-capable "
               b"device is detected")
FATAL_REMAPPER = REMAPPER.replace(b"E0000", b"F0000", 1)
# What a command's output must not hold when nobody asked (issue 38's list).
TENSORFLOW_LOG = re.compile(
    r"^[IWEF]\d{4} [\d:.]+\s+\d+ \S+\.cc:\d+\] |Could not find cuda drivers|cuInit|remapper failed"
    r"|oneDNN|cpu_feature_guard|absl::InitializeLog|Sharding callback duration"
    r"|signature_serialization|fingerprinting_utils|Assets written to", re.M)


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_CPP_MAX_VLOG_LEVEL", "TF_CPP_VMODULE",
                        quiet.QUIET_MARK)}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def _chunks(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)]


# --- The line filter ----------------------------------------------------------------------------

def test_the_filter_drops_the_harmless_lines_and_keeps_every_other_in_order():
    for line in HARMLESS:
        assert quiet.is_harmless(line), line
    for line in (UNKNOWN_ERROR, GPU_CU_INIT, FATAL_REMAPPER, b"Traceback (most recent call last):",
                 b"I1207 23:13:11.614607 140291507923840 train_loop.py:359] Training done: {}"):
        assert not quiet.is_harmless(line), line
    stream = b"\n".join([NOTICE, CUDA_DRIVERS, b"epoch 1: d_loss 2.6206", CU_INIT, UNKNOWN_ERROR,
                         NOTICE, REMAPPER, GPU_CU_INIT, FATAL_REMAPPER, b"", b"done"]) + b"\n"
    expected = b"\n".join([b"epoch 1: d_loss 2.6206", UNKNOWN_ERROR, GPU_CU_INIT, FATAL_REMAPPER,
                           b"", b"done"]) + b"\n"
    for size in (1, 2, 5, 64, 4096):  # however the pipe splits it
        assert quiet.filter_lines(_chunks(stream, size)) == expected, size


def test_a_line_that_cannot_be_harmless_passes_before_its_newline():
    line_filter = quiet.LineFilter()
    assert line_filter.feed(b"Continue? [y/n] ") == b"Continue? [y/n] "  # a prompt: at once
    assert line_filter.feed(b"y\n") == b"y\n"
    assert line_filter.feed(b"\r 10%|#") == b"\r 10%|#"  # a progress bar without newline
    assert line_filter.feed(b"\r 20%|##\n") == b"\r 20%|##\n"
    assert line_filter.feed(CU_INIT[:30]) == b""  # may become harmless: held for its newline
    assert line_filter.feed(CU_INIT[30:] + b"\n") == b""
    assert line_filter.feed(UNKNOWN_ERROR[:30]) == b""
    assert line_filter.feed(UNKNOWN_ERROR[30:] + b"\n") == UNKNOWN_ERROR + b"\n"
    assert line_filter.feed(b"E0000 partial, never ended") == b""
    assert line_filter.close() == b"E0000 partial, never ended"  # the end of the stream keeps it
    assert line_filter.feed(NOTICE) == b"" and line_filter.close() == b""


# --- Who asked ----------------------------------------------------------------------------------

def test_verbosity_is_read_from_the_command_line_and_its_flagfiles(tmp_path):
    flagfile = tmp_path / "run.cfg"
    flagfile.write_text("--gf=8\n--verbosity=1\n")
    assert quiet.requested_verbosity(["prog", "--gf=8", "--workdir=/tmp/w"]) is None
    assert quiet.requested_verbosity(["prog", "--verbosity=0"]) == 0
    assert quiet.requested_verbosity(["prog", "-v", "2"]) == 2
    assert quiet.requested_verbosity(["prog", "--v=-2", "--gf=8"]) == -2
    assert quiet.requested_verbosity(["prog", f"--flagfile={flagfile}"]) == 1
    assert quiet.requested_verbosity(["prog", f"--flagfile={flagfile}", "--verbosity=-1"]) == -1
    assert quiet.requested_verbosity(["prog", "--flagfile=/no/such.cfg"]) is None
    assert quiet.requested_verbosity(["prog", "--verbosity=lots"]) is None  # absl says so later


def test_a_level_set_by_the_user_counts_one_set_by_a_parent_command_does_not():
    assert not quiet.user_sets_cpp_logs({})
    assert quiet.user_sets_cpp_logs({"TF_CPP_MIN_LOG_LEVEL": "2"})
    assert quiet.user_sets_cpp_logs({"TF_CPP_MIN_LOG_LEVEL": "0", quiet.QUIET_MARK: "2"})
    assert not quiet.user_sets_cpp_logs({"TF_CPP_MIN_LOG_LEVEL": "2", quiet.QUIET_MARK: "2"})
    assert quiet.user_sets_cpp_logs({"TF_CPP_MAX_VLOG_LEVEL": "1"})


def test_python_info_lines_show_for_alphagan_tf_only():
    def record(path, level):
        return logging.LogRecord("absl", level, path, 1, "message", None, None)

    own = os.path.join(ROOT, "alphagan_tf", "gan", "train", "loop.py")
    theirs = os.path.join(os.path.dirname(logging.__file__), "tensorflow", "functional_saver.py")
    assert quiet.own_info_only(record(own, logging.INFO))
    assert not quiet.own_info_only(record(theirs, logging.INFO))
    assert quiet.own_info_only(record(theirs, logging.WARNING))
    assert not quiet.own_info_only(record(os.path.join(ROOT, "alphagan_tf_other", "x.py"), logging.INFO))


# What the quieting decided, and whether fd 2 became the filter's pipe (stderr is a file here).
DECISION = """
import json, os, stat, sys
from alphagan_tf.cli import quiet
quiet.quiet_tensorflow(["prog", *sys.argv[1:]])
print(json.dumps({"level": os.environ.get("TF_CPP_MIN_LOG_LEVEL"),
                  "filtered": stat.S_ISFIFO(os.fstat(2).st_mode),
                  "tensorflow_logger": __import__("logging").getLogger("tensorflow").level}))
"""


@pytest.mark.parametrize("args,env,expected", [
    ([], {}, {"level": "2", "filtered": True, "tensorflow_logger": logging.WARNING}),
    (["--verbosity=0"], {}, {"level": "0", "filtered": False, "tensorflow_logger": 0}),
    (["--verbosity=1"], {}, {"level": "0", "filtered": False, "tensorflow_logger": 0}),
    (["--verbosity=-2"], {}, {"level": "2", "filtered": True, "tensorflow_logger": logging.WARNING}),
    (["--verbosity=0"], {"TF_CPP_MIN_LOG_LEVEL": "3"},
     {"level": "3", "filtered": False, "tensorflow_logger": 0}),
    ([], {"TF_CPP_MIN_LOG_LEVEL": "0"}, {"level": "0", "filtered": False,
                                         "tensorflow_logger": logging.WARNING}),
    ([], {"TF_CPP_MIN_LOG_LEVEL": "2", quiet.QUIET_MARK: "2"},  # started by a quiet command
     {"level": "2", "filtered": True, "tensorflow_logger": logging.WARNING}),
])
def test_who_asked_decides_the_level_and_the_filter(tmp_path, args, env, expected):
    with open(tmp_path / "stderr", "wb") as stderr:
        done = subprocess.run([sys.executable, "-c", DECISION, *args], cwd=ROOT, env=_env(**env),
                              stdout=subprocess.PIPE, stderr=stderr, timeout=120, text=True)
    assert done.returncode == 0, (tmp_path / "stderr").read_text()
    assert json.loads(done.stdout) == expected


# --- The filter process: nothing lost or reordered, exit status and children unaffected -------

WRITER = textwrap.dedent("""
    import os, subprocess, sys
    from alphagan_tf.cli import quiet
    quiet.quiet_tensorflow(["prog"])
    os.write(2, b"%(notice)s\\n%(cu_init)s\\n")
    for i in range(3000):
        print(f"line {i}", file=sys.stderr)
        if i == 1500:
            os.write(2, b"%(unknown)s\\n%(remapper)s\\n")
    subprocess.run([sys.executable, "-c",
                    "import os; os.write(2, b'%(cu_init)s\\\\nchild says hello\\\\n')"], check=True)
    print("stdout line", flush=True)
    os.write(2, b"last words before the end")
    end = sys.argv[1]
    if end == "raise":
        raise ValueError("boom")
    if end == "exit":
        sys.exit(5)
    if end == "os_exit":
        os._exit(7)
    os.abort()
""") % {"notice": NOTICE.decode(), "cu_init": CU_INIT.decode(),
        "unknown": UNKNOWN_ERROR.decode(), "remapper": REMAPPER.decode().replace("'", "\\'")}


@pytest.mark.parametrize("end,status", [("raise", 1), ("exit", 5), ("os_exit", 7),
                                        ("abort", -6)])
def test_every_line_arrives_in_order_whatever_the_end(end, status):
    command = subprocess.Popen([sys.executable, "-c", WRITER, end], cwd=ROOT, env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert command.wait(timeout=120) == status  # < 64 KiB of output: no pipe fills up
    assert command.stdout.read() == b"stdout line\n"
    if end in ("raise", "exit"):
        # A normal exit waits for the filter: when the command has ended, so has its stderr.
        os.set_blocking(command.stderr.fileno(), False)
        chunks = iter(lambda: os.read(command.stderr.fileno(), 1 << 16), b"")
    else:  # a process that dies without its exit handlers: the filter drains what it wrote
        chunks = iter(lambda: command.stderr.read(1 << 16), b"")
    err = b"".join(chunks)
    command.stdout.close()
    command.stderr.close()
    for line in HARMLESS:
        assert line not in err
    lines = err.split(b"\n")
    numbered = [line for line in lines if line.startswith(b"line ")]
    assert numbered == [b"line %d" % i for i in range(3000)]
    assert lines.index(UNKNOWN_ERROR) == lines.index(b"line 1500") + 1
    assert lines.index(b"child says hello") == lines.index(b"line 2999") + 1
    if end == "raise":  # the traceback comes last, after the unfinished line
        assert err.index(b"last words before the end") < err.index(b"Traceback")
        assert err.endswith(b"ValueError: boom\n")
    else:
        assert err.endswith(b"last words before the end")


# --- Real commands ------------------------------------------------------------------------------

EXPORT = ["-m", "alphagan_tf.export", "--genotype=alphaGAN_s", "--gf=8", "--df=8", "--latent_dim=8",
          "--bottom_width=2"]


def _export(export_dir, **env):
    return subprocess.run([sys.executable, *EXPORT, f"--export_dir={export_dir}"], cwd=ROOT,
                          env=_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=600)


@pytest.mark.slow
def test_a_command_s_first_line_is_its_own_and_tensorflow_s_log_shows_when_asked(tmp_path):
    quiet_run = _export(tmp_path / "quiet")  # ~30 s on 2 shared CPU cores
    assert quiet_run.returncode == 0, quiet_run.stdout[-3000:]
    assert TENSORFLOW_LOG.search(quiet_run.stdout) is None, quiet_run.stdout[:3000]
    first_line = quiet_run.stdout.splitlines()[0]
    assert first_line == str(tmp_path / "quiet" / "1")  # the export's one line: where it wrote

    asked = _export(tmp_path / "asked", TF_CPP_MIN_LOG_LEVEL="0")  # the user asks
    assert asked.returncode == 0, asked.stdout[-3000:]
    cpp_lines = re.findall(r"^[IWEF]\d{4} [\d:.]+\s+\d+ \S+\.cc:\d+\] .*", asked.stdout, re.M)
    assert len(cpp_lines) >= 1, asked.stdout[:3000]
    assert asked.stdout.splitlines()[-1] == str(tmp_path / "asked" / "1")


def _help(argv):
    done = subprocess.run(argv, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    return argv, done


@pytest.mark.slow
def test_every_command_is_quiet_from_its_first_line_even_its_help():
    # --help imports what the module imports: a command that imported TensorFlow before it
    # quieted it would print TensorFlow's start-up lines here (metrics/inception.py imports it).
    argvs = [[sys.executable, "-m", c.module, "--help"] for c in commands.COMMANDS]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(_help, argvs))
    for argv, done in results:
        assert done.returncode in (0, 1), (argv, done.stderr[-2000:])  # absl's --help exits 1
        assert TENSORFLOW_LOG.search(done.stdout) is None, argv
        assert done.stderr == "", (argv, done.stderr[:2000])  # the help is all there is


def test_a_command_is_recognised_however_it_was_started(monkeypatch):
    # `python -m MODULE` is recognised by __main__'s spec (the --help test above runs it); the
    # console scripts and `alphagan` by the program's name.
    for program, expected in (("/venv/bin/alphagan-inception", True), ("alphagan", True),
                              ("/venv/Scripts/alphagan-train.exe", True),
                              ("/venv/bin/alphagan-nope", False), ("/venv/bin/pytest", False)):
        monkeypatch.setattr(sys, "argv", [program, "--help"])
        assert quiet.started_as_command() is expected, program
