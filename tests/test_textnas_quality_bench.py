"""bench/textnas_quality.py: its labels, its tables, and a tiny run end to end (one run failing)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SST_DIR = os.path.join(os.path.dirname(ROOT), "shared", "data", "sst")


def _bench():
    spec = importlib.util.spec_from_file_location(
        "textnas_quality", os.path.join(ROOT, "bench", "textnas_quality.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _bench()


def test_architectures_are_labelled_by_name_or_by_their_source():
    assert bench.parse_architectures("enas=a/b.json, random:3,textnas_paper") == [
        ("enas", "a/b.json"), ("random:3", "random:3"), ("textnas_paper", "textnas_paper")]
    with pytest.raises(ValueError, match="unique"):
        bench.parse_architectures("x=a.json,x=b.json")


def test_baselines_are_name_equals_accuracy():
    assert bench.parse_baselines(["CNN-rand=82.7", "a=b=45"]) == {"CNN-rand": 82.7, "a=b": 45.0}
    for bad in ["82.7", "=82.7", "CNN-rand=high"]:
        with pytest.raises(ValueError, match="NAME=ACCURACY"):
            bench.parse_baselines([bad])


def test_architecture_summary_counts_ops_most_frequent_first():
    ops = ["conv_3", "bi_gru", "conv_3", "max_pool_3", "bi_gru", "conv_3"]
    assert bench.architecture_summary(ops, 7) == "3 conv_3, 2 bi_gru, 1 max_pool_3; 7 skips"
    assert bench.architecture_summary(["b", "a"]) == "1 a, 1 b"


def _result(label, seed, test, dev, cpu_s=120.0):
    return {"label": label, "seed": seed, "test": test, "dev": dev, "cpu_s": cpu_s,
            "parameters": 1000, "ops": ["conv_3", "conv_3", "bi_gru"], "skips": 2}


def test_tables_give_mean_sd_and_the_paired_difference():
    results = [_result("enas", 0, 84.0, 83.0), _result("enas", 1, 82.0, 82.5),
               _result("enas", 2, 83.0, 83.5, cpu_s=60.0),
               _result("rand", 0, 83.0, 82.0), _result("rand", 1, 80.0, 81.0)]
    table = bench.markdown_tables(results, "enas", {"enas": "a.json", "rand": "random:0"})
    accuracy_table = table.split("Paired")[0]
    rows = {line.split(" | ")[0].lstrip("| "): line.split(" | ") for line in accuracy_table.splitlines()
            if line.startswith("| enas") or line.startswith("| rand")}
    enas = rows["enas"]
    assert enas[1] == "2 conv_3, 1 bi_gru; 2 skips"
    assert enas[3:6] == ["84.00 (83.00)", "82.00 (82.50)", "83.00 (83.50)"]
    assert enas[6:9] == ["3", "83.00 (1.00)", "83.00 (0.50)"]
    assert enas[9].rstrip(" |") == "1.7"  # (120 + 120 + 60) / 3 s
    # rand has no seed 2: an empty cell, n 2; the paired row uses seeds 0 and 1 only.
    assert rows["rand"][5] == "" and rows["rand"][6] == "2"
    single = bench.markdown_tables([_result("one", 0, 80.0, 79.0)], None, {"one": "random:1"})
    assert "| 1 | 80.00 (-) | 79.00 (-) | 2.0 |" in single
    paired = [line for line in table.splitlines() if line.startswith("| rand | -1.00 | -2.00")]
    assert len(paired) == 1
    mean, sd, t = (float(x) for x in paired[0].split(" | ")[4:7])
    assert mean == pytest.approx(-1.5) and sd == pytest.approx(math.sqrt(0.5), abs=5e-3)
    assert t == pytest.approx(-1.5 / (math.sqrt(0.5) / math.sqrt(2)), abs=5e-3)


def test_resumed_runs_are_left_out_of_the_cpu_column(tmp_path):
    resumed = dict(_result("enas", 1, 82.0, 82.5, cpu_s=30.0), resumed_from_step=1700)
    results = [_result("enas", 0, 84.0, 83.0, cpu_s=600.0), resumed, _result("rand", 0, 83.0, 82.0)]
    table = bench.markdown_tables(results, None, {"enas": "a.json", "rand": "random:0"})
    enas = next(line for line in table.splitlines() if line.startswith("| enas"))
    assert enas.split(" | ")[-1].rstrip(" |") == "10.0 (1 of 2)"  # 600 s; the 30 s resumed run is out
    assert "resumed from a checkpoint" in table
    all_resumed = bench.markdown_tables([resumed], None, {"enas": "a.json"})
    assert next(line for line in all_resumed.splitlines()
                if line.startswith("| enas")).endswith("| - (0 of 1) |")
    assert "resumed" not in bench.markdown_tables(results[:1], None, {"enas": "a.json"})
    # The step a run resumes from: its newest checkpoint, 0 for a fresh directory.
    assert bench.checkpoint_step(str(tmp_path)) == 0
    (tmp_path / "checkpoints").mkdir()
    for name in ["ckpt-900.index", "ckpt-1400.index", "ckpt-1400.data-00000-of-00001", "checkpoint"]:
        (tmp_path / "checkpoints" / name).write_text("")
    assert bench.checkpoint_step(str(tmp_path)) == 1400


@pytest.mark.long  # the bench end to end in subprocesses (~50-130 s); its parts are tested above
@pytest.mark.skipif(not os.path.isdir(SST_DIR), reason="../shared/data/sst is absent")
def test_tiny_comparison_runs_resumes_and_summarizes(tmp_path):
    command = [sys.executable, os.path.join(ROOT, "bench", "textnas_quality.py"),
               "--train_flagfile=" + os.path.join(ROOT, "configs", "train_sst2_tiny.cfg"),
               f"--train_flag=--sst_dir={SST_DIR}", "--train_flag=--max_train_trees=30",
               "--train_flag=--train_epochs=1", "--train_flag=--train_eval_every=4",
               "--architectures=first=random:0:2,second=random:1:2,broken=no_such_architecture.json",
               "--seeds=0",
               "--reference=first", "--baseline=majority=50.0", "--threads_per_job=1", f"--workdir={tmp_path}"]
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    # The broken architecture fails alone: the others finish and are summarized, exit status 1.
    assert done.returncode == 1, done.stderr[-3000:]
    assert "FAILED: broken seed 0: training failed" in done.stderr
    with open(tmp_path / "summary.json") as f:
        summary = json.load(f)
    results = {r["label"]: r for r in summary["results"]}
    assert sorted(results) == ["first", "second"]
    for label in results:
        with open(tmp_path / "runs" / f"{label}_seed0" / "results.json") as f:
            run = json.load(f)
        assert results[label]["test"] == pytest.approx(100 * run["test_accuracy"])
        assert results[label]["steps"] == run["steps"] > 0 and results[label]["cpu_s"] > 0
        assert len(results[label]["ops"]) == 2 and results[label]["resumed_from_step"] == 0
    assert "| first |" in (tmp_path / "summary.md").read_text()
    assert (tmp_path / "quality.png").stat().st_size > 1000
    # A rerun finds every run finished and trains nothing.
    again = subprocess.run(command + ["--summary_only"], capture_output=True, text=True, env=env,
                           timeout=300)
    assert again.returncode == 0 and "2 of 3 retrainings finished" in again.stdout
    bad = subprocess.run(command + ["--reference=nobody"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert bad.returncode == 2 and "--reference 'nobody' is not one of the labels" in bad.stderr
