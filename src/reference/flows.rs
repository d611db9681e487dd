//! The reference integration's endpoints.
//!
//! - `POST /appointments`: book a visit as a saga. Upsert the patient (Contact by external
//!   id), check the practitioner's slot, ask the LLM for a visit-preparation note, upsert the
//!   Event by its booking key. When a step after the Contact fails, the earlier steps are
//!   compensated (and the compensation retried until it completes), so a booking is all or
//!   nothing. A missing note does not stop a booking: it is booked without one.
//! - `POST /patients/{id}/sync`: bring a patient's contact details up to date with a
//!   conditional update (`If-Match`); a clinician's newer edit of a field wins.
//! - `POST /cases/{id}/summarize`: read the case (SOQL), summarise it (streamed), write the
//!   summary back conditionally. When the LLM fails, answer a degraded summary and write
//!   nothing.
//! - `GET /health`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::defect::Defect;
use super::llm::LlmError;
use super::resilience::{single_attempt, CallError};
use super::salesforce::{Salesforce, SfError};
use super::Reference;
use crate::transport::urlencode;

/// Serve each request with its `traceparent` handed on to the calls made for it.
async fn propagate_trace(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let trace = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    super::resilience::with_traceparent(trace, next.run(req)).await
}

/// The integration's routes.
pub fn router(r: Arc<Reference>) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/appointments", post(book))
        .route("/patients/{id}/sync", post(sync))
        .route("/cases/{id}/summarize", post(summarize))
        .route("/contention/{id}", post(contend))
        .layer(axum::middleware::from_fn(propagate_trace))
        .with_state(r)
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// An error answer for a failed Salesforce step.
fn sf_failure(step: &str, e: &SfError) -> Response {
    let status = match e {
        SfError::Call(CallError::Open(_)) => StatusCode::SERVICE_UNAVAILABLE,
        SfError::Call(CallError::Transport(_, crate::transport::TransportError::Timeout)) => {
            StatusCode::GATEWAY_TIMEOUT
        }
        SfError::Status { status: 409, .. } => StatusCode::CONFLICT,
        _ => StatusCode::BAD_GATEWAY,
    };
    answer(status, json!({"step": step, "error": e.to_string()}))
}

fn text<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `2027-03-05T08:30:00.000+0000` → `2027-03-05T08:30:00Z` (a SOQL datetime literal).
fn soql_datetime(s: &str) -> String {
    format!("{}Z", s.get(..19).unwrap_or(s))
}

/// What a failed booking must undo.
#[derive(Clone, Debug)]
enum Undo {
    /// A Contact this booking created.
    Contact(String),
    /// A record this booking may have created, by external id: `(object, field, value)` (an
    /// Event by booking key; a new patient's Contact whose upsert had no clear answer).
    ByKey(&'static str, &'static str, String),
}

async fn undo_once(sf: &Salesforce, step: &Undo, deadline: Instant) -> Result<(), SfError> {
    match step {
        Undo::Contact(id) => sf.delete("Contact", id, deadline).await,
        Undo::ByKey(object, field, key) => {
            let path = format!("/sobjects/{object}/{field}/{}", urlencode(key));
            match sf.get(&path, deadline).await? {
                Some((rec, _)) => {
                    let id = rec["Id"].as_str().unwrap_or_default().to_string();
                    sf.delete(object, &id, deadline).await
                }
                None => Ok(()),
            }
        }
    }
}

/// Undo `steps` (newest first). A compensation is retried on a slow schedule of its own:
/// up to `max_attempts` rounds that reach Salesforce, the first at once, the others ¾ to 1½
/// backoff caps apart (jittered), each a single attempt per request, so no request is sent
/// more than `max_attempts` times (retrying calls inside a retry loop would multiply their
/// attempts). A round the open breaker holds back sent nothing and does not count. A step
/// still not undone after the last round, or after a minute, is logged for a human.
async fn compensate(r: &Arc<Reference>, steps: Vec<Undo>) {
    if r.defects.has(Defect::NoCompensation) {
        return;
    }
    let sent = |e: &SfError| !matches!(e, SfError::Call(CallError::Open(_)));
    for step in steps.into_iter().rev() {
        let deadline = Instant::now() + r.policy.operation_deadline;
        let mut rounds = match single_attempt(undo_once(&r.sf, &step, deadline)).await {
            Ok(()) => continue,
            Err(e) => u32::from(sent(&e)),
        };
        let r = r.clone();
        let guard = r.compensating.enter();
        let trace = super::resilience::current_traceparent();
        tokio::spawn(super::resilience::with_traceparent(trace, async move {
            let _guard = guard;
            let give_up = Instant::now() + Duration::from_secs(60);
            while rounds < r.policy.max_attempts.max(2) && Instant::now() < give_up {
                // ¾ to 1½ backoff caps (1.5–3 s by default): past a short outage, well
                // within a compensation deadline.
                let u = (r.sf.dep.random() % 1_000) as f64 / 1_000.0;
                tokio::time::sleep(r.policy.cap.mul_f64(0.75 + 0.75 * u)).await;
                let deadline = Instant::now() + r.policy.operation_deadline;
                match single_attempt(undo_once(&r.sf, &step, deadline)).await {
                    Ok(()) => {
                        (r.log)(format!("compensated {step:?} after a retry"));
                        return;
                    }
                    Err(e) => {
                        rounds += u32::from(sent(&e));
                        (r.log)(format!("compensation of {step:?} failed again: {e}"));
                    }
                }
            }
            (r.log)(format!(
                "gave up compensating {step:?}: left for a human to undo"
            ));
        }));
    }
}

