"""Seconds-long TextNAS search and retraining on a tiny SST subset (real trees)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from alphagan_tf.textnas.architecture import TextArchitecture, load_architecture
from alphagan_tf.textnas.searcher import SearchConfig, run_search
from alphagan_tf.textnas.trainer import TrainConfig, run_training


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
    resumed = run_search(config, str(tmp_path / "resumed"), verbose=False)
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
    from alphagan_tf.textnas.exporter import export_classifier, load_trained
    import tensorflow as tf

    model, vocab, max_length = load_trained(str(tmp_path))
    export_classifier(model, vocab, max_length, str(tmp_path / "export"))
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    probs = loaded.signatures["serving_default"](sentences=tf.constant(["a fine film ."]))["probabilities"]
    assert probs.shape == (1, 5)
    np.testing.assert_allclose(probs.numpy().sum(), 1.0, rtol=1e-5)


def test_config_validation(sst_dir):
    with pytest.raises(ValueError, match="warmup_epochs must be in"):
        _search_config(sst_dir, epochs=2, warmup_epochs=2)
    with pytest.raises(ValueError, match="task must be one of"):
        _search_config(sst_dir, task="sst3")


def test_cli_help_does_not_import_heavy_optionals():
    code = (
        "import sys\n"
        "import alphagan_tf.textnas.search, alphagan_tf.textnas.train, alphagan_tf.textnas.export\n"
        "print(sorted(m for m in ('tensorflow_datasets', 'tensorflow_hub', 'keras_tuner') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "[]"
