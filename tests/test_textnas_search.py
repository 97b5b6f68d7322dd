"""Seconds-long TextNAS search and retraining on a tiny SST subset (real trees)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from alphagan_tf.textnas.search.config import SearchConfig
from alphagan_tf.textnas.search.darts import run_search
from alphagan_tf.textnas.space.architecture import TextArchitecture, load_architecture
from alphagan_tf.textnas.train.config import TrainConfig
from alphagan_tf.textnas.train.loop import run_training


def _search_config(sst_dir, **overrides):
    base = dict(sst_dir=str(sst_dir), task="sst2", max_train_trees=40, held_out_fraction=0.25,
                num_layers=2, units=8, embedding_dim=8, batch_size=32, epochs=2,
                warmup_epochs=0, checkpoint_every=1000)
    base.update(overrides)
    return SearchConfig(**base)


@pytest.mark.slow
def test_search_writes_architecture_and_resumes_exactly(sst_dir, tmp_path):
    config = _search_config(sst_dir)
    straight = run_search(config, str(tmp_path / "straight"), verbose=False)
    path = tmp_path / "straight" / "architecture.json"
    assert TextArchitecture.load(path) == straight.architecture
    assert straight.architecture.num_layers == 2
    assert (tmp_path / "straight" / "architecture_epoch_1.json").exists()
    assert os.listdir(tmp_path / "straight" / "tensorboard")
    assert 0.0 <= straight.held_out_accuracy <= 1.0

    # Interrupted mid-epoch 1 (max_steps), then resumed: the same alphas to the last bit.
    stopped = run_search(_search_config(sst_dir, max_steps=5), str(tmp_path / "resumed"), verbose=False)
    assert stopped.architecture is None and stopped.global_step == 5
    # The SST folder under another path string (moved, or relative given as absolute) resumes.
    other_path = os.path.join(os.path.relpath(str(sst_dir)), ".")
    assert other_path != config.sst_dir
    resumed = run_search(_search_config(other_path), str(tmp_path / "resumed"), verbose=False)
    assert resumed.global_step == straight.global_step
    p_straight = json.loads((tmp_path / "straight" / "probabilities.json").read_text())
    p_resumed = json.loads((tmp_path / "resumed" / "probabilities.json").read_text())
    assert p_resumed == p_straight
    # The architecture weights did move away from their 1e-3-scale initialisation.
    spread = max(max(layer["op"].values()) - min(layer["op"].values()) for layer in p_straight)
    assert spread > 1e-3


@pytest.mark.slow
def test_retraining_selects_on_dev_and_reports_test_once(sst_dir, tmp_path):
    config = TrainConfig(sst_dir=str(sst_dir), task="sst5", max_train_trees=30, units=8,
                         embedding_dim=8, batch_size=64, epochs=2)
    results = run_training(config, load_architecture("random:0:3"), str(tmp_path), verbose=False)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["test_accuracy"] == results["test_accuracy"]
    assert [h["epoch"] for h in saved["history"]] == [1, 2]
    best = max(saved["history"], key=lambda h: h["dev_accuracy"])
    assert saved["best_epoch"] == best["epoch"] and saved["dev_accuracy"] == best["dev_accuracy"]
    assert 0.0 <= saved["test_accuracy"] <= 1.0
    assert (tmp_path / "best.weights.h5").exists() and (tmp_path / "vocab.txt").exists()
    # Export the retrained model: it serves raw strings.
    from alphagan_tf.textnas.train.export import export_classifier, load_trained
    import tensorflow as tf

    model, vocab, max_length = load_trained(str(tmp_path))
    export_classifier(model, vocab, max_length, str(tmp_path / "export"))
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    probs = loaded.signatures["serving_default"](sentences=tf.constant(["a fine film ."]))["probabilities"]
    assert probs.shape == (1, 5)
    np.testing.assert_allclose(probs.numpy().sum(), 1.0, rtol=1e-5)


def test_config_validation(sst_dir):
    with pytest.raises(ValueError, match="warmup_epochs: must be in"):
        _search_config(sst_dir, epochs=2, warmup_epochs=2)
    with pytest.raises(ValueError, match="task must be one of"):
        _search_config(sst_dir, task="sst3")


def test_cli_help_does_not_import_heavy_optionals():
    code = (
        "import sys\n"
        "import alphagan_tf.cli.textnas_search, alphagan_tf.cli.textnas_train, alphagan_tf.cli.textnas_export\n"
        "print(sorted(m for m in ('tensorflow_datasets', 'tensorflow_hub', 'keras_tuner') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "[]"


def test_smoothed_cross_entropy_matches_hand_computation():
    from alphagan_tf.textnas.train.classification import smoothed_cross_entropy

    logits = np.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]], np.float32)
    labels = np.array([0, 2], np.int32)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    plain = -np.mean(log_p[[0, 1], labels])
    np.testing.assert_allclose(float(smoothed_cross_entropy(labels, logits)), plain, rtol=1e-6)
    eps = 0.3
    target = np.full((2, 3), eps / 3) + (1 - eps) * np.eye(3)[labels]
    smoothed = -np.mean((target * log_p).sum(-1))
    np.testing.assert_allclose(float(smoothed_cross_entropy(labels, logits, eps)), smoothed, rtol=1e-6)


def test_patience_counts_evaluations_since_the_best():
    from alphagan_tf.textnas.train.loop import patience_exhausted

    history = [{"dev_accuracy": a} for a in (0.5, 0.7, 0.6, 0.7, 0.65)]
    assert not patience_exhausted(history, 0)
    assert patience_exhausted(history, 3)  # best at index 1; the tie at index 3 is not new
    assert not patience_exhausted(history, 4)
    assert not patience_exhausted(history[:2], 1)


def test_skip_penalty_adds_the_mean_gate_to_the_arch_loss():
    import tensorflow as tf

    from alphagan_tf.textnas.space.model import NetworkConfig
    from alphagan_tf.textnas.search.darts import skip_penalised_loss_fn
    from alphagan_tf.textnas.space.supernet import TextNASSupernet

    net = NetworkConfig(vocab_size=30, num_classes=2, units=8, embedding_dim=8,
                        embedding_dropout=0.0, output_dropout=0.0)
    model = TextNASSupernet.create(net, num_layers=4)
    ids = tf.constant([[3, 4, 5, 0], [6, 7, 0, 0]], tf.int32)
    labels = tf.constant([0, 1], tf.int32)

    def loss_fn(i, y):  # deterministic stand-in for the classification loss
        return tf.reduce_sum(model(i, training=False)[:, 0]) * 0.0 + 1.25, {"accuracy": tf.constant(0.5)}

    assert skip_penalised_loss_fn(model, loss_fn, 0.0) is loss_fn
    penalised = skip_penalised_loss_fn(model, loss_fn, 2.0)
    gate_logits = [layer.skip_gates.logits for layer in model.search_layers[1:]]
    with tf.GradientTape() as tape:
        loss, metrics = penalised(ids, labels)
    gates = np.concatenate([1 / (1 + np.exp(-g.numpy())) for g in gate_logits])  # 0+1+2+3 = 6 gates
    np.testing.assert_allclose(float(loss), 1.25 + 2.0 * gates.mean(), rtol=1e-6)
    np.testing.assert_allclose(float(metrics["cross_entropy"]), 1.25)
    grads = np.concatenate([g.numpy() for g in tape.gradient(loss, gate_logits)])
    np.testing.assert_allclose(grads, 2.0 * gates * (1 - gates) / 6, rtol=1e-5)


@pytest.mark.slow
def test_retraining_evaluates_every_n_steps_and_stops_on_patience(sst_dir, tmp_path):
    base = dict(sst_dir=str(sst_dir), task="sst2", max_train_trees=60, units=8, embedding_dim=8,
                batch_size=32, epochs=3, checkpoint_every=1000)
    first = run_training(TrainConfig(**base, eval_every=4), load_architecture("random:1:2"),
                         str(tmp_path / "every"), verbose=False)
    steps_per_epoch = first["steps"] // 3
    expected = sorted({s for s in range(4, first["steps"] + 1, 4)}
                      | {steps_per_epoch * e for e in (1, 2, 3)})
    assert [h["step"] for h in first["history"]] == expected
    assert not first["stopped_early"]
    # The same run with patience 2 stops at the first evaluation that is the second in a
    # row without a new best; up to there it took the same steps as the full run.
    dev = [h["dev_accuracy"] for h in first["history"]]
    stop_at = next(k for k in range(1, len(dev) + 1) if k - 1 - int(np.argmax(dev[:k])) >= 2)
    stopped = run_training(TrainConfig(**base, eval_every=4, patience=2), load_architecture("random:1:2"),
                           str(tmp_path / "patience"), verbose=False)
    assert stopped["stopped_early"]
    assert [h["step"] for h in stopped["history"]] == expected[:stop_at]
    np.testing.assert_allclose([h["dev_accuracy"] for h in stopped["history"]], dev[:stop_at])
    assert stopped["steps"] == expected[stop_at - 1]
    assert stopped["best_step"] == expected[int(np.argmax(dev[:stop_at]))]


@pytest.mark.slow
def test_rerunning_a_finished_search_derives_by_removal_without_training(sst_dir, tmp_path):
    from alphagan_tf.textnas.space.architecture import OPS

    config = _search_config(sst_dir, num_layers=3, epochs=1)
    first = run_search(config, str(tmp_path), verbose=False)
    again = run_search(_search_config(sst_dir, num_layers=3, epochs=1, op_selection="removal"),
                       str(tmp_path), verbose=False)
    assert again.global_step == first.global_step
    scores = np.array(json.loads((tmp_path / "op_removal_scores.json").read_text())["scores"])
    assert scores.shape == (3, len(OPS))
    assert again.architecture.ops == tuple(OPS[int(k)] for k in scores.argmax(1))
    assert [(l.input, l.skips) for l in again.architecture.layers] == [
        (l.input, l.skips) for l in first.architecture.layers]
    assert TextArchitecture.load(tmp_path / "architecture.json") == again.architecture


def test_train_embedding_dim_flag_overrides_the_search_width(sst_dir):
    from absl import flags

    from alphagan_tf.cli import textnas_flags

    textnas_flags.define_search_flags()
    textnas_flags.define_train_flags()
    FLAGS = flags.FLAGS
    try:
        FLAGS(["prog", f"--sst_dir={sst_dir}", "--embedding_dim=16", "--train_units=24"])
        assert textnas_flags.train_config_from_flags().embedding_dim == 16  # 0 = the search's
        FLAGS(["prog", f"--sst_dir={sst_dir}", "--embedding_dim=16", "--train_embedding_dim=40"])
        assert textnas_flags.train_config_from_flags().embedding_dim == 40
        assert textnas_flags.search_config_from_flags().embedding_dim == 16
    finally:
        FLAGS.unparse_flags()
