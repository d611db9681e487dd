"""St Elsewhere booking API: book, reschedule and cancel appointments (Events in Salesforce),
with a visit preparation paragraph from the local LLM.

Run:  ./run.sh            (finds the project's venv)   or   python app.py
Settings come from the environment (crashcart's SUT contract); it listens on 127.0.0.1:$PORT.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from booking_flow.appointments import Appointments
from booking_flow.config import Settings
from booking_flow.http_api import BookingServer
from booking_flow.llm import VisitPrep
from booking_flow.salesforce import SalesforceClient, SalesforceError, SalesforceUnavailable

log = logging.getLogger("booking-flow")

LOGIN_BACKOFF_CAP = 4.0


def main() -> int:
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s [%(threadName)s] %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("urllib3", "httpx", "httpx2", "httpcore", "httpcore2", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    settings = Settings.from_env()
    sf = SalesforceClient(settings)
    prep = VisitPrep(settings)
    server = BookingServer(("127.0.0.1", settings.port), Appointments(sf, prep), settings.request_budget)
    log.info("listening on 127.0.0.1:%d; model %s", settings.port, settings.llm_model)

    stopping = threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001
        if stopping.is_set():
            return
        stopping.set()
        log.info("%s: stopping", signal.Signals(signum).name)
        # shutdown() waits for serve_forever to return: not from the thread that runs it.
        threading.Thread(target=server.shutdown, name="shutdown", daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    # Log in before /health says ready. The port is open meanwhile (health answers 503).
    threading.Thread(target=log_in, args=(sf, server, stopping), name="login", daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        sf.close()
        prep.close()
    log.info("stopped")
    return 0


def log_in(sf: SalesforceClient, server: BookingServer, stopping: threading.Event) -> None:
    """First login: keep trying while the org is unreachable; a refusal is logged and we stay
    unready (our operators see it in the log and /health)."""
    failures = 0
    while not stopping.is_set():
        try:
            sf.renew(None)
        except SalesforceUnavailable as exc:
            failures += 1
            wait = min(LOGIN_BACKOFF_CAP, 0.25 * 2 ** min(failures - 1, 10))
            log.warning("cannot log in to Salesforce yet (%s); trying again in %.1fs", exc, wait)
            stopping.wait(wait)
            continue
        except SalesforceError as exc:
            log.error("Salesforce refused our login: %s", exc)
            return
        server.ready = True
        log.info("ready")
        return


if __name__ == "__main__":
    sys.exit(main())
