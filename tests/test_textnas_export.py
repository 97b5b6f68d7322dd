"""Raw-string SavedModel export of a TextNAS classifier, loaded by the TF1 session loader."""

import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.textnas import data as sst
from alphagan_tf.textnas.space.architecture import random_architecture
from alphagan_tf.textnas.space.model import NetworkConfig, TextClassifier
from alphagan_tf.textnas.train.export import export_classifier, tokenize_in_graph

VOCAB = sst.Vocabulary(["<pad>", "<unk>", "good", "bad", "movie", "très", "n't"])
SENTENCES = ["Good movie", "BAD   bad zzz movie", "", "TRÈS good n't", "a " * 80]


def _python_ids(sentences, max_length=64):
    return sst.pad_batch([np.asarray(VOCAB.encode(s.lower().split(), max_length) or [0], np.int32)
                          for s in sentences])


def _table():
    words = VOCAB.words[2:]
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(words), tf.range(2, 2 + len(words))), 1)


def test_in_graph_tokenization_matches_python():
    ids = tokenize_in_graph(tf.constant(SENTENCES), _table(), 64).numpy()
    np.testing.assert_array_equal(ids, _python_ids(SENTENCES))
    assert ids.shape == (5, 64)  # the long sentence is cut at max_length
    empty = tokenize_in_graph(tf.constant(["", " "]), _table(), 64).numpy()
    assert empty.tolist() == [[0], [0]]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = TextClassifier.from_architecture(
        random_architecture(4, 0), NetworkConfig(len(VOCAB), 3, units=8, embedding_dim=8))
    path = str(tmp_path_factory.mktemp("export") / "textnas")
    export_classifier(model, VOCAB, 64, path)
    expected = tf.nn.softmax(model(_python_ids(SENTENCES), training=False)).numpy()
    return path, expected


def test_v1_session_loader_returns_the_model_probabilities(exported):
    path, expected = exported
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], path)
        signature = meta.signature_def["serving_default"]
        out = sess.run(signature.outputs["probabilities"].name,
                       {signature.inputs["sentences"].name: SENTENCES})
    assert out.shape == (5, 3)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert np.ptp(out[:2], axis=0).max() > 0  # different sentences, different outputs


def test_tf2_loader(exported):
    path, expected = exported
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](sentences=tf.constant(SENTENCES))["probabilities"]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_export_refuses_non_empty_dir(exported):
    path, _ = exported
    with pytest.raises(ValueError, match="export_dir: must be new or empty"):
        export_classifier(None, VOCAB, 64, path)


def test_graph_tokenizer_agrees_with_training_on_sst_leaves(sst_dir):
    trees = sst.load_trees(sst_dir, "train")
    vocab = sst.Vocabulary.from_examples(sst.tokenize(t.tokens) for t in trees)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(vocab.words[2:]), tf.range(2, len(vocab))), 1)
    sentences = [" ".join(t.tokens) for t in trees]
    graph_ids = tokenize_in_graph(tf.constant(sentences), table, 64).numpy()
    python_ids = sst.pad_batch([np.asarray(vocab.encode(sst.tokenize(t.tokens), 64)) for t in trees])
    np.testing.assert_array_equal(graph_ids, python_ids)
    assert (python_ids == sst.UNK_ID).sum() == 0  # every train word is in the vocabulary
