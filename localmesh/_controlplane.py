"""A stand-in control plane: a gRPC server that accepts Envoy's ADS stream.

It sends no listener or cluster (those come from files); holding the stream
open is enough for Envoy to report `control_plane.connected_state` 1. The one
resource it answers is an empty runtime layer (RTDS), for proxies that
subscribe to one over ADS (`istio_stats` proxies): a control plane that answers
is what resets Envoy's reconnect back-off, as istiod's pushes do.
`stop()` drops the streams and closes the port, so the proxies report 0 and
keep retrying; `start()` again listens on the same port and they reconnect.
`max_connection_age_s` closes every connection that old, as istiod does after
`keepaliveMaxServerConnectionAge` (gRPC's own server option): each proxy then
counts an `update_failure` on its ADS subscriptions and connects again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures

import grpc

from ._ports import LOOPBACK, free_port

ADS_METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
RUNTIME_TYPE = "type.googleapis.com/envoy.service.runtime.v3.Runtime"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (strings, bytes, messages)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _strings(message: bytes) -> dict[int, bytes]:
    """The length-delimited fields of a protobuf message (last one wins); others skipped."""
    fields: dict[int, bytes] = {}
    at = 0
    while at < len(message):
        key, at = _read_varint(message, at)
        number, wire = key >> 3, key & 7
        if wire == 2:
            size, at = _read_varint(message, at)
            fields[number] = message[at:at + size]
            at += size
        elif wire == 0:
            _, at = _read_varint(message, at)
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            break
    return fields


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def runtime_response(layer: str, version: str) -> bytes:
    """A DiscoveryResponse carrying one empty Runtime layer named `layer`."""
    runtime = _field(1, layer.encode())  # envoy.service.runtime.v3.Runtime{name}; an empty layer
    resource = _field(1, RUNTIME_TYPE.encode()) + _field(2, runtime)  # google.protobuf.Any
    return (_field(1, version.encode()) + _field(2, resource) + _field(4, RUNTIME_TYPE.encode())
            + _field(5, version.encode()))


class _AdsHandler(grpc.GenericRpcHandler):
    def __init__(self, plane: ControlPlane) -> None:
        self._plane = plane

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method != ADS_METHOD:
            return None
        return grpc.stream_stream_rpc_method_handler(self._stream)

    def _stream(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for request in requests:  # raw DiscoveryRequest bytes: counted; only runtime layers answered
            self._plane._count()
            fields = _strings(request)  # 3 resource_names, 4 type_url, 5 response_nonce (empty: not an ACK)
            if fields.get(4) == RUNTIME_TYPE.encode() and not fields.get(5) and fields.get(3):
                yield runtime_response(fields[3].decode(), "1")


class ControlPlane:
    """An ADS endpoint on 127.0.0.1:`port` (0 picks one); reversible stop/start."""

    def __init__(self, *, port: int = 0, max_streams: int = 256, max_connection_age_s: float | None = None) -> None:
        self.port = port or free_port()
        self.max_connection_age_s = max_connection_age_s
        self.requests_received = 0
        self._max_streams = max_streams
        self._server: grpc.Server | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> ControlPlane:
        if self._server is None:
            # Each open ADS stream holds one worker thread.
            options = []
            if self.max_connection_age_s is not None:
                age_ms = int(self.max_connection_age_s * 1000)
                options = [("grpc.max_connection_age_ms", age_ms), ("grpc.max_connection_age_grace_ms", 100)]
            server = grpc.server(futures.ThreadPoolExecutor(max_workers=self._max_streams),
                                 handlers=[_AdsHandler(self)], options=options)
            server.add_insecure_port(f"{LOOPBACK}:{self.port}")
            server.start()
            self._server = server
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace=0).wait(5)

    def _count(self) -> None:
        with self._lock:
            self.requests_received += 1

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
