"""A small in-process stand-in for TF Serving's Predict API, for tests and local demos.

It loads an exported version with the TF1 session loader
(`tf.compat.v1.saved_model.loader.load`, as TF Serving does) and runs the signatures as a
C++ session callable, so feeds reach the graph unchecked by Python, as TF Serving's feeds
do: a wrong shape meets the graph's own asserts, a wrong dtype the session's type check.

- gRPC: `serve_grpc` starts a grpcio server whose `PredictionService.Predict` answers
  `PredictRequest`s (tensorflow-serving-api protos); errors become gRPC statuses with the
  TensorFlow error's code and message (INVALID_ARGUMENT for bad input).
- REST: `serve_rest` answers ``POST /v1/models/<name>[/versions/<v>]:predict`` with TF
  Serving's JSON formats: ``{"instances": [...]}`` (row format, -> ``{"predictions": ...}``)
  or ``{"inputs": ...}`` (columnar, -> ``{"outputs": ...}``). Every request gets a status
  and a JSON body; errors are ``{"error": "..."}`` with 400 for anything malformed, 404,
  408, 411 or 413 (`serve_rest`).

What a generator refuses (z's batch, finiteness and magnitude, count's range) is refused by
the signatures' own graph checks (`generator_guard`), so both servers answer with the
SavedModel's messages. The servers themselves check only the request's form and size
(`MAX_REQUEST_BYTES`, `MAX_BODY_DEPTH`), before anything is allocated for it.

Both bind to 127.0.0.1 only (port 0: a free port is chosen). This is not a replacement for
TF Serving (no batching, no version policy, no model reloading): one model, one version.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import traceback
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Mapping

import numpy as np

from alphagan_tf.serving import savedmodel
from alphagan_tf.serving.signatures import SERVING_DEFAULT
from alphagan_tf.utils import json_input

LOOPBACK = "127.0.0.1"
MAX_REQUEST_BYTES = 64 << 20  # a REST body or a gRPC message (1024 latents of 128: ~3 MB)
MAX_BODY_DEPTH = 32  # JSON nesting of a REST body: 3 + the rank of its deepest tensor
DEFAULT_READ_TIMEOUT = 30.0  # seconds a REST client may take to send its request


class PredictError(Exception):
    """A request the model cannot answer; `code` is a canonical (gRPC) status name."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class SessionModel:
    """One SavedModel version loaded with the TF1 session loader.

    Args:
        path: a version folder or a model base folder (its highest version).
        model_name: the name requests must use.
    """

    def __init__(self, path: str, model_name: str):
        import tensorflow as tf

        self.path = savedmodel.resolve_saved_model_dir(path)
        folder = os.path.basename(os.path.normpath(self.path))
        self.version = int(folder) if folder.isdigit() else 0
        self.model_name = model_name
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], self.path)
        self.signatures = {
            name: signature
            for name, signature in meta_graph.signature_def.items()
            if not name.startswith("__")
        }
        self._callables = {}
        self._lock = threading.Lock()

    def input_dtypes(self, signature_name: str) -> dict[str, np.dtype]:
        import tensorflow as tf

        signature = self._signature(signature_name)
        return {
            alias: tf.dtypes.as_dtype(info.dtype).as_numpy_dtype
            for alias, info in signature.inputs.items()
        }

    def _signature(self, signature_name: str):
        name = signature_name or SERVING_DEFAULT
        if name not in self.signatures:
            raise PredictError(
                "INVALID_ARGUMENT",
                f'Serving signature key "{name}" not found. '
                f"Received: {name!r}; available: {sorted(self.signatures)}",
            )
        return self.signatures[name]

    def predict(
        self,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: list[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Runs a signature on numpy inputs; returns its outputs by alias.

        Raises:
            PredictError: unknown signature, missing / unexpected inputs or outputs, or the
                graph rejected the input (code and message of the TensorFlow error).
        """
        import tensorflow as tf

        signature = self._signature(signature_name)
        expected = sorted(signature.inputs)
        if sorted(inputs) != expected:
            raise PredictError(
                "INVALID_ARGUMENT",
                f"Inputs must be exactly {expected} for signature "
                f"{signature_name or SERVING_DEFAULT!r}. Received: {sorted(inputs)}",
            )
        outputs = list(output_filter or sorted(signature.outputs))
        unknown = [alias for alias in outputs if alias not in signature.outputs]
        if unknown:
            raise PredictError(
                "INVALID_ARGUMENT",
                f"output_filter names unknown outputs. Received: {unknown}; "
                f"available: {sorted(signature.outputs)}",
            )
        key = (signature_name or SERVING_DEFAULT, tuple(expected), tuple(outputs))
        with self._lock:
            if key not in self._callables:
                # A C++ callable: unlike Session.run / make_callable, no Python-side
                # check or cast of the feeds, like TF Serving's session.
                from tensorflow.core.protobuf import config_pb2

                options = config_pb2.CallableOptions(
                    feed=[signature.inputs[a].name for a in expected],
                    fetch=[signature.outputs[a].name for a in outputs],
                )
                self._callables[key] = self.session._make_callable_from_options(options)
            run = self._callables[key]
        try:
            values = run(*[np.asarray(inputs[alias]) for alias in expected])
        except tf.errors.OpError as e:
            raise PredictError(_status_name(e.error_code), e.message) from None
        return dict(zip(outputs, values))

    def close(self) -> None:
        self.session.close()


def _status_name(error_code: int) -> str:
    import grpc

    for status in grpc.StatusCode:
        if status.value[0] == error_code:
            return status.name
    return "UNKNOWN"


# --- gRPC -----------------------------------------------------------------------------------


def _make_servicer(model: SessionModel):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 (gRPC method name)
            if request.model_spec.name != model.model_name:
                context.abort(
                    grpc.StatusCode.NOT_FOUND,
                    f"Servable not found for request: Latest({request.model_spec.name})",
                )
            try:
                inputs = {alias: grpc_request_array(alias, proto)
                          for alias, proto in request.inputs.items()}
                outputs = model.predict(
                    request.model_spec.signature_name, inputs, list(request.output_filter)
                )
            except PredictError as e:
                context.abort(getattr(grpc.StatusCode, e.code), str(e))
            response = predict_pb2.PredictResponse()
            response.model_spec.name = model.model_name
            response.model_spec.version.value = model.version
            response.model_spec.signature_name = (
                request.model_spec.signature_name or SERVING_DEFAULT
            )
            for alias, value in outputs.items():
                response.outputs[alias].CopyFrom(tf.make_tensor_proto(value))
            return response

    return PredictionServicer()


def grpc_request_array(alias: str, proto) -> np.ndarray:
    """A request's TensorProto as an array, refused before allocation when it is not one.

    A proto declares its shape apart from its values (`make_ndarray` pads them to the
    shape), so a few bytes can ask for any size: the declared size must be within
    `MAX_REQUEST_BYTES`, what a message itself may hold.

    Raises:
        PredictError (INVALID_ARGUMENT): naming the input.
    """
    import tensorflow as tf

    dims = [d.size for d in proto.tensor_shape.dim]
    try:
        itemsize = np.dtype(tf.dtypes.as_dtype(proto.dtype).as_numpy_dtype).itemsize
    except TypeError as e:  # DT_INVALID, an unknown enum value
        raise PredictError("INVALID_ARGUMENT", f"Input {alias!r} has no valid dtype: {e}") from None
    size = itemsize
    for d in dims:
        if d < 0:
            raise PredictError("INVALID_ARGUMENT",
                               f"Input {alias!r} has a negative dimension. Received: shape={dims}")
        size *= d
    if size > MAX_REQUEST_BYTES:
        raise PredictError("INVALID_ARGUMENT",
                           f"Input {alias!r} declares {size} bytes (shape {dims}), more than the "
                           f"{MAX_REQUEST_BYTES} a request may hold.")
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError) as e:
        raise PredictError("INVALID_ARGUMENT", f"Input {alias!r} is not a valid tensor: {e}") from None


def serve_grpc(model: SessionModel, port: int = 0, max_workers: int = 2):
    """Starts a gRPC PredictionService for `model` on 127.0.0.1.

    Returns:
        (server, port): stop it with `server.stop(grace=None)`.
    """
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers),
        options=[
            ("grpc.max_send_message_length", MAX_REQUEST_BYTES),
            ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
        ],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        _make_servicer(model), server
    )
    bound = server.add_insecure_port(f"{LOOPBACK}:{port}")
    if bound == 0:
        raise OSError(f"Could not bind a gRPC port on {LOOPBACK}. Received: port={port}")
    server.start()
    return server, bound


# --- REST -----------------------------------------------------------------------------------

_PREDICT_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+))?:predict$")
# gRPC status of a model's error -> HTTP status (as TF Serving's REST API); others: 500.
_HTTP_STATUS = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400,
                "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 503, "UNAVAILABLE": 503}


class RequestError(PredictError):
    """A REST request refused before it reaches the model; `status` is its HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__("INVALID_ARGUMENT", message)
        self.status = status


def _json_kind(array: np.ndarray) -> str:
    return {"b": "booleans", "i": "integers", "u": "integers", "f": "numbers",
            "U": "strings"}.get(array.dtype.kind, "mixed values or integers beyond 64 bits")


def request_array(alias: str, value, dtype: np.dtype) -> np.ndarray:
    """A JSON value as an array of the input's dtype, converted only when nothing is lost.

    Integer inputs take JSON integers in the dtype's range (2.7 is not the count 2, and
    2**40 is not an int32); float inputs take numbers; string inputs take strings.

    Raises:
        PredictError (INVALID_ARGUMENT): naming the input, what it takes and what it got.
    """
    dtype = np.dtype(dtype)
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as e:  # ragged nested lists
        raise PredictError("INVALID_ARGUMENT",
                           f"Input {alias!r} must be a rectangular array: {e}") from None
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        big = array.dtype == object and all(  # integers beyond 64 bits
            isinstance(v, int) and not isinstance(v, bool) for v in array.flat)
        if array.dtype.kind not in "iu" and not big:
            raise PredictError("INVALID_ARGUMENT", f"Input {alias!r} must hold {dtype.name} "
                               f"integers. Received: {_json_kind(array)} ({_excerpt(value)})")
        if array.size:
            low, high = (min(array.flat), max(array.flat)) if big else (array.min(), array.max())
            if low < info.min or high > info.max:
                raise PredictError(
                    "INVALID_ARGUMENT", f"Input {alias!r} must hold {dtype.name} integers in "
                    f"[{info.min}, {info.max}]. Received: {_excerpt(value)}")
    elif dtype.kind == "f":
        if array.dtype.kind not in "iuf":
            raise PredictError("INVALID_ARGUMENT", f"Input {alias!r} must hold numbers. "
                               f"Received: {_json_kind(array)} ({_excerpt(value)})")
    elif array.dtype.kind != "U":
        raise PredictError("INVALID_ARGUMENT", f"Input {alias!r} must hold strings. "
                           f"Received: {_json_kind(array)} ({_excerpt(value)})")
    try:
        return array.astype(dtype)
    except OverflowError as e:  # a number beyond float64 for a float input
        raise PredictError("INVALID_ARGUMENT", f"Input {alias!r}: {e}") from None


def _excerpt(value, limit: int = 80) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "..."


def rest_predict(model: SessionModel, body: Mapping) -> dict:
    """TF Serving's REST predict semantics on a parsed JSON body.

    Raises:
        PredictError: a malformed body or a rejected input.
    """
    signature_name = body.get("signature_name", SERVING_DEFAULT)
    if not isinstance(signature_name, str):
        raise PredictError("INVALID_ARGUMENT", '"signature_name" must be a string. '
                           f"Received: {_excerpt(signature_name)}")
    dtypes = model.input_dtypes(signature_name)
    if ("instances" in body) == ("inputs" in body):
        raise PredictError(
            "INVALID_ARGUMENT",
            'The body must have exactly one of "instances" (row format) or "inputs" '
            f"(columnar format). Received keys: {sorted(body)}",
        )

    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise PredictError("INVALID_ARGUMENT", '"instances" must be a non-empty list.')
        if all(isinstance(item, dict) for item in instances):
            inputs = {
                alias: request_array(alias, [item.get(alias) for item in instances], dtype)
                for alias, dtype in dtypes.items()
            }
        elif len(dtypes) == 1:
            (alias, dtype), = dtypes.items()
            inputs = {alias: request_array(alias, instances, dtype)}
        else:
            raise PredictError(
                "INVALID_ARGUMENT",
                f"Signature {signature_name!r} has inputs {sorted(dtypes)}: each instance must "
                "be an object naming them.",
            )
        outputs = model.predict(signature_name, inputs)
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values())).tolist()}
        batch = len(next(iter(outputs.values())))
        return {"predictions": [{k: v[i].tolist() for k, v in outputs.items()} for i in range(batch)]}
    columns = body["inputs"]
    if not isinstance(columns, dict):
        if len(dtypes) != 1:
            raise PredictError(
                "INVALID_ARGUMENT", f'"inputs" must be an object with keys {sorted(dtypes)}.'
            )
        columns = {next(iter(dtypes)): columns}
    if sorted(columns) != sorted(dtypes):
        raise PredictError(
            "INVALID_ARGUMENT",
            f'"inputs" must have exactly the keys {sorted(dtypes)}. Received: {sorted(columns)}',
        )
    outputs = model.predict(
        signature_name, {k: request_array(k, v, dtypes[k]) for k, v in columns.items()})
    if len(outputs) == 1:
        return {"outputs": next(iter(outputs.values())).tolist()}
    return {"outputs": {k: v.tolist() for k, v in outputs.items()}}


