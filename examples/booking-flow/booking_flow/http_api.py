"""The booking API on the standard library's ThreadingHTTPServer (a thread per request).

    GET    /health                  200 {"status": "ok"} once logged in to Salesforce
    POST   /appointments            201 {"id", "status": "booked", "start", "end", ...}
    GET    /appointments/{id}       200 {"id", "status", "start", "end"}
    PATCH  /appointments/{id}       200 {"id", "status": "rescheduled", "start", "end"}
    DELETE /appointments/{id}       200 {"id", "status": "cancelled", "start", "end"}

Answers about one appointment carry an ETag; PATCH takes If-Match. Errors are
{"error": code, "detail"?: text}: 400 invalid_request / invalid_json, 404 not_found,
409 slot_taken / cancelled, 412 precondition_failed, 422 unknown_practitioner,
502 salesforce_error, 503 salesforce_unavailable (with Retry-After), 500 internal_error.
"""

from __future__ import annotations

import json
import logging
import re
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

from . import context
from .appointments import ApiError, Appointments

log = logging.getLogger("booking-flow.http")

_ONE = re.compile(r"^/appointments/([^/]+)$")
MAX_BODY = 64 * 1024


class BookingServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], appointments: Appointments, budget: float) -> None:
        self.appointments = appointments
        self.budget = budget
        self.ready = False
        super().__init__(address, Handler)


Result = tuple[int, dict[str, Any], Optional[str]]


class Handler(BaseHTTPRequestHandler):
    server: BookingServer
    protocol_version = "HTTP/1.1"
    server_version = "StElsewhereBookingFlow/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("%s " + format, self.address_string(), *args)

    # ---------------------------------------------------------------- plumbing

    def _send(self, status: int, body: dict[str, Any], headers: Optional[dict[str, str]] = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        self._body_read = True
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError(400, "invalid_request", "bad Content-Length") from None
        if length > MAX_BODY:
            # Read it anyway so the connection stays usable for the answer.
            self.rfile.read(length)
            raise ApiError(413, "too_large")
        raw = self.rfile.read(length) if length else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(400, "invalid_json") from None
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_request", "the body must be a JSON object")
        return body

    def _serve(self, route: Callable[[str], Optional[Callable[[], Result]]]) -> None:
        started = time.monotonic()
        op = self.headers.get("x-crashcart-op", "-")
        path = self.path.split("?", 1)[0]
        status = 500
        try:
            with context.request_scope(self.server.budget, self.headers.get("traceparent")):
                self._body_read = False
                handler = route(path)
                if handler is None:
                    if not self._body_read:
                        try:
                            self._body()  # read what was sent, so the connection stays usable
                        except ApiError:
                            pass
                    raise ApiError(404, "not_found")
                status, body, etag = handler()
            self._send(status, body, {"ETag": etag} if etag else None)
        except ApiError as exc:
            status = exc.status
            self._send(status, exc.body, {"Retry-After": str(exc.retry_after)} if exc.retry_after else None)
        except Exception as exc:  # noqa: BLE001 - the last line of defence: a 500, never a dropped request
            log.exception("op=%s %s %s failed unexpectedly", op, self.command, path)
            status = 500
            try:
                self._send(500, {"error": "internal_error", "detail": type(exc).__name__})
            except OSError:
                pass
        finally:
            level = logging.INFO if status < 500 else logging.WARNING
            log.log(level, "op=%s %s %s -> %d in %.3fs", op, self.command, path, status, time.monotonic() - started)

    # ---------------------------------------------------------------- methods

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/health":
            if self.server.ready:
                self._send(200, {"status": "ok"})
            else:
                self._send(503, {"status": "starting"})
            return
        svc = self.server.appointments

        def route(path: str) -> Optional[Callable[[], Result]]:
            m = _ONE.match(path)
            return (lambda: svc.read(m.group(1))) if m else None

        self._serve(route)

    def do_POST(self) -> None:  # noqa: N802
        svc = self.server.appointments

        def route(path: str) -> Optional[Callable[[], Result]]:
            if path != "/appointments":
                return None
            body = self._body()
            return lambda: svc.book(body)

        self._serve(route)

    def do_PATCH(self) -> None:  # noqa: N802
        svc = self.server.appointments

        def route(path: str) -> Optional[Callable[[], Result]]:
            m = _ONE.match(path)
            if not m:
                return None
            body = self._body()
            if_match = self.headers.get("If-Match")
            return lambda: svc.reschedule(m.group(1), body, if_match)

        self._serve(route)

    def do_DELETE(self) -> None:  # noqa: N802
        svc = self.server.appointments

        def route(path: str) -> Optional[Callable[[], Result]]:
            m = _ONE.match(path)
            return (lambda: svc.cancel(m.group(1))) if m else None

        self._serve(route)
