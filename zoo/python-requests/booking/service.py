"""The three integration flows, and the compensation worker."""

from __future__ import annotations

import heapq
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Optional
from urllib.parse import quote

from .llm import LlmClient, LlmUnavailable
from .resilience import deadline, remaining_budget
from .salesforce import SalesforceClient, SalesforceError, SalesforceUnavailable, soql_quote
from .variants import Variant

log = logging.getLogger("booking.service")


class ApiError(Exception):
    """An answer for our own caller: HTTP status and a JSON body."""

    def __init__(self, status: int, error: str, detail: str = "", retry_after: Optional[float] = None) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.body = {"error": error, "detail": detail}
        self.retry_after = retry_after


def _need(body: dict[str, Any], *names: str) -> None:
    missing = [n for n in names if not isinstance(body.get(n), str) or not body[n].strip()]
    if missing:
        raise ApiError(400, "invalid_request", f"missing or empty: {', '.join(missing)}")


def _soql_datetime(value: str) -> str:
    """2027-03-05T08:30:00.000+0000 -> 2027-03-05T08:30:00Z (a SOQL datetime literal)."""
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            dt = datetime.strptime(value.replace("Z", "+0000"), fmt)
            return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            continue
    raise ApiError(400, "invalid_request", f"not a datetime: {value!r}")


def _unavailable(exc: SalesforceError) -> ApiError:
    if isinstance(exc, SalesforceUnavailable):
        return ApiError(503, "salesforce_unavailable", str(exc), retry_after=1.0)
    return ApiError(502, "salesforce_error", str(exc))


# --------------------------------------------------------------------------- compensation

@dataclass(order=True)
class _Job:
    due: float
    seq: int
    booking_key: str = field(compare=False)
    event_id: Optional[str] = field(compare=False, default=None)
    tries: int = field(compare=False, default=0)
    first_queued: float = field(compare=False, default_factory=time.monotonic)
    verify: bool = field(compare=False, default=False)


class Compensator:
    """Deletes the Events of failed bookings, retrying in the background until it is done.

    After a delete (or a "not there"), one more look 2 s later catches a write that was still
    on its way when we deleted (a slow request we had given up on)."""

    GIVE_UP_AFTER = 120.0

    def __init__(self, sf: SalesforceClient) -> None:
        self.sf = sf
        self._heap: list[_Job] = []
        self._cond = threading.Condition()
        self._seq = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="compensator", daemon=True)
        self._thread.start()

    def submit(self, booking_key: str, event_id: Optional[str] = None, delay: float = 0.0, verify: bool = False,
               tries: int = 0, first_queued: Optional[float] = None) -> None:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._heap, _Job(time.monotonic() + delay, self._seq, booking_key, event_id, tries,
                                            first_queued or time.monotonic(), verify))
            self._cond.notify()

    def compensate_now(self, booking_key: str, event_id: Optional[str] = None) -> bool:
        """Try once in the caller's thread (within its budget); queue it when that fails."""
        try:
            self._delete(booking_key, event_id)
            self.submit(booking_key, event_id, delay=2.0, verify=True)
            return True
        except SalesforceError as exc:
            log.warning("compensation of %s deferred to the background: %s", booking_key, exc)
            self.submit(booking_key, event_id, delay=self.round_delay(0))
            return False

    @staticmethod
    def round_delay(tries: int) -> float:
        return min(4.0, 0.5 * (2 ** tries))

    def pending(self) -> int:
        with self._cond:
            return sum(1 for j in self._heap if not j.verify)

    def stop(self, wait: float) -> None:
        end = time.monotonic() + wait
        while self.pending() and time.monotonic() < end:
            time.sleep(0.1)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def _delete(self, booking_key: str, event_id: Optional[str]) -> None:
        # One attempt per round: the rounds are the retries (no retries inside retries).
        if event_id is not None:
            deleted = self.sf.delete(f"/sobjects/Event/{event_id}", attempts=1)
        else:
            deleted = self.sf.delete(f"/sobjects/Event/Booking_Key__c/{quote(booking_key, safe='')}", attempts=1)
        log.info("compensation: Event %s %s", event_id or booking_key, "deleted" if deleted else "was not there")

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._heap or self._heap[0].due > time.monotonic()):
                    timeout = None if not self._heap else max(0.0, self._heap[0].due - time.monotonic())
                    self._cond.wait(timeout=timeout)
                if self._stopping:
                    return
                job = heapq.heappop(self._heap)
            with deadline(3.0):
                try:
                    if job.verify:
                        if job.event_id is None:
                            found = self.sf.get(f"/sobjects/Event/Booking_Key__c/{quote(job.booking_key, safe='')}", attempts=1)
                        else:
                            found = self.sf.get(f"/sobjects/Event/{job.event_id}", attempts=1)
                        if found is not None and not found[0].get("IsDeleted"):
                            log.warning("compensation check: Event %s came back; deleting again", job.booking_key)
                            self.submit(job.booking_key, job.event_id)
                        continue
                    self._delete(job.booking_key, job.event_id)
                    self.submit(job.booking_key, job.event_id, delay=2.0, verify=True)
                except SalesforceError as exc:
                    age = time.monotonic() - job.first_queued
                    if age > self.GIVE_UP_AFTER:
                        log.error("compensation of %s abandoned after %.0fs: %s", job.booking_key, age, exc)
                        continue
                    wait = self.round_delay(min(job.tries + 1, 4))
                    if job.verify:
                        self.submit(job.booking_key, job.event_id, delay=wait, verify=True, tries=job.tries + 1,
                                    first_queued=job.first_queued)
                    else:
                        self.submit(job.booking_key, job.event_id, delay=wait, tries=job.tries + 1,
                                    first_queued=job.first_queued)
                except Exception:  # noqa: BLE001 - the worker must survive anything
                    log.exception("compensation worker: unexpected error for %s", job.booking_key)
                    self.submit(job.booking_key, job.event_id, delay=1.0, tries=job.tries + 1, first_queued=job.first_queued)


