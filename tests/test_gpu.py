"""The GPU path: a search iteration and a retraining iteration on the visible GPUs.

No GPU that runs TensorFlow is reachable from the machines this project is built on, so
these tests are collected everywhere and skipped where TensorFlow sees no GPU. On a GPU
host, `pytest -m gpu` runs them. Each builds the same tiny players twice from one seed:
on the CPU (float32, the reference) and on the GPU(s) under `--precision` float32 or
bfloat16, with and without XLA (`jit_compile`), on one GPU and mirrored over all of
them; it checks that the first steps' losses are finite and equal the CPU's within
the precision's tolerance, and that the weights moved alike. What differs on a GPU by
design (gan/run_devices.py): op determinism is off by default, the depthwise kernel
gradient is TensorFlow's (`--depthwise_gradient=auto`), and bfloat16 depthwise input
gradients avoid DepthwiseConv2dNativeBackpropInput (no bfloat16 GPU kernel).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

GPUS = tf.config.list_physical_devices("GPU")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not GPUS, reason="no GPU visible to TensorFlow (run with `pytest -m gpu` on a GPU host)"),
]

# float32 on a GPU differs from the CPU by TF32 matmuls and another summation order;
# bfloat16 keeps 8 bits of mantissa.
TOLERANCE = {"float32": 2e-2, "bfloat16": 1e-1}
PRECISIONS = ["float32", "bfloat16"]
STRATEGIES = ["one_device", "mirrored"]


def _search_losses(precision: str, strategy: str, jit_compile: bool, device_kind: str):
    from alphagan_tf.gan.space.generator_config import GeneratorConfig
    from alphagan_tf.gan.search.config import SearchRunConfig
    from alphagan_tf.gan.search.alphagan import build_searcher
    from alphagan_tf.gan.search.config import SearchConfig
    from alphagan_tf.utils import seeding

    devices = (("/cpu:0",) if device_kind == "cpu" else
               tuple(f"/gpu:{i}" for i in range(len(GPUS) if strategy == "mirrored" else 1)))
    config = SearchRunConfig(
        search=SearchConfig(inner_steps=2, worst_steps=1, outer_steps=1, n_critic=1,
                            batch_size=4 * len(devices), jit_compile=jit_compile, steps_per_call=2),
        model=GeneratorConfig(gf=8, df=8, latent_dim=8, bottom_width=1), seed=0,
        precision=precision, strategy=strategy if device_kind == "gpu" else "one_device",
        devices=devices)
    seeding.seed_everything(0)
    searcher = build_searcher(config)
    rng = np.random.default_rng(0)

    def batches():
        while True:
            yield tf.constant(rng.uniform(-1, 1, (config.search.batch_size, 8, 8, 3)).astype("float32"))

    metrics = searcher.run_epoch(batches(), batches(), epoch=1)
    return metrics, [v.numpy() for v in searcher.generator.arch_variables]


def _train_losses(precision: str, strategy: str, jit_compile: bool, device_kind: str):
    from alphagan_tf.gan.space.generator_config import GeneratorConfig
    from alphagan_tf.gan.train.config import TrainRunConfig
    from alphagan_tf.gan.train.loop import build_trainer
    from alphagan_tf.gan.space.genotypes import load_genotype
    from alphagan_tf.gan.train.config import TrainConfig
    from alphagan_tf.utils import seeding

    devices = (("/cpu:0",) if device_kind == "cpu" else
               tuple(f"/gpu:{i}" for i in range(len(GPUS) if strategy == "mirrored" else 1)))
    config = TrainRunConfig(
        train=TrainConfig(g_iterations=2, n_critic=2, g_batch_size=4 * len(devices),
                          d_batch_size=4 * len(devices), jit_compile=jit_compile, steps_per_call=2),
        genotype="alphaGAN_s", model=GeneratorConfig(gf=8, df=8, latent_dim=8, bottom_width=1),
        seed=0, precision=precision, strategy=strategy if device_kind == "gpu" else "one_device",
        devices=devices)
    seeding.seed_everything(0)
    trainer = build_trainer(config, load_genotype(config.genotype))
    rng = np.random.default_rng(0)
    real = tf.data.Dataset.from_tensor_slices(
        rng.uniform(-1, 1, (64, 8, 8, 3)).astype("float32")).batch(config.train.d_batch_size)
    return trainer.run_iterations(iter(real), 2), [v.numpy() for v in trainer.ema_generator.variables]


def _compare(on_gpu, on_cpu, tolerance):
    (gpu_metrics, gpu_weights), (cpu_metrics, cpu_weights) = on_gpu, on_cpu
    gpu_metrics = gpu_metrics if isinstance(gpu_metrics, dict) else gpu_metrics[0]
    cpu_metrics = cpu_metrics if isinstance(cpu_metrics, dict) else cpu_metrics[0]
    for name, value in cpu_metrics.items():
        assert np.isfinite(gpu_metrics[name]), name
        assert gpu_metrics[name] == pytest.approx(value, rel=tolerance, abs=tolerance), name
    for a, b in zip(gpu_weights, cpu_weights):
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32),
                                   rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_search_iteration_on_gpus_matches_the_cpu(precision, strategy, jit_compile):
    # XLA draws other latents than TensorFlow's kernels (its own Philox): the CPU reference
    # runs with the same jit_compile.
    reference = _search_losses("float32", "one_device", jit_compile, "cpu")
    _compare(_search_losses(precision, strategy, jit_compile, "gpu"), reference, TOLERANCE[precision])


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_retraining_iteration_on_gpus_matches_the_cpu(precision, strategy, jit_compile):
    reference = _train_losses("float32", "one_device", jit_compile, "cpu")
    _compare(_train_losses(precision, strategy, jit_compile, "gpu"), reference, TOLERANCE[precision])


def test_gpu_defaults():
    from alphagan_tf.gan.space import depthwise
    from alphagan_tf.utils import distribution

    assert distribution.default_device() == "/gpu:0"
    assert distribution.set_determinism(None).startswith("Op determinism: off")
    assert depthwise.resolved_kernel_gradient("auto") == "tf"
