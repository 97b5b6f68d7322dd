"""bench/train_step.py's arithmetic: medians, rates, speeds against the authors', memory, the table.

A fake clock and fake /proc files: nothing here times anything.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench():
    spec = importlib.util.spec_from_file_location(
        "train_step", os.path.join(ROOT, "bench", "train_step.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


bench = _bench()


def _rows():
    ours = bench.Row("ours alphaGAN_s", "float32", times=[3.0, 1.0, 2.0], cpu_times=[4.0, 6.0, 5.0],
                     flops=int(8e9), matmul_gflops=16.0, peak_bytes=3 * 2**20)
    emulated = bench.Row("ours alphaGAN_s", "bfloat16", times=[10.0, 12.0], cpu_times=[20.0, 22.0],
                         flops=int(8e9), matmul_gflops=2.0)
    authors = bench.Row("authors' alphaGAN_s", "float32", times=[6.0, 7.0, 5.0],
                        cpu_times=[12.0, 12.0, 12.0], flops=int(8e9), matmul_gflops=40.0,
                        peak_bytes=10 * 2**20)
    return ours, emulated, authors


def test_a_row_is_the_median_its_rate_and_its_speed_against_the_authors():
    ours, emulated, authors = _rows()
    summary = ours.summary(authors_seconds=authors.seconds)
    assert summary["seconds_per_iteration"] == 2.0  # median of 3, 1, 2
    assert summary["cpu_seconds_per_iteration"] == 5.0
    assert summary["gflop_per_iteration"] == 8.0
    assert summary["gflops"] == 4.0  # 8 GFLOP in 2 s
    assert summary["share_of_matmul"] == 0.25  # 4 of the matmul's 16 GFLOP/s
    assert summary["peak_working_memory_mib"] == 3.0
    assert summary["speed_vs_authors"] == 3.0  # the authors' median 6 s / 2 s
    slow = emulated.summary(authors_seconds=6.0)
    assert slow["seconds_per_iteration"] == 11.0  # median of two: their mean
    assert slow["speed_vs_authors"] == pytest.approx(6.0 / 11.0)
    assert slow["peak_working_memory_mib"] is None
    assert ours.summary(authors_seconds=None)["speed_vs_authors"] is None
    json.dumps(summary)  # what summary.json holds


def test_the_table_puts_every_row_against_the_authors_row():
    table = bench.format_table(list(_rows())).splitlines()
    assert len(table) == 2 + 3
    assert table[2] == ("| ours alphaGAN_s float32 | 2.000 | 5.000 | 8.0 | 4.0 | 16 | 25% | 3 MiB "
                        "| 3.00 |")
    assert table[3].startswith("| ours alphaGAN_s bfloat16 | 11.000 |")
    assert table[3].endswith("| 0.7 | 2 | 36% | n/a | 0.55 |")  # 8 / 11 = 0.73 GFLOP/s of 2
    assert table[4].endswith("| 1.3 | 40 | 3% | 10 MiB | 1.00 |")  # 8 GFLOP in 6 s
    without_authors = bench.format_table(list(_rows())[:2]).splitlines()
    assert all(line.endswith("|  |") for line in without_authors[2:])


def test_timed_reads_each_clock_twice(monkeypatch):
    wall = iter([10.0, 12.5])
    cpu = iter([1.0, 4.0])
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(wall))
    monkeypatch.setattr(bench.time, "process_time", lambda: next(cpu))
    calls = []
    assert bench.timed(lambda: calls.append(1)) == (2.5, 3.0)
    assert calls == [1]


def test_working_memory_is_the_peak_above_the_resident_memory_before(monkeypatch, tmp_path):
    status, clear_refs = tmp_path / "status", tmp_path / "clear_refs"
    status.write_text("Name:\tpython\nVmHWM:\t  5000 kB\nVmRSS:\t  1000 kB\n")
    monkeypatch.setattr(bench, "STATUS", str(status))
    monkeypatch.setattr(bench, "CLEAR_REFS", str(clear_refs))

    def step():  # the step peaks 4000 KiB above the resident memory before it, frees half
        status.write_text("Name:\tpython\nVmHWM:\t  5000 kB\nVmRSS:\t  3000 kB\n")

    clock = iter([0.0, 2.0])
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(clock))
    wall, _, peak = bench.working_memory(step)
    assert wall == 2.0
    assert clear_refs.read_text() == "5"  # the peak was reset before the step
    assert peak == (5000 - 1000) * 1024
    monkeypatch.setattr(bench, "CLEAR_REFS", str(tmp_path / "missing" / "clear_refs"))
    clock = iter([0.0, 1.0])
    assert bench.working_memory(lambda: None)[2] is None  # no reset, no figure


def test_memory_kib_reads_this_process():
    values = bench.memory_kib()
    assert 0 < values["VmRSS"] <= values["VmHWM"]


def test_arguments_default_to_the_paper_sizes_and_both_precisions():
    args = bench.parse_args([])
    assert (args.gf, args.df, args.g_batch_size, args.d_batch_size, args.n_critic) == (256, 128, 128, 64, 5)
    assert args.precision == ["float32", "bfloat16"] and args.authors
    args = bench.parse_args(["--genotype=alphaGAN_s, alphaGAN_l", "--precision=float32", "--no-authors"])
    assert args.genotype == ["alphaGAN_s", "alphaGAN_l"] and args.precision == ["float32"]
    assert not args.authors
    with pytest.raises(SystemExit):
        bench.parse_args(["--precision=float8"])