# --------------------------------------------------------------------------- flows

CONTACT_OPTIONAL = ("FirstName", "Birthdate", "Email", "Preferred_Language__c", "Data_Provenance__c", "Phone")
EVENT_OPTIONAL = ("Subject", "Visit_Prep__c", "Description")


class BookingService:
    def __init__(self, sf: SalesforceClient, llm: LlmClient, variant: Variant) -> None:
        self.sf = sf
        self.llm = llm
        self.variant = variant
        self.compensator = Compensator(sf)
        self._users: dict[str, tuple[str, float]] = {}
        self._users_lock = threading.Lock()

    # ------------------------------------------------------------ helpers

    def _practitioner_id(self, username: str) -> str:
        now = time.monotonic()
        with self._users_lock:
            hit = self._users.get(username)
        if hit and now - hit[1] < 300:
            return hit[0]
        user_id = self.sf.user_id(username)
        if user_id is None:
            raise ApiError(422, "unknown_practitioner", f"no active Salesforce user {username!r}")
        with self._users_lock:
            self._users[username] = (user_id, now)
        return user_id

    def _upsert_patient(self, patient: dict[str, Any], provenance: Optional[str]) -> str:
        fields = {
            "FirstName": patient.get("first_name"),
            "LastName": patient.get("last_name"),
            "Birthdate": patient.get("birthdate"),
            "Email": patient.get("email"),
            "Preferred_Language__c": patient.get("language"),
            "Data_Provenance__c": provenance,
        }
        contact_id, created = self.sf.upsert("Contact", "Patient_External_Id__c", patient["external_id"], fields,
                                             optional=CONTACT_OPTIONAL)
        return contact_id

    # ------------------------------------------------------------ POST /appointments

    def book(self, body: dict[str, Any]) -> dict[str, Any]:
        _need(body, "booking_key", "practitioner", "start", "end")
        patient = body.get("patient")
        if not isinstance(patient, dict):
            raise ApiError(400, "invalid_request", "patient must be an object")
        _need(patient, "external_id", "last_name")
        key = body["booking_key"]
        start, end = _soql_datetime(body["start"]), _soql_datetime(body["end"])

        try:
            contact_id = self._upsert_patient(patient, body.get("provenance"))
            owner_id = self._practitioner_id(body["practitioner"])
            clashes = self.sf.query(
                "SELECT Id, Booking_Key__c FROM Event "
                f"WHERE OwnerId = {soql_quote(owner_id)} AND StartDateTime < {end} AND EndDateTime > {start}"
            )
        except SalesforceError as exc:
            # Nothing of the booking written yet (the patient record is kept either way).
            raise _unavailable(exc) from None
        others = [c for c in clashes if c.get("Booking_Key__c") != key]
        if others:
            log.info("booking %s refused: %s already has %s at %s-%s", key, body["practitioner"],
                     ", ".join(str(c.get("Booking_Key__c") or c.get("Id")) for c in others), body["start"], body["end"])
            raise ApiError(409, "slot_taken", f"{body['practitioner']} already has an appointment at {body['start']}")
        already = any(c.get("Booking_Key__c") == key for c in clashes)

        # The note must never decide the booking: leave ~1.5 s of the budget for the write.
        note = self.llm.visit_note(patient=patient, practitioner=body["practitioner"], start=body["start"],
                                   budget=remaining_budget() - 1.5)
        event = {
            "Subject": f"Visit: {patient.get('first_name', '')} {patient['last_name']}".strip(),
            "StartDateTime": body["start"],
            "EndDateTime": body["end"],
            "OwnerId": owner_id,
            "WhoId": contact_id,
            "Booking_Key__c": key,
            "Visit_Prep__c": json.dumps(note, ensure_ascii=False) if note else None,
        }
        event_id: Optional[str] = None
        try:
            if self.variant.idempotent_create or already:
                event_id, _created = self.sf.upsert("Event", "Booking_Key__c", key, event, optional=EVENT_OPTIONAL)
            else:
                event_id = self.sf.create("Event", event, optional=EVENT_OPTIONAL)
        except SalesforceError as exc:
            # The write may have landed even though we have no answer: undo it by its key.
            if self.variant.compensate:
                if self.variant.idempotent_create:
                    self.compensator.compensate_now(key)
                elif event_id is not None:
                    self.compensator.compensate_now(key, event_id)
                # (a POSTed Event whose answer was lost has no id we know of)
            raise _unavailable(exc) from None
        return {"booking_key": key, "event_id": event_id, "contact_id": contact_id, "visit_prep": note is not None}

    # ------------------------------------------------------------ POST /patients/{id}/sync

    def sync_patient(self, external_id: str, body: dict[str, Any]) -> dict[str, Any]:
        wanted = {
            "Email": body.get("email"),
            "Phone": body.get("phone"),
            "Preferred_Language__c": body.get("language"),
        }
        wanted = {k: v for k, v in wanted.items() if v is not None}
        path = f"/sobjects/Contact/Patient_External_Id__c/{quote(external_id, safe='')}"
        try:
            found = self.sf.get(path)
            if found is None:
                if not body.get("last_name"):
                    raise ApiError(400, "invalid_request", "unknown patient and no last_name to create it")
                new_id, _ = self.sf.upsert("Contact", "Patient_External_Id__c", external_id,
                                           {"FirstName": body.get("first_name"), "LastName": body["last_name"]},
                                           optional=("FirstName",))
                found = self.sf.get(f"/sobjects/Contact/{new_id}")
                if found is None:
                    raise ApiError(502, "salesforce_error", "patient not readable after creating it")
            record, etag = found
            contact_id = record["Id"]

            if not self.variant.conditional_sync:
                self.sf.update("Contact", contact_id, wanted, optional=CONTACT_OPTIONAL)
                return {"contact_id": contact_id, "updated": sorted(wanted), "kept": []}

            base = record
            changes = {k: v for k, v in wanted.items() if base.get(k) != v}
            kept: list[str] = []
            for _ in range(4):
                if not changes:
                    return {"contact_id": contact_id, "updated": [], "kept": sorted(kept), "unchanged": True}
                ok, _new_etag = self.sf.update("Contact", contact_id, changes, if_match=etag, optional=CONTACT_OPTIONAL)
                if ok:
                    return {"contact_id": contact_id, "updated": sorted(changes), "kept": sorted(kept)}
                # Somebody changed the record since we read it: re-read, and leave alone every
                # field they changed (their value is newer than ours).
                again = self.sf.get(f"/sobjects/Contact/{contact_id}")
                if again is None:
                    raise ApiError(409, "patient_gone", "the patient record was deleted during the sync")
                fresh, etag = again
                for k in list(changes):
                    if fresh.get(k) != base.get(k):
                        log.info("sync %s: %s was changed in Salesforce meanwhile; keeping the newer value", external_id, k)
                        kept.append(k)
                        changes.pop(k)
                    elif fresh.get(k) == changes[k]:
                        changes.pop(k)
                base = fresh
            raise ApiError(409, "conflict", "the patient record keeps changing; try again later")
        except SalesforceError as exc:
            raise _unavailable(exc) from None

    # ------------------------------------------------------------ POST /cases/{id}/summarize

    def summarize_case(self, external_id: str, body: dict[str, Any]) -> dict[str, Any]:
        notes = body.get("notes") or ""
        subject = body.get("subject") or ""
        try:
            rows = self.sf.query(
                f"SELECT Id, Description FROM Case WHERE Case_External_Id__c = {soql_quote(external_id)} LIMIT 1"
            )
            if rows:
                case_id = rows[0]["Id"]
                notes = notes or rows[0].get("Description") or ""
            else:
                case_id, _ = self.sf.upsert("Case", "Case_External_Id__c", external_id,
                                            {"Subject": subject, "Description": notes}, optional=("Subject",))
            found = self.sf.get(f"/sobjects/Case/{case_id}")
        except SalesforceError as exc:
            raise _unavailable(exc) from None
        if found is None:
            raise ApiError(502, "salesforce_error", "case not readable")
        record, etag = found

        try:
            summary = self.llm.summarize(subject=subject, notes=notes, budget_fn=lambda: remaining_budget() - 1.5)
        except LlmUnavailable as exc:
            log.warning("case %s: degraded summary (%s)", external_id, exc)
            return {"case_id": case_id, "degraded": True, "summary": None,
                    "message": "The AI summary is unavailable right now; nothing was written to the case."}

        try:
            base = record
            for _ in range(3):
                ok, _ = self.sf.update("Case", case_id, {"AI_Summary__c": summary}, if_match=etag)
                if ok:
                    return {"case_id": case_id, "degraded": False, "summary": summary, "written": True}
                again = self.sf.get(f"/sobjects/Case/{case_id}")
                if again is None:
                    raise ApiError(409, "case_gone", "the case was deleted meanwhile")
                fresh, etag = again
                if fresh.get("AI_Summary__c") != base.get("AI_Summary__c"):
                    # Someone else wrote a summary since we read the case: theirs stays.
                    return {"case_id": case_id, "degraded": False, "summary": summary, "written": False,
                            "message": "the case's summary was changed meanwhile; left as it is"}
                base = fresh
            raise ApiError(409, "conflict", "the case keeps changing")
        except SalesforceError as exc:
            raise _unavailable(exc) from None
