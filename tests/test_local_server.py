"""The local REST / gRPC stand-in answers every request with a status (issue 35, finding 4).

Each request goes over a real socket to the real server (`serve_rest`, `serve_grpc`) backed
by a real export. Before the fix, invalid UTF-8, `signature_name=[1]`, `count=2**40`,
`seed=2**70`, `Content-Length: abc` or `10**13` and JSON nested 100k deep dropped the
connection without a reply (a traceback each on the server's stderr), a Content-Length
larger than the body hung forever, `count=2.7` was served as 2 and `/versions/99` served
version 1. The server runs in this process, so its stderr is this process's (`capfd`).
"""

import json
import socket

import grpc
import keras
import numpy as np
import pytest

from alphagan_tf.gan.space.generator import Generator
from alphagan_tf.gan.space.genotypes import PRESETS
from alphagan_tf.serving import savedmodel
from alphagan_tf.serving.samplers import SavedModelGenerator
from tools.local_server import SessionModel, serve_grpc, serve_rest

GF, LATENT, BOTTOM, MAX_BATCH = 8, 16, 1, 8
MODEL = "alphagan"
BODY_LIMIT = 1 << 18  # 256 kB (the default is 64 MB): a body above it is quick to send
READ_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    g = Generator.from_genotype(PRESETS["alphaGAN_s"], gf=GF, latent_dim=LATENT, bottom_width=BOTTOM)
    base = tmp_path_factory.mktemp("models") / MODEL
    path = savedmodel.export_saved_model(g, str(base), max_batch=MAX_BATCH, warmup_batch_sizes=(1,))
    return str(base), path


@pytest.fixture(scope="module")
def servers(exported):
    model = SessionModel(exported[0], model_name=MODEL)
    rest, rest_port = serve_rest(model, max_body_bytes=BODY_LIMIT, read_timeout=READ_TIMEOUT)
    grpc_server, grpc_port = serve_grpc(model)
    yield rest_port, f"127.0.0.1:{grpc_port}"
    rest.shutdown()
    rest.server_close()
    grpc_server.stop(grace=None)
    model.close()


