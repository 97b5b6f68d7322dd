"""tfds' own cifar10 and stl10 builders, on archives in the original binary formats.

Nothing of tfds is faked. The test writes `cifar-10-binary.tar.gz` and `stl10_binary.tar.gz`
laid out as their publishers ship them (CIFAR-10: `cifar-10-batches-bin/data_batch_1..5.bin`
and `test_batch.bin`, records of 1 label byte + 3072 bytes of CHW pixels, `batches.meta.txt`;
STL-10: `stl10_binary/{train,test}_{X,y}.bin`, `unlabeled_X.bin` of 96x96x3 images stored
column-major per channel, labels 1..10, `class_names.txt`), a few images per split, and puts
them in a manual_dir. tfds' real builders (tensorflow_datasets' cifar.py and
stl10_dataset_builder.py) then extract, decode and prepare them through the product's
`--manual_dir` route, as they would the real 170 MB / 2.6 GB archives.

The one thing changed for the test is tfds' registered checksums of the two download URLs:
they are replaced (monkeypatched, this module only) by the test archives' own size and
sha256, so tfds' checksum validation still runs and passes on the small archives.

The slow tests run the SHIPPED configs through the real commands in this process
(`main(argv)` with `--flagfile=configs/...`), overriding only sizes and step counts (and the
feature extractor: a small classifier SavedModel, since Inception cannot be downloaded here):
search (cifar10.cfg, stl10.cfg), train (train_cifar10.cfg, train_stl10.cfg) on the searched
genotype, evaluate --make_stats and evaluate.
"""

import io
import json
import math
import pathlib
import tarfile

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import flags
from absl.testing import flagsaver
from tensorflow_datasets.core.download import checksums

from alphagan_tf.cli import evaluate as evaluate_cli
from alphagan_tf.cli import search as search_cli
from alphagan_tf.cli import train as train_cli
from alphagan_tf.data import pipeline, sources
from alphagan_tf.metrics import classifier as classifier_lib
from alphagan_tf.metrics.statistics import FeatureStatistics

ROOT = pathlib.Path(__file__).resolve().parents[1]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]
STL_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
CIFAR_PER_BATCH_FILE, CIFAR_TEST = 4, 4  # 5 training files: 20 training images
STL_SIZES = {"train": 10, "test": 4, "unlabeled": 20}  # the archive's file names


def _add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _write_cifar10_archive(path: pathlib.Path, rng) -> dict:
    """cifar-10-binary.tar.gz as published; returns the images of each split (HWC uint8)."""
    images = {"train": [], "test": []}
    with tarfile.open(path, "w:gz") as tar:
        files = [(f"data_batch_{i}.bin", "train", CIFAR_PER_BATCH_FILE) for i in range(1, 6)]
        for name, split, count in files + [("test_batch.bin", "test", CIFAR_TEST)]:
            batch = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
            labels = rng.integers(0, 10, count, dtype=np.uint8)
            records = b"".join(
                bytes([label]) + image.transpose(2, 0, 1).tobytes()  # 1 label byte + CHW
                for label, image in zip(labels, batch)
            )
            _add_file(tar, f"cifar-10-batches-bin/{name}", records)
            images[split].append(batch)
        _add_file(tar, "cifar-10-batches-bin/batches.meta.txt",
                  ("\n".join(CIFAR_CLASSES) + "\n\n").encode())
    return {split: np.concatenate(batches) for split, batches in images.items()}


def _write_stl10_archive(path: pathlib.Path, rng) -> dict:
    """stl10_binary.tar.gz as published; returns the images of each tfds split (HWC uint8)."""
    images = {}
    with tarfile.open(path, "w:gz") as tar:
        for split, count in STL_SIZES.items():
            batch = rng.integers(0, 256, (count, 96, 96, 3), dtype=np.uint8)
            # Column-major per channel: [N, 3, W, H] in the file.
            _add_file(tar, f"stl10_binary/{split}_X.bin", batch.transpose(0, 3, 2, 1).tobytes())
            if split != "unlabeled":
                labels = rng.integers(1, 11, count, dtype=np.uint8)  # 1-based in the file
                _add_file(tar, f"stl10_binary/{split}_y.bin", labels.tobytes())
            images["unlabelled" if split == "unlabeled" else split] = batch
        _add_file(tar, "stl10_binary/class_names.txt", ("\n".join(STL_CLASSES) + "\n").encode())
    return images


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    """Manual dirs holding the two archives under the file names tfds expects.

    Yields {"cifar10": (manual_dir, images by split), "stl10": (...)}, with tfds' registered
    checksums of the two URLs replaced by the archives' own for the module's duration.
    """
    root = tmp_path_factory.mktemp("archives")
    rng = np.random.default_rng(34)
    written = {}
    with pytest.MonkeyPatch.context() as patch:
        for name, write in (("cifar10", _write_cifar10_archive), ("stl10", _write_stl10_archive)):
            builder_cls = tfds.builder_cls(name)
            (url, registered), = builder_cls.url_infos.items()
            manual_dir = root / name
            manual_dir.mkdir()
            archive = manual_dir / registered.filename  # the name tfds looks for
            images = write(archive, rng)
            patch.setattr(builder_cls, "url_infos", {url: checksums.compute_url_info(archive)})
            written[name] = (str(manual_dir), images)
        yield written