def read_request_body(headers, rfile, max_body_bytes: int) -> dict:
    """The JSON object of a POST body, read within the limits.

    Raises:
        RequestError: 411 without Content-Length; 400 for a Content-Length that is not a
            non-negative integer, a body shorter than it, not UTF-8, not JSON, nested beyond
            `MAX_BODY_DEPTH` or not an object; 413 above `max_body_bytes` (not read); 408 when
            the body does not arrive within the read timeout.
    """
    raw = headers.get("Content-Length")
    if raw is None:
        raise RequestError(411, "Content-Length is required.")
    if not re.fullmatch(r"[0-9]+", raw.strip()):
        raise RequestError(400, "Content-Length must be a non-negative integer. "
                           f"Received: {raw[:40]!r}")
    digits = raw.strip().lstrip("0") or "0"
    if len(digits) > len(str(max_body_bytes)) or int(digits) > max_body_bytes:
        raise RequestError(413, f"The body is limited to {max_body_bytes} bytes. "
                           f"Received: Content-Length {digits[:40]}")
    length = int(digits)
    try:
        data = rfile.read(length)
    except TimeoutError:
        raise RequestError(408, f"The body did not arrive in time (Content-Length {length}): "
                           "the request timed out.") from None
    except ConnectionError as e:  # the client is gone: the reply is for the record only
        raise RequestError(400, f"The connection broke while reading the body: {e}") from None
    if len(data) < length:
        raise RequestError(400, f"The body ended after {len(data)} of the {length} bytes "
                           "Content-Length announced.")
    try:
        body = json_input.loads(data or b"{}", "the request body", max_depth=MAX_BODY_DEPTH)
    except json_input.JSONInputError as e:
        raise RequestError(400, str(e)) from None
    if not isinstance(body, dict):
        raise RequestError(400, f"The body must be a JSON object. Received: {_excerpt(body)}")
    return body


