"""A small Salesforce REST client on requests.Session, shared by the server's threads.

- OAuth 2.0 username-password flow. We use the `instance_url` the token response names.
- On 401 INVALID_SESSION_ID: one new login for everybody (single flight: the threads that
  hit the dead token wait for the one login in progress), then the call is sent again.
  That resend is not counted as a retry.
- Connection errors, timeouts, 5xx, 429 and UNABLE_TO_LOCK_ROW are retried, at most
  `sf_max_attempts` attempts in all, with capped exponential backoff and full jitter;
  Retry-After is a floor. Other 4xx are not retried.
- Every call we make is safe to send twice: reads, upserts by external id and PATCHes that
  set absolute values (we never POST a create). So a write whose answer was lost is
  retried like a read.
- Each attempt's timeouts, and each backoff, are cut to what the API request has left.

urllib3's own retries are off (max_retries=0): every retry is one we decided on.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from datetime import datetime, timezone
from typing import Any, Mapping, Optional
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from . import context
from .config import Settings

log = logging.getLogger("booking-flow.salesforce")

RETRYABLE_STATUS = {429, 500, 502, 503, 504}
RETRYABLE_CODES = {"UNABLE_TO_LOCK_ROW"}
MIN_ATTEMPT_TIME = 0.2  # less than this left in the request: do not start another attempt


class SalesforceError(Exception):
    """Salesforce refused the call."""

    def __init__(self, message: str, *, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class SalesforceUnavailable(SalesforceError):
    """No useful answer (network, timeouts, 5xx, 429, login failing) within our attempts."""


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - time.time())


def _error_of(resp: requests.Response) -> tuple[str, str]:
    """(errorCode, message) of a REST error body ([{...}]) or an OAuth one ({error, ...})."""
    try:
        body = resp.json()
    except ValueError:
        return "", (resp.text or resp.reason or "")[:300]
    if isinstance(body, list) and body and isinstance(body[0], Mapping):
        return str(body[0].get("errorCode", "")), str(body[0].get("message", ""))
    if isinstance(body, Mapping):
        return str(body.get("error", "")), str(body.get("error_description", ""))
    return "", str(body)[:300]


def soql_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def soql_datetime(value: datetime) -> str:
    """A SOQL datetime literal (no quotes): 2027-03-05T08:30:00Z."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class SalesforceClient:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.api_version = settings.sf_api_version
        self.http = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=32, max_retries=0)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)
        self.http.headers.update({"Accept": "application/json", "User-Agent": "stelsewhere-booking-flow/1.0 python-requests"})
        self.rng = random.Random(f"booking-flow-salesforce-{settings.seed}")
        self._rng_lock = threading.Lock()
        self._login_lock = threading.Lock()
        self.access_token: Optional[str] = None
        self.instance_url = settings.sf_instance_url

    def close(self) -> None:
        self.http.close()

    # ---------------------------------------------------------------- plumbing

    def _timeout(self, read: float) -> tuple[float, float]:
        left = max(0.05, context.remaining())
        return (min(self.settings.sf_connect_timeout, left), min(read, left))

    def _backoff(self, retry_number: int, retry_after: Optional[float]) -> float:
        s = self.settings
        ceiling = min(s.sf_backoff_cap, s.sf_backoff_base * (2 ** (retry_number - 1)))
        with self._rng_lock:
            wait = {
                "none": lambda: 0.0,
                "constant": lambda: s.sf_backoff_base,
                "exponential": lambda: ceiling,
                "full-jitter": lambda: self.rng.uniform(0.0, ceiling),
                "equal-jitter": lambda: ceiling / 2 + self.rng.uniform(0.0, ceiling / 2),
            }[s.sf_backoff]()
        return max(wait, retry_after or 0.0)

    def _trace_headers(self) -> dict[str, str]:
        tp = context.child_traceparent()
        return {"traceparent": tp} if tp else {}

    def _give_up(self, attempt: int, wait: float) -> bool:
        return attempt >= self.settings.sf_max_attempts or context.remaining() - wait < MIN_ATTEMPT_TIME

    # ---------------------------------------------------------------- login

    def login(self) -> None:
        """Username-password flow, with retries. Caller holds no lock."""
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
            retry_after: Optional[float] = None
            try:
                resp = self.http.post(url, data=form, timeout=self._timeout(self.settings.sf_read_timeout),
                                      headers=self._trace_headers())
            except (requests.Timeout, requests.ConnectionError) as exc:
                problem: SalesforceError = SalesforceUnavailable(f"login: {type(exc).__name__}")
            else:
                if resp.status_code == 200:
                    body = resp.json()
                    self.access_token = str(body["access_token"])
                    self.instance_url = str(body.get("instance_url") or self.settings.sf_instance_url).rstrip("/")
                    log.info("logged in to %s", self.instance_url)
                    return
                code, message = _error_of(resp)
                if resp.status_code not in RETRYABLE_STATUS:
                    raise SalesforceError(f"login refused: HTTP {resp.status_code} {code} {message}".rstrip(),
                                          status=resp.status_code, code=code)
                problem = SalesforceUnavailable(f"login: HTTP {resp.status_code} {code}".rstrip(), status=resp.status_code)
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            wait = self._backoff(attempt, retry_after)
            if self._give_up(attempt, wait):
                raise problem
            log.info("%s; login retry %d in %.2fs", problem, attempt, wait)
            time.sleep(wait)

    def renew(self, dead_token: Optional[str]) -> None:
        """`dead_token` was refused (or there is none yet): log in, once for all threads."""
        with self._login_lock:
            if self.access_token is not None and self.access_token != dead_token:
                return  # another thread logged in while we waited
            self.login()

    # ---------------------------------------------------------------- calls

    def request(self, method: str, path: str, *, params: Optional[Mapping[str, str]] = None,
                json_body: Any = None, not_found_ok: bool = False) -> Optional[requests.Response]:
        """One REST call below /services/data/vXX.X. 404 is None when `not_found_ok`;
        other refusals raise SalesforceError, exhausted retries SalesforceUnavailable."""
        if self.access_token is None:
            self.renew(None)
        relogged = False
        attempt = 0
        while True:
            attempt += 1
            token = self.access_token
            url = f"{self.instance_url}/services/data/v{self.api_version}{path}"
            headers = {"Authorization": f"Bearer {token}", **self._trace_headers()}
            retry_after: Optional[float] = None
            try:
                resp = self.http.request(method, url, params=params, json=json_body, headers=headers,
                                         timeout=self._timeout(self.settings.sf_read_timeout))
            except (requests.Timeout, requests.ConnectionError) as exc:
                problem: SalesforceError = SalesforceUnavailable(f"{method} {path}: {type(exc).__name__}")
            else:
                status = resp.status_code
                if status < 400:
                    return resp
                if status == 404 and not_found_ok:
                    return None
                code, message = _error_of(resp)
                if status == 401 and code == "INVALID_SESSION_ID" and not relogged:
                    log.info("session expired; logging in again")
                    relogged = True
                    attempt -= 1  # the resend with a new token is not a retry
                    try:
                        self.renew(token)
                    except SalesforceUnavailable:
                        raise
                    except SalesforceError as exc:
                        raise SalesforceUnavailable(f"re-login refused: {exc}", status=exc.status, code=exc.code) from None
                    continue
                if status not in RETRYABLE_STATUS and code not in RETRYABLE_CODES:
                    raise SalesforceError(f"{method} {path}: HTTP {status} {code}: {message}", status=status, code=code)
                problem = SalesforceUnavailable(f"{method} {path}: HTTP {status} {code}".rstrip(), status=status, code=code)
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            wait = self._backoff(attempt, retry_after)
            if self._give_up(attempt, wait):
                raise problem
            log.info("%s; retry %d in %.2fs", problem, attempt, wait)
            time.sleep(wait)

    # ---------------------------------------------------------------- operations

    def get(self, sobject: str, record_id: str) -> Optional[dict[str, Any]]:
        resp = self.request("GET", f"/sobjects/{sobject}/{quote(record_id, safe='')}", not_found_ok=True)
        return None if resp is None else resp.json()

    def get_by_external_id(self, sobject: str, field: str, value: str) -> Optional[dict[str, Any]]:
        resp = self.request("GET", f"/sobjects/{sobject}/{field}/{quote(value, safe='')}", not_found_ok=True)
        return None if resp is None else resp.json()

    def query(self, soql: str) -> list[dict[str, Any]]:
        body = self.request("GET", "/query", params={"q": soql}).json()
        records = list(body.get("records", []))
        while not body.get("done", True) and body.get("nextRecordsUrl"):
            next_path = str(body["nextRecordsUrl"]).split(f"/v{self.api_version}", 1)[-1]
            body = self.request("GET", next_path).json()
            records.extend(body.get("records", []))
        return records

    def upsert(self, sobject: str, field: str, value: str, fields: Mapping[str, Any]) -> str:
        """Upsert by external id; the record's id (201 created, 200 updated with API 46.0+,
        204 on older versions, when we read the id back)."""
        path = f"/sobjects/{sobject}/{field}/{quote(value, safe='')}"
        resp = self.request("PATCH", path, json_body=dict(fields))
        if resp is not None and resp.status_code in (200, 201) and resp.content:
            return str(resp.json()["id"])
        record = self.get_by_external_id(sobject, field, value)
        if record is None:
            raise SalesforceError(f"{sobject} {field}={value} not readable after its upsert", status=404)
        return str(record["Id"])

    def update(self, sobject: str, record_id: str, fields: Mapping[str, Any]) -> None:
        """PATCH a record by id; 204 is success."""
        self.request("PATCH", f"/sobjects/{sobject}/{quote(record_id, safe='')}", json_body=dict(fields))
