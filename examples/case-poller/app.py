"""St Elsewhere Case summariser: a sync worker between Salesforce and the local LLM.

Every POLL_INTERVAL_MS it looks for Cases changed since the last poll and writes a short
AI summary into AI_Summary__c of those that need one. No HTTP port: a worker, not a service.

Run:  ./run.sh            (finds the project's venv)   or   python app.py
Settings come from the environment (crashcart's SUT contract); CASE_POLLER_VARIANT picks a
build (`correct`, or the broken `resummarise-all`).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import sys
import threading
import time

from case_poller.config import Settings
from case_poller.llm import Summariser
from case_poller.salesforce import SalesforceClient, SalesforceError, SalesforceUnavailable, soql_quote
from case_poller.worker import CasePoller

READY_LINE = "case-poller: polling for cases"
FAILED_POLL_BACKOFF_CAP = 5.0
LOGIN_BACKOFF_CAP = 5.0

log = logging.getLogger("case-poller")


class Shutdown(BaseException):
    """Raised by the SIGTERM handler: ends whatever call is in progress, like Ctrl-C."""


def main() -> int:
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("urllib3", "httpx", "httpx2", "httpcore", "httpcore2", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    settings = Settings.from_env()
    stop = threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001
        if stop.is_set():
            return
        stop.set()
        raise Shutdown(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    sf = SalesforceClient(settings, stop)
    llm = Summariser(settings)
    try:
        log.info("variant %s; polling every %dms; model %s", settings.variant, settings.poll_interval * 1000, settings.llm_model)
        if not log_in(sf, stop):
            return 1
        poller = CasePoller(settings, sf, llm, stop)
        print(READY_LINE, flush=True)
        run(poller, settings, stop)
    except Shutdown as why:
        log.info("%s: stopping", why)
    finally:
        sf.close()
        llm.close()
    log.info("stopped")
    return 0


def log_in(sf: SalesforceClient, stop: threading.Event) -> bool:
    """First login: keep trying while the org is unreachable; give up if it refuses us."""
    failures = 0
    while not stop.is_set():
        try:
            sf.login()
        except SalesforceUnavailable as exc:
            failures += 1
            wait = min(LOGIN_BACKOFF_CAP, 0.5 * 2 ** min(failures - 1, 10))
            log.warning("cannot log in to Salesforce yet (%s); trying again in %.1fs", exc, wait)
            stop.wait(wait)
            continue
        except SalesforceError as exc:
            log.error("Salesforce refused our login: %s", exc)
            return False
        break
    if sf.user_id is None:
        # No identity URL in the token response: find our user the long way.
        rows = list(sf.query(f"SELECT Id FROM User WHERE Username = {soql_quote(sf.settings.sf_username)} LIMIT 1"))
        sf.user_id = rows[0]["Id"] if rows else None
    log.info("logged in to %s as user %s", sf.instance_url, sf.user_id)
    return True


def run(poller: CasePoller, settings: Settings, stop: threading.Event) -> None:
    """Poll every interval (start to start); after failed polls, wait longer, up to 5 s."""
    rng = random.Random(f"case-poller-loop-{settings.seed}")
    failures = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            poller.poll_once()
            failures = 0
        except SalesforceError as exc:
            failures += 1
            log.warning("poll failed (%s)", exc)
        except Exception:  # noqa: BLE001 - a bug or an answer we did not expect: keep polling
            failures += 1
            log.exception("poll crashed")
        if failures:
            wait = min(FAILED_POLL_BACKOFF_CAP, settings.poll_interval * 2 ** min(failures, 10)) * rng.uniform(0.5, 1.0)
        else:
            wait = settings.poll_interval - (time.monotonic() - started)
        if wait > 0:
            stop.wait(wait)


if __name__ == "__main__":
    sys.exit(main())
