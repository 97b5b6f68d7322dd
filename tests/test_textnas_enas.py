"""ENAS on the TextNAS space: encoding, controller, REINFORCE, the sampled child, the search."""

import itertools
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.textnas.search.child import ChildSteps, SampledPathAdam
from alphagan_tf.textnas.search.controller import ControllerConfig, TextNASController, num_decisions
from alphagan_tf.textnas.search.reinforce import ReinforceTrainer, moving_average, reinforce_loss
from alphagan_tf.textnas.space.architecture import (
    OPS,
    LayerChoice,
    TextArchitecture,
    input_candidates,
    load_architecture,
    random_architecture,
)
from alphagan_tf.textnas.space.encoding import decode, encode
from alphagan_tf.textnas.space.model import NetworkConfig
from alphagan_tf.textnas.space.supernet import TextNASSupernet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NET = NetworkConfig(vocab_size=40, num_classes=3, units=8, embedding_dim=8,
                    embedding_dropout=0.0, output_dropout=0.0)


def _ids():
    rng = np.random.default_rng(0)
    ids = np.zeros((4, 12), np.int32)
    for r, n in enumerate([5, 12, 9, 3]):
        ids[r, :n] = rng.integers(2, 40, n)
    return ids


def _seed(k):
    return tf.constant([7, k], tf.int64)


def _space(num_layers):
    """Every architecture of a `num_layers` space (small L only)."""
    per_layer = []
    for i in range(num_layers):
        per_layer.append([LayerChoice(op, src, tuple(j for j in range(i) if mask >> j & 1))
                          for op in OPS for src in input_candidates(i) for mask in range(2 ** i)])
    return [TextArchitecture(layers) for layers in itertools.product(*per_layer)]


def test_encoding_round_trip_and_errors_name_the_input():
    for seed in range(5):
        arch = random_architecture(7, seed)
        encoded = encode(arch)
        assert encoded.ops.shape == (7,) and encoded.skips.shape == (7, 7)
        assert decode(*encoded.as_tuple()) == arch
    ops, inputs, skips = encode(random_architecture(3, 0)).as_tuple()
    with pytest.raises(ValueError, match=r"ops must be indices in \[0, 7\]. Received: \[9"):
        decode(np.array([9, 0, 0]), inputs, skips)
    upper = skips.copy()
    upper[0, 2] = 1
    with pytest.raises(ValueError, match="skips must be zero on and above the diagonal"):
        decode(ops, inputs, upper)
    with pytest.raises(ValueError, match=r"shapes \(3,\), \(2,\), \(3, 3\)"):
        decode(ops, inputs[:2], skips)
    bad_input = inputs.copy()
    bad_input[2] = 2  # layer 2 may read -1, 0 or 1
    with pytest.raises(ValueError, match=r"layers\[2\].input must be an integer in \[-1, 0, 1\]"):
        decode(ops, bad_input, skips)


def test_controller_samples_are_valid_and_deterministic_under_the_seed():
    keras.utils.set_random_seed(3)
    controller = TextNASController.create(9, units=16)
    sample = tf.function(controller.sample)
    seen = set()
    for k in range(12):
        s = sample(_seed(k))
        ops, inputs, skips = (a.numpy() for a in s.architecture)
        decode(ops, inputs, skips)  # every constraint of the space (raises otherwise)
        assert inputs[0] == -1 and not skips[0].any()
        for i in range(9):
            assert input_candidates(i)[0] <= inputs[i] <= i - 1 or (i == 0 and inputs[i] == -1)
            assert not skips[i, i:].any()
        assert np.isfinite(float(s.log_prob)) and float(s.log_prob) < 0
        assert float(s.entropy) > 0 and float(s.skip_kl) >= 0
        seen.add((ops.tobytes(), inputs.tobytes(), skips.tobytes()))
        again = controller.sample(_seed(k))  # eager and compiled agree, draw for draw
        for a, b in zip(again.architecture, s.architecture):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert len(seen) == 12
    keras.utils.set_random_seed(3)
    twin = TextNASController.create(9, units=16)  # same --seed: same weights, same samples
    for a, b in zip(twin.sample(_seed(4)).architecture, controller.sample(_seed(4)).architecture):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert num_decisions(9) == 9 + 8 + 36
    assert TextNASController.from_config(controller.get_config()).num_layers == 9


def test_controller_probabilities_sum_to_one_and_replay_the_sample():
    controller = TextNASController.create(2, units=8)
    log_prob = tf.function(controller.log_prob)
    space = _space(2)
    assert len(space) == 8 * 8 * 2 * 2
    total = sum(np.exp(float(log_prob(*encode(a).as_tuple()).log_prob)) for a in space)
    np.testing.assert_allclose(total, 1.0, rtol=1e-5)
    s = controller.sample(_seed(0))
    replayed = controller.log_prob(*s.architecture)
    np.testing.assert_allclose(float(replayed.log_prob), float(s.log_prob), rtol=1e-6)
    np.testing.assert_allclose(float(replayed.entropy), float(s.entropy), rtol=1e-6)
    # One layer: the entropy is the op distribution's, exactly.
    single = TextNASController.create(1, units=8)
    p = np.exp([float(single.log_prob(*encode(a).as_tuple()).log_prob) for a in _space(1)])
    np.testing.assert_allclose(float(single.sample(_seed(1)).entropy), -(p * np.log(p)).sum(), rtol=1e-5)