async fn book(State(r): State<Arc<Reference>>, Json(b): Json<Value>) -> Response {
    let deadline = Instant::now() + r.policy.operation_deadline;
    let p = &b["patient"];
    let (Some(key), Some(ext), Some(last), Some(owner_name), Some(start), Some(end)) = (
        text(&b, "booking_key"),
        text(p, "external_id"),
        text(p, "last_name"),
        text(&b, "practitioner"),
        text(&b, "start"),
        text(&b, "end"),
    ) else {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"error": "booking_key, patient.external_id, patient.last_name, practitioner, start and end are required"}),
        );
    };
    let sf = &r.sf;
    let owner = match sf.user_id(owner_name, deadline).await {
        Ok(id) => id,
        Err(e) => return sf_failure("practitioner", &e),
    };
    // 1. The patient, idempotently by external id.
    let contact = Salesforce::fields(&[
        ("FirstName", p["first_name"].clone()),
        ("LastName", json!(last)),
        ("Birthdate", p["birthdate"].clone()),
        ("Email", p["email"].clone()),
        ("Preferred_Language__c", p["language"].clone()),
        ("Data_Provenance__c", b["provenance"].clone()),
    ]);
    // Whether the patient is new decides what a failure undoes. The upsert's own answer
    // cannot say: after a lost answer, its retry finds the record the first attempt made.
    let by_ext = format!(
        "/sobjects/Contact/Patient_External_Id__c/{}",
        urlencode(ext)
    );
    let existed = match sf.get(&by_ext, deadline).await {
        Ok(found) => found.is_some(),
        Err(e) => return sf_failure("contact", &e),
    };
    let (contact_id, created) = match sf
        .upsert("Contact", "Patient_External_Id__c", ext, &contact, deadline)
        .await
    {
        Ok((id, created)) => (id, created || !existed),
        Err(e) => {
            // No clear answer: a new patient's Contact may exist now.
            if !existed {
                let undo = Undo::ByKey("Contact", "Patient_External_Id__c", ext.to_string());
                compensate(&r, vec![undo]).await;
            }
            return sf_failure("contact", &e);
        }
    };
    let mut undo = vec![];
    if created {
        undo.push(Undo::Contact(contact_id.clone()));
    }
    // 2. The slot: held in-process while we book, and checked in Salesforce.
    let slot = format!("{owner}|{start}");
    if !r.booking.lock().await.insert(slot.clone()) {
        compensate(&r, undo).await;
        return answer(
            StatusCode::CONFLICT,
            json!({"error": "the slot is being booked"}),
        );
    }
    let result = book_event(&r, &b, key, &owner, &contact_id, start, end, deadline).await;
    r.booking.lock().await.remove(&slot);
    match result {
        Ok(body) => answer(StatusCode::CREATED, body),
        Err((resp, event_may_exist)) => {
            if event_may_exist && !r.defects.has(Defect::NonIdempotentCreate) {
                undo.push(Undo::ByKey("Event", "Booking_Key__c", key.to_string()));
            }
            compensate(&r, undo).await;
            resp
        }
    }
}

