"""The service's HTTP API on the standard library's ThreadingHTTPServer (a thread per request)."""

from __future__ import annotations

import json
import logging
import re
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from .resilience import deadline
from .service import ApiError, BookingService

log = logging.getLogger("booking.http")

_SYNC = re.compile(r"^/patients/([^/]+)/sync$")
_SUMMARIZE = re.compile(r"^/cases/([^/]+)/summarize$")
MAX_BODY = 1 << 20


class BookingServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], service: BookingService, budget: float) -> None:
        self.service = service
        self.budget = budget
        self.ready = False
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    server: BookingServer
    protocol_version = "HTTP/1.1"
    server_version = "StElsewhereBooking/1.4"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/health":
            if self.server.ready:
                self._send(200, {"status": "ok"})
            else:
                self._send(503, {"status": "starting"})
            return
        self._send(404, {"error": "not_found"})

    def do_POST(self) -> None:  # noqa: N802
        started = time.monotonic()
        op = self.headers.get("x-crashcart-op", "-")
        path = self.path.split("?", 1)[0]
        status = 500
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise ApiError(413, "too_large")
            raw = self.rfile.read(length) if length else b"{}"
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                raise ApiError(400, "invalid_json") from None
            if not isinstance(body, dict):
                raise ApiError(400, "invalid_request", "the body must be a JSON object")
            handler: Callable[[], dict[str, Any]]
            service = self.server.service
            if path == "/appointments":
                handler, ok = (lambda: service.book(body)), 201
            elif m := _SYNC.match(path):
                handler, ok = (lambda: service.sync_patient(m.group(1), body)), 200
            elif m := _SUMMARIZE.match(path):
                handler, ok = (lambda: service.summarize_case(m.group(1), body)), 200
            else:
                raise ApiError(404, "not_found")
            with deadline(self.server.budget):
                result = handler()
            status = ok
            self._send(status, result)
        except ApiError as exc:
            status = exc.status
            headers = {"Retry-After": str(int(exc.retry_after))} if exc.retry_after else None
            self._send(status, exc.body, headers)
        except Exception as exc:  # noqa: BLE001 - last line of defence: a 500, never a dropped request
            log.exception("op=%s POST %s failed unexpectedly", op, path)
            status = 500
            try:
                self._send(500, {"error": "internal_error", "detail": type(exc).__name__})
            except OSError:
                pass
        finally:
            level = logging.INFO if status < 500 else logging.WARNING
            log.log(level, "op=%s POST %s -> %d %s in %.3fs", op, path, status,
                    HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "", time.monotonic() - started)
