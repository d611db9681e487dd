"""What one API request carries down to its dependency calls, per thread (the server runs a
thread per request): its deadline, and its W3C trace context.

- The deadline: every Salesforce attempt, backoff and LLM call is cut to what is left, so
  we answer our caller before it gives up on us.
- The trace: an incoming `traceparent` is handed on to Salesforce and the LLM as a child
  (same trace id, a new span id per call), as OpenTelemetry's HTTP instrumentation would.
"""

from __future__ import annotations

import contextlib
import random
import re
import threading
import time
from typing import Iterator, Optional

_local = threading.local()
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_span_ids = random.Random()


class DeadlineExceeded(Exception):
    """The request's time is up."""


@contextlib.contextmanager
def request_scope(budget: float, traceparent: Optional[str]) -> Iterator[None]:
    _local.deadline = time.monotonic() + budget
    match = _TRACEPARENT.match((traceparent or "").strip().lower())
    _local.trace = (match.group(1), match.group(3)) if match and match.group(1) != "0" * 32 else None
    try:
        yield
    finally:
        _local.deadline = None
        _local.trace = None


def remaining() -> float:
    """Seconds left for the current request (a minute outside one: startup, shutdown)."""
    deadline = getattr(_local, "deadline", None)
    if deadline is None:
        return 60.0
    return deadline - time.monotonic()


def child_traceparent() -> Optional[str]:
    """A traceparent for one outgoing call of the current request, or None."""
    trace = getattr(_local, "trace", None)
    if trace is None:
        return None
    trace_id, flags = trace
    return f"00-{trace_id}-{_span_ids.getrandbits(64) or 1:016x}-{flags}"
