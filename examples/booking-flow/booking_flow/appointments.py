"""Book, reschedule and cancel appointments: Events in Salesforce, with the patient a Contact.

- Book: look the booking key up first (a repeated request answers the appointment it made
  the first time, whatever happened to it since), upsert the patient by
  Patient_External_Id__c, find the practitioner's user, refuse a slot they already have,
  ask the LLM for a visit preparation (best effort), upsert the Event by Booking_Key__c.
- Reschedule: read the Event, refuse a cancelled one, check the caller's If-Match, refuse a
  slot the practitioner already has, write the new times. The same times again is a no-op.
- Cancel: Appointment_Status__c = Cancelled. The record stays (audit); cancelling a
  cancelled appointment is a no-op that answers the same.

Our ETag is a digest of what we answer about an appointment (id, times, status), so a
client can reschedule with If-Match and find out whether it was changed meanwhile.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from datetime import datetime, timezone
from typing import Any, Optional

from .llm import VisitPrep
from .salesforce import SalesforceClient, SalesforceError, SalesforceUnavailable, soql_datetime, soql_quote

log = logging.getLogger("booking-flow.appointments")

EVENT_FIELDS = "Id, Booking_Key__c, StartDateTime, EndDateTime, Appointment_Status__c, OwnerId, WhoId"
CANCELLED = "Cancelled"
_EVENT_ID = re.compile(r"^00U[0-9A-Za-z]{12}(?:[0-9A-Za-z]{3})?$")
USER_CACHE_SECONDS = 300.0
MAX_KEY = 80  # Booking_Key__c's length


class ApiError(Exception):
    """An answer for our caller: HTTP status and a JSON body."""

    def __init__(self, status: int, error: str, detail: str = "", retry_after: Optional[int] = None) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.body: dict[str, Any] = {"error": error}
        if detail:
            self.body["detail"] = detail
        self.retry_after = retry_after


def unavailable(exc: SalesforceError) -> ApiError:
    if isinstance(exc, SalesforceUnavailable):
        return ApiError(503, "salesforce_unavailable", str(exc), retry_after=1)
    return ApiError(502, "salesforce_error", str(exc))


# ------------------------------------------------------------------------- datetimes

def parse_datetime(value: Any, name: str) -> datetime:
    """A datetime from a caller or from Salesforce (2027-03-05T08:30:00.000+0000, …Z,
    +00:00), as an aware UTC datetime to the second."""
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "invalid_request", f"{name} must be a datetime")
    text = value.strip()
    parsed: Optional[datetime] = None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            parsed = datetime.strptime(text, fmt)
            break
        except ValueError:
            continue
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ApiError(400, "invalid_request", f"{name} is not a datetime: {text!r}") from None
    if parsed.tzinfo is None:
        raise ApiError(400, "invalid_request", f"{name} needs a time zone offset: {text!r}")
    return parsed.astimezone(timezone.utc).replace(microsecond=0)


def sf_datetime(value: datetime) -> str:
    """As Salesforce writes them: 2027-03-05T08:30:00.000+0000."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _status_of(event: dict[str, Any]) -> str:
    return "cancelled" if event.get("Appointment_Status__c") == CANCELLED else "booked"


def etag_of(event_id: str, start: datetime, end: datetime, sf_status: Optional[str]) -> str:
    digest = hashlib.sha256(f"{event_id[:15]}|{sf_datetime(start)}|{sf_datetime(end)}|{sf_status or ''}".encode())
    return f'"{digest.hexdigest()[:24]}"'


def etag_of_event(event: dict[str, Any]) -> str:
    return etag_of(str(event["Id"]), parse_datetime(event["StartDateTime"], "StartDateTime"),
                   parse_datetime(event["EndDateTime"], "EndDateTime"), event.get("Appointment_Status__c"))


def _text(body: dict[str, Any], name: str, limit: int = 255) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, "invalid_request", f"missing or empty: {name}")
    value = value.strip()
    if len(value) > limit:
        raise ApiError(400, "invalid_request", f"{name} is longer than {limit} characters")
    return value


# ------------------------------------------------------------------------- the service

