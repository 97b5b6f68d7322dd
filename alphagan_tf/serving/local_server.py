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
  or ``{"inputs": ...}`` (columnar, -> ``{"outputs": ...}``); errors are HTTP 400
  ``{"error": "..."}``.

Both bind to 127.0.0.1 only (port 0: a free port is chosen). This is not a replacement for
TF Serving (no batching, no version policy, no model reloading): one model, one version.
"""

from __future__ import annotations

import json
import os
import re
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Mapping

import numpy as np

from alphagan_tf.serving import savedmodel
from alphagan_tf.serving.signatures import SERVING_DEFAULT

LOOPBACK = "127.0.0.1"


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
                inputs = {alias: tf.make_ndarray(proto) for alias, proto in request.inputs.items()}
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
            ("grpc.max_send_message_length", 64 << 20),
            ("grpc.max_receive_message_length", 64 << 20),
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


def rest_predict(model: SessionModel, body: Mapping) -> dict:
    """TF Serving's REST predict semantics on a parsed JSON body.

    Raises:
        PredictError: a malformed body or a rejected input.
    """
    signature_name = body.get("signature_name", SERVING_DEFAULT)
    dtypes = model.input_dtypes(signature_name)
    if ("instances" in body) == ("inputs" in body):
        raise PredictError(
            "INVALID_ARGUMENT",
            'The body must have exactly one of "instances" (row format) or "inputs" '
            f"(columnar format). Received keys: {sorted(body)}",
        )

    def as_array(alias, value):
        try:
            return np.asarray(value, dtype=dtypes[alias])
        except (TypeError, ValueError) as e:
            raise PredictError(
                "INVALID_ARGUMENT", f"Input {alias!r} is not a {dtypes[alias].__name__} array: {e}"
            ) from None

    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise PredictError("INVALID_ARGUMENT", '"instances" must be a non-empty list.')
        if all(isinstance(item, dict) for item in instances):
            inputs = {
                alias: as_array(alias, [item.get(alias) for item in instances]) for alias in dtypes
            }
        elif len(dtypes) == 1:
            (alias,) = dtypes
            inputs = {alias: as_array(alias, instances)}
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
    outputs = model.predict(signature_name, {k: as_array(k, v) for k, v in columns.items()})
    if len(outputs) == 1:
        return {"outputs": next(iter(outputs.values())).tolist()}
    return {"outputs": {k: v.tolist() for k, v in outputs.items()}}


def serve_rest(model: SessionModel, port: int = 0):
    """Starts a REST predict endpoint for `model` on 127.0.0.1 (a daemon thread).

    Returns:
        (server, port): stop it with `server.shutdown(); server.server_close()`.
    """

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _reply(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):  # noqa: N802 (http.server method name)
            match = _PREDICT_PATH.match(self.path)
            if not match:
                self._reply(404, {"error": f"Unknown path. Received: {self.path}"})
                return
            if match.group(1) != model.model_name:
                self._reply(404, {"error": f"Servable not found for request: {match.group(1)}"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(body, dict):
                    raise PredictError("INVALID_ARGUMENT", "The body must be a JSON object.")
                self._reply(200, rest_predict(model, body))
            except json.JSONDecodeError as e:
                self._reply(400, {"error": f"Malformed JSON: {e}"})
            except PredictError as e:
                self._reply(400, {"error": str(e)})

    server = ThreadingHTTPServer((LOOPBACK, port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, server.server_address[1]
