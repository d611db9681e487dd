"""The poll: find Cases that need an AI summary, summarise them, write the summary back.

Which cases (correct build):
- the SOQL asks for Cases whose SystemModstamp is after our watermark (ordered by it), plus
  the ids still pending from earlier polls;
- a case is summarised when AI_Summary__c is empty, or when somebody other than us changed
  it last (a clinician edited it). Our own PATCH bumps SystemModstamp, so the next poll sees
  every case we wrote: those (last modified by us, summary present) are skipped. The rule
  looks at the record as it is now, so seeing a case twice is harmless;
- the watermark moves to the newest SystemModstamp seen. The query asks for what is newer
  than the second before it (SOQL literals and Salesforce's datetimes are to the second), so
  consecutive polls overlap by a second or so: harmless, see above.

Failures:
- the LLM is down or overloaded (after openai-python's retries): the rest of this poll's
  cases are deferred, and we leave the LLM alone for a moment;
- the LLM refuses one case (4xx, empty answer): that case is deferred;
- the PATCH's answer was lost: deferred. The next poll reads the case again, and if our
  write did land it is skipped like any other case we wrote;
- deferred cases wait in `pending` (id -> failures) and are queried again by id on the next
  poll; after GIVE_UP_AFTER failures a case is dropped (and picked up again when somebody
  next edits it). When `pending` is full, the watermark is held back instead.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional

from .config import Settings
from .llm import LlmRefused, LlmUnavailable, Summariser
from .salesforce import (
    OutcomeUnknown,
    SalesforceClient,
    SalesforceError,
    SalesforceUnavailable,
    parse_sf_datetime,
    same_id,
    soql_datetime,
    soql_quote,
)

log = logging.getLogger("case-poller")

FIELDS = "Id, Subject, Description, AI_Summary__c, LastModifiedById, SystemModstamp"
SUMMARY_FIELD = "AI_Summary__c"
MAX_SUMMARY_CHARS = 32000  # the field's length
MAX_PENDING = 200  # ids per "Id IN (...)": keeps the query URL well under limits
GIVE_UP_AFTER = 20
LLM_PAUSE_BASE = 0.5
LLM_PAUSE_CAP = 5.0

Case = dict[str, Any]


class CasePoller:
    def __init__(self, settings: Settings, sf: SalesforceClient, llm: Summariser, stop: threading.Event) -> None:
        self.settings = settings
        self.sf = sf
        self.llm = llm
        self.stop = stop
        # Start a minute back (by the org's clock when we have it), so a case opened just
        # before we started is not missed.
        origin = sf.server_time or datetime.now(timezone.utc)
        self.watermark: datetime = origin - timedelta(minutes=1)
        self.pending: dict[str, int] = {}  # case id -> failures of its own
        self.llm_failures = 0
        self.llm_paused_until = 0.0

    # ---------------------------------------------------------------- which cases

    def _cases_to_look_at(self) -> tuple[list[Case], Callable[[Case], bool]]:
        """The cases this poll reads, and the rule that picks the ones to summarise.
        This is the only place the build variant is looked at."""
        if self.settings.variant == "resummarise-all":
            # BROKEN BUILD (CASE_POLLER_VARIANT=resummarise-all): no watermark and no skip
            # rule, so every Case in the org is summarised and written back on every poll.
            return list(self.sf.query(f"SELECT {FIELDS} FROM Case")), lambda case: True
        # One second back: Salesforce keeps datetimes to the second, so a case written later
        # in the second of the newest one we saw has the same SystemModstamp. A strict ">"
        # on that second would miss it; re-reading that second is harmless (the skip rule).
        where = f"SystemModstamp > {soql_datetime(self.watermark - timedelta(seconds=1))}"
        if self.pending:
            ids = ", ".join(soql_quote(i) for i in sorted(self.pending))
            where = f"({where}) OR Id IN ({ids})"
        soql = f"SELECT {FIELDS} FROM Case WHERE {where} ORDER BY SystemModstamp"
        log.debug("query: %s", soql)
        return list(self.sf.query(soql)), self._needs_summary

    def _needs_summary(self, case: Case) -> bool:
        if not (case.get(SUMMARY_FIELD) or "").strip():
            return True
        # Summarised already: again only if somebody else changed the case since.
        return not same_id(case.get("LastModifiedById"), self.sf.user_id)

    # ---------------------------------------------------------------- one poll

    def poll_once(self) -> None:
        """One poll. Raises SalesforceError when the org could not be read (or written)."""
        cases, wanted = self._cases_to_look_at()
        newest = self.watermark
        todo: list[Case] = []
        for case in cases:
            stamp = case.get("SystemModstamp")
            if stamp:
                newest = max(newest, parse_sf_datetime(stamp))
            if wanted(case):
                todo.append(case)
            else:
                self._forget(case["Id"])
        seen = {case["Id"] for case in cases}
        for case_id in [i for i in self.pending if i not in seen]:
            log.info("case %s: no longer there (deleted?); dropping it", case_id)
            self._forget(case_id)
        self.watermark = newest

        held_back: Optional[datetime] = None
        for index, case in enumerate(todo):
            if self.stop.is_set():
                return
            if time.monotonic() < self.llm_paused_until:
                held_back = self._defer_all(todo[index:], "the LLM is paused after failures", held_back, first_tried=False)
                break
            try:
                self._summarise_and_write(case)
            except LlmUnavailable as exc:
                self.llm_failures += 1
                pause = min(LLM_PAUSE_CAP, LLM_PAUSE_BASE * 2 ** min(self.llm_failures - 1, 10))
                self.llm_paused_until = time.monotonic() + pause
                log.warning("LLM unavailable (%s); deferring %d case(s), next LLM call in %.1fs at the earliest",
                            exc, len(todo) - index, pause)
                held_back = self._defer_all(todo[index:], str(exc), held_back, first_tried=True)
                break
            except LlmRefused as exc:
                log.warning("case %s: no usable summary (%s); will try again", case["Id"], exc)
                held_back = self._defer(case, str(exc), held_back)
            except OutcomeUnknown as exc:
                log.warning("case %s: %s; will check on the next poll", case["Id"], exc)
                held_back = self._defer(case, str(exc), held_back)
            except SalesforceUnavailable as exc:
                held_back = self._defer_all(todo[index:], str(exc), held_back, first_tried=True)
                self._hold_back(held_back)
                raise
            except SalesforceError as exc:
                if exc.status == 404 or exc.code in ("ENTITY_IS_DELETED", "NOT_FOUND"):
                    log.info("case %s: gone before we could write (%s); dropping it", case["Id"], exc.code or exc.status)
                    self._forget(case["Id"])
                else:
                    log.error("case %s: write refused (%s); will try again", case["Id"], exc)
                    held_back = self._defer(case, str(exc), held_back)
        self._hold_back(held_back)

    def _summarise_and_write(self, case: Case) -> None:
        case_id = case["Id"]
        summary = self.llm.summarise(case.get("Subject") or "", case.get("Description") or "")
        self.llm_failures = 0
        self.sf.update("Case", case_id, {SUMMARY_FIELD: summary[:MAX_SUMMARY_CHARS]})
        self._forget(case_id)
        log.info("case %s: wrote %s (%d chars)", case_id, SUMMARY_FIELD, min(len(summary), MAX_SUMMARY_CHARS))

    # ---------------------------------------------------------------- pending

    def _forget(self, case_id: str) -> None:
        self.pending.pop(case_id, None)

    def _defer(self, case: Case, reason: str, held_back: Optional[datetime], *, tried: bool = True) -> Optional[datetime]:
        """Keep the case for the next poll (`tried`: it failed itself, rather than waiting
        behind a failure). Returns the watermark limit to apply when the pending set is
        full (the case is then found again by the watermark query)."""
        case_id = case["Id"]
        failures = self.pending.get(case_id, 0) + (1 if tried else 0)
        if failures > GIVE_UP_AFTER:
            log.error("case %s: giving up after %d tries (last: %s); it is picked up again when next edited",
                      case_id, GIVE_UP_AFTER, reason)
            self._forget(case_id)
            return held_back
        if case_id in self.pending or len(self.pending) < MAX_PENDING:
            self.pending[case_id] = failures
            return held_back
        stamp = parse_sf_datetime(case["SystemModstamp"])
        return stamp if held_back is None else min(held_back, stamp)

    def _defer_all(self, cases: list[Case], reason: str, held_back: Optional[datetime], *, first_tried: bool) -> Optional[datetime]:
        for n, case in enumerate(cases):
            held_back = self._defer(case, reason, held_back, tried=first_tried and n == 0)
        return held_back

    def _hold_back(self, held_back: Optional[datetime]) -> None:
        if held_back is not None:
            self.watermark = min(self.watermark, held_back)
            log.warning("pending set full (%d); watermark held back to %s", len(self.pending), soql_datetime(self.watermark))
