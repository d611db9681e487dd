//! Bulk API 2.0 under `/services/data/vXX.X/jobs/`: ingest jobs (create, `PUT` CSV to
//! `batches`, `PATCH` to `UploadComplete` or `Aborted`, poll, `successfulResults`,
//! `failedResults`, `unprocessedrecords`, delete, list) and query jobs (create, poll,
//! `results` paged by `maxRecords` and `Sforce-Locator`, abort, delete, list).
//!
//! An ingest job is processed in the background once its upload is complete, a few
//! thousand rows per hold of the org's lock, each row as the single REST request it
//! stands for (so validation, triggers of the write log and faults of the store behave as
//! for REST). The job is `InProgress` meanwhile and `JobComplete` after. Controls on
//! [`crate::SalesforceHandle`] make a job stall in `InProgress`, fail every n-th record, or
//! find the org's daily Bulk record allowance spent. Jobs are bounded: the most recent
//! [`MAX_JOBS`] are kept.

mod process;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::{HeaderValue, Method, StatusCode};
use serde_json::{json, Value};

use super::errors::SfError;
use super::middleware::AuthCtx;
use super::rest::{Call, Reply};
use super::validate::format_datetime;
use super::SfState;

/// Jobs kept (older ones are forgotten, as Salesforce deletes jobs after seven days).
pub const MAX_JOBS: usize = 1000;
/// Salesforce's default daily allowance of records processed by Bulk API jobs.
pub const DAILY_RECORDS: u64 = 150_000_000;

/// A job's state, as Salesforce names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Open,
    UploadComplete,
    InProgress,
    JobComplete,
    Failed,
    Aborted,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Open => "Open",
            State::UploadComplete => "UploadComplete",
            State::InProgress => "InProgress",
            State::JobComplete => "JobComplete",
            State::Failed => "Failed",
            State::Aborted => "Aborted",
        }
    }
    fn finished(self) -> bool {
        matches!(self, State::JobComplete | State::Failed | State::Aborted)
    }
}

/// Ingest or query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Ingest,
    Query,
}