/// Steps 2–4 of a booking; on failure, the answer and whether an Event may have been written.
#[allow(clippy::too_many_arguments)]
async fn book_event(
    r: &Arc<Reference>,
    b: &Value,
    key: &str,
    owner: &str,
    contact_id: &str,
    start: &str,
    end: &str,
    deadline: Instant,
) -> Result<Value, (Response, bool)> {
    let sf = &r.sf;
    let taken = sf
        .query(
            &format!(
                "SELECT Id, Booking_Key__c FROM Event WHERE OwnerId = '{owner}' AND StartDateTime < {} AND EndDateTime > {}",
                soql_datetime(end),
                soql_datetime(start)
            ),
            deadline,
        )
        .await
        .map_err(|e| (sf_failure("slot", &e), false))?;
    if taken
        .iter()
        .any(|e| e["Booking_Key__c"].as_str() != Some(key))
    {
        return Err((
            answer(
                StatusCode::CONFLICT,
                json!({"error": "the practitioner is already booked then"}),
            ),
            false,
        ));
    }
    // 3. The note: a booking goes on without one, unless the answer is trusted blindly.
    let prep = match r.llm.visit_prep(&b["patient"], deadline).await {
        Ok(v) => Some(v),
        Err(LlmError::Unusable(why)) if r.defects.has(Defect::NoDriftHandling) => {
            return Err((
                answer(
                    StatusCode::BAD_GATEWAY,
                    json!({"step": "visit-prep", "error": why}),
                ),
                false,
            ))
        }
        Err(e) => {
            (r.log)(format!("booking {key} without a visit note: {e}"));
            None
        }
    };
    let visit_prep = prep.as_ref().map(|v| {
        let qs: Vec<&str> = v["questions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        json!(format!(
            "{}\n{}",
            v["summary"].as_str().unwrap_or_default(),
            qs.join("\n")
        ))
    });
    // 4. The Event, idempotently by booking key.
    let event = Salesforce::fields(&[
        (
            "Subject",
            json!(format!(
                "Visit: {} {}",
                b["patient"]["first_name"].as_str().unwrap_or_default(),
                b["patient"]["last_name"].as_str().unwrap_or_default()
            )),
        ),
        ("WhoId", json!(contact_id)),
        ("OwnerId", json!(owner)),
        ("StartDateTime", json!(start)),
        ("EndDateTime", json!(end)),
        ("Booking_Key__c", json!(key)),
        ("Visit_Prep__c", visit_prep.unwrap_or(Value::Null)),
    ]);
    let written = if r.defects.has(Defect::NonIdempotentCreate) {
        sf.create("Event", &event, deadline).await
    } else {
        let mut fields = event.clone();
        if let Some(m) = fields.as_object_mut() {
            m.remove("Booking_Key__c");
        }
        sf.upsert("Event", "Booking_Key__c", key, &fields, deadline)
            .await
            .map(|(id, _)| id)
    };
    match written {
        Ok(id) => Ok(json!({"event": id, "contact": contact_id, "visit_prep": prep.is_some()})),
        // Whatever the last answer, an earlier attempt may have landed with its answer lost:
        // the compensation looks the Event up by key.
        Err(e) => Err((sf_failure("event", &e), true)),
    }
}

async fn sync(
    State(r): State<Arc<Reference>>,
    Path(ext): Path<String>,
    Json(b): Json<Value>,
) -> Response {
    let deadline = Instant::now() + r.policy.operation_deadline;
    let sf = &r.sf;
    // Make sure the patient exists (idempotent), then read it with its version.
    let names = Salesforce::fields(&[
        ("FirstName", b["first_name"].clone()),
        (
            "LastName",
            json!(text(&b, "last_name").unwrap_or("Unknown")),
        ),
    ]);
    if let Err(e) = sf
        .upsert("Contact", "Patient_External_Id__c", &ext, &names, deadline)
        .await
    {
        return sf_failure("contact", &e);
    }
    let path = format!(
        "/sobjects/Contact/Patient_External_Id__c/{}",
        urlencode(&ext)
    );
    let wanted = Salesforce::fields(&[
        ("Email", b["email"].clone()),
        ("Phone", b["phone"].clone()),
        ("Preferred_Language__c", b["language"].clone()),
    ]);
    let mut first_read: Option<Value> = None;
    let mut kept: Vec<String> = vec![];
    for _ in 0..3 {
        let (rec, etag) = match sf.get(&path, deadline).await {
            Ok(Some(x)) => x,
            Ok(None) => return answer(StatusCode::NOT_FOUND, json!({"error": "no such patient"})),
            Err(e) => return sf_failure("read", &e),
        };
        let id = rec["Id"].as_str().unwrap_or_default().to_string();
        let before = first_read.get_or_insert_with(|| rec.clone()).clone();
        // A field someone changed since our first read is theirs now: leave it.
        let mut fields = wanted.clone();
        if let Some(m) = fields.as_object_mut() {
            m.retain(|k, _| {
                let theirs = rec.get(k) != before.get(k);
                if theirs && !kept.contains(k) {
                    kept.push(k.clone());
                }
                !theirs
            });
        }
        match sf
            .update("Contact", &id, &fields, Some(&etag), deadline)
            .await
        {
            Ok(true) => return answer(StatusCode::OK, json!({"id": id, "kept_newer": kept})),
            Ok(false) => continue,
            Err(e) => return sf_failure("update", &e),
        }
    }
    answer(
        StatusCode::CONFLICT,
        json!({"error": "the patient keeps changing; try again later"}),
    )
}

