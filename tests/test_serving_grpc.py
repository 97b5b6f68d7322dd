"""The export/ clients against a served model: gRPC and REST on 127.0.0.1.

An in-process PredictionService (grpcio) and REST endpoint backed by the exported version
through the TF1 session loader (tools/local_server.py) always run; when a
`tensorflow_model_server` binary is on PATH, the same clients are also run against it.
"""

import importlib.util
import json
import pathlib
import shutil
import socket
import subprocess
import time
import urllib.request

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf

from alphagan_tf.gan.space.generator import Generator
from alphagan_tf.gan.space.genotypes import PRESETS
from alphagan_tf.serving import savedmodel
from alphagan_tf.serving.samplers import SavedModelGenerator
from alphagan_tf.utils.images import make_grid
from tools.local_server import SessionModel, serve_grpc, serve_rest

GF, LATENT, BOTTOM, MAX_BATCH = 8, 16, 1, 8
MODEL = "alphagan"
CLIENTS = pathlib.Path(__file__).resolve().parents[1] / "export" / "clients"


def _load_client(name):
    spec = importlib.util.spec_from_file_location(f"client_{name}", CLIENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


grpc_client = _load_client("grpc_client")
rest_request = _load_client("rest_request")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    g = Generator.from_genotype(PRESETS["alphaGAN_l"], gf=GF, latent_dim=LATENT, bottom_width=BOTTOM)
    base = tmp_path_factory.mktemp("models") / MODEL
    path = savedmodel.export_saved_model(g, str(base), max_batch=MAX_BATCH, warmup_batch_sizes=(1, 4))
    return str(base), path, SavedModelGenerator(path)


@pytest.fixture(scope="module")
def servers(exported):
    model = SessionModel(exported[0], model_name=MODEL)
    grpc_server, grpc_port = serve_grpc(model)
    rest_server, rest_port = serve_rest(model)
    yield f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{rest_port}/v1/models/{MODEL}:predict"
    grpc_server.stop(grace=None)
    rest_server.shutdown()
    rest_server.server_close()
    model.close()


def _check_clients(target, url, reference, tmp_path):
    expected = reference.generate(seed=5, count=6)
    images = grpc_client.predict(target, MODEL, "generate", seed=5, count=6)["images"]
    np.testing.assert_array_equal(images, expected["images"])
    # serving_default with the client's Philox latents: the same images as generate.
    both = grpc_client.predict(target, MODEL, "serving_default", seed=5, count=6,
                               latent_dim=LATENT, outputs=("images", "images_float"))
    np.testing.assert_array_equal(both["images"], expected["images"])
    np.testing.assert_allclose(both["images_float"], expected["images_float"], atol=1e-6)
    # REST, columnar (generate) and row (serving_default) formats.
    reply = rest_request.post(url, rest_request.generate_body(5, 6), timeout=30)
    np.testing.assert_array_equal(rest_request.images_from_reply(reply), expected["images"])
    z = np.random.default_rng(0).standard_normal((3, LATENT)).astype(np.float32)
    reply = rest_request.post(url, rest_request.z_body(z), timeout=30)
    np.testing.assert_array_equal(
        rest_request.images_from_reply(reply), reference.model.signatures["serving_default"](
            z=tf.constant(z))["images"].numpy()
    )
    # The command-line client writes the grid of the served images.
    out = str(tmp_path / "grid.png")
    assert grpc_client.main([f"--target={target}", f"--model={MODEL}", "--seed=5", "--count=6",
                             f"--out={out}"]) == 0
    png = tf.io.decode_png(tf.io.read_file(out)).numpy()
    np.testing.assert_array_equal(png, make_grid(expected["images"]))


def test_clients_against_the_in_process_prediction_service(servers, exported, tmp_path):
    target, url = servers
    _check_clients(target, url, exported[2], tmp_path)
    out = str(tmp_path / "rest.png")
    assert rest_request.main([f"--url={url}", "--seed=5", "--count=6", f"--out={out}"]) == 0
    png = tf.io.decode_png(tf.io.read_file(out)).numpy()
    np.testing.assert_array_equal(png, make_grid(exported[2].generate(5, 6)["images"]))


def test_bad_requests_get_clear_statuses(servers):
    target, url = servers
    with pytest.raises(grpc.RpcError) as info:
        grpc_client.predict(target, MODEL, "generate", seed=0, count=0)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"count must be in [1, {MAX_BATCH}]. Received: count=" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        grpc_client.predict(target, MODEL, "serving_default", count=2, latent_dim=LATENT + 1)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"z must be float32 [batch, {LATENT}]" in info.value.details()
    assert f"Received: shape=] [2 {LATENT + 1}]" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        grpc_client.predict(target, "no_such_model", "generate", count=1)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(RuntimeError, match=r"HTTP 400 .*count must be in \[1, 8\]"):
        rest_request.post(url, rest_request.generate_body(0, 100), timeout=30)
    with pytest.raises(RuntimeError, match=r"HTTP 400 .*exactly one of \"instances\""):
        rest_request.post(url, {"signature_name": "generate"}, timeout=30)


def test_example_files_describe_the_served_signatures():
    body = json.loads((CLIENTS / "generate_request.json").read_text())
    assert body == rest_request.generate_body(0, 4)
    z_body = json.loads((CLIENTS / "z_request.json").read_text())
    assert z_body["signature_name"] == "serving_default"
    assert np.asarray(z_body["instances"]).shape == (2, 128)  # the default latent_dim
    config = (CLIENTS.parent / "models.config").read_text()
    assert f'name: "{MODEL}"' in config and f'base_path: "/models/{MODEL}"' in config


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(
    shutil.which("tensorflow_model_server") is None,
    reason="tensorflow_model_server is not on PATH (TF Serving ships as a binary / docker "
    "image, not on PyPI); the in-process PredictionService test covers the clients",
)
def test_clients_against_tensorflow_model_server(exported, tmp_path):
    base, _, reference = exported
    config = tmp_path / "models.config"
    config.write_text(
        (CLIENTS.parent / "models.config").read_text().replace(f"/models/{MODEL}", base)
    )
    grpc_port, rest_port = _free_port(), _free_port()
    process = subprocess.Popen(
        ["tensorflow_model_server", f"--port={grpc_port}", f"--rest_api_port={rest_port}",
         f"--model_config_file={config}", "--enable_model_warmup=true"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        status_url = f"http://127.0.0.1:{rest_port}/v1/models/{MODEL}"
        deadline = time.monotonic() + 120
        while True:  # bounded: until AVAILABLE, the server exits, or 120 s
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            try:
                with urllib.request.urlopen(status_url, timeout=5) as reply:
                    if "AVAILABLE" in reply.read().decode():
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "tensorflow_model_server did not load the model"
            time.sleep(1)
        _check_clients(f"127.0.0.1:{grpc_port}", f"{status_url}:predict", reference, tmp_path)
        with pytest.raises(grpc.RpcError) as info:
            grpc_client.predict(f"127.0.0.1:{grpc_port}", MODEL, "generate", seed=0, count=0)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "count must be in" in info.value.details()
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