class Appointments:
    def __init__(self, sf: SalesforceClient, prep: VisitPrep) -> None:
        self.sf = sf
        self.prep = prep
        self._users: dict[str, tuple[str, float]] = {}
        self._users_lock = threading.Lock()

    # ---------------------------------------------------------------- helpers

    def _practitioner(self, username: str) -> str:
        now = time.monotonic()
        with self._users_lock:
            hit = self._users.get(username)
        if hit and now - hit[1] < USER_CACHE_SECONDS:
            return hit[0]
        rows = self.sf.query(f"SELECT Id FROM User WHERE Username = {soql_quote(username)} AND IsActive = true LIMIT 1")
        if not rows:
            raise ApiError(422, "unknown_practitioner", f"no active user {username!r}")
        user_id = str(rows[0]["Id"])
        with self._users_lock:
            self._users[username] = (user_id, now)
        return user_id

    def _clashes(self, owner_id: str, start: datetime, end: datetime, *, not_id: Optional[str] = None,
                 not_key: Optional[str] = None) -> list[dict[str, Any]]:
        """Live (not cancelled) appointments of the practitioner that overlap start–end."""
        soql = (
            f"SELECT Id, Booking_Key__c FROM Event WHERE OwnerId = {soql_quote(owner_id)}"
            f" AND StartDateTime < {soql_datetime(end)} AND EndDateTime > {soql_datetime(start)}"
            f" AND Appointment_Status__c != {soql_quote(CANCELLED)}"
        )
        rows = self.sf.query(soql)
        return [r for r in rows
                if not (not_id and str(r.get("Id", ""))[:15] == not_id[:15])
                and not (not_key and r.get("Booking_Key__c") == not_key)]

    def _event(self, event_id: str) -> dict[str, Any]:
        if not _EVENT_ID.match(event_id):
            raise ApiError(404, "not_found")
        try:
            event = self.sf.get("Event", event_id)
        except SalesforceError as exc:
            if exc.code in ("ENTITY_IS_DELETED", "NOT_FOUND", "MALFORMED_ID", "INVALID_ID_FIELD"):
                raise ApiError(404, "not_found") from None
            raise unavailable(exc) from None
        if event is None:
            raise ApiError(404, "not_found")
        return event

    @staticmethod
    def _answer(event: dict[str, Any], status: str) -> tuple[dict[str, Any], str]:
        start = parse_datetime(event["StartDateTime"], "StartDateTime")
        end = parse_datetime(event["EndDateTime"], "EndDateTime")
        body = {"id": event["Id"], "status": status, "start": sf_datetime(start), "end": sf_datetime(end)}
        return body, etag_of_event(event)

    # ---------------------------------------------------------------- POST /appointments

    def book(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
        key = _text(body, "booking_key", MAX_KEY)
        practitioner = _text(body, "practitioner", 80)
        patient = body.get("patient")
        if not isinstance(patient, dict):
            raise ApiError(400, "invalid_request", "patient must be an object")
        external_id = _text(patient, "external_id", 64)
        last_name = _text(patient, "last_name", 80)
        first_name = str(patient.get("first_name") or "").strip()[:40]
        start = parse_datetime(body.get("start"), "start")
        end = parse_datetime(body.get("end"), "end")
        if end <= start:
            raise ApiError(400, "invalid_request", "end must be after start")

        try:
            # The same booking key again (a client retrying after a lost answer): answer
            # what the first request made, do not book twice.
            existing = self.sf.get_by_external_id("Event", "Booking_Key__c", key)
            if existing is not None:
                log.info("booking %s exists already as %s", key, existing.get("Id"))
                answer, etag = self._answer(existing, _status_of(existing))
                return 201, answer, etag

            contact_fields = {"LastName": last_name}
            if first_name:
                contact_fields["FirstName"] = first_name
            contact_id = self.sf.upsert("Contact", "Patient_External_Id__c", external_id, contact_fields)
            owner_id = self._practitioner(practitioner)
            clashes = self._clashes(owner_id, start, end, not_key=key)
        except SalesforceError as exc:
            raise unavailable(exc) from None
        if clashes:
            raise ApiError(409, "slot_taken", f"{practitioner} already has an appointment at {sf_datetime(start)}")

        prep = self.prep.prepare(first_name=first_name, practitioner=practitioner,
                                 start=sf_datetime(start), end=sf_datetime(end))
        event: dict[str, Any] = {
            "Subject": f"Visit: {first_name} {last_name}".replace("  ", " ").strip(),
            "StartDateTime": sf_datetime(start),
            "EndDateTime": sf_datetime(end),
            "WhoId": contact_id,
            "OwnerId": owner_id,
            "Appointment_Status__c": "Booked",
        }
        if prep:
            event["Visit_Prep__c"] = prep
        try:
            event_id = self.sf.upsert("Event", "Booking_Key__c", key, event)
        except SalesforceError as exc:
            # An upsert by key is safe to send again: the caller may simply retry.
            raise unavailable(exc) from None
        log.info("booked %s as Event %s for %s%s", key, event_id, practitioner, "" if prep else " (no visit preparation)")
        answer = {"id": event_id, "status": "booked", "start": sf_datetime(start), "end": sf_datetime(end),
                  "contact_id": contact_id, "visit_prep": prep is not None}
        return 201, answer, etag_of(event_id, start, end, "Booked")

    # ---------------------------------------------------------------- PATCH /appointments/{id}

    def reschedule(self, event_id: str, body: dict[str, Any], if_match: Optional[str]) -> tuple[int, dict[str, Any], str]:
        start = parse_datetime(body.get("start"), "start")
        event = self._event(event_id)
        old_start = parse_datetime(event["StartDateTime"], "StartDateTime")
        old_end = parse_datetime(event["EndDateTime"], "EndDateTime")
        # No end: the appointment keeps its length.
        end = parse_datetime(body["end"], "end") if body.get("end") is not None else start + (old_end - old_start)
        if end <= start:
            raise ApiError(400, "invalid_request", "end must be after start")
        if if_match is not None and if_match.strip() != "*" and etag_of_event(event) not in [t.strip() for t in if_match.split(",")]:
            raise ApiError(412, "precondition_failed", "the appointment was changed since you read it")
        if event.get("Appointment_Status__c") == CANCELLED:
            raise ApiError(409, "cancelled", "a cancelled appointment cannot be rescheduled")
        if (start, end) == (old_start, old_end):
            answer, etag = self._answer(event, "rescheduled")
            return 200, answer, etag
        try:
            if event.get("OwnerId") and self._clashes(str(event["OwnerId"]), start, end, not_id=str(event["Id"])):
                raise ApiError(409, "slot_taken", f"the practitioner already has an appointment at {sf_datetime(start)}")
            self.sf.update("Event", str(event["Id"]), {"StartDateTime": sf_datetime(start), "EndDateTime": sf_datetime(end)})
        except SalesforceError as exc:
            if exc.code == "ENTITY_IS_DELETED" or exc.status == 404:
                raise ApiError(404, "not_found") from None
            raise unavailable(exc) from None
        log.info("rescheduled Event %s from %s to %s", event["Id"], sf_datetime(old_start), sf_datetime(start))
        event = {**event, "StartDateTime": sf_datetime(start), "EndDateTime": sf_datetime(end)}
        answer, etag = self._answer(event, "rescheduled")
        return 200, answer, etag

    # ---------------------------------------------------------------- DELETE /appointments/{id}

    def cancel(self, event_id: str) -> tuple[int, dict[str, Any], str]:
        event = self._event(event_id)
        if event.get("Appointment_Status__c") != CANCELLED:
            try:
                self.sf.update("Event", str(event["Id"]), {"Appointment_Status__c": CANCELLED})
            except SalesforceError as exc:
                if exc.code == "ENTITY_IS_DELETED" or exc.status == 404:
                    raise ApiError(404, "not_found") from None
                raise unavailable(exc) from None
            log.info("cancelled Event %s", event["Id"])
            event = {**event, "Appointment_Status__c": CANCELLED}
        answer, etag = self._answer(event, "cancelled")
        return 200, answer, etag

    # ---------------------------------------------------------------- GET /appointments/{id}

    def read(self, event_id: str) -> tuple[int, dict[str, Any], str]:
        event = self._event(event_id)
        answer, etag = self._answer(event, _status_of(event))
        return 200, answer, etag