def _exchange(port, request: bytes, close_write: bool = True, timeout: float = 60.0):
    """Sends raw bytes; returns (status, parsed JSON body) of the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        if close_write:
            s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1."), reply[:200]  # a reply, not a dropped connection
    return int(head.split()[1]), json.loads(body)


def _post(port, body: bytes, path=f"/v1/models/{MODEL}:predict", length=None, **kwargs):
    length = len(body) if length is None else length
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()
    return _exchange(port, head + body, **kwargs)


def _generate(seed, count):
    return json.dumps({"signature_name": "generate",
                       "inputs": {"seed": seed, "count": count}}).encode()


MALFORMED = [  # (case, body, Content-Length header or None, status, words of the error)
    ("invalid UTF-8", b'{"inputs": "\xff\xfe"}', None, 400,
     "the request body is not UTF-8 text (byte 0xff at offset 12)"),
    ("signature_name=[1]", b'{"signature_name": [1], "inputs": {"seed": 0, "count": 1}}', None,
     400, '"signature_name" must be a string. Received: [1]'),
    ("count=2**40", _generate(0, 2**40), None, 400,
     "Input 'count' must hold int32 integers in [-2147483648, 2147483647]. Received: 1099511627776"),
    ("seed=2**70", _generate(2**70, 1), None, 400,
     "Input 'seed' must hold int64 integers in [-9223372036854775808, 9223372036854775807]. "
     "Received: 1180591620717411303424"),
    ("count=2.7", _generate(0, 2.7), None, 400,
     "Input 'count' must hold int32 integers. Received: numbers (2.7)"),
    ("count=9 (above max_batch)", _generate(0, 9), None, 400,
     "count must be in [1, 8]. Received: count="),  # the graph's guard, as TF Serving
    ("Content-Length: abc", b"{}", "abc", 400,
     "Content-Length must be a non-negative integer. Received: 'abc'"),
    ("Content-Length: -1", b"{}", "-1", 400, "Content-Length must be a non-negative integer"),
    ("Content-Length: 10**13", b"", str(10**13), 413,
     f"The body is limited to {BODY_LIMIT} bytes. Received: Content-Length 10000000000000"),
    ("JSON nested 100k deep", b"[" * 100_000, None, 400,
     "the request body nests deeper than 32 levels of objects and arrays"),
    ("JSON nested 33 deep", b'{"inputs": ' + b"[" * 32 + b"]" * 32 + b"}", None, 400,
     "the request body nests deeper than 32 levels of objects and arrays. Received: 33 levels"),
    ("not JSON", b'{"inputs": ', None, 400, "the request body is not valid JSON (Expecting value"),
    ("not an object", b"[1, 2]", None, 400, "The body must be a JSON object. Received: [1, 2]"),
    ("body above the limit", b"", str(BODY_LIMIT + 1), 413,  # answered before it is sent
     f"The body is limited to {BODY_LIMIT} bytes. Received: Content-Length {BODY_LIMIT + 1}"),
    ("ragged instances", b'{"instances": [[0.5], [0.5, 0.5]]}', None, 400,
     "Input 'z' must be a rectangular array"),
    ("strings for z", b'{"instances": [["a", "b"]]}', None, 400,
     "Input 'z' must hold numbers. Received: strings"),
    ("z=NaN", json.dumps({"instances": [[float("nan")] * LATENT]}).encode(), None, 400,
     "z must be finite"),
    ("z=3e38", json.dumps({"instances": [[3e38] * LATENT]}).encode(), None, 400,
     "z must satisfy |z| <= 10000"),
]


@pytest.mark.parametrize("case, body, length, status, words", MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_every_malformed_request_gets_its_status_and_no_traceback(servers, capfd, case, body,
                                                                   length, status, words):
    port, _ = servers
    got, reply = _post(port, body, length=length)
    assert (got, list(reply)) == (status, ["error"]), (got, reply)
    assert words in reply["error"], reply["error"]
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception" not in err, err[-2000:]


def test_a_missing_version_path_or_length_and_a_slow_body(servers, capfd):
    port, _ = servers
    status, reply = _post(port, _generate(0, 1), path=f"/v1/models/{MODEL}/versions/99:predict")
    assert status == 404 and reply["error"].startswith(
        f"Servable not found for request: Specific({MODEL}, 99); this server has version 1")
    assert _post(port, _generate(0, 1), path=f"/v1/models/{MODEL}/versions/1:predict")[0] == 200
    assert _post(port, _generate(0, 1).ljust(BODY_LIMIT))[0] == 200  # a body at the limit
    assert _post(port, _generate(0, 1), path="/v1/models/other:predict")[0] == 404
    assert _post(port, _generate(0, 1), path="/v2/anything")[0] == 404
    status, reply = _exchange(port, f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\n\r\n".encode())
    assert (status, reply) == (411, {"error": "Content-Length is required."})
    # A Content-Length larger than the body: the client keeps the connection open and sends
    # nothing more. The server gives up after its read timeout (1 s here) with a 408.
    status, reply = _post(port, b'{"inputs": {}}', length=100, close_write=False, timeout=30)
    assert status == 408 and "did not arrive in time (Content-Length 100)" in reply["error"]
    # The client closes its side instead: the body is short, a 400 at once.
    status, reply = _post(port, b'{"inputs": {}}', length=100)
    assert status == 400 and reply["error"] == (
        "The body ended after 14 of the 100 bytes Content-Length announced.")
    err = capfd.readouterr().err
    assert "Traceback" not in err, err[-2000:]


def test_still_serving_the_same_images_after_the_bad_requests(servers, exported):
    port, _ = servers
    for _, body, length, _, _ in MALFORMED:
        _post(port, body, length=length)
    status, reply = _post(port, _generate(5, 3))
    assert status == 200
    expected = SavedModelGenerator(exported[1]).generate(seed=5, count=3)["images"]
    np.testing.assert_array_equal(np.asarray(reply["outputs"]["images"], np.uint8), expected)


def test_grpc_refuses_a_tensor_declaring_more_than_a_message_holds(servers, capfd):
    """A TensorProto's shape is apart from its values: 16 bytes could ask for 4 TB."""
    from tensorflow.core.framework import tensor_pb2, types_pb2
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    _, target = servers
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "serving_default"
    z = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[0.5])
    z.tensor_shape.dim.add(size=10**6)
    z.tensor_shape.dim.add(size=10**6)
    request.inputs["z"].CopyFrom(z)
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Predict(request, timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == (
        "Input 'z' declares 4000000000000 bytes (shape [1000000, 1000000]), more than the "
        f"{64 << 20} a request may hold.")
    assert "Traceback" not in capfd.readouterr().err


def test_a_client_resetting_mid_request_prints_nothing(servers, capfd):
    port, _ = servers
    for partial in (b"POST /v1/models/alphagan:predict HTTP/1.1\r\nContent-Len",
                    b"POST /v1/models/alphagan:predict HTTP/1.1\r\nContent-Length: 5000\r\n\r\n{"):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(partial)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # linger 0: a reset, not a close
    assert _post(port, _generate(0, 1))[0] == 200  # still serving (and the resets handled)
    assert "Traceback" not in capfd.readouterr().err