@pytest.fixture(scope="module")
def data_dir(archives, tmp_path_factory):
    """A tfds data_dir where both datasets were prepared from the archives (manual_dir route)."""
    path = str(tmp_path_factory.mktemp("tfds"))
    for name, (manual_dir, _) in archives.items():
        sources.tfds_builder(name, data_dir=path, manual_dir=manual_dir)
    return path


def test_archives_in_manual_dir_prepare_without_the_network(archives, tmp_path, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("the manual_dir route must not touch the network")

    monkeypatch.setattr(sources, "url_reachable", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    manual_dir, _ = archives["stl10"]
    builder = sources.tfds_builder("stl10", data_dir=str(tmp_path), manual_dir=manual_dir)
    assert builder.is_prepared() and builder.info.splits["unlabelled"].num_examples == 20
    assert str(tmp_path) in str(builder.data_dir)


def _as_set(images) -> list[bytes]:
    return sorted(np.asarray(image).tobytes() for image in images)


def _read(spec: str, image_size: int, data_dir: str) -> np.ndarray:
    """Every image of a spec through the product's evaluation pipeline, as uint8."""
    batches = pipeline.evaluation_dataset(spec, image_size=image_size, batch_size=64,
                                          data_dir=data_dir)
    return np.concatenate([np.round((b.numpy() + 1.0) * 127.5) for b in batches]).astype(np.uint8)


def _tfds_split(name: str, split: str, data_dir: str) -> list[bytes]:
    """The images tfds itself reads for a split expression (no product code)."""
    dataset = tfds.builder(name, data_dir=data_dir).as_dataset(split=split)
    return _as_set(example["image"].numpy() for example in dataset)


def _pipeline_images(dataset, num_batches: int) -> list[bytes]:
    """Distinct images of the first batches of a [-1, 1] pipeline, as uint8 bytes."""
    images = np.concatenate([b.numpy() for b in dataset.take(num_batches)])
    return sorted(set(_as_set(np.round((images + 1.0) * 127.5).astype(np.uint8))))


# ---------------------------------------------------------------------------
# The builders' data through the product's pipelines.


def test_cifar10_records_reach_the_pipelines_pixel_for_pixel(archives, data_dir):
    _, images = archives["cifar10"]
    builder = sources.tfds_builder("cifar10", data_dir=data_dir)
    assert {str(k): v.num_examples for k, v in builder.info.splits.items()} == {"train": 20, "test": 4}
    assert builder.info.features["label"].names == CIFAR_CLASSES  # from batches.meta.txt
    assert _as_set(_read("cifar10", 32, data_dir)) == _as_set(images["train"])  # CHW -> HWC
    assert _as_set(_read("tfds:cifar10:test", 32, data_dir)) == _as_set(images["test"])


def test_stl10_default_is_train_plus_unlabelled_column_major_decoded(archives, data_dir):
    _, images = archives["stl10"]
    builder = sources.tfds_builder("stl10", data_dir=data_dir)
    assert {str(k): v.num_examples for k, v in builder.info.splits.items()} == {
        "train": 10, "test": 4, "unlabelled": 20}
    assert sources.parse_source("stl10").split == "train+unlabelled"
    native = _read("stl10", 96, data_dir)  # no resize: exact pixels, test images left out
    assert _as_set(native) == _as_set(np.concatenate([images["train"], images["unlabelled"]]))
    # The protocol's 48x48: each image is the antialiased resize of one original.
    resized = _read("stl10", 48, data_dir)
    expected = np.asarray(sources.square_resize(native, 48)).astype(int)
    assert resized.shape == (30, 48, 48, 3)
    for image in resized.astype(int):
        assert np.abs(expected - image).max(axis=(1, 2, 3)).min() <= 1


def test_a_split_tfds_does_not_have_is_one_error_listing_its_splits(data_dir):
    with pytest.raises(sources.DataSourceError) as error:
        pipeline.search_datasets("tfds:stl10:train+unlabeled", image_size=48, batch_size=4,
                                 seed=0, data_dir=data_dir)
    message = str(error.value)
    assert "no split 'unlabeled'" in message and "'train+unlabeled'" in message
    assert "['test', 'train', 'unlabelled']" in message and "did you mean 'unlabelled'" in message
    with pytest.raises(sources.DataSourceError, match=r"no split 'validation'.*\['test', 'train'\]"):
        pipeline.training_dataset("tfds:cifar10:validation", image_size=32, batch_size=4, seed=0,
                                  data_dir=data_dir)


def test_cifar10_search_halves_are_tfds_train_halves_and_the_iterator_checkpoints(data_dir, tmp_path):
    data = pipeline.search_datasets("cifar10", image_size=32, batch_size=4, seed=0,
                                    data_dir=data_dir)
    assert (data.num_weight_examples, data.num_arch_examples) == (10, 10)
    assert pipeline.half_splits("train") == ("train[:50%]", "train[50%:]")
    weight, arch = _pipeline_images(data.weight, 10), _pipeline_images(data.arch, 10)  # 4 epochs
    assert weight == _tfds_split("cifar10", "train[:50%]", data_dir)
    assert arch == _tfds_split("cifar10", "train[50%:]", data_dir)
    assert len(weight) == len(arch) == 10 and not set(weight) & set(arch)
    batch = next(iter(data.weight)).numpy()
    assert batch.shape == (4, 32, 32, 3) and batch.dtype == np.float32
    assert -1.0 <= batch.min() < -0.9 and 0.9 < batch.max() <= 1.0
    # The tfds pipeline's iterator (record reader + shuffle buffer) is checkpointable.
    iterator = iter(data.arch)
    for _ in range(6):
        next(iterator)
    path = tf.train.Checkpoint(iterator=iterator).write(str(tmp_path / "ckpt"))
    expected = [next(iterator).numpy() for _ in range(3)]
    restored = iter(data.arch)
    tf.train.Checkpoint(iterator=restored).read(path).assert_consumed()
    for batch in expected:
        np.testing.assert_array_equal(next(restored).numpy(), batch)


def test_stl10_search_halves_both_train_and_unlabelled(archives, data_dir):
    _, images = archives["stl10"]
    data = pipeline.search_datasets("stl10", image_size=96, batch_size=5, seed=0,
                                    data_dir=data_dir)
    assert (data.num_weight_examples, data.num_arch_examples) == (15, 15)
    halves = pipeline.half_splits("train+unlabelled")
    assert halves == ("train[:50%]+unlabelled[:50%]", "train[50%:]+unlabelled[50%:]")
    weight, arch = _pipeline_images(data.weight, 6), _pipeline_images(data.arch, 6)  # 2 epochs
    assert weight == _tfds_split("stl10", halves[0], data_dir)
    assert arch == _tfds_split("stl10", halves[1], data_dir)
    train, unlabelled, test = (set(_as_set(images[s])) for s in ("train", "unlabelled", "test"))
    for half in (set(weight), set(arch)):
        assert (len(half & train), len(half & unlabelled), len(half & test)) == (5, 10, 0)
    assert set(weight) | set(arch) == train | unlabelled and not set(weight) & set(arch)


# ---------------------------------------------------------------------------
# The shipped configs through the real commands.

TINY = ["--gf=8", "--df=8", "--latent_dim=8"]
TINY_SEARCH = [*TINY, "--batch_size=4", "--epochs=1", "--inner_steps=5", "--worst_steps=1",
               "--outer_steps=1", "--sample_every=1"]  # inner_steps >= the config's n_critic 5
TINY_TRAIN = [*TINY, "--g_iterations=2", "--g_batch_size=4", "--d_batch_size=4",
              "--checkpoint_every=1", "--sample_every=1", "--eval_every=2",
              "--eval_samples=10"]  # the Inception Score's 10 splits need 10 samples


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    """The offline feature extractor: a tiny (untrained) classifier SavedModel, 16x16 input."""
    path = tmp_path_factory.mktemp("classifier") / "clf"
    keras.utils.set_random_seed(0)
    model = classifier_lib.build_feature_classifier((16, 16, 3), num_classes=4, widths=(4,),
                                                    feature_dim=8)
    model.export(str(path), format="tf_saved_model", verbose=False)
    return str(path)


def _command(module, *args: str) -> int:
    """Runs a command's main in this process as its CLI would, with fresh flag values."""
    with flagsaver.flagsaver():
        argv = flags.FLAGS([module.__name__, *args])
        return module.main(argv)


def _run_configs(dataset, search_cfg, train_cfg, archives, data_dir, classifier_dir, tmp_path,
                 capsys):
    """search -> train on the searched genotype -> make_stats -> evaluate; returns the paths."""
    manual_dir, _ = archives[dataset]
    tfds_flags = [f"--data_dir={data_dir}", f"--manual_dir={manual_dir}"]
    features = [f"--feature_extractor=classifier:{classifier_dir}", "--eval_batch_size=8"]
    search_dir, train_dir = tmp_path / "search", tmp_path / "train"
    assert _command(search_cli, f"--flagfile={ROOT / 'configs' / search_cfg}",
                    f"--workdir={search_dir}", *tfds_flags, *TINY_SEARCH) == 0
    searched = capsys.readouterr().out
    genotype = search_dir / "genotype.json"
    assert genotype.exists() and json.loads(genotype.read_text())["cells"]
    assert _command(train_cli, f"--genotype={genotype}", f"--flagfile={ROOT / 'configs' / train_cfg}",
                    f"--workdir={train_dir}", *tfds_flags, *features, *TINY_TRAIN) == 0
    trained = capsys.readouterr().out
    stats = tmp_path / "stats.npz"
    assert _command(evaluate_cli, "--make_stats", f"--dataset={dataset}", f"--out={stats}",
                    *tfds_flags, *features) == 0
    assert _command(evaluate_cli, f"--checkpoint={train_dir}", f"--real_stats={stats}",
                    "--num_samples=10", f"--out={tmp_path / 'evaluation.json'}", *features) == 0
    capsys.readouterr()
    return searched, trained, train_dir, stats, json.loads((tmp_path / "evaluation.json").read_text())


def _check_evaluation(train_dir, stats_path, report, image_size, count, dataset):
    stats = FeatureStatistics.load(stats_path)
    assert (stats.image_size, stats.count, stats.dataset, stats.extractor) == (
        image_size, count, dataset, "classifier:clf")
    cached = FeatureStatistics.load(train_dir / "real_stats_classifier:clf.npz")  # train's own
    assert (cached.image_size, cached.count) == (image_size, count)
    # The same images, extractor and order: make_stats gives train's statistics exactly.
    np.testing.assert_allclose(stats.mu, cached.mu, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(stats.sigma, cached.sigma, rtol=1e-6, atol=1e-9)
    assert report["image_size"] == image_size and report["real_stats"]["count"] == count
    last = json.loads((train_dir / "eval_history.json").read_text())[-1]
    assert last["iteration"] == 2 and math.isfinite(report["metrics"]["fid"])
    # evaluate scores the latest EMA generator on the same latents as train's last evaluation.
    assert report["metrics"]["fid"] == pytest.approx(last["fid"], rel=1e-5)


@pytest.mark.slow
def test_cifar10_configs_search_train_make_stats_evaluate(archives, data_dir, classifier_dir,
                                                          tmp_path, capsys):
    searched, trained, train_dir, stats, report = _run_configs(
        "cifar10", "cifar10.cfg", "train_cifar10.cfg", archives, data_dir, classifier_dir,
        tmp_path, capsys)
    assert "Searching on cifar10 (10 weight / 10 architecture images, 32x32)" in searched
    assert "(32x32)" in trained
    _check_evaluation(train_dir, stats, report, image_size=32, count=20, dataset="cifar10")


@pytest.mark.slow
def test_stl10_configs_search_train_make_stats_evaluate(archives, data_dir, classifier_dir,
                                                        tmp_path, capsys):
    searched, trained, train_dir, stats, report = _run_configs(
        "stl10", "stl10.cfg", "train_stl10.cfg", archives, data_dir, classifier_dir, tmp_path,
        capsys)
    assert "Searching on stl10 (15 weight / 15 architecture images, 48x48)" in searched
    assert "(48x48)" in trained
    _check_evaluation(train_dir, stats, report, image_size=48, count=30, dataset="stl10")

    # Statistics made at 32x32 do not score the 48x48 generator: one line naming both sizes.
    features = [f"--feature_extractor=classifier:{classifier_dir}", "--eval_batch_size=8"]
    small = tmp_path / "stats32.npz"
    assert _command(evaluate_cli, "--make_stats", "--dataset=stl10", "--image_size=32",
                    f"--out={small}", f"--data_dir={data_dir}", *features) == 0
    capsys.readouterr()
    assert _command(evaluate_cli, f"--checkpoint={train_dir}", f"--real_stats={small}",
                    "--num_samples=8", *features) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --real_stats: "), lines
    assert "32x32" in lines[0] and "48x48" in lines[0] and "--image_size=48" in lines[0]

    # The old spelling of the split: one line listing tfds' splits, exit 2, nothing written.
    bad_split = tmp_path / "bad_split.npz"
    assert _command(evaluate_cli, "--make_stats", "--dataset=tfds:stl10:train+unlabeled",
                    "--image_size=48", f"--out={bad_split}", f"--data_dir={data_dir}",
                    *features) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "['test', 'train', 'unlabelled']" in lines[0], lines
    assert not bad_split.exists()