def test_reinforce_pieces_by_hand():
    np.testing.assert_allclose(float(moving_average(0.5, 1.0, 0.9)), 0.55)
    log_prob = tf.Variable(-2.0)
    with tf.GradientTape() as tape:
        loss = reinforce_loss(log_prob * 1.0, tf.constant(0.25) + 0.0 * log_prob)
    np.testing.assert_allclose(float(loss), 0.5)
    np.testing.assert_allclose(float(tape.gradient(loss, log_prob)), -0.25)  # advantage held constant


def test_reinforce_on_a_toy_reward_raises_the_probability_of_the_rewarded_choice():
    keras.utils.set_random_seed(0)
    controller = TextNASController.create(2, units=8)
    space = _space(2)
    rewarded = [a for a in space if a.ops[0] == "conv_7"]

    def p_rewarded():
        return sum(np.exp(float(controller.log_prob(*encode(a).as_tuple()).log_prob)) for a in rewarded)

    def reward_fn(architecture):
        return float(architecture[0].numpy()[0] == OPS.index("conv_7"))

    config = ControllerConfig(units=8, learning_rate=0.05, entropy_weight=0.0, skip_weight=0.0,
                              baseline_decay=0.9)
    trainer = ReinforceTrainer(controller, config)
    before = p_rewarded()
    rewards = [trainer.step([7, k], reward_fn)["reward"] for k in range(80)]
    after = p_rewarded()
    assert 0.05 < before < 0.25  # about 1/8 at initialisation
    assert after > 0.6, (before, after)
    assert np.mean(rewards[-20:]) > np.mean(rewards[:20])
    assert int(trainer.steps.numpy()) == 80


def _child(num_layers=3):
    keras.utils.set_random_seed(1)
    model = TextNASSupernet.create(NET, num_layers)
    return model, ChildSteps(model, SampledPathAdam(1e-2))


def _candidate_variables(model, layer, op):
    candidate = model.search_layers[layer].mixed_op.candidates[OPS.index(op)]
    return candidate.variables


def test_a_sampled_step_touches_only_the_sampled_ops():
    model, child = _child(2)
    ids, labels = tf.constant(_ids()), tf.constant([0, 1, 2, 1], tf.int32)
    first = TextArchitecture((LayerChoice("conv_3", -1), LayerChoice("bi_gru", 0, (0,))))
    second = TextArchitecture((LayerChoice("self_attention", -1), LayerChoice("conv_5", -1, (0,))))
    child.train_step(ids, labels, *encode(first).as_tuple())  # Adam moments for `first`'s ops

    arrays = encode(second).as_tuple()
    with tf.GradientTape() as tape:
        loss, _ = child.loss_fn(ids, labels, architecture=arrays)
    grads = dict(zip((v.path for v in child.variables), tape.gradient(loss, child.variables)))
    before = {v.path: v.numpy().copy() for v in model.variables}
    child.train_step(ids, labels, *arrays)

    for i, layer in enumerate(second.layers):
        for op in OPS:
            for v in _candidate_variables(model, i, op):
                changed = not np.array_equal(before[v.path], v.numpy())
                if op == layer.op:
                    if v.trainable:
                        assert np.abs(grads[v.path].numpy()).max() > 0, v.path
                    assert changed, v.path  # weights stepped, batch statistics updated
                else:
                    if v.trainable:  # None when eager: the branch did not run at all
                        assert grads[v.path] is None or not np.abs(grads[v.path].numpy()).any()
                    assert not changed, v.path  # nor moved by Adam's momentum from `first`
    assert not np.array_equal(before[model.stem.projection.kernel.path], model.stem.projection.kernel.numpy())
    # The alphas are not on the sampled path.
    assert all(np.array_equal(before[v.path], v.numpy()) for v in model.arch_variables)


def test_the_sampled_path_is_the_relaxed_network_with_saturated_choices():
    model, child = _child(3)
    arch = TextArchitecture((LayerChoice("bi_gru", -1), LayerChoice("avg_pool_3", -1, (0,)),
                             LayerChoice("self_attention", 0, (1,))))
    for i, (layer, choice) in enumerate(zip(model.search_layers, arch.layers)):
        layer.mixed_op.alpha.assign(np.where(np.array(OPS) == choice.op, 60.0, -60.0))
        if layer.input_choice is not None:
            layer.input_choice.alpha.assign(
                np.where(np.array(input_candidates(i)) == choice.input, 60.0, -60.0))
        if layer.skip_gates is not None:
            layer.skip_gates.logits.assign(np.where(np.isin(np.arange(i), choice.skips), 60.0, -60.0))
    ids = tf.constant(_ids())
    relaxed = model(ids, training=False).numpy()
    sampled = child.predict(ids, *encode(arch).as_tuple()).numpy()
    np.testing.assert_allclose(sampled, relaxed, rtol=1e-5, atol=1e-6)


