"""St Elsewhere post-visit follow-up batch: one follow-up Case per completed appointment.

Nightly, from cron:  ./run.sh --once
It reads the completed appointments (Events) from Salesforce, asks the local LLM for short
follow-up instructions for each, and writes one follow-up Case per appointment through a
Bulk API 2.0 upsert keyed on the appointment's booking key, so a second run changes nothing
but the text. Then it exits.

Exit status: 0 every completed appointment has its follow-up Case; 1 the batch did not
complete (run it again: it is safe to); 2 it cannot run at all (settings, credentials).
Settings come from the environment (crashcart's SUT contract); FOLLOWUP_BATCH_VARIANT picks a
build (`correct`, or the broken `non-idempotent`).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time

from followup_batch.batch import BatchOutcome, FollowUpBatch
from followup_batch.config import ConfigError, Settings
from followup_batch.llm import FollowUpWriter
from followup_batch.salesforce import LoginRefused, SalesforceClient, SalesforceError

EXIT_OK, EXIT_INCOMPLETE, EXIT_CANNOT_RUN = 0, 1, 2

log = logging.getLogger("followup-batch")


class Shutdown(BaseException):
    """Raised by the SIGTERM handler: ends whatever call is in progress, like Ctrl-C."""


def main() -> int:
    parser = argparse.ArgumentParser(prog="followup-batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--once", action="store_true", help="run one batch, then exit (what cron runs)")
    args = parser.parse_args()
    if not args.once:
        parser.error("nothing to do without --once (one batch, then exit); schedule it with cron")

    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    for noisy in ("urllib3", "httpx", "httpx2", "httpcore", "httpcore2", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        log.error("%s", exc)
        return EXIT_CANNOT_RUN
    stop = threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001
        if stop.is_set():
            return
        stop.set()
        raise Shutdown(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    started = time.monotonic()
    out = BatchOutcome()
    sf = SalesforceClient(settings, stop)
    llm = FollowUpWriter(settings)
    try:
        log.info("variant %s; model %s; Salesforce API v%s", settings.variant, settings.llm_model, settings.sf_api_version)
        sf.login()
        log.info("logged in to %s", sf.instance_url)
        FollowUpBatch(settings, sf, llm, stop).run(out)
    except LoginRefused as exc:
        log.error("Salesforce refused our login: %s", exc)
        return EXIT_CANNOT_RUN
    except SalesforceError as exc:
        out.error = str(exc)
    except Shutdown as why:
        out.error = f"{why}: stopped; a Bulk API job already closed finishes on its own, and the next run is safe"
    finally:
        sf.close()
        llm.close()
    took = time.monotonic() - started
    if out.complete:
        print(f"followup-batch: done in {took:.1f}s: {out.summary()}", flush=True)
        return EXIT_OK
    print(f"followup-batch: INCOMPLETE after {took:.1f}s: {out.summary()}", flush=True)
    return EXIT_INCOMPLETE


if __name__ == "__main__":
    sys.exit(main())
