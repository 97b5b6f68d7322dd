"""bench/search_step.py's op profile: what it reads from a TF profiler trace, and its kinds."""

from __future__ import annotations

import importlib.util
import os

import pytest
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _bench():
    spec = importlib.util.spec_from_file_location(
        "search_step", os.path.join(ROOT, "bench", "search_step.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _bench()


@pytest.mark.parametrize("op_type, kind", [
    ("_MklNativeConv2DBackpropFilter", "convolutions, matmuls"),
    ("_MklNativeFusedConv2D", "convolutions, matmuls"),
    ("BatchMatMulV2", "convolutions, matmuls"),
    ("_MklNativeDepthwiseConv2dNativeBackpropInput", "depthwise convolutions"),
    ("Mul", "elementwise"),
    ("AddN", "elementwise"),
    ("ReluGrad", "elementwise"),
    ("_MklNativeFusedBatchNormV3", "elementwise"),
    ("Mean", "reductions, broadcasts"),
    ("StridedSliceGrad", "data movement (slices, pads, concats, transposes)"),
    ("ResourceApplyAdam", "optimizer updates"),
    ("NoOp", "other"),
])
def test_op_kind(op_type, kind):
    assert bench.op_kind(op_type) == kind


def test_op_type_times_counts_every_call_of_a_profiled_function(tmp_path):
    x = tf.random.normal([4, 16, 16, 8])
    kernel = tf.random.normal([3, 3, 8, 8])

    @tf.function
    def step(x):
        y = tf.nn.conv2d(x, kernel, 1, "SAME")
        return tf.reduce_mean(y * y)

    step(x)  # traced outside the profile
    tf.profiler.experimental.start(str(tmp_path))
    for _ in range(3):
        step(x).numpy()
    tf.profiler.experimental.stop()
    times = bench.op_type_times(str(tmp_path))

    conv = [name for name in times if "Conv2D" in name]
    assert len(conv) == 1, times
    assert times[conv[0]][1] == 3  # one conv per call, 3 calls
    assert times["Mean"][1] == 3
    assert all(ms >= 0 for ms, _ in times.values())
    assert sum(ms for ms, _ in times.values()) > 0
    assert not any(":" in name or name.startswith("ExecutorState") for name in times)


def test_op_type_times_without_a_trace_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="xplane"):
        bench.op_type_times(str(tmp_path))


def test_matmul_rate_is_two_n_cubed_flops_over_the_median_time(monkeypatch):
    clock = iter([0.0, 0.5, 1.0, 1.25, 2.0, 3.0])  # runs of 0.5, 0.25 and 1.0 s: median 0.5
    monkeypatch.setattr(bench.time, "perf_counter", lambda: next(clock))
    gflops = bench.matmul_rate("bfloat16", n=64, repeats=3)
    assert gflops == pytest.approx(2 * 64**3 / 0.5 / 1e9)
    with pytest.raises(StopIteration):  # exactly two clock reads per timed run
        next(clock)
