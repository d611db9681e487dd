"""Bulk API 2.0 ingest jobs: create, upload one CSV, close, wait, read the results.

    POST  /jobs/ingest                    {"object", "operation", "externalIdFieldName", ...}
    PUT   /jobs/ingest/{id}/batches       the CSV (Content-Type: text/csv)
    PATCH /jobs/ingest/{id}               {"state": "UploadComplete"}
    GET   /jobs/ingest/{id}               until JobComplete, Failed or Aborted
    GET   /jobs/ingest/{id}/successfulResults | failedResults | unprocessedrecords

What may be sent twice, and what not:
- creating a job: yes. If the answer of a create was lost, the job it made stays Open with no
  data and is never processed (Salesforce cleans such jobs up after a week);
- uploading: not on the same job. A job whose upload failed (or whose answer was lost) is
  aborted, best effort, and a fresh job takes its place. Nothing runs until UploadComplete,
  so an abandoned job writes nothing;
- closing: yes. A close that landed the first time answers 409 the second time; the job's
  state then says whether it is running.
Once a job is closed it runs on Salesforce's side whatever happens to us: if we cannot wait
for it, the batch fails and its next run writes the same rows again.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

from .config import Settings
from .salesforce import OutcomeUnknown, SalesforceClient, SalesforceError, SalesforceUnavailable

log = logging.getLogger("followup-batch.bulk")

FINISHED = {"JobComplete", "Failed", "Aborted"}
CLOSED = {"UploadComplete", "InProgress"} | FINISHED


class BulkJobError(SalesforceError):
    """The job could not be run, or we could not see it to its end."""


@dataclass(frozen=True)
class JobSpec:
    """What a job does: `operation` on `sobject`, rows matched on `external_id_field` (upsert)."""

    sobject: str
    operation: str
    external_id_field: Optional[str] = None

    def create_body(self) -> dict:
        body = {
            "object": self.sobject,
            "operation": self.operation,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        }
        if self.external_id_field:
            body["externalIdFieldName"] = self.external_id_field
        return body


@dataclass
class JobResult:
    job_id: str
    state: str
    error_message: str = ""
    # Each row: the columns we sent, plus sf__Id and sf__Created (successful) or sf__Id and
    # sf__Error (failed). Unprocessed rows: the columns we sent.
    successful: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    unprocessed: list[dict[str, str]] = field(default_factory=list)


def to_csv(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> bytes:
    """RFC 4180 CSV, LF line endings (the job says lineEnding LF), UTF-8. Values must not
    contain a bare CR: the caller writes newlines inside values as LF."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def parse_csv(data: bytes) -> list[dict[str, str]]:
    # The answer is text/csv without a charset; Salesforce writes UTF-8.
    text = data.decode("utf-8-sig", errors="replace")
    if not text.strip():
        return []
    return list(csv.DictReader(io.StringIO(text, newline="")))


