"""A small Salesforce REST client on requests.Session, for one worker thread.

- OAuth 2.0 username-password flow. We keep the access token, the instance_url the token
  response names (not the one we were configured with) and our own user id (the last
  segment of the identity URL in `id`).
- On 401 INVALID_SESSION_ID we log in again, once per call, and send the call again.
- Connection errors, timeouts, 5xx, 429 and UNABLE_TO_LOCK_ROW are retried, at most `sf_max_attempts` attempts
  in all, with capped exponential backoff and full jitter; Retry-After is a floor.
- Except: a write whose answer we did not get (read timeout, connection dropped after
  sending) is NOT sent again here. It may have landed. The caller finds out by reading the
  record again (see worker.py).

urllib3's own retries are off (max_retries=0): every retry is one we decided on.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from datetime import datetime, timezone
from typing import Any, Iterator, Mapping, Optional
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from .config import Settings

log = logging.getLogger("case-poller.salesforce")

RETRYABLE_STATUS = {429, 500, 502, 503, 504}
# Refusals that say "not now" rather than "no": a record lock held by another transaction.
RETRYABLE_CODES = {"UNABLE_TO_LOCK_ROW"}
IDEMPOTENT_METHODS = {"GET", "HEAD"}

# Waits between retries: retry n waits uniform(FLOOR, min(CAP, BASE * 2**(n-1))), and at
# least what Retry-After asks for (up to RETRY_AFTER_MAX; more than that, we give up the
# call and the next poll tries again).
BACKOFF_BASE = 0.2
BACKOFF_CAP = 2.0
BACKOFF_FLOOR = 0.01
RETRY_AFTER_MAX = 30.0


class SalesforceError(Exception):
    """Salesforce refused the call, or we gave up on it."""

    def __init__(self, message: str, *, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class SalesforceUnavailable(SalesforceError):
    """Could not get an answer (network, timeouts, 5xx, 429) within our attempts."""


class OutcomeUnknown(SalesforceError):
    """A write was sent but its answer never came: it may or may not have been applied."""


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Retry-After in seconds: delta-seconds or an HTTP date."""
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
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - time.time())