async fn summarize(
    State(r): State<Arc<Reference>>,
    Path(ext): Path<String>,
    Json(b): Json<Value>,
) -> Response {
    let deadline = Instant::now() + r.policy.operation_deadline;
    let sf = &r.sf;
    let rows = match sf
        .query(
            &format!(
                "SELECT Id, Subject, Description FROM Case WHERE Case_External_Id__c = '{}'",
                ext.replace('\'', "\\'")
            ),
            deadline,
        )
        .await
    {
        Ok(rows) => rows,
        Err(e) => return sf_failure("read", &e),
    };
    // A new case arrives with its intake (subject and notes) and is filed first.
    let (id, notes) = match rows.first() {
        Some(c) => (
            c["Id"].as_str().unwrap_or_default().to_string(),
            c["Description"].as_str().unwrap_or_default().to_string(),
        ),
        None => {
            let fields = Salesforce::fields(&[
                ("Subject", json!(text(&b, "subject").unwrap_or("Follow-up"))),
                ("Description", b["notes"].clone()),
            ]);
            match sf
                .upsert("Case", "Case_External_Id__c", &ext, &fields, deadline)
                .await
            {
                Ok((id, _)) => (id, text(&b, "notes").unwrap_or_default().to_string()),
                Err(e) => return sf_failure("case", &e),
            }
        }
    };
    let summary = match r.llm.summarize(&notes, deadline).await {
        Ok(s) => s,
        Err(e) => {
            let first: String = notes.split_inclusive('.').take(1).collect();
            return answer(
                StatusCode::OK,
                json!({"id": id, "degraded": true, "reason": e.to_string(), "summary": first.trim()}),
            );
        }
    };
    let path = format!("/sobjects/Case/{id}");
    for _ in 0..3 {
        let etag = match sf.get(&path, deadline).await {
            Ok(Some((_, etag))) => etag,
            Ok(None) => return answer(StatusCode::NOT_FOUND, json!({"error": "the case is gone"})),
            Err(e) => return sf_failure("read", &e),
        };
        let fields = json!({"AI_Summary__c": summary});
        match sf.update("Case", &id, &fields, Some(&etag), deadline).await {
            Ok(true) => return answer(StatusCode::OK, json!({"id": id, "summary": summary})),
            Ok(false) => continue,
            Err(e) => return sf_failure("write", &e),
        }
    }
    answer(
        StatusCode::CONFLICT,
        json!({"error": "the case keeps changing"}),
    )
}

/// `POST /contention/{id}`: one conditional write to a record many clients share (the
/// classic backoff study): read the record and its ETag, write with `If-Match`, and on 412
/// wait by the backoff strategy and try again, up to the policy's attempts.
async fn contend(
    State(r): State<Arc<Reference>>,
    Path(ext): Path<String>,
    Json(b): Json<Value>,
) -> Response {
    let deadline = Instant::now() + r.policy.operation_deadline;
    let sf = &r.sf;
    let path = format!(
        "/sobjects/Contact/Patient_External_Id__c/{}",
        urlencode(&ext)
    );
    let mut previous = Duration::ZERO;
    for attempt in 0..r.policy.max_attempts.max(1) {
        let (rec, etag) = match sf.get(&path, deadline).await {
            Ok(Some(x)) => x,
            Ok(None) => {
                let fields = json!({"LastName": "Contention"});
                if let Err(e) = sf
                    .upsert("Contact", "Patient_External_Id__c", &ext, &fields, deadline)
                    .await
                {
                    return sf_failure("create", &e);
                }
                continue;
            }
            Err(e) => return sf_failure("read", &e),
        };
        let id = rec["Id"].as_str().unwrap_or_default().to_string();
        let value = json!({"MailingCity": text(&b, "writer").unwrap_or("writer")});
        match sf
            .update("Contact", &id, &value, Some(&etag), deadline)
            .await
        {
            Ok(true) => return answer(StatusCode::OK, json!({"attempts": attempt + 1})),
            Ok(false) => {
                let wait = sf.dep.backoff(attempt, previous);
                previous = wait;
                if Instant::now() + wait >= deadline {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
            Err(e) => return sf_failure("write", &e),
        }
    }
    answer(
        StatusCode::CONFLICT,
        json!({"error": "still conflicting after every attempt"}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_become_soql_literals() {
        assert_eq!(
            soql_datetime("2027-03-05T08:30:00.000+0000"),
            "2027-03-05T08:30:00Z"
        );
    }
}