class BulkIngest:
    def __init__(self, sf: SalesforceClient, settings: Settings) -> None:
        self.sf = sf
        self.settings = settings

    # ---------------------------------------------------------------- one job, end to end

    def run(self, spec: JobSpec, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> JobResult:
        """Run one ingest job over `rows` and read its results. Raises SalesforceError when
        the job could not be submitted, or BulkJobError when it was but we could not see
        it to its end (it may still run)."""
        payload = to_csv(columns, rows)
        job_id = self._submit(spec, payload, len(rows))
        info = self._wait(job_id)
        state = str(info.get("state"))
        result = JobResult(job_id=job_id, state=state, error_message=str(info.get("errorMessage") or ""))
        result.successful = parse_csv(self._results(job_id, "successfulResults"))
        result.failed = parse_csv(self._results(job_id, "failedResults"))
        if state != "JobComplete":
            result.unprocessed = parse_csv(self._results(job_id, "unprocessedrecords"))
        log.info("job %s %s: %s processed, %s failed%s", job_id, state, info.get("numberRecordsProcessed"),
                 info.get("numberRecordsFailed"), f" ({result.error_message})" if result.error_message else "")
        return result

    # ---------------------------------------------------------------- the steps

    def _submit(self, spec: JobSpec, payload: bytes, n_rows: int) -> str:
        """Create, upload, close; a job we could not fill is abandoned and a fresh one made.
        Returns the id of a closed job (UploadComplete or later)."""
        problem: Optional[SalesforceError] = None
        for attempt in range(1, self.settings.bulk_job_attempts + 1):
            if attempt > 1:
                wait = self.sf.backoff(attempt - 1)
                log.info("%s; new job in %.2fs", problem, wait)
                self.sf.sleep(wait)
                if self.sf.stop.is_set():
                    break
            try:
                job = self.sf.request("POST", "/jobs/ingest", json_body=spec.create_body(), resend_safe=True).json()
            except SalesforceUnavailable as exc:
                problem = exc
                continue
            job_id = str(job["id"])
            log.info("job %s created: %s %s on %s (%d rows, %d bytes)", job_id, spec.operation,
                     spec.sobject, spec.external_id_field or "no external id", n_rows, len(payload))
            try:
                self.sf.request("PUT", f"/jobs/ingest/{job_id}/batches", data=payload, content_type="text/csv",
                                resend_safe=False, max_attempts=1)
            except (SalesforceUnavailable, OutcomeUnknown) as exc:
                problem = exc
                self._abort(job_id)
                continue
            except SalesforceError:
                self._abort(job_id)
                raise
            self._close(job_id)
            return job_id
        raise problem or SalesforceUnavailable("no job attempt was made")

    def _close(self, job_id: str) -> None:
        resp = self.sf.request("PATCH", f"/jobs/ingest/{job_id}", json_body={"state": "UploadComplete"},
                               resend_safe=True, passthrough=(409,))
        if resp.status_code != 409:
            return
        # A close sent again after a lost answer: the first one landed if the job moved on.
        state = self._info(job_id).get("state")
        if state == "Aborted":
            raise BulkJobError(f"job {job_id} was aborted before it was closed")
        if state not in CLOSED:
            raise BulkJobError(f"job {job_id} cannot be closed (state {state})", status=409)

    def _abort(self, job_id: str) -> None:
        """Best effort: an Open job never runs anyway."""
        try:
            self.sf.request("PATCH", f"/jobs/ingest/{job_id}", json_body={"state": "Aborted"},
                            resend_safe=True, passthrough=(409,), max_attempts=2)
            log.info("job %s abandoned (aborted)", job_id)
        except SalesforceError as exc:
            log.warning("job %s abandoned; could not abort it (%s); it stays Open and never runs", job_id, exc)

    def _info(self, job_id: str) -> dict:
        return self.sf.request("GET", f"/jobs/ingest/{job_id}").json()

    def _wait(self, job_id: str) -> dict:
        deadline = time.monotonic() + self.settings.bulk_job_timeout
        pause = self.settings.bulk_poll_first
        while True:
            try:
                info = self._info(job_id)
            except SalesforceUnavailable as exc:
                raise BulkJobError(f"job {job_id}: cannot read its state ({exc}); it may still run") from None
            if info.get("state") in FINISHED:
                return info
            if time.monotonic() + pause > deadline:
                raise BulkJobError(f"job {job_id} still {info.get('state')} after "
                                   f"{self.settings.bulk_job_timeout:.0f}s; it may still run")
            self.sf.sleep(pause)
            if self.sf.stop.is_set():
                raise BulkJobError(f"job {job_id}: stopped while it was {info.get('state')}; it may still run")
            pause = min(self.settings.bulk_poll_cap, pause * 2)

    def _results(self, job_id: str, part: str) -> bytes:
        try:
            return self.sf.request("GET", f"/jobs/ingest/{job_id}/{part}", accept="text/csv").content
        except SalesforceUnavailable as exc:
            raise BulkJobError(f"job {job_id}: cannot read {part} ({exc})") from None