def _enas_config(sst_dir, **overrides):
    from alphagan_tf.textnas.search.config import SearchConfig

    base = dict(sst_dir=str(sst_dir), algorithm="enas", task="sst2", max_train_trees=40,
                held_out_fraction=0.25, num_layers=2, units=8, embedding_dim=8, batch_size=32,
                epochs=2, warmup_epochs=1, controller_every=2, controller_steps=2,
                controller=ControllerConfig(units=8), derive_samples=4, checkpoint_every=1000)
    base.update(overrides)
    return SearchConfig(**base)


@pytest.mark.slow
def test_enas_search_resumes_exactly_and_derives_a_trainable_architecture(sst_dir, tmp_path):
    from alphagan_tf.textnas.search.enas import run_enas_search as run_search

    straight = run_search(_enas_config(sst_dir), str(tmp_path / "straight"), verbose=False)
    stopped = run_search(_enas_config(sst_dir, max_steps=straight.global_step - 3),
                         str(tmp_path / "resumed"), verbose=False)
    assert stopped.architecture is None
    resumed = run_search(_enas_config(sst_dir), str(tmp_path / "resumed"), verbose=False)
    assert resumed.global_step == straight.global_step
    # Exact resume: every checkpointed tensor (child weights and Adam, controller weights and Adam,
    # reward baseline, controller step count) equals the uninterrupted run's.
    a = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "straight" / "checkpoints")))
    b = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "resumed" / "checkpoints")))
    def values(reader):  # the variables (not the object graph, whose layer names differ per run)
        return sorted(n for n in reader.get_variable_to_shape_map()
                      if n.endswith("VARIABLE_VALUE") and not n.startswith("save_counter"))

    names = values(a)
    assert values(b) == names
    groups = {g: [n for n in names if n.startswith(g + "/")]
              for g in ("model", "controller", "controller_optimizer", "reward_baseline",
                        "controller_steps", "weight_optimizer", "seed_states")}
    assert all(groups.values()), {g: len(v) for g, v in groups.items()}
    baseline = groups["reward_baseline"]
    assert len(baseline) == 1 and a.get_tensor(baseline[0]) != 0  # trained, not the initial 0
    for name in names:
        np.testing.assert_array_equal(a.get_tensor(name), b.get_tensor(name), err_msg=name)
    scores = json.loads((tmp_path / "straight" / "derive_scores.json").read_text())
    assert scores == json.loads((tmp_path / "resumed" / "derive_scores.json").read_text())
    assert len(scores) == 4
    best = max(scores, key=lambda s: (s["accuracy"], -s["loss"]))
    path = tmp_path / "straight" / "architecture.json"
    assert load_architecture(str(path)) == straight.architecture  # what textnas.train reads
    assert straight.architecture == TextArchitecture.from_dict(best["architecture"])
    assert straight.held_out_accuracy == best["accuracy"]
    assert os.listdir(tmp_path / "straight" / "tensorboard")
    config = json.loads((tmp_path / "straight" / "search_config.json").read_text())
    assert config["algorithm"] == "enas" and config["controller"]["units"] == 8


def test_random_ws_samples_uniformly_and_deterministically():
    from alphagan_tf.nas.sampling import stream_seed
    from alphagan_tf.textnas.search.random_ws import UniformSampler

    sampler = UniformSampler(6)
    draws = [decode(*sampler(stream_seed(0, 0, k)).as_tuple()) for k in range(400)]
    assert decode(*sampler(stream_seed(0, 0, 3)).as_tuple()) == draws[3]
    assert decode(*sampler(stream_seed(1, 0, 3)).as_tuple()) != draws[3]
    ops = np.array([[OPS.index(op) for op in a.ops] for a in draws])
    counts = np.bincount(ops.ravel(), minlength=len(OPS)) / ops.size
    np.testing.assert_allclose(counts, 1 / len(OPS), atol=0.03)
    skip_share = np.mean([len(l.skips) / i for a in draws for i, l in enumerate(a.layers) if i])
    assert 0.45 < skip_share < 0.55


def test_search_cli_rejects_an_unknown_algorithm_and_parses_the_sst_configs(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "alphagan_tf.textnas.search", *args],
                              capture_output=True, text=True, cwd=ROOT)

    bad = run("--algorithm=xyz", f"--workdir={tmp_path / 'w'}")
    assert bad.returncode == 2
    assert ("error: --algorithm: value should be one of <alphagan|darts|enas|random_ws>. "
            "Received: xyz") in bad.stderr
    assert not (tmp_path / "w").exists()
    for config in ("sst2.cfg", "sst5.cfg", "sst2_tiny.cfg"):  # train_*.cfg: test_cli parses them
        ok = run(f"--flagfile=configs/{config}", "--helpshort")
        assert "error:" not in ok.stderr, ok.stderr[-2000:]
        assert "Try --helpfull" in ok.stdout