class _RestServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """A client that resets its connection is no bug: only other errors print a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve_rest(
    model: SessionModel, port: int = 0, max_body_bytes: int = MAX_REQUEST_BYTES,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
):
    """Starts a REST predict endpoint for `model` on 127.0.0.1 (a daemon thread).

    Every request is answered with a status and a JSON body: 200 with the outputs; 400
    ``{"error": ...}`` for anything malformed (`read_request_body`, `rest_predict`); 404 for
    an unknown path, model or version; 408 for a body that does not arrive within
    `read_timeout` seconds; 411 without Content-Length; 413 above `max_body_bytes`; 500 for
    an internal error (its traceback on stderr: a bug). Client errors print nothing.

    Returns:
        (server, port): stop it with `server.shutdown(); server.server_close()`.
    """

    class Handler(BaseHTTPRequestHandler):
        timeout = read_timeout  # every read of the connection (request line, headers, body)

        def log_message(self, *args):  # quiet
            pass

        def _reply(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status >= 400:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client went away: nobody to answer
                self.close_connection = True

        def do_POST(self):  # noqa: N802 (http.server method name)
            try:
                self._reply(200, self._predict())
            except RequestError as e:
                self._reply(e.status, {"error": str(e)})
            except PredictError as e:
                self._reply(_HTTP_STATUS.get(e.code, 500), {"error": str(e)})
            except Exception as e:  # a bug: its traceback, and still an answer
                traceback.print_exc()
                self._reply(500, {"error": f"Internal error: {type(e).__name__}: {e}"})

        def _predict(self) -> dict:
            match = _PREDICT_PATH.match(self.path)
            if not match:
                raise RequestError(404, f"Unknown path. Received: {self.path[:200]}")
            name, version = match.groups()
            if name != model.model_name:
                raise RequestError(404, f"Servable not found for request: Latest({name})")
            if version is not None and (version.lstrip("0") or "0") != str(model.version):
                raise RequestError(404, f"Servable not found for request: Specific({name}, "
                                   f"{version}); this server has version {model.version}")
            body = read_request_body(self.headers, self.rfile, max_body_bytes)
            return rest_predict(model, body)

    server = _RestServer((LOOPBACK, port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, server.server_address[1]
