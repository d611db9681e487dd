"""St Elsewhere appointment-booking integration (Salesforce + local LLM).

Run:  ./run.sh            (finds the project's venv)   or   python app.py
Settings come from the environment (crashcart's SUT contract); ZOO_VARIANT picks a build.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from booking import variants
from booking.config import Settings
from booking.http_api import BookingServer
from booking.llm import LlmClient
from booking.resilience import deadline
from booking.salesforce import SalesforceClient, SalesforceError
from booking.service import BookingService


def main() -> int:
    logging.basicConfig(
        stream=sys.stdout,
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s [%(threadName)s] %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("urllib3", "httpx", "httpx2", "openai", "httpcore", "httpcore2"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    log = logging.getLogger("booking")

    variant = variants.from_env()
    settings = Settings.from_env()
    sf = SalesforceClient(settings, variant)
    llm = LlmClient(settings, variant)
    service = BookingService(sf, llm, variant)
    server = BookingServer(("127.0.0.1", settings.port), service, settings.request_budget)
    log.info("variant %s; listening on 127.0.0.1:%d", variant.name, settings.port)

    # Log in before declaring ready (a failed first login is retried by the first request).
    with deadline(5.0):
        try:
            sf.sessions.current()
        except SalesforceError as exc:
            log.warning("initial Salesforce login failed (%s); will retry on first use", exc)
    server.ready = True

    stopping = threading.Event()

    def on_sigterm(signum, frame):  # noqa: ARG001
        if stopping.is_set():
            return
        stopping.set()
        log.info("SIGTERM: finishing compensations, then stopping")
        threading.Thread(target=_shutdown, name="shutdown", daemon=True).start()

    def _shutdown():
        service.compensator.stop(wait=3.0)
        server.shutdown()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
