"""Our resilience toolkit: request deadlines, retry policy, circuit breaker.

Written in-house on purpose (no urllib3 Retry, no tenacity): the integration team wants one
place that says how long we wait, how often we retry and when we stop calling a dependency
that is down, for Salesforce and for the LLM alike.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Optional

log = logging.getLogger("booking.resilience")

MAX_ATTEMPTS = 4


# --------------------------------------------------------------------------- deadlines

class DeadlineExceeded(Exception):
    """The operation's time budget is spent."""


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.expires_at = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.expires_at - time.monotonic()

    def expired(self) -> bool:
        return self.remaining() <= 0


_local = threading.local()


@contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Give the current thread (one HTTP request, or one background job) a time budget."""
    previous = getattr(_local, "deadline", None)
    _local.deadline = Deadline(seconds)
    try:
        yield _local.deadline
    finally:
        _local.deadline = previous


def current_deadline() -> Optional[Deadline]:
    return getattr(_local, "deadline", None)


def remaining_budget(default: float = 30.0) -> float:
    d = current_deadline()
    return default if d is None else d.remaining()


# --------------------------------------------------------------------------- retry policy

def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Retry-After as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class RetryPolicy:
    """Capped exponential backoff with "equal jitter": half the ceiling fixed, half random.

    retry n (1-based) waits between c/2 and c, c = min(cap, base * 2**(n-1)). The waits grow
    on average, never collapse to zero, and two callers that failed together spread out.
    """

    def __init__(
        self,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        base: float = 0.1,
        cap: float = 2.0,
        backoff: bool = True,
        honour_retry_after: bool = True,
        rng: Optional[random.Random] = None,
    ) -> None:
        self.max_attempts = max_attempts
        self.base = base
        self.cap = cap
        self.backoff = backoff
        self.honour_retry_after = honour_retry_after
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()

    def delay(self, retry_number: int, retry_after: Optional[float] = None) -> float:
        if not self.backoff:
            return 0.0
        ceiling = min(self.cap, self.base * (2 ** (retry_number - 1)))
        with self._rng_lock:
            wait = ceiling / 2 + self._rng.random() * ceiling / 2
        if self.honour_retry_after and retry_after is not None:
            wait = max(wait, retry_after)
        return wait

    def may_retry(self, attempts_made: int) -> bool:
        return attempts_made < self.max_attempts


# --------------------------------------------------------------------------- circuit breaker

class BreakerOpen(Exception):
    """Refused locally: the dependency's breaker is open."""

    def __init__(self, name: str, retry_in: float) -> None:
        super().__init__(f"{name} circuit open (next probe in {retry_in:.2f}s)")
        self.name = name
        self.retry_in = retry_in


class CircuitBreaker:
    """Closed → open after `threshold` consecutive failures; open for `open_for` seconds,
    then half-open: exactly one probe goes through, the others are refused until it answers.

    A failed probe re-opens it, for `open_for` times `growth` each time up to `max_open_for`.
    Any success closes it.
    """

    CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

    def __init__(
        self,
        name: str,
        *,
        threshold: int = 5,
        open_for: float = 1.0,
        growth: float = 1.0,
        max_open_for: float = 1.0,
        enabled: bool = True,
    ) -> None:
        self.name = name
        self.threshold = threshold
        self.base_open_for = open_for
        self.growth = growth
        self.max_open_for = max(max_open_for, open_for)
        self.enabled = enabled
        self._lock = threading.Lock()
        self._state = self.CLOSED
        self._failures = 0
        self._open_until = 0.0
        self._open_for = open_for
        self._probe_out = False
        self._probe_started = 0.0

    @property
    def state(self) -> str:
        return self._state

    def before_call(self) -> bool:
        """Ask for permission to call. Returns True when this call is the half-open probe.
        Raises BreakerOpen when the call must not be made."""
        if not self.enabled:
            return False
        with self._lock:
            now = time.monotonic()
            if self._state == self.CLOSED:
                return False
            if self._state == self.OPEN:
                if now < self._open_until:
                    raise BreakerOpen(self.name, self._open_until - now)
                self._state = self.HALF_OPEN
                self._probe_out = False
            # half-open: one probe at a time (a probe lost for 10 s is given up on)
            if self._probe_out and now - self._probe_started < 10.0:
                raise BreakerOpen(self.name, self._open_for)
            self._probe_out = True
            self._probe_started = now
            log.info("%s breaker half-open: sending a probe", self.name)
            return True

    def success(self) -> None:
        if not self.enabled:
            return
        with self._lock:
            if self._state != self.CLOSED:
                log.info("%s breaker closed", self.name)
            self._state = self.CLOSED
            self._failures = 0
            self._probe_out = False
            self._open_for = self.base_open_for

    def failure(self, was_probe: bool = False) -> None:
        if not self.enabled:
            return
        with self._lock:
            now = time.monotonic()
            if self._state == self.HALF_OPEN and was_probe:
                self._open_for = min(self.max_open_for, self._open_for * self.growth)
                self._open(now, "probe failed")
                return
            if self._state != self.CLOSED:
                return  # already open: a late answer of a call made before it opened
            self._failures += 1
            if self._failures >= self.threshold:
                self._open(now, f"{self._failures} consecutive failures")

    def release_probe(self) -> None:
        """The probe ended without telling anything about the dependency."""
        with self._lock:
            self._probe_out = False

    def _open(self, now: float, why: str) -> None:
        self._state = self.OPEN
        self._open_until = now + self._open_for
        self._probe_out = False
        log.warning("%s breaker OPEN for %.2fs (%s)", self.name, self._open_for, why)


def sleep_within_budget(seconds: float) -> None:
    """Sleep, but never past the current deadline."""
    left = remaining_budget()
    if seconds >= left:
        raise DeadlineExceeded(f"a {seconds:.2f}s wait does not fit the {max(left, 0):.2f}s left")
    if seconds > 0:
        time.sleep(seconds)
