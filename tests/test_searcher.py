"""The bi-level search on tiny models (8x8 images, a few channels): seconds each.

Tracing the steps of the supernet takes about a minute whatever its width
(the graph has ~60k ops), so every test shares ONE searcher and starts from its
initial state, restored from a checkpoint (`fresh`).
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.gan.search.alphagan import build_searcher, run_search
from alphagan_tf.gan.search.config import SearchConfig
from alphagan_tf.gan.search.config import SearchRunConfig
from alphagan_tf.gan.space.generator_config import GeneratorConfig
from alphagan_tf.utils import seeding

TINY = SearchConfig(inner_steps=5, worst_steps=2, outer_steps=3, n_critic=5, batch_size=4)
TINY_MODEL = GeneratorConfig(gf=4, df=4, latent_dim=8, bottom_width=1)


def tiny_run_config(**overrides) -> SearchRunConfig:
    base = dict(search=TINY, model=TINY_MODEL, epochs=2, seed=0,  # conftest's: no reseeding
                sample_every=1, keep_checkpoints=2, deterministic=False)
    base.update(overrides)
    return SearchRunConfig(**base)


def batches(seed, batch=4, size=8):
    rng = np.random.default_rng(seed)
    while True:
        yield tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32"))


@pytest.fixture(scope="module")
def shared_searcher(tmp_path_factory):
    searcher = build_searcher(tiny_run_config())
    checkpoint = tf.train.Checkpoint(**searcher.checkpoint_items())
    path = checkpoint.write(str(tmp_path_factory.mktemp("initial") / "state"))
    return searcher, checkpoint, path


@pytest.fixture()
def searcher(shared_searcher):
    """The shared searcher, back in its initial state."""
    searcher, checkpoint, path = shared_searcher
    checkpoint.read(path).assert_consumed()
    return searcher


def values(variables):
    return [np.array(v.numpy()) for v in variables]


def test_one_epoch_moves_alpha_and_inner_steps_do_not(searcher):
    g = searcher.generator
    alphas0 = values(g.arch_variables)
    weights0 = values(g.weight_variables)
    for _ in range(5):
        searcher.d_step(next(batches(0)))
    searcher.g_step()
    # The inner level trains network weights only.
    for a0, a1 in zip(alphas0, values(g.arch_variables)):
        np.testing.assert_array_equal(a0, a1)
    assert any(not np.array_equal(w0, w1) for w0, w1 in zip(weights0, values(g.weight_variables)))
    searcher.run_epoch(batches(1), batches(2))
    moved = [np.abs(a1 - a0).max() for a0, a1 in zip(alphas0, values(g.arch_variables))]
    assert len(moved) == 18
    assert min(moved) > 0.0  # every edge's alpha moved


def test_worst_players_are_assigned_copies_and_leave_g_d_untouched(searcher):
    searcher.run_epoch(batches(1), batches(2))
    g_before = values(searcher.generator.variables)
    d_before = values(searcher.discriminator.variables)
    d_trainable_before = values(searcher.discriminator.trainable_variables)
    searcher.make_worst_players()
    for a, b in zip(values(searcher.worst_generator.variables), g_before):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(values(searcher.worst_discriminator.variables), d_before):
        np.testing.assert_array_equal(a, b)
    # fresh optimizer state for the worst-case players
    assert int(searcher.worst_d_optimizer.optimizer.iterations.numpy()) == 0
    real = next(batches(5))
    searcher.worst_d_step(real)
    searcher.worst_g_step()
    assert int(searcher.worst_d_optimizer.optimizer.iterations.numpy()) == 1
    for a, b in zip(values(searcher.discriminator.trainable_variables), d_trainable_before):
        np.testing.assert_array_equal(a, b)
    changed = [not np.array_equal(a, b) for a, b in zip(
        values(searcher.worst_generator.weight_variables),
        values(searcher.generator.weight_variables))]
    assert any(changed)
    # G_worst's alphas stay frozen at G's values.
    for a, b in zip(values(searcher.worst_generator.arch_variables),
                    values(searcher.generator.arch_variables)):
        np.testing.assert_array_equal(a, b)


def _np_value(real_logits, fake_logits):
    real_logits, fake_logits = np.asarray(real_logits, np.float64), np.asarray(fake_logits, np.float64)
    return -(np.maximum(0, 1 - real_logits).mean() + np.maximum(0, 1 + fake_logits).mean())


def _snapshot(*models):
    return [[v.numpy() for v in m.variables] for m in models]


def _restore(snapshot, *models):
    for values_, m in zip(snapshot, models):
        for v, value in zip(m.variables, values_):
            v.assign(value)


def test_duality_gap_of_the_step_equals_its_formula(searcher):
    searcher.run_epoch(batches(1), batches(2))
    real = next(batches(7))
    rng = searcher.latent_rng
    state = rng.state.numpy().copy()
    z = rng.normal([TINY.batch_size, TINY_MODEL.latent_dim])  # the latents the step will draw
    g, d = searcher.generator, searcher.discriminator
    gw, dw = searcher.worst_generator, searcher.worst_discriminator
    # Every network in training mode, D called on real then on fake (each call one
    # spectral-norm power iteration): the expectations are computed from the same state.
    before = _snapshot(g, d, gw, dw)
    v_g_dworst = _np_value(dw(real, training=True), dw(g(z, training=True), training=True))
    v_gworst_d = _np_value(d(real, training=True), d(gw(z, training=True), training=True))
    _restore(before, g, d, gw, dw)
    rng.reset(state)
    v_worst = searcher.worst_value_step(real)
    np.testing.assert_allclose(float(v_worst), v_gworst_d, rtol=1e-5, atol=1e-6)
    rng.reset(state)
    out = searcher.arch_step(real, v_worst)
    np.testing.assert_allclose(float(out["value_g_vs_worst_d"]), v_g_dworst, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(out["value_worst_g_vs_d"]), v_gworst_d, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(out["duality_gap"]), v_g_dworst - v_gworst_d,
                               rtol=1e-5, atol=1e-6)


def test_worst_discriminator_training_opens_the_gap(searcher):
    """After D_worst and G_worst train, DG on the same batch is larger than with G, D themselves."""
    searcher.run_epoch(batches(1), batches(2))
    searcher.make_worst_players()
    real = next(batches(9))
    z = tf.random.stateless_normal([TINY.batch_size, TINY_MODEL.latent_dim], seed=[1, 2])
    g, d = searcher.generator, searcher.discriminator
    gw, dw = searcher.worst_generator, searcher.worst_discriminator
    gap0 = (_np_value(dw(real), dw(g(z, training=True))) - _np_value(d(real), d(gw(z, training=True))))
    assert abs(gap0) < 1e-6  # identical players: no gap
    for _ in range(15):
        searcher.worst_d_step(real)
    gap1 = _np_value(dw(real), dw(g(z, training=True))) - _np_value(d(real), d(gw(z, training=True)))
    assert gap1 > gap0 + 1e-3


def test_resume_after_interruption_matches_uninterrupted(searcher, shared_searcher, tmp_path):
    _, initial, initial_path = shared_searcher
    straight = run_search(tiny_run_config(epochs=2), str(tmp_path / "straight"), verbose=0,
                          searcher=searcher)
    initial.read(initial_path).assert_consumed()
    run_search(tiny_run_config(epochs=1), str(tmp_path / "resumed"), verbose=0, searcher=searcher)
    # The "new process": every variable of the searcher moves away before resuming.
    searcher.run_epoch(batches(11), batches(12))
    resumed = run_search(tiny_run_config(epochs=2), str(tmp_path / "resumed"), verbose=0,
                         searcher=searcher)
    assert resumed.epochs_run == 1
    a = json.load(open(tmp_path / "straight" / "genotype_history.json"))
    b = json.load(open(tmp_path / "resumed" / "genotype_history.json"))
    assert [h["epoch"] for h in a] == [h["epoch"] for h in b] == [1, 2]
    for ha, hb in zip(a, b):
        for edge in ha["alphas"]:
            np.testing.assert_allclose(ha["alphas"][edge]["alpha"], hb["alphas"][edge]["alpha"],
                                       rtol=0, atol=1e-6)
        assert ha["d_loss"] == pytest.approx(hb["d_loss"], abs=1e-5)
        assert ha["duality_gap"] == pytest.approx(hb["duality_gap"], abs=1e-5)
    # Alphas moved between the epochs (so the equality above is not trivial).
    edge = next(iter(a[0]["alphas"]))
    assert a[0]["alphas"][edge]["alpha"] != a[-1]["alphas"][edge]["alpha"]
    assert straight.genotype == resumed.genotype


def test_same_seed_builds_the_same_players_and_another_seed_does_not():
    """With exact resume above, this is what makes two runs with one --seed agree."""
    from alphagan_tf.gan.search.config import build_players

    def initial_values(seed):
        seeding.seed_host(seed)  # run_search's seeding of what builds the weights
        generator, discriminator = build_players(tiny_run_config())
        discriminator(tf.zeros([1, 8, 8, 3]))
        assert discriminator.variables
        return [v.numpy() for player in (generator, discriminator) for v in player.variables]

    first, again, other = initial_values(3), initial_values(3), initial_values(4)
    seeding.seed_host(0)
    assert len(first) == len(again) > 100
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert max(np.abs(a - b).max() for a, b in zip(first, other)) > 0.1


def test_search_writes_its_results(searcher, tmp_path):
    workdir = tmp_path / "run"
    result = run_search(tiny_run_config(epochs=2), str(workdir), verbose=0, searcher=searcher)
    for name in ("genotype.json", "alpha_history.png", "samples.png", "genotype_history.json",
                 "search_summary.json"):
        assert (workdir / name).exists(), name
    from alphagan_tf.gan.space.genotypes import load_genotype
    assert load_genotype(str(workdir / "genotype.json")) == result.genotype
    png = tf.io.decode_png(tf.io.read_file(str(workdir / "alpha_history.png")))
    assert png.shape[0] > 200 and png.shape[1] > 400
    assert len(os.listdir(workdir / "tensorboard")) >= 1
    history = json.load(open(workdir / "genotype_history.json"))
    uniform = 1 / 6
    normal_edge = next(e for e, s in history[-1]["alphas"].items() if s["kind"] == "normal")
    assert np.abs(np.array(history[-1]["alphas"][normal_edge]["softmax"]) - uniform).max() > 0
    # The diversity signal of every epoch: the fixed-latent samples against real images.
    ratios = [h["diversity_ratio"] for h in history]
    assert len(ratios) == 2 and all(np.isfinite(r) and r > 0 for r in ratios), ratios

    # `train --init_from=<this workdir>`: the fixed generator starts from the final supernet.
    from alphagan_tf.gan.space.generator import Generator, transfer_search_weights
    from alphagan_tf.gan.train.loop import initialize_from_search

    def fixed():
        g = Generator.from_genotype(result.genotype, gf=4, latent_dim=8, bottom_width=1)
        g(tf.zeros([1, 8]), training=False)
        return g

    from_workdir, from_memory, scratch = fixed(), fixed(), fixed()
    initialize_from_search(from_workdir, str(workdir))
    transfer_search_weights(searcher.generator, from_memory)
    for a, b in zip(from_workdir.variables, from_memory.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert max(np.abs(a.numpy() - b.numpy()).max()
               for a, b in zip(from_workdir.variables, scratch.variables)) > 1e-3
    with pytest.raises(FileNotFoundError, match="not a search workdir"):
        initialize_from_search(fixed(), str(tmp_path))


def _with_schedule(searcher, **fields):
    """The shared searcher running another schedule (read per call: nothing is retraced)."""
    import dataclasses

    searcher.config = dataclasses.replace(TINY, **fields)
    return searcher


def test_several_steps_per_call_train_what_one_step_per_call_trains(searcher, shared_searcher):
    _, checkpoint, initial = shared_searcher
    one = _with_schedule(searcher, steps_per_call=1)
    metrics_one = one.run_epoch(batches(1), batches(2), epoch=1)
    after_one = values(searcher.generator.variables + searcher.discriminator.variables)
    checkpoint.read(initial).assert_consumed()
    four = _with_schedule(searcher, steps_per_call=4)  # calls of 4+1 D, 2 worst, 3 alpha steps
    metrics_four = four.run_epoch(batches(1), batches(2), epoch=1)
    after_four = values(searcher.generator.variables + searcher.discriminator.variables)
    for a, b in zip(after_one, after_four):
        np.testing.assert_array_equal(a, b)
    assert metrics_one == metrics_four
    assert int(searcher.d_steps_done.numpy()) == TINY.inner_steps
    _with_schedule(searcher)


@pytest.mark.parametrize("inner_steps, epochs_with_g_loss", [(2, [1, 3]), (5, [1, 2, 3]), (7, [1, 2, 3])])
def test_an_epoch_without_a_g_step_reports_no_g_loss_and_goes_on(searcher, inner_steps,
                                                                 epochs_with_g_loss):
    """inner_steps below, equal to and above n_critic (5): G steps follow D steps 0, 5, 10, ..."""
    _with_schedule(searcher, inner_steps=inner_steps)
    g_weights = values(searcher.generator.weight_variables)
    with_g_loss = []
    for epoch in (1, 2, 3):
        metrics = searcher.run_epoch(batches(epoch), batches(10 + epoch), epoch=epoch)
        assert all(np.isfinite(v) for v in metrics.values()), metrics
        assert {"d_loss", "duality_gap", "worst_d_value", "worst_g_loss"} <= set(metrics)
        if "g_loss" in metrics:
            with_g_loss.append(epoch)
    _with_schedule(searcher)
    assert with_g_loss == epochs_with_g_loss
    assert int(searcher.d_steps_done.numpy()) == 3 * inner_steps
    assert any(not np.array_equal(a, b) for a, b in zip(g_weights, values(searcher.generator.weight_variables)))


def test_the_architecture_step_computes_no_depthwise_kernel_gradient(searcher):
    """d DG / d alpha needs no kernel gradients: the alpha step's graph holds the forward
    depthwise convs and their input gradients only (the G step also holds kernel gradients)."""
    from alphagan_tf.gan.space import depthwise

    def count(concrete):
        return [op.type for op in concrete.graph.get_operations()].count("DepthwiseConv2dNative")

    real = tf.TensorSpec([TINY.batch_size, 8, 8, 3], tf.float32)
    depthwise.set_kernel_gradient("fast")
    try:
        forward = count(tf.function(lambda z: searcher.generator(z, training=True)).get_concrete_function(
            tf.TensorSpec([TINY.batch_size, TINY_MODEL.latent_dim], tf.float32)))
        arch = count(tf.function(searcher._arch_step, autograph=False).get_concrete_function(
            real, tf.TensorSpec([], tf.float32)))
        g = count(tf.function(searcher._g_step, autograph=False).get_concrete_function())
    finally:
        depthwise.set_kernel_gradient("auto")
    assert forward > 0
    assert arch == 2 * forward
    assert g > 2 * forward  # + the per-example kernel gradients of the k >= 5 sep convs


def test_steps_do_not_retrace_after_the_first_epoch(searcher):
    """Runs last in the module too: no earlier test (run_search included) retraced."""
    searcher.run_epoch(batches(1), batches(2))
    first = searcher.tracing_counts()
    searcher.run_epoch(batches(3), batches(4))
    searcher.run_epoch(batches(5), batches(6))
    assert searcher.tracing_counts() == first
    assert set(first.values()) == {1}


def test_float16_search_keeps_alphas_and_losses_float32():
    """float16 compute, float32 alphas / losses, dynamic loss scaling on every optimizer."""
    searcher = build_searcher(tiny_run_config(precision="float16"))
    g = searcher.generator
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    candidates = [op for cell in g.gen_cells for edge in cell.normal_edges for op in edge.candidates]
    convs = [op.conv for op in candidates if hasattr(op, "conv")]  # conv_1x1/3x3/5x5
    convs += [pw for op in candidates if hasattr(op, "pointwise") for pw in op.pointwise]
    assert len(convs) == 3 * 3 * (3 + 3 * 2)  # 3 cells x 3 edges x (3 plain + 3 sep x 2)
    assert {conv.compute_dtype for conv in convs} == {"float16"}
    assert {conv.kernel.dtype for conv in convs} == {"float32"}  # float32 variables
    assert {v.dtype for v in g.arch_variables} == {"float32"}
    assert isinstance(searcher.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(searcher.arch_optimizer.optimizer, keras.optimizers.LossScaleOptimizer)
    alphas0 = values(g.arch_variables)
    # The architecture step only (tracing the six steps in float16 cost a minute of the suite).
    searcher.make_worst_players()
    out = searcher.arch_step(next(batches(3)), searcher.worst_value_step(next(batches(4))))
    assert {v.dtype for v in out.values()} == {tf.float32}
    assert all(np.isfinite(v.numpy()) for v in out.values()), out
    moved = [np.abs(a1 - a0).max() for a0, a1 in zip(alphas0, values(g.arch_variables))]
    assert min(moved) > 0.0
    assert float(searcher.arch_optimizer.optimizer.dynamic_scale.numpy()) > 1.0


def test_worst_case_learning_rates_halve_after_epoch_30_as_the_reference(searcher):
    c = searcher.config
    assert c.worst_lr_halving_epoch == 30
    assert searcher.worst_learning_rates(30) == (c.g_lr, c.d_lr)
    assert searcher.worst_learning_rates(31) == (c.g_lr / 2, c.d_lr / 2)
    searcher.make_worst_players(31)
    np.testing.assert_allclose(float(searcher.worst_g_optimizer.optimizer.learning_rate), c.g_lr / 2)
    np.testing.assert_allclose(float(searcher.worst_d_optimizer.optimizer.learning_rate), c.d_lr / 2)
    searcher.make_worst_players(1)
    np.testing.assert_allclose(float(searcher.worst_d_optimizer.optimizer.learning_rate), c.d_lr)
