"""SST tree parsing, labels, vocabulary and batching."""

import numpy as np
import pytest

from alphagan_tf.textnas import data as sst

TREE = "(3 (2 (2 The) (2 Rock)) (4 (3 (2 is) (4 great)) (2 .)))"


def test_parse_tree_collects_every_subtree():
    tree = sst.parse_tree(TREE)
    assert tree.label == 3
    assert tree.tokens == ("The", "Rock", "is", "great", ".")
    # 5 leaves -> 9 nodes in a binary tree; root first.
    assert len(tree.phrases) == 9
    assert tree.phrases[0] == (3, ("The", "Rock", "is", "great", "."))
    assert (2, ("The", "Rock")) in tree.phrases
    assert (3, ("is", "great")) in tree.phrases
    assert (4, ("is", "great", ".")) in tree.phrases
    assert (4, ("great",)) in tree.phrases


@pytest.mark.parametrize("bad", ["(3 (2 The)", "(7 word)", "(2 )", "(2 a) extra", "2 a)"])
def test_parse_tree_rejects_malformed(bad):
    with pytest.raises(ValueError):
        sst.parse_tree(bad)


def test_label_maps():
    assert [sst.map_label(y, "sst5") for y in range(5)] == [0, 1, 2, 3, 4]
    assert [sst.map_label(y, "sst2") for y in range(5)] == [0, 0, None, 1, 1]
    with pytest.raises(ValueError, match="task"):
        sst.map_label(1, "sst3")


def test_phrases_sst2_drop_neutral_and_dedup():
    trees = [sst.parse_tree(TREE), sst.parse_tree("(1 (2 The) (0 rock))")]
    ex = sst.phrase_examples(trees, "sst2", dedup=True)
    got = dict(zip(ex.tokens, ex.labels.tolist()))
    # Non-neutral subtrees: TREE's root (3), "is great ." (4), "is great" (3), "great" (4);
    # the second tree's root (1) and "rock" (0). Lower-cased.
    assert got == {
        ("the", "rock", "is", "great", "."): 1,
        ("is", "great", "."): 1,
        ("is", "great"): 1,
        ("great",): 1,
        ("the", "rock"): 0,
        ("rock",): 0,
    }
    # sst5 keeps neutral phrases; "the" occurs in both trees but is kept once.
    ex5 = sst.phrase_examples(trees, "sst5", dedup=True)
    assert sum(1 for t in ex5.tokens if t == ("the",)) == 1
    ex5_all = sst.phrase_examples(trees, "sst5", dedup=False)
    assert len(ex5_all) == 9 + 3


def test_sentences_use_root_labels():
    trees = [sst.parse_tree(TREE), sst.parse_tree("(2 (2 a) (2 b))")]
    ex = sst.sentence_examples(trees, "sst2")
    assert ex.tokens == (("the", "rock", "is", "great", "."),)
    assert ex.labels.tolist() == [1]
    assert sst.sentence_examples(trees, "sst5").labels.tolist() == [3, 2]


def test_vocabulary_order_and_encoding():
    vocab = sst.Vocabulary.from_examples([("b", "a", "b"), ("c", "b")])
    assert vocab.words == ["<pad>", "<unk>", "b", "a", "c"]
    assert vocab.encode(("a", "zz", "b", "c"), max_length=3) == [3, 1, 2]


def test_vocabulary_save_load(tmp_path):
    vocab = sst.Vocabulary(["<pad>", "<unk>", "x", "é"])
    vocab.save(tmp_path / "v.txt")
    assert sst.Vocabulary.load(tmp_path / "v.txt").words == vocab.words


def _encoded(n=23, seed=0):
    rng = np.random.default_rng(seed)
    ids = tuple(rng.integers(2, 9, size=rng.integers(1, 12)).astype(np.int32) for _ in range(n))
    return sst.EncodedSet(ids=ids, labels=np.arange(n, dtype=np.int32))


def test_bucket_batcher_covers_each_example_once_and_is_deterministic():
    data = _encoded()
    batcher = sst.BucketBatcher(data, batch_size=5, seed=3, pool_batches=2)
    assert len(batcher) == 5
    epoch0 = batcher.epoch_indices(0)
    assert sorted(np.concatenate(epoch0).tolist()) == list(range(23))
    assert all(np.array_equal(a, b) for a, b in zip(epoch0, batcher.epoch_indices(0)))
    assert not all(np.array_equal(a, b) for a, b in zip(epoch0, batcher.epoch_indices(1)))
    # Resuming at batch 2 yields the same batches as the uninterrupted epoch.
    full = list(batcher.epoch(0))
    resumed = list(batcher.epoch(0, start=2))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(full[2:], resumed))
    # batch_at walks epoch 0 then epoch 1.
    assert np.array_equal(batcher.batch_at(6)[1], batcher.batch(batcher.epoch_indices(1)[1])[1])


def test_pad_batch():
    out = sst.pad_batch([np.array([3, 4]), np.array([5])])
    assert out.tolist() == [[3, 4], [5, 0]]
    assert out.dtype == np.int32


def test_load_glove(tmp_path):
    vocab = sst.Vocabulary(["<pad>", "<unk>", "good", "bad"])
    path = tmp_path / "vectors.txt"
    path.write_text("good 1 2 3\nother 0 0 0\n")
    matrix, found = sst.load_glove(path, vocab, dim=3)
    assert found == 1
    assert matrix[2].tolist() == [1.0, 2.0, 3.0]
    assert matrix[0].tolist() == [0.0, 0.0, 0.0]
    assert np.all(np.abs(matrix[3]) <= 0.1) and np.any(matrix[3] != 0)
    path.write_text("good 1 2\n")
    with pytest.raises(ValueError, match="expected 3 values"):
        sst.load_glove(path, vocab, dim=3)


def test_real_sst_counts(sst_dir):
    d2 = sst.load_sst(sst_dir, "sst2")
    d5 = sst.load_sst(sst_dir, "sst5")
    # The standard split sizes.
    assert (len(d2.dev_sentences), len(d2.test_sentences)) == (872, 1821)
    assert (len(d5.dev_sentences), len(d5.test_sentences)) == (1101, 2210)
    assert len(d5.train_phrases) > len(d2.train_phrases) > 70000
    assert d2.train_phrases.labels.max() == 1 and d5.train_phrases.labels.max() == 4
    assert d2.train_phrases.lengths.max() <= 64
    split = sst.load_search_split(sst_dir, "sst2", held_out_fraction=0.1)
    assert len(split.arch_sentences) > 600
    assert len(split.weight_phrases) > 8 * len(split.arch_phrases)
