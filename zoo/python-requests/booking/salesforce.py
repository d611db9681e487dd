"""Salesforce REST API client on a requests.Session, with our own resilience.

- OAuth 2.0 username-password login; on 401 INVALID_SESSION_ID one re-login shared by every
  thread (single flight: the others wait for it), then the call is sent again.
- Every call has a connect and a read timeout, and never outlives the request's deadline.
- Retryable failures (connection errors, timeouts, 5xx, 429, UNABLE_TO_LOCK_ROW) are retried
  at most MAX_ATTEMPTS times in all, with capped exponential backoff and jitter, honouring
  Retry-After. Other 4xx are not retried.
- A circuit breaker stops calls while Salesforce does not answer; a quota gate stops them
  while the org answers REQUEST_LIMIT_EXCEEDED (or Sforce-Limit-Info shows the quota spent).
- Schema drift: an optional field the org no longer knows (INVALID_FIELD / "No such column")
  is dropped from our writes from then on; a retired API version is replaced by the newest
  the org serves.

urllib3's own Retry is not used (requests' adapters are mounted with max_retries=0).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from .config import Settings
from .resilience import (
    BreakerOpen,
    CircuitBreaker,
    DeadlineExceeded,
    RetryPolicy,
    parse_retry_after,
    remaining_budget,
    sleep_within_budget,
)
from .variants import Variant

log = logging.getLogger("booking.salesforce")

RETRYABLE_STATUS = {429, 500, 502, 503, 504}
RETRYABLE_CODES = {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"}
_NO_SUCH_COLUMN = re.compile(r"No such column '([A-Za-z0-9_]+)'")


# --------------------------------------------------------------------------- errors

class SalesforceError(Exception):
    """Salesforce refused the call (or we gave up on it)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str = "",
        fields: Iterable[str] = (),
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.fields = list(fields)
        # True when a write may have landed although we got no answer for it.
        self.outcome_unknown = outcome_unknown

    def rejected_field(self) -> Optional[str]:
        if self.code == "INVALID_FIELD" or "No such column" in str(self):
            m = _NO_SUCH_COLUMN.search(str(self))
            if m:
                return m.group(1)
        if self.code in ("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "INVALID_FIELD") and self.fields:
            return self.fields[0]
        return None


class SalesforceUnavailable(SalesforceError):
    """Salesforce is down, too slow, out of quota, or its breaker is open."""


def _error_of(resp: requests.Response) -> tuple[str, str, list[str]]:
    try:
        body = resp.json()
    except ValueError:
        return "", (resp.text or resp.reason or "")[:300], []
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        first = body[0]
        return str(first.get("errorCode", "")), str(first.get("message", "")), list(first.get("fields") or [])
    if isinstance(body, Mapping):  # OAuth errors
        return str(body.get("error", "")), str(body.get("error_description", body)), []
    return "", str(body)[:300], []


def soql_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# --------------------------------------------------------------------------- session

@dataclass
class _Session:
    access_token: str
    instance_url: str
    generation: int


class SessionManager:
    """Holds the access token. One login at a time; everyone else waits for its result."""

    def __init__(self, login, *, relogin: bool) -> None:
        self._login = login
        self._relogin = relogin
        self._cond = threading.Condition()
        self._session: Optional[_Session] = None
        self._generation = 0
        self._logging_in = False
        self._cooldown_until = 0.0
        self._cooldown = 0.5
        self._last_error: Optional[Exception] = None

    def current(self) -> _Session:
        with self._cond:
            while self._logging_in:
                if not self._cond.wait(timeout=max(0.05, min(remaining_budget(), 5.0))):
                    raise SalesforceUnavailable("timed out waiting for the Salesforce login")
            if self._session is not None:
                return self._session
        self.renew(stale_generation=self._generation, initial=True)
        with self._cond:
            if self._session is None:
                raise SalesforceUnavailable(f"not logged in to Salesforce: {self._last_error}")
            return self._session

    def renew(self, stale_generation: int, initial: bool = False) -> None:
        """The token of `stale_generation` was refused: get a new one, once for everybody."""
        with self._cond:
            if not initial and not self._relogin:
                raise SalesforceError("Salesforce session expired", status=401, code="INVALID_SESSION_ID")
            while self._logging_in:
                self._cond.wait(timeout=max(0.05, min(remaining_budget(), 5.0)))
                if self._logging_in and remaining_budget() <= 0:
                    raise SalesforceUnavailable("timed out waiting for the Salesforce login")
            if self._generation != stale_generation and self._session is not None:
                return  # somebody else already logged in again
            now = time.monotonic()
            if now < self._cooldown_until:
                raise SalesforceUnavailable(f"Salesforce login failing, next try in {self._cooldown_until - now:.2f}s: {self._last_error}")
            self._logging_in = True
        try:
            token, instance = self._login()
        except Exception as exc:  # noqa: BLE001 - any failure: let others know, then raise
            with self._cond:
                self._logging_in = False
                self._last_error = exc
                self._cooldown_until = time.monotonic() + self._cooldown
                self._cooldown = min(self._cooldown * 2, 4.0)
                self._cond.notify_all()
            raise
        with self._cond:
            self._generation += 1
            self._session = _Session(token, instance, self._generation)
            self._logging_in = False
            self._cooldown = 0.5
            self._cooldown_until = 0.0
            self._cond.notify_all()
            log.info("logged in to Salesforce (session #%d)", self._generation)


# --------------------------------------------------------------------------- client

class SalesforceClient:
    def __init__(self, settings: Settings, variant: Variant) -> None:
        self.settings = settings
        self.variant = variant
        self.http = requests.Session()
        # One pooled session shared by the worker threads; no urllib3-level retries.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=64, max_retries=0)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)
        self.http.headers.update({"Accept": "application/json", "User-Agent": "stelsewhere-booking/1.4 python-requests"})
        self.policy = RetryPolicy(
            max_attempts=4 if variant.bounded_retries else 1000,
            base=0.1,
            cap=2.0,
            backoff=variant.backoff,
            honour_retry_after=variant.honour_retry_after,
        )
        self.breaker = CircuitBreaker("salesforce", threshold=5, open_for=1.0, enabled=variant.breakers)
        # REQUEST_LIMIT_EXCEEDED: pause 1 s, then one probe; callers wait while their budget allows.
        self.quota = CircuitBreaker("salesforce-quota", threshold=1, open_for=1.0)
        self.sessions = SessionManager(self._login, relogin=variant.relogin_on_expiry)
        self.api_version = settings.sf_api_version
        self._version_lock = threading.Lock()
        self._dropped: dict[str, set[str]] = defaultdict(set)
        self._dropped_lock = threading.Lock()

    # ---------------------------------------------------------------- plumbing

    def _timeout(self, read: Optional[float] = None) -> Optional[tuple[float, float]]:
        if not self.variant.timeouts:
            return None
        left = remaining_budget()
        read = read if read is not None else self.settings.sf_read_timeout
        return (self.settings.sf_connect_timeout, max(0.05, min(read, left)))

    def _login(self) -> tuple[str, str]:
        url = f"{self.settings.sf_login_url}/services/oauth2/token"
        form = {
            "grant_type": "password",
            "client_id": self.settings.sf_client_id,
            "client_secret": self.settings.sf_client_secret,
            "username": self.settings.sf_username,
            "password": self.settings.sf_password,
        }
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = self.http.post(url, data=form, timeout=self._timeout(read=2.0))
            except (requests.Timeout, requests.ConnectionError) as exc:
                problem: Exception = SalesforceUnavailable(f"login: {type(exc).__name__}")
                retry_after = None
            else:
                if resp.status_code == 200:
                    body = resp.json()
                    return body["access_token"], body.get("instance_url") or self.settings.sf_instance_url
                code, message, _ = _error_of(resp)
                if resp.status_code < 500 and resp.status_code != 429:
                    raise SalesforceError(f"login refused: {code} {message}", status=resp.status_code, code=code)
                problem = SalesforceUnavailable(f"login: HTTP {resp.status_code} {code}", status=resp.status_code)
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if attempt >= 3:
                raise problem
            sleep_within_budget(self.policy.delay(attempt, retry_after))

    def _note_limits(self, resp: requests.Response) -> None:
        info = resp.headers.get("Sforce-Limit-Info", "")
        m = re.search(r"api-usage=(\d+)/(\d+)", info)
        if m and int(m.group(2)) > 0 and int(m.group(1)) >= int(m.group(2)):
            log.warning("Sforce-Limit-Info shows the daily API quota spent (%s)", info)
            self.quota.failure(was_probe=False)

    def _wait_for_quota(self) -> bool:
        """While the quota is spent, wait for it as long as the request's budget allows
        (keeping 1.5 s to do the work); one probe per pause finds out when it is back."""
        while True:
            try:
                return self.quota.before_call()
            except BreakerOpen:
                if remaining_budget() < 1.5:
                    raise
                time.sleep(0.05)

    def _adopt_newest_version(self, refused: str) -> None:
        with self._version_lock:
            if self.api_version != refused:
                return
            session = self.sessions.current()
            resp = self.http.get(
                f"{session.instance_url}/services/data/",
                headers={"Authorization": f"Bearer {session.access_token}"},
                timeout=self._timeout(),
            )
            resp.raise_for_status()
            versions = sorted((v["version"] for v in resp.json()), key=lambda v: tuple(int(p) for p in v.split(".")))
            if not versions:
                raise SalesforceError("the org lists no API versions")
            self.api_version = versions[-1]
            log.warning("API version %s retired; moving to %s", refused, self.api_version)

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Optional[Mapping[str, str]] = None,
        headers: Optional[Mapping[str, str]] = None,
        passthrough: Iterable[int] = (),
        attempts: Optional[int] = None,
    ) -> requests.Response:
        """One REST call (path below /services/data/vXX.X), resilient. Answers with a status in
        `passthrough` are returned instead of raised."""
        passthrough = set(passthrough)
        max_attempts = self.policy.max_attempts if attempts is None else min(attempts, self.policy.max_attempts)
        attempts = 0
        renewals = 0
        version_moves = 0
        sent_any = False
        while True:
            if remaining_budget() <= 0.02:
                raise SalesforceUnavailable(f"{method} {path}: out of time", outcome_unknown=sent_any and method != "GET")
            session = self.sessions.current()
            try:
                quota_probe = self._wait_for_quota()
            except BreakerOpen as exc:
                raise SalesforceUnavailable(f"{method} {path}: API quota spent, paused ({exc})", status=403,
                                            code="REQUEST_LIMIT_EXCEEDED", outcome_unknown=sent_any and method != "GET") from None
            try:
                probe = self.breaker.before_call()
            except BreakerOpen as exc:
                if quota_probe:
                    self.quota.release_probe()
                raise SalesforceUnavailable(f"{method} {path}: {exc}", outcome_unknown=sent_any and method != "GET") from None
            version = self.api_version
            url = f"{session.instance_url}/services/data/v{version}{path}"
            hdrs = {"Authorization": f"Bearer {session.access_token}"}
            if headers:
                hdrs.update(headers)
            attempts += 1
            retry_after: Optional[float] = None
            try:
                sent_any = True
                resp = self.http.request(method, url, json=json_body, params=params, headers=hdrs, timeout=self._timeout())
            except (requests.Timeout, requests.ConnectionError) as exc:
                self.breaker.failure(was_probe=probe)
                if quota_probe:
                    self.quota.release_probe()
                problem: SalesforceError = SalesforceUnavailable(
                    f"{method} {path}: {type(exc).__name__}", outcome_unknown=method != "GET")
            else:
                self._note_limits(resp)
                status = resp.status_code
                code, message, fields = (("", "", []) if status < 400 else _error_of(resp))
                if status >= 500 or status == 429:
                    self.breaker.failure(was_probe=probe)
                else:
                    self.breaker.success()
                if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
                    self.quota.failure(was_probe=quota_probe)
                    raise SalesforceUnavailable(f"{method} {path}: REQUEST_LIMIT_EXCEEDED", status=403, code=code,
                                                outcome_unknown=False)
                if status < 400 or status in passthrough:
                    self.quota.success()
                    return resp
                if quota_probe:
                    self.quota.success()
                if status == 401 and code == "INVALID_SESSION_ID":
                    renewals += 1
                    attempts -= 1  # the resend with a new token is re-authentication, not a retry
                    if renewals > 2:
                        raise SalesforceError(f"{method} {path}: session refused after re-login", status=401, code=code)
                    self.sessions.renew(session.generation)
                    continue
                if status == 410 or code == "UNSUPPORTED_API_VERSION":
                    version_moves += 1
                    attempts -= 1
                    if version_moves > 1:
                        raise SalesforceError(f"{method} {path}: {code} {message}", status=status, code=code)
                    try:
                        self._adopt_newest_version(version)
                    except requests.RequestException as exc:
                        raise SalesforceUnavailable(f"reading the API versions: {type(exc).__name__}") from None
                    continue
                retryable = status in RETRYABLE_STATUS or code in RETRYABLE_CODES
                if not retryable:
                    raise SalesforceError(f"{method} {path}: HTTP {status} {code}: {message}", status=status, code=code, fields=fields)
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                cls = SalesforceUnavailable if status >= 500 or status == 429 else SalesforceError
                problem = cls(f"{method} {path}: HTTP {status} {code}", status=status, code=code)
            if attempts >= max_attempts:
                raise problem
            wait = self.policy.delay(attempts, retry_after)
            try:
                sleep_within_budget(wait)
            except DeadlineExceeded:
                raise problem from None
            log.info("retrying %s %s (attempt %d) after %.3fs: %s", method, path, attempts + 1, wait, problem)

    # ---------------------------------------------------------------- drift-aware writes

    def _body_without_dropped(self, sobject: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        with self._dropped_lock:
            dropped = set(self._dropped[sobject])
        return {k: v for k, v in fields.items() if k not in dropped and v is not None}

    def _write_with_drift(self, sobject: str, fields: Mapping[str, Any], optional: Iterable[str], send):
        """Send a write; when the org refuses an optional field, drop it (for good, when the
        field is unknown to the org; for this write only, when a picklist value is refused)."""
        optional = set(optional)
        body = self._body_without_dropped(sobject, fields)
        for _ in range(len(optional) + 1):
            try:
                return send(body)
            except SalesforceError as exc:
                field = exc.rejected_field()
                if field is None or field not in optional or field not in body:
                    raise
                body = dict(body)
                body.pop(field)
                if exc.code == "INVALID_FIELD" or "No such column" in str(exc):
                    with self._dropped_lock:
                        self._dropped[sobject].add(field)
                    log.warning("schema drift: %s.%s refused by the org (%s); writing without it from now on", sobject, field, exc.code)
                else:
                    log.warning("schema drift: %s.%s value refused (%s); writing this record without it", sobject, field, exc.code)
        raise SalesforceError(f"{sobject}: every optional field refused")

    # ---------------------------------------------------------------- operations

    def query(self, soql: str) -> list[dict[str, Any]]:
        resp = self.request("GET", "/query", params={"q": soql})
        return resp.json().get("records", [])

    def upsert(self, sobject: str, ext_field: str, ext_value: str, fields: Mapping[str, Any],
               optional: Iterable[str] = ()) -> tuple[str, bool]:
        """Upsert by external id. Returns (record id, created)."""
        path = f"/sobjects/{sobject}/{ext_field}/{quote(ext_value, safe='')}"

        def send(body: dict[str, Any]) -> tuple[str, bool]:
            resp = self.request("PATCH", path, json_body=body)
            if resp.status_code == 204 or not resp.content:
                rec = self.get(path)
                if rec is None:
                    raise SalesforceError(f"{sobject} {ext_value} not found after upsert")
                return rec[0]["Id"], False
            data = resp.json()
            return data["id"], bool(data.get("created", resp.status_code == 201))

        return self._write_with_drift(sobject, fields, optional, send)

    def create(self, sobject: str, fields: Mapping[str, Any], optional: Iterable[str] = ()) -> str:
        """Plain POST create (NOT idempotent)."""
        def send(body: dict[str, Any]) -> str:
            return self.request("POST", f"/sobjects/{sobject}", json_body=body).json()["id"]

        return self._write_with_drift(sobject, fields, optional, send)

    def get(self, path: str, attempts: Optional[int] = None) -> Optional[tuple[dict[str, Any], Optional[str]]]:
        """GET a record; (record, ETag) or None when it does not exist."""
        resp = self.request("GET", path, passthrough=(404,), attempts=attempts)
        if resp.status_code == 404:
            return None
        return resp.json(), resp.headers.get("ETag")

    def update(self, sobject: str, record_id: str, fields: Mapping[str, Any], *,
               if_match: Optional[str] = None, optional: Iterable[str] = ()) -> tuple[bool, Optional[str]]:
        """PATCH a record by id. With `if_match`, a conditional update: returns (False, None)
        when the record changed since that ETag (412), else (True, new ETag)."""
        headers = {"If-Match": if_match} if if_match else None

        def send(body: dict[str, Any]) -> tuple[bool, Optional[str]]:
            if not body:
                return True, if_match
            resp = self.request("PATCH", f"/sobjects/{sobject}/{record_id}", json_body=body,
                                headers=headers, passthrough=(412,))
            if resp.status_code == 412:
                return False, None
            return True, resp.headers.get("ETag")

        return self._write_with_drift(sobject, fields, optional, send)

    def delete(self, path: str, attempts: Optional[int] = None) -> bool:
        """DELETE; True when deleted now, False when it was not there."""
        resp = self.request("DELETE", path, passthrough=(404,), attempts=attempts)
        return resp.status_code != 404

    def user_id(self, username: str) -> Optional[str]:
        rows = self.query(f"SELECT Id FROM User WHERE Username = {soql_quote(username)} AND IsActive = true LIMIT 1")
        return rows[0]["Id"] if rows else None
