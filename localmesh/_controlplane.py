"""A stand-in control plane: a gRPC server that accepts Envoy's ADS stream.

It never sends a resource (listeners and clusters come from files); holding the
stream open is enough for Envoy to report `control_plane.connected_state` 1.
`stop()` drops the streams and closes the port, so the proxies report 0 and
keep retrying; `start()` again listens on the same port and they reconnect.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures

import grpc

from ._ports import LOOPBACK, free_port

ADS_METHOD = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"


class _AdsHandler(grpc.GenericRpcHandler):
    def __init__(self, plane: ControlPlane) -> None:
        self._plane = plane

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method != ADS_METHOD:
            return None
        return grpc.stream_stream_rpc_method_handler(self._stream)

    def _stream(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for _request in requests:  # raw DiscoveryRequest bytes: counted, never answered
            self._plane._count()
        return
        yield  # a generator that yields nothing keeps the stream open


class ControlPlane:
    """An ADS endpoint on 127.0.0.1:`port` (0 picks one); reversible stop/start."""

    def __init__(self, *, port: int = 0, max_streams: int = 256) -> None:
        self.port = port or free_port()
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
            server = grpc.server(futures.ThreadPoolExecutor(max_workers=self._max_streams),
                                 handlers=[_AdsHandler(self)])
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