def _nothing_sent(exc: Exception) -> bool:
    """True when the request never left: the connection was not even made."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


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


# ------------------------------------------------------------------------- datetimes
#
# Salesforce returns datetimes like 2026-12-02T15:00:00.000+0000 (millis, offset without a
# colon). A SOQL datetime literal is written without quotes, e.g. 2026-12-02T15:00:00Z.

def parse_sf_datetime(value: str) -> datetime:
    """A datetime as the REST API returns it, as an aware UTC datetime."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+0000"
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(text, fmt).astimezone(timezone.utc)
        except ValueError:
            continue
    # Python 3.11 also reads +00:00 offsets and other ISO 8601 shapes.
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def soql_datetime(value: datetime) -> str:
    """A SOQL datetime literal in UTC, to the second (rounded down): 2026-12-02T15:00:00Z."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def soql_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def same_id(a: Optional[str], b: Optional[str]) -> bool:
    """Salesforce ids match on their case-sensitive 15-character form (18 = 15 + checksum)."""
    if not a or not b:
        return False
    return a[:15] == b[:15]


# ------------------------------------------------------------------------- client

class SalesforceClient:
    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self.settings = settings
        self.stop = stop
        self.api_version = settings.sf_api_version
        self.http = requests.Session()
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=4, max_retries=0)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)
        self.http.headers.update({"Accept": "application/json", "User-Agent": "stelsewhere-case-poller/1.0 python-requests"})
        self.timeout = (settings.sf_connect_timeout, settings.sf_read_timeout)
        self.rng = random.Random(f"case-poller-salesforce-{settings.seed}")
        self.access_token: Optional[str] = None
        self.instance_url: str = settings.sf_instance_url
        self.user_id: Optional[str] = None
        self.server_time: Optional[datetime] = None  # issued_at of the last token

    # ---------------------------------------------------------------- plumbing

    def _backoff(self, retry_number: int, retry_after: Optional[float]) -> float:
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** (retry_number - 1)))
        wait = self.rng.uniform(BACKOFF_FLOOR, ceiling)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait

    def _sleep(self, seconds: float) -> None:
        # Event.wait, so that a SIGTERM handler that sets `stop` ends the wait.
        self.stop.wait(seconds)

    def close(self) -> None:
        self.http.close()

    # ---------------------------------------------------------------- login

    def login(self) -> None:
        """Username-password flow. Retries what can be retried; raises SalesforceError for a
        refusal (wrong credentials, unknown client) and SalesforceUnavailable when the token
        endpoint does not answer usefully within our attempts."""
        url = f"{self.settings.sf_login_url}/services/oauth2/token"
        form = {
            "grant_type": "password",
            "client_id": self.settings.sf_client_id,
            "client_secret": self.settings.sf_client_secret,
            "username": self.settings.sf_username,
            "password": self.settings.sf_password,
        }
        for attempt in range(1, self.settings.sf_max_attempts + 1):
            retry_after: Optional[float] = None
            try:
                resp = self.http.post(url, data=form, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                problem: SalesforceError = SalesforceUnavailable(f"login: {type(exc).__name__}")
            else:
                if resp.status_code == 200:
                    self._adopt_token(resp.json())
                    return
                code, message = _error_of(resp)
                if resp.status_code not in RETRYABLE_STATUS:
                    raise SalesforceError(f"login refused: HTTP {resp.status_code} {code} {message}".rstrip(),
                                          status=resp.status_code, code=code)
                problem = SalesforceUnavailable(f"login: HTTP {resp.status_code} {code}".rstrip(), status=resp.status_code, code=code)
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if attempt >= self.settings.sf_max_attempts or (retry_after or 0) > RETRY_AFTER_MAX or self.stop.is_set():
                raise problem
            wait = self._backoff(attempt, retry_after)
            log.info("login failed (%s); trying again in %.2fs", problem, wait)
            self._sleep(wait)
        raise AssertionError("unreachable")

    def _adopt_token(self, body: Mapping[str, Any]) -> None:
        self.access_token = str(body["access_token"])
        # Use the instance the token belongs to; the configured one is only a fallback.
        self.instance_url = str(body.get("instance_url") or self.settings.sf_instance_url).rstrip("/")
        # id: https://login.salesforce.com/id/<org id>/<user id>
        identity = str(body.get("id") or "")
        segments = [s for s in urlparse(identity).path.split("/") if s]
        if len(segments) >= 3 and segments[-3] == "id":
            self.user_id = segments[-1]
        else:
            log.warning("token response has no usable identity URL (%r); cannot tell our own writes apart", identity)
        issued_at = body.get("issued_at")
        try:
            self.server_time = datetime.fromtimestamp(int(issued_at) / 1000.0, tz=timezone.utc)
        except (TypeError, ValueError):
            self.server_time = None

    # ---------------------------------------------------------------- calls

    def request(self, method: str, path_or_url: str, *, params: Optional[Mapping[str, str]] = None,
                json_body: Any = None, passthrough: tuple[int, ...] = ()) -> requests.Response:
        """One REST call. `path_or_url` is below /services/data/vXX.X (e.g. "/query"), or a
        path from the server that starts with /services/ (nextRecordsUrl). Answers with a
        status in `passthrough` are returned, other 4xx raised."""
        if self.access_token is None:
            self.login()
        idempotent = method.upper() in IDEMPOTENT_METHODS
        relogged = False
        attempt = 0
        while True:
            attempt += 1
            if path_or_url.startswith("/services/"):
                url = f"{self.instance_url}{path_or_url}"
            else:
                url = f"{self.instance_url}/services/data/v{self.api_version}{path_or_url}"
            headers = {"Authorization": f"Bearer {self.access_token}"}
            retry_after: Optional[float] = None
            try:
                resp = self.http.request(method, url, params=params, json=json_body, headers=headers, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                if not idempotent and not _nothing_sent(exc):
                    raise OutcomeUnknown(f"{method} {path_or_url}: {type(exc).__name__}; the write may have landed") from None
                problem: SalesforceError = SalesforceUnavailable(f"{method} {path_or_url}: {type(exc).__name__}")
            else:
                status = resp.status_code
                if status < 400 or status in passthrough:
                    return resp
                code, message = _error_of(resp)
                if status == 401 and code == "INVALID_SESSION_ID" and not relogged:
                    log.info("session expired or revoked; logging in again")
                    relogged = True
                    attempt -= 1  # the resend with a fresh token is not a retry
                    self.login()
                    continue
                if status not in RETRYABLE_STATUS and code not in RETRYABLE_CODES:
                    raise SalesforceError(f"{method} {path_or_url}: HTTP {status} {code}: {message}", status=status, code=code)
                problem = SalesforceUnavailable(f"{method} {path_or_url}: HTTP {status} {code}".rstrip(), status=status, code=code)
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if attempt >= self.settings.sf_max_attempts or (retry_after or 0) > RETRY_AFTER_MAX or self.stop.is_set():
                raise problem
            wait = self._backoff(attempt, retry_after)
            log.info("%s; retry %d in %.2fs", problem, attempt, wait)
            self._sleep(wait)

    # ---------------------------------------------------------------- operations

    def query(self, soql: str) -> Iterator[dict[str, Any]]:
        """Every record of a SOQL query, following nextRecordsUrl page by page."""
        body = self.request("GET", "/query", params={"q": soql}).json()
        while True:
            yield from body.get("records", [])
            next_url = body.get("nextRecordsUrl")
            if body.get("done", True) or not next_url:
                return
            body = self.request("GET", next_url).json()

    def update(self, sobject: str, record_id: str, fields: Mapping[str, Any]) -> None:
        """PATCH a record by id; 204 No Content is success."""
        self.request("PATCH", f"/sobjects/{sobject}/{record_id}", json_body=dict(fields))