/// One job.
#[derive(Debug)]
pub(crate) struct Job {
    id: String,
    kind: Kind,
    operation: String,
    object: String,
    external_id: Option<String>,
    delimiter: (&'static str, u8),
    line_ending: &'static str,
    state: State,
    created_by: String,
    created: DateTime<Utc>,
    modstamp: DateTime<Utc>,
    version: u32,
    processed: u64,
    failed: u64,
    error: Option<String>,
    /// The CSV uploaded so far (ingest).
    upload: Vec<u8>,
    /// `successfulResults`, `failedResults` and `unprocessedrecords` (ingest), or the query's
    /// result rows with a header (query), as CSV lines.
    results: process::Results,
    ctx: AuthCtx,
}

/// The jobs of the org and the Bulk controls.
#[derive(Debug, Default)]
pub(crate) struct BulkJobs {
    jobs: HashMap<String, Job>,
    order: VecDeque<String>,
    next: u64,
    /// Records processed today, against the allowance.
    pub(crate) records_today: u64,
    /// The daily allowance (`None`: Salesforce's default).
    pub(crate) record_limit: Option<u64>,
    /// Jobs stay `InProgress` while set.
    pub(crate) stalled: bool,
    /// Every n-th record of an ingest job fails with `UNABLE_TO_LOCK_ROW`.
    pub(crate) fail_every: Option<u64>,
}

impl BulkJobs {
    fn add(&mut self, job: Job) {
        let id = job.id.clone();
        self.jobs.insert(id.clone(), job);
        self.order.push_back(id);
        while self.order.len() > MAX_JOBS {
            if let Some(old) = self.order.pop_front() {
                self.jobs.remove(&old);
            }
        }
    }
    fn limit(&self) -> u64 {
        self.record_limit.unwrap_or(DAILY_RECORDS)
    }
}

fn not_found() -> Reply {
    SfError::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
    .into()
}

fn invalid_job(message: impl Into<String>) -> Reply {
    SfError::new(StatusCode::BAD_REQUEST, "INVALIDJOB", message).into()
}

fn invalid_state(message: impl Into<String>) -> Reply {
    SfError::new(StatusCode::CONFLICT, "INVALIDJOBSTATE", message).into()
}

/// Every request under `/jobs/`.
pub(crate) fn handle(st: &Arc<SfState>, ctx: &AuthCtx, call: &Call<'_>) -> Response {
    let segs: Vec<&str> = call.segs.iter().skip(1).map(String::as_str).collect();
    let kind = match segs.first() {
        Some(&"ingest") => Kind::Ingest,
        Some(&"query") => Kind::Query,
        _ => return not_found().into_response(),
    };
    let m = call.method.clone();
    let reply = match (&m, &segs[1..]) {
        (&Method::POST, []) => create(st, ctx, kind, call),
        (&Method::GET, []) => list(st, kind),
        (&Method::GET, [id]) => {
            with_job(st, id, kind, |j| Reply::json(StatusCode::OK, info(j, true)))
        }
        (&Method::PATCH, [id]) => set_state(st, id, kind, call),
        (&Method::DELETE, [id]) => delete(st, id, kind),
        (&Method::PUT, [id, "batches"]) if kind == Kind::Ingest => upload(st, id, call),
        (&Method::GET, [id, part]) => return process::results(st, id, kind, part, call),
        _ => not_found(),
    };
    reply.into_response()
}

fn with_job(st: &SfState, id: &str, kind: Kind, f: impl FnOnce(&Job) -> Reply) -> Reply {
    let bulk = st.bulk.lock();
    match bulk.jobs.get(id).filter(|j| j.kind == kind) {
        Some(j) => f(j),
        None => not_found(),
    }
}

/// The job's `JobInfo`; `full` adds the counts `GET` answers with.
fn info(j: &Job, full: bool) -> Value {
    let mut v = json!({
        "id": j.id,
        "operation": j.operation,
        "object": j.object,
        "createdById": j.created_by,
        "createdDate": format_datetime(j.created),
        "systemModstamp": format_datetime(j.modstamp),
        "state": j.state.name(),
        "concurrencyMode": "Parallel",
        "contentType": "CSV",
        "apiVersion": f64::from(j.version),
        "lineEnding": j.line_ending,
        "columnDelimiter": j.delimiter.0,
    });
    if j.kind == Kind::Ingest {
        v["externalIdFieldName"] = json!(j.external_id);
        v["contentUrl"] = json!(format!(
            "services/data/v{}.0/jobs/ingest/{}/batches",
            j.version, j.id
        ));
    }
    if full {
        v["jobType"] = json!(if j.kind == Kind::Ingest {
            "V2Ingest"
        } else {
            "V2Query"
        });
        v["numberRecordsProcessed"] = json!(j.processed);
        v["retries"] = json!(0);
        v["totalProcessingTime"] = json!(0);
        if j.kind == Kind::Ingest {
            v["numberRecordsFailed"] = json!(j.failed);
            v["apiActiveProcessingTime"] = json!(0);
            v["apexProcessingTime"] = json!(0);
        }
        if let Some(e) = &j.error {
            v["errorMessage"] = json!(e);
        }
    }
    v
}

const DELIMITERS: [(&str, u8); 6] = [
    ("COMMA", b','),
    ("TAB", b'\t'),
    ("SEMICOLON", b';'),
    ("PIPE", b'|'),
    ("CARET", b'^'),
    ("BACKQUOTE", b'`'),
];

const INGEST_OPERATIONS: [&str; 5] = ["insert", "update", "upsert", "delete", "hardDelete"];

/// `POST /jobs/ingest` or `/jobs/query`.
fn create(st: &Arc<SfState>, ctx: &AuthCtx, kind: Kind, call: &Call<'_>) -> Reply {
    let Ok(body) = serde_json::from_slice::<Value>(call.body) else {
        return SfError::json_parser("The request body is not valid JSON").into();
    };
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let delimiter = match text("columnDelimiter") {
        None => DELIMITERS[0],
        Some(d) => match DELIMITERS.iter().find(|(n, _)| *n == d) {
            Some(found) => *found,
            None => return invalid_job(format!("Invalid columnDelimiter: {d}")),
        },
    };
    let line_ending = match text("lineEnding").as_deref() {
        None | Some("LF") => "LF",
        Some("CRLF") => "CRLF",
        Some(other) => return invalid_job(format!("Invalid lineEnding: {other}")),
    };
    let operation = text("operation").unwrap_or_default();
    let now = st.clock.wall();
    let mut bulk = st.bulk.lock();
    bulk.next += 1;
    let mut job = Job {
        id: super::ids::make_id("750", "000", bulk.next),
        kind,
        operation: operation.clone(),
        object: String::new(),
        external_id: text("externalIdFieldName"),
        delimiter,
        line_ending,
        state: State::Open,
        created_by: ctx.user_id.clone(),
        created: now,
        modstamp: now,
        version: ctx.version,
        processed: 0,
        failed: 0,
        error: None,
        upload: vec![],
        results: process::Results::default(),
        ctx: ctx.clone(),
    };
    let prepared = match kind {
        Kind::Ingest => prepare_ingest(st, &mut job, &text("object").unwrap_or_default()),
        Kind::Query => {
            drop(bulk);
            let prepared = process::prepare_query(st, &mut job, &text("query").unwrap_or_default());
            bulk = st.bulk.lock();
            prepared
        }
    };
    if let Err(r) = prepared {
        return r;
    }
    let v = info(&job, false);
    bulk.add(job);
    Reply::json(StatusCode::OK, v)
}

fn prepare_ingest(st: &SfState, job: &mut Job, object: &str) -> Result<(), Reply> {
    if !INGEST_OPERATIONS.contains(&job.operation.as_str()) {
        return Err(invalid_job(format!("Invalid operation: {}", job.operation)));
    }
    let org = st.org.read();
    let Some(obj) = org.schema.object(object) else {
        return Err(invalid_job(format!(
            "sObject type '{object}' is not supported."
        )));
    };
    job.object = obj.name.clone();
    if job.operation == "upsert" {
        let Some(ext) = job.external_id.as_deref() else {
            return Err(invalid_job("externalIdFieldName is required for upsert"));
        };
        let Some(f) = obj.field(ext).filter(|f| f.external_id || f.name == "Id") else {
            return Err(invalid_job(format!(
                "Field name provided, {ext} does not match an External ID for {}",
                obj.name
            )));
        };
        job.external_id = Some(f.name.clone());
    }
    Ok(())
}

/// `GET /jobs/ingest` or `/jobs/query`: the jobs, newest last.
fn list(st: &SfState, kind: Kind) -> Reply {
    let bulk = st.bulk.lock();
    let records: Vec<Value> = (bulk.order.iter())
        .filter_map(|id| bulk.jobs.get(id))
        .filter(|j| j.kind == kind)
        .map(|j| info(j, false))
        .collect();
    Reply::json(
        StatusCode::OK,
        json!({"done": true, "records": records, "nextRecordsUrl": null}),
    )
}

/// `PUT /jobs/ingest/{id}/batches`: CSV appended while the job is `Open`.
fn upload(st: &SfState, id: &str, call: &Call<'_>) -> Reply {
    let csv_type = (call.headers.get(http::header::CONTENT_TYPE))
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/csv"));
    if !csv_type {
        return SfError::new(
            StatusCode::BAD_REQUEST,
            "INVALIDCONTENTTYPE",
            "Content-Type must be text/csv",
        )
        .into();
    }
    let mut bulk = st.bulk.lock();
    let Some(job) = bulk.jobs.get_mut(id).filter(|j| j.kind == Kind::Ingest) else {
        return not_found();
    };
    if job.state != State::Open {
        return invalid_state("Data can only be uploaded to a job in the Open state");
    }
    if !job.upload.is_empty() {
        return invalid_state("Only one upload of data is allowed per job");
    }
    job.upload = call.body.to_vec();
    Reply::empty(StatusCode::CREATED)
}

/// `PATCH /jobs/…/{id}` with `{"state": "UploadComplete" | "Aborted"}`.
fn set_state(st: &Arc<SfState>, id: &str, kind: Kind, call: &Call<'_>) -> Reply {
    let wanted = serde_json::from_slice::<Value>(call.body)
        .ok()
        .and_then(|b| b.get("state").and_then(Value::as_str).map(str::to_string));
    let mut bulk = st.bulk.lock();
    let Some(job) = bulk.jobs.get_mut(id).filter(|j| j.kind == kind) else {
        return not_found();
    };
    match wanted.as_deref() {
        Some("Aborted") if !job.state.finished() => job.state = State::Aborted,
        Some("UploadComplete") if kind == Kind::Ingest && job.state == State::Open => {
            job.state = State::UploadComplete;
            process::spawn_ingest(st.clone(), id.to_string());
        }
        Some(s) => {
            return invalid_state(format!(
                "Cannot change the state of a job from {} to {s}",
                job.state.name()
            ))
        }
        None => return invalid_job("state is required"),
    }
    job.modstamp = st.clock.wall();
    Reply::json(StatusCode::OK, info(job, false))
}

/// `DELETE /jobs/…/{id}` (not while it is being uploaded to or processed).
fn delete(st: &SfState, id: &str, kind: Kind) -> Reply {
    let mut bulk = st.bulk.lock();
    let Some(job) = bulk.jobs.get(id).filter(|j| j.kind == kind) else {
        return not_found();
    };
    let uploaded = kind == Kind::Ingest && job.state == State::UploadComplete;
    if !(job.state.finished() || uploaded) {
        return invalid_state(
            "A job can be deleted once it is UploadComplete, JobComplete, Aborted or Failed",
        );
    }
    bulk.jobs.remove(id);
    bulk.order.retain(|k| k != id);
    Reply::empty(StatusCode::NO_CONTENT)
}

/// A CSV answer with the headers Bulk API 2.0 sets.
fn csv_response(body: Vec<u8>, extra: &[(&'static str, String)]) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv"),
    );
    for (k, v) in extra {
        if let Ok(v) = HeaderValue::from_str(v) {
            r.headers_mut().insert(*k, v);
        }
    }
    r
}
