"""Tests of alphagan_tf.data: sources, scaling, the 50/50 search split,
determinism, iterator checkpoints and the offline tfds error.

tfds' real cifar10 / stl10 builders, on archives in the original binary formats,
are tested in test_tfds_builders.py (split halving and tfds iterator checkpoints
included); here nothing of tfds is prepared and nothing is downloaded.
"""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from alphagan_tf.data import pipeline, sources
from alphagan_tf.data.sources import DatasetUnavailableError


def _pixels(batch) -> np.ndarray:
    """float [-1, 1] batch -> the uint8 values it was scaled from."""
    return np.round((np.asarray(batch) + 1.0) * 127.5).astype(np.int64)


def _indexed_images(n: int, size: int = 4) -> np.ndarray:
    """n distinct constant images; image i has value i in every pixel."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, size, size, 3)).copy()


def _write_npz(path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def _ids(dataset, num_batches: int) -> list[int]:
    """The constant value of each image of the first batches (one id per image)."""
    ids = []
    for batch in dataset.take(num_batches):
        pixels = _pixels(batch)
        assert (pixels == pixels[:, :1, :1, :1]).all()  # still constant images
        ids.extend(pixels[:, 0, 0, 0].tolist())
    return ids


# ---------------------------------------------------------------------------
# Scaling and the demo source.


def test_scale_images_maps_uint8_range_to_minus_one_one():
    scaled = pipeline.scale_images(np.array([0, 51, 255], np.uint8)).numpy()
    assert scaled.dtype == np.float32
    np.testing.assert_array_equal(scaled, np.float32([-1.0, 51 / 127.5 - 1.0, 1.0]))


def test_demo_source_is_the_digits_scaled_to_uint8():
    from sklearn.datasets import load_digits

    digits = load_digits().images
    native = sources.load_demo(8)  # no resize: exact pixels
    assert native.shape == (1797, 8, 8, 3) and native.dtype == np.uint8
    np.testing.assert_array_equal(native[..., 0], np.round(digits * 255 / 16).astype(np.uint8))
    np.testing.assert_array_equal(native[..., 0], native[..., 2])

    resized = sources.load_demo(16)
    assert resized.shape == (1797, 16, 16, 3) and resized.dtype == np.uint8
    assert resized.min() == 0 and resized.max() == 255
    # Bilinear upsampling keeps each image's mean brightness close to the original.
    np.testing.assert_allclose(resized.mean(axis=(1, 2, 3)), native.mean(axis=(1, 2, 3)), atol=6)


def test_demo_search_batches_use_the_full_range_exactly():
    data = pipeline.search_datasets("demo", image_size=16, batch_size=64, seed=0)
    assert (data.num_weight_examples, data.num_arch_examples) == (899, 898)
    batches = np.concatenate([b.numpy() for b in data.weight.take(15)])  # > one epoch
    assert batches.shape == (15 * 64, 16, 16, 3) and batches.dtype == np.float32
    assert batches.min() == -1.0 and batches.max() == 1.0
    # White digits on black: the digits' mean ink (about 4.9 of 16) survives.
    from sklearn.datasets import load_digits

    expected_mean = load_digits().images.mean() / 16 * 2 - 1
    assert abs(batches.mean() - expected_mean) < 0.05


# ---------------------------------------------------------------------------
# npz and folder sources.


def test_npz_source_rgb_and_greyscale(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 6, 6, 3), dtype=np.uint8)
    path = _write_npz(tmp_path / "rgb.npz", x_train=rgb, y_train=np.zeros(5))
    np.testing.assert_array_equal(sources.load_npz(path, 6), rgb)  # same size: untouched

    grey = _indexed_images(5, 6)[..., 0] * 50  # [N, H, W]
    for name, array in (("grey.npz", grey), ("grey1.npz", grey[..., None])):
        images = sources.load_npz(_write_npz(tmp_path / name, x_train=array), 3)
        assert images.shape == (5, 3, 3, 3)
        np.testing.assert_array_equal(images[:, 1, 1, :], np.repeat(np.arange(5)[:, None] * 50, 3, axis=1))


def test_npz_source_reads_the_shared_cifar10_sample(cifar10_sample_path):
    spec = f"npz:{cifar10_sample_path}"
    images = sources.load_in_memory(spec, 32)
    with np.load(cifar10_sample_path) as archive:
        np.testing.assert_array_equal(images, archive["x_train"])
    data = pipeline.search_datasets(spec, image_size=16, batch_size=32, seed=0)
    assert (data.num_weight_examples, data.num_arch_examples) == (2543, 2542)
    batch = next(iter(data.arch)).numpy()
    assert batch.shape == (32, 16, 16, 3)
    assert -1.0 <= batch.min() < -0.5 and 0.5 < batch.max() <= 1.0


def test_folder_source_recursive_sorted_rgb_and_centre_cropped(tmp_path):
    (tmp_path / "b" / "deeper").mkdir(parents=True)
    Image.new("RGB", (12, 12), (255, 0, 0)).save(tmp_path / "a.png")
    Image.new("L", (7, 7), 100).save(tmp_path / "b" / "c.bmp")
    Image.new("RGB", (16, 16), (0, 0, 200)).save(tmp_path / "b" / "deeper" / "d.JPG", quality=95)
    Image.new("RGBA", (8, 8), (10, 20, 30, 128)).save(tmp_path / "e.gif")
    # 30 x 10, black | white | black: the centre square is all white.
    wide = np.zeros((10, 30, 3), np.uint8)
    wide[:, 10:20] = 255
    Image.fromarray(wide).save(tmp_path / "f.png")
    (tmp_path / "notes.txt").write_text("not an image")

    assert [os.path.relpath(f, tmp_path) for f in sources.list_image_files(str(tmp_path))] == [
        "a.png", os.path.join("b", "c.bmp"), os.path.join("b", "deeper", "d.JPG"), "e.gif", "f.png"
    ]
    images = sources.load_in_memory(f"folder:{tmp_path}", 8)
    assert images.shape == (5, 8, 8, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[0], np.broadcast_to([255, 0, 0], (8, 8, 3)))
    np.testing.assert_array_equal(images[1], np.full((8, 8, 3), 100))
    np.testing.assert_allclose(images[2].astype(int), np.broadcast_to([0, 0, 200], (8, 8, 3)), atol=4)
    np.testing.assert_allclose(images[3].astype(int), np.broadcast_to([10, 20, 30], (8, 8, 3)), atol=2)
    np.testing.assert_array_equal(images[4], np.full((8, 8, 3), 255))


# ---------------------------------------------------------------------------
# Clear errors for bad inputs.


def test_bad_npz_inputs_name_the_file_and_what_was_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        pipeline.search_datasets(f"npz:{tmp_path}/missing.npz", image_size=8, batch_size=2, seed=0)
    no_key = _write_npz(tmp_path / "nokey.npz", images=np.zeros((4, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"nokey.npz.*no 'x_train'.*\['images'\]"):
        sources.load_npz(no_key, 8)
    wrong_rank = _write_npz(tmp_path / "rank.npz", x_train=np.zeros((4, 8), np.uint8))
    with pytest.raises(ValueError, match=r"rank.npz.*shape=\(4, 8\)"):
        sources.load_npz(wrong_rank, 8)
    wrong_dtype = _write_npz(tmp_path / "dtype.npz", x_train=np.zeros((4, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="dtype.npz.*uint8.*dtype=float32"):
        sources.load_npz(wrong_dtype, 8)


def test_bad_folder_and_spec_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no pictures here")
    with pytest.raises(ValueError, match="No images.*empty"):
        sources.load_in_memory(f"folder:{tmp_path}/empty", 8)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        sources.load_in_memory(f"folder:{tmp_path}/nowhere", 8)
    for spec in ("imagenet_folder", "npz:", "csv:/x.csv", "tfds:", "tfds:a:b:c", ""):
        with pytest.raises(ValueError, match="demo.*npz:.*folder:.*cifar10.*stl10.*tfds:NAME|path|tfds:NAME"):
            sources.parse_source(spec)
    with pytest.raises(ValueError, match="no dataset 'no_such_dataset_xyz'"):
        sources.tfds_builder("no_such_dataset_xyz", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"at least 2 \* batch_size = 20 images. Received: 12"):
        pipeline.search_datasets_from_images(_indexed_images(12), batch_size=10, seed=0)


def test_parse_source_forms():
    assert sources.parse_source("demo") == sources.SourceSpec("demo")
    assert sources.parse_source("cifar10") == sources.SourceSpec("tfds", "cifar10", "train")
    assert sources.parse_source("stl10") == sources.SourceSpec("tfds", "stl10", "train+unlabelled")
    assert sources.parse_source("tfds:mnist") == sources.SourceSpec("tfds", "mnist", "train")
    assert sources.parse_source("tfds:stl10") == sources.SourceSpec("tfds", "stl10", "train+unlabelled")
    assert sources.parse_source("tfds:celeb_a:2.1.0:test") == sources.SourceSpec("tfds", "celeb_a:2.1.0", "test")
    assert sources.parse_source("npz:/d/x.npz") == sources.SourceSpec("npz", "/d/x.npz")
    assert pipeline.half_splits("train+unlabelled") == (
        "train[:50%]+unlabelled[:50%]", "train[50%:]+unlabelled[50%:]")
    assert sources.split_names("train[:10%]+unlabelled[50%:]") == ["train", "unlabelled"]


def test_protocol_image_size_of_each_spec():
    sizes = {spec: sources.protocol_image_size(spec) for spec in (
        "cifar10", "stl10", "tfds:stl10:train", "tfds:cifar10:3.0.2:test", "tfds:mnist", "demo",
        "npz:/d/x.npz")}
    assert sizes == {"cifar10": 32, "stl10": 48, "tfds:stl10:train": 48, "tfds:cifar10:3.0.2:test": 32,
                     "tfds:mnist": None, "demo": None, "npz:/d/x.npz": None}


# ---------------------------------------------------------------------------
# The 50/50 split, determinism, checkpoints.


def test_split_indices_partition_the_set():
    weight, arch = pipeline.split_indices(11, seed=3)
    assert (len(weight), len(arch)) == (6, 5)
    assert not set(weight) & set(arch)
    assert sorted([*weight, *arch]) == list(range(11))
    assert not np.array_equal(weight, np.arange(6))  # shuffled, not a prefix


def test_search_split_has_no_overlap_and_covers_the_set(tmp_path):
    path = _write_npz(tmp_path / "indexed.npz", x_train=_indexed_images(50))
    data = pipeline.search_datasets(f"npz:{path}", image_size=4, batch_size=5, seed=1)
    assert (data.num_weight_examples, data.num_arch_examples) == (25, 25)
    weight_ids, arch_ids = _ids(data.weight, 10), _ids(data.arch, 10)  # two epochs each
    assert len(set(weight_ids)) == len(set(arch_ids)) == 25
    assert not set(weight_ids) & set(arch_ids)
    assert set(weight_ids) | set(arch_ids) == set(range(50))
    # Each epoch is a permutation of its half, and epochs are reshuffled.
    assert sorted(weight_ids[:25]) == sorted(weight_ids[25:]) and weight_ids[:25] != weight_ids[25:]


def test_same_seed_same_batches_other_seed_other_batches():
    images = _indexed_images(64)

    def first_batches(seed):
        data = pipeline.search_datasets_from_images(images, batch_size=4, seed=seed)
        return _ids(data.weight, 3), _ids(data.arch, 3)

    tf.random.set_seed(123)  # the global seed does not matter
    weight_a, arch_a = first_batches(7)
    tf.random.set_seed(456)
    weight_b, arch_b = first_batches(7)
    weight_c, _ = first_batches(8)
    assert (weight_a, arch_a) == (weight_b, arch_b)
    assert weight_a != weight_c
    assert weight_a != arch_a


def test_iterator_checkpoint_resumes_at_the_same_batch(tmp_path):
    images = _indexed_images(40)

    def make_iterator():
        return iter(pipeline.search_datasets_from_images(images, batch_size=4, seed=5).weight)

    iterator = make_iterator()
    for _ in range(7):  # past the first epoch (20 images = 5 batches)
        next(iterator)
    path = tf.train.Checkpoint(iterator=iterator).write(str(tmp_path / "ckpt"))
    expected = [next(iterator).numpy() for _ in range(4)]

    restored = make_iterator()
    tf.train.Checkpoint(iterator=restored).read(path).assert_consumed()
    for batch in expected:
        np.testing.assert_array_equal(next(restored).numpy(), batch)
    # Shuffling indices keeps the checkpoint small: no images in a shuffle buffer.
    data_file = [f for f in os.listdir(tmp_path) if f.startswith("ckpt.data")][0]
    prefetched = 2 * 4 * 4 * 4 * 3 * 4  # 2 float32 batches of [4, 4, 4, 3]
    assert os.path.getsize(tmp_path / data_file) < prefetched + 4096


def test_training_and_evaluation_datasets_cover_the_whole_set(tmp_path):
    path = _write_npz(tmp_path / "indexed.npz", x_train=_indexed_images(30))
    training = pipeline.training_dataset(f"npz:{path}", image_size=4, batch_size=6, seed=0)
    assert training.num_examples == 30
    assert sorted(_ids(training.dataset, 5)) == list(range(30))
    evaluation = pipeline.evaluation_dataset(f"npz:{path}", image_size=4, batch_size=8, max_examples=20)
    assert [len(b) for b in evaluation] == [8, 8, 4]
    assert _ids(evaluation, 3) == list(range(20))


# ---------------------------------------------------------------------------
# A tfds dataset that is not prepared: a clear error at once.


def test_unprepared_tfds_dataset_raises_clear_error(tmp_path):
    with pytest.raises(DatasetUnavailableError) as error:
        pipeline.search_datasets("cifar10", image_size=32, batch_size=64, seed=0, data_dir=str(tmp_path))
    message = str(error.value)
    assert "'cifar10'" in message and str(tmp_path) in message
    assert "download_and_prepare()" in message and "--download" in message
    assert "--data_dir=DIR" in message and "cifar10/3.0.2/dataset_info.json" in message
    assert "--manual_dir=FOLDER" in message and "cifar-10-binary.tar.gz" in message
    assert "\n" not in message  # one paragraph


def test_unprepared_stl10_with_empty_manual_dir_names_the_archive(tmp_path):
    manual = tmp_path / "archives"
    manual.mkdir()
    with pytest.raises(DatasetUnavailableError, match=rf"stl10_binary.tar.gz.*looked in {manual}"):
        pipeline.training_dataset(
            "stl10", image_size=48, batch_size=8, seed=0, data_dir=str(tmp_path), manual_dir=str(manual)
        )


def test_download_checks_the_host_before_downloading(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    checked = []
    monkeypatch.setattr(sources, "url_reachable", lambda url: checked.append(url) or (False, "no route"))

    def must_not_download(self, **kwargs):
        raise AssertionError("download_and_prepare called although the host is unreachable")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", must_not_download)
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    with pytest.raises(DatasetUnavailableError, match=f"{url} is unreachable: no route"):
        sources.tfds_builder("cifar10", data_dir=str(tmp_path), download=True)
    assert checked == [url]
