"""A real OTLP/HTTP trace receiver on 127.0.0.1: decodes `ExportTraceServiceRequest` with opentelemetry-proto."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

SERVER_KIND = ProtoSpan.SPAN_KIND_SERVER
STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, decoded."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    status_code: int
    status_message: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    events: list[str]

    def text(self) -> str:
        """Everything a span carries as text, for "this value is nowhere" checks."""
        return repr((self.name, self.status_message, self.attributes, self.resource, self.events))


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def decode(body: bytes) -> list[ReceivedSpan]:
    """The spans of one OTLP/HTTP protobuf export request."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        kind=span.kind,
                        status_code=span.status.code,
                        status_message=span.status.message,
                        attributes={kv.key: _value(kv.value) for kv in span.attributes},
                        resource=resource,
                        events=[repr(event) for event in span.events],
                    )
                )
    return spans


@dataclass
class Receiver:
    """What the receiver got: every export request (path, content type) and every span."""

    url: str = ""
    requests: list[tuple[str, str]] = field(default_factory=list)
    spans: list[ReceivedSpan] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def add(self, path: str, content_type: str, spans: list[ReceivedSpan]) -> None:
        """Record one export request."""
        with self.changed:
            self.requests.append((path, content_type))
            self.spans.extend(spans)
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float = 30) -> list[ReceivedSpan]:
        """Block until `predicate(spans)` holds (or fail after `timeout` seconds); returns the spans."""
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self.spans), timeout=timeout):
                names = sorted({span.name for span in self.spans})
                raise AssertionError(f"the expected spans never arrived; got {names}")
            return list(self.spans)

    def named(self, name: str) -> list[ReceivedSpan]:
        """The spans received so far with this name."""
        with self.changed:
            return [span for span in self.spans if span.name == name]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            receiver.add(self.path, self.headers.get("Content-Type", ""), decode(body))
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test asserts on what was received, not on access lines."""

    return Handler


@contextmanager
def otlp_receiver() -> Iterator[Receiver]:
    """Run the receiver on a free loopback port for the duration of the block."""
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def descends_from(span: ReceivedSpan, ancestor: ReceivedSpan, spans: list[ReceivedSpan]) -> bool:
    """True when `ancestor` is on `span`'s parent chain."""
    by_id = {s.span_id: s for s in spans if s.trace_id == span.trace_id}
    current: ReceivedSpan | None = span
    while current is not None and current.parent_span_id:
        if current.parent_span_id == ancestor.span_id:
            return True
        current = by_id.get(current.parent_span_id)
    return False
