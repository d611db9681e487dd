"""One batch: completed appointments in, one follow-up Case per appointment out.

1. SOQL: every Event whose Appointment_Status__c is Completed (all pages).
2. The LLM writes short follow-up instructions for each (a few at a time).
3. One Bulk API 2.0 job writes the Cases. Correct build: an upsert on Case_External_Id__c =
   "FU-" + the appointment's Booking_Key__c, so running the batch again (tomorrow, or right
   after a run whose end we did not see) updates the same Case instead of adding one.
4. Rows the job failed (or left unprocessed, or did not account for) go once more into a
   second job. Whatever fails there is logged, and the batch ends unsuccessful.

A run is unsuccessful (BatchOutcome.complete is False) when any appointment did not get its
Case this time: the LLM could not write it, a record failed twice, or a job could not be seen
to its end. The next run does the whole set again, which the upsert makes harmless.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from .bulk import BulkIngest, JobResult, JobSpec
from .config import Settings
from .llm import FollowUpWriter, LlmRefused, LlmUnavailable
from .salesforce import SalesforceClient

log = logging.getLogger("followup-batch")

SOQL = ("SELECT Id, Subject, Booking_Key__c, WhoId, StartDateTime FROM Event "
        "WHERE Appointment_Status__c = 'Completed'")

EXTERNAL_ID_FIELD = "Case_External_Id__c"
EXTERNAL_ID_PREFIX = "FU-"
EXTERNAL_ID_MAX = 64      # Case_External_Id__c is a Text(64)
SUBJECT_MAX = 255
DESCRIPTION_MAX = 32000
CASE_FIELDS = ["Subject", "Description", "Origin", "ContactId"]

Row = dict[str, str]


def case_job(variant: str) -> tuple[JobSpec, list[str]]:
    """The Bulk API job that writes the follow-up Cases, and its CSV columns.
    This is the only place the build variant is looked at."""
    if variant == "non-idempotent":
        # BROKEN BUILD (FOLLOWUP_BATCH_VARIANT=non-idempotent): a plain insert, no external
        # id. Every run creates a new Case for every completed appointment, so a re-run
        # (cron after an uncertain exit, or simply tomorrow night) duplicates them all.
        return JobSpec("Case", "insert"), list(CASE_FIELDS)
    return JobSpec("Case", "upsert", EXTERNAL_ID_FIELD), [EXTERNAL_ID_FIELD, *CASE_FIELDS]


@dataclass
class BatchOutcome:
    appointments: Optional[int] = None   # None: not read
    skipped: int = 0          # appointments we cannot make a Case for (no usable booking key)
    llm_failed: int = 0       # left for the next run: no instructions this time
    created: int = 0
    updated: int = 0
    failed: list[tuple[Row, str]] = field(default_factory=list)   # failed twice (or unaccounted)
    error: Optional[str] = None   # the batch stopped early

    @property
    def complete(self) -> bool:
        return self.error is None and self.llm_failed == 0 and not self.failed

    def summary(self) -> str:
        seen = "completed appointments not read" if self.appointments is None else f"{self.appointments} completed appointments"
        text = (f"{seen}: {self.created + self.updated} follow-up cases written "
                f"({self.created} created, {self.updated} updated), {len(self.failed)} failed, "
                f"{self.llm_failed} without instructions, {self.skipped} skipped")
        if self.error:
            text += f"; stopped: {self.error}"
        return text


def one_line(text: str) -> str:
    """Newlines inside a CSV value as LF only (the job's lineEnding), no stray CR."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


class FollowUpBatch:
    def __init__(self, settings: Settings, sf: SalesforceClient, llm: FollowUpWriter, stop: threading.Event) -> None:
        self.settings = settings
        self.sf = sf
        self.llm = llm
        self.stop = stop
        self.bulk = BulkIngest(sf, settings)
        self.spec, self.columns = case_job(settings.variant)

    # ---------------------------------------------------------------- the batch

    def run(self, out: BatchOutcome) -> None:
        """One batch; what happened goes into `out` (raises SalesforceError if Salesforce
        could not be read or written at all)."""
        appointments = list(self.sf.query(SOQL))
        out.appointments = len(appointments)
        log.info("%d completed appointments", len(appointments))
        usable = [a for a in appointments if self._usable(a, out)]
        rows = self._with_instructions(usable, out)
        if not rows:
            log.info("no follow-up case to write")
            return
        first = self.bulk.run(self.spec, self.columns, [self._csv_row(r) for r in rows])
        left = self._account(first, rows, out)
        if not left:
            return
        log.warning("%d of %d rows not written by job %s; trying those once more in a new job",
                    len(left), len(rows), first.job_id)
        second = self.bulk.run(self.spec, self.columns, [self._csv_row(r) for r, _ in left])
        for row, why in self._account(second, [r for r, _ in left], out):
            log.error("follow-up case %s not written: %s", self._describe(row), why)
            out.failed.append((row, why))

    # ---------------------------------------------------------------- appointments -> rows

    def _usable(self, appt: dict[str, Any], out: BatchOutcome) -> bool:
        key = (appt.get("Booking_Key__c") or "").strip()
        if not key:
            log.error("appointment %s has no Booking_Key__c: no follow-up case can be matched to it; skipped", appt.get("Id"))
            out.skipped += 1
            return False
        if len(EXTERNAL_ID_PREFIX + key) > EXTERNAL_ID_MAX:
            log.error("appointment %s: booking key %r is too long for %s (%d chars); skipped",
                      appt.get("Id"), key, EXTERNAL_ID_FIELD, EXTERNAL_ID_MAX)
            out.skipped += 1
            return False
        return True

    def _with_instructions(self, appts: Sequence[dict[str, Any]], out: BatchOutcome) -> list[Row]:
        """The Case row of every appointment the LLM wrote instructions for. When the LLM is
        down (after the SDK's retries), we stop asking: the rest wait for the next run."""
        llm_down = threading.Event()

        def ask(appt: dict[str, Any]) -> Optional[str]:
            if llm_down.is_set() or self.stop.is_set():
                return None
            try:
                return self.llm.instructions(appt.get("Subject") or "", appt.get("StartDateTime") or "")
            except LlmUnavailable as exc:
                if not llm_down.is_set():
                    log.warning("LLM unavailable (%s); the remaining appointments wait for the next run", exc)
                llm_down.set()
            except LlmRefused as exc:
                log.warning("LLM wrote nothing usable for appointment %s (%s)", appt.get("Id"), exc)
            return None

        with ThreadPoolExecutor(max_workers=self.settings.llm_concurrency, thread_name_prefix="llm") as pool:
            texts = list(pool.map(ask, appts))
        rows: list[Row] = []
        for appt, text in zip(appts, texts):
            if text is None:
                out.llm_failed += 1
                continue
            who = appt.get("WhoId") or ""
            rows.append({
                EXTERNAL_ID_FIELD: EXTERNAL_ID_PREFIX + appt["Booking_Key__c"].strip(),
                "Subject": one_line(f"Follow-up: {appt.get('Subject') or 'appointment'}").replace("\n", " ")[:SUBJECT_MAX],
                "Description": one_line(text)[:DESCRIPTION_MAX],
                "Origin": "Web",
                # WhoId may be a Lead (00Q); a Case's ContactId takes a Contact only.
                "ContactId": who if who.startswith("003") else "",
            })
        return rows

    def _csv_row(self, row: Row) -> list[str]:
        return [row[c] for c in self.columns]

    # ---------------------------------------------------------------- results

    def _key(self, row: Row) -> Any:
        """How a result row is matched to the row we sent: its external id when the job has
        one, else all its values."""
        if self.spec.external_id_field:
            return row.get(self.spec.external_id_field, "")
        return tuple(row.get(c, "") for c in self.columns)

    def _describe(self, row: Row) -> str:
        return row.get(EXTERNAL_ID_FIELD) or repr(row.get("Subject", ""))

    def _account(self, result: JobResult, sent: Sequence[Row], out: BatchOutcome) -> list[tuple[Row, str]]:
        """Count what the job wrote; return the rows it did not, each with why."""
        done: dict[Any, int] = {}
        for r in result.successful:
            k = self._key(r)
            done[k] = done.get(k, 0) + 1
            if (r.get("sf__Created") or "").lower() == "true":
                out.created += 1
            else:
                out.updated += 1
        errors = {self._key(r): r.get("sf__Error", "") for r in result.failed}
        unprocessed = {self._key(r) for r in result.unprocessed}
        left: list[tuple[Row, str]] = []
        for row in sent:
            k = self._key(row)
            if done.get(k, 0) > 0:
                done[k] -= 1
                continue
            if k in errors:
                why = errors[k] or "failed (no error given)"
            elif k in unprocessed:
                why = f"not processed (job {result.state})"
            else:
                why = f"not in the results of job {result.job_id} ({result.state}{': ' + result.error_message if result.error_message else ''})"
            left.append((row, why))
        for row, why in left:
            log.info("job %s: %s: %s", result.job_id, self._describe(row), why)
        return left
