"""A small Salesforce REST client on requests.Session, for the batch's one thread.

- OAuth 2.0 username-password flow. We keep the access token and the instance_url the token
  response names (not the one we were configured with).
- On 401 INVALID_SESSION_ID we log in again, once per call, and send the call again.
- Connection errors, timeouts, 5xx, 429 and UNABLE_TO_LOCK_ROW are retried, at most
  `sf_max_attempts` attempts in all, with capped exponential backoff and full jitter;
  Retry-After is a floor.
- Except: a call that is not safe to send twice (the caller says which) and whose answer we
  did not get (read timeout, connection dropped after sending) is NOT sent again here. It
  may have landed: OutcomeUnknown, and the caller decides (see bulk.py).

urllib3's own retries are off (max_retries=0): every retry is one we decided on.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from datetime import timezone
from typing import Any, Iterator, Mapping, Optional

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from .config import Settings

log = logging.getLogger("followup-batch.salesforce")

RETRYABLE_STATUS = {429, 500, 502, 503, 504}
# Refusals that say "not now" rather than "no": a record lock held by another transaction.
RETRYABLE_CODES = {"UNABLE_TO_LOCK_ROW"}
IDEMPOTENT_METHODS = {"GET", "HEAD"}

# Waits between retries: retry n waits uniform(FLOOR, min(CAP, BASE * 2**(n-1))), and at
# least what Retry-After asks for (up to RETRY_AFTER_MAX; more than that, we give up the
# call: tonight's batch fails and tomorrow's picks the work up).
BACKOFF_BASE = 0.25
BACKOFF_CAP = 4.0
BACKOFF_FLOOR = 0.05
RETRY_AFTER_MAX = 60.0


class SalesforceError(Exception):
    """Salesforce refused the call, or we gave up on it."""

    def __init__(self, message: str, *, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class SalesforceUnavailable(SalesforceError):
    """Could not get an answer (network, timeouts, 5xx, 429) within our attempts."""


class OutcomeUnknown(SalesforceError):
    """A call that must not be sent twice was sent, but its answer never came."""


class LoginRefused(SalesforceError):
    """The token endpoint said no (wrong credentials, unknown client): retrying won't help."""


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


def error_of(resp: requests.Response) -> tuple[str, str]:
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


class SalesforceClient:
    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self.settings = settings
        self.stop = stop
        self.api_version = settings.sf_api_version
        self.http = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=2, max_retries=0)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)
        self.http.headers.update({"User-Agent": "stelsewhere-followup-batch/1.0 python-requests"})
        self.timeout = (settings.sf_connect_timeout, settings.sf_read_timeout)
        self.rng = random.Random(f"followup-batch-salesforce-{settings.seed}")
        self.access_token: Optional[str] = None
        self.instance_url: str = settings.sf_instance_url

    # ---------------------------------------------------------------- plumbing

    def backoff(self, retry_number: int, retry_after: Optional[float] = None) -> float:
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** (retry_number - 1)))
        wait = self.rng.uniform(BACKOFF_FLOOR, max(BACKOFF_FLOOR, ceiling))
        if retry_after is not None:
            wait = max(wait, retry_after)
        return wait

    def sleep(self, seconds: float) -> None:
        # Event.wait, so that a SIGTERM handler that sets `stop` ends the wait.
        self.stop.wait(seconds)

    def close(self) -> None:
        self.http.close()

    # ---------------------------------------------------------------- login

    def login(self) -> None:
        """Username-password flow. Retries what can be retried; raises LoginRefused for a
        refusal and SalesforceUnavailable when the token endpoint does not answer usefully
        within our attempts."""
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
                resp = self.http.post(url, data=form, headers={"Accept": "application/json"}, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                problem: SalesforceError = SalesforceUnavailable(f"login: {type(exc).__name__}")
            else:
                if resp.status_code == 200:
                    body = resp.json()
                    self.access_token = str(body["access_token"])
                    # Use the instance the token belongs to; the configured one is a fallback.
                    self.instance_url = str(body.get("instance_url") or self.settings.sf_instance_url).rstrip("/")
                    return
                code, message = error_of(resp)
                if resp.status_code not in RETRYABLE_STATUS:
                    raise LoginRefused(f"login refused: HTTP {resp.status_code} {code} {message}".rstrip(),
                                       status=resp.status_code, code=code)
                problem = SalesforceUnavailable(f"login: HTTP {resp.status_code} {code}".rstrip(), status=resp.status_code, code=code)
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if attempt >= self.settings.sf_max_attempts or (retry_after or 0) > RETRY_AFTER_MAX or self.stop.is_set():
                raise problem
            wait = self.backoff(attempt, retry_after)
            log.info("login failed (%s); trying again in %.2fs", problem, wait)
            self.sleep(wait)
        raise AssertionError("unreachable")

    # ---------------------------------------------------------------- calls

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Optional[Mapping[str, str]] = None,
        json_body: Any = None,
        data: Optional[bytes] = None,
        content_type: Optional[str] = None,
        accept: str = "application/json",
        passthrough: tuple[int, ...] = (),
        resend_safe: Optional[bool] = None,
        max_attempts: Optional[int] = None,
    ) -> requests.Response:
        """One REST call. `path_or_url` is below /services/data/vXX.X (e.g. "/query"), or a
        path from the server that starts with /services/ (nextRecordsUrl). Answers with a
        status in `passthrough` are returned, other 4xx raised.

        `resend_safe`: may the call be sent again when its answer was lost (default: for
        GET and HEAD only). `max_attempts`: fewer attempts than the default, for a
        call whose failure the caller handles itself."""
        if self.access_token is None:
            self.login()
        if resend_safe is None:
            resend_safe = method.upper() in IDEMPOTENT_METHODS
        attempts = max_attempts or self.settings.sf_max_attempts
        relogged = False
        attempt = 0
        while True:
            attempt += 1
            if path_or_url.startswith("/services/"):
                url = f"{self.instance_url}{path_or_url}"
            else:
                url = f"{self.instance_url}/services/data/v{self.api_version}{path_or_url}"
            headers = {"Authorization": f"Bearer {self.access_token}", "Accept": accept}
            if content_type:
                headers["Content-Type"] = content_type
            retry_after: Optional[float] = None
            try:
                resp = self.http.request(method, url, params=params, json=json_body, data=data,
                                         headers=headers, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                if not resend_safe and not _nothing_sent(exc):
                    raise OutcomeUnknown(f"{method} {path_or_url}: {type(exc).__name__}; it may have landed") from None
                problem: SalesforceError = SalesforceUnavailable(f"{method} {path_or_url}: {type(exc).__name__}")
            else:
                status = resp.status_code
                if status < 400 or status in passthrough:
                    return resp
                code, message = error_of(resp)
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
            if attempt >= attempts or (retry_after or 0) > RETRY_AFTER_MAX or self.stop.is_set():
                raise problem
            wait = self.backoff(attempt, retry_after)
            log.info("%s; retry %d in %.2fs", problem, attempt, wait)
            self.sleep(wait)

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
