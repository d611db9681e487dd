//! What a Bulk API 2.0 job does: an ingest job's rows run as single REST requests in the
//! background, a query job's SOQL runs at creation; and their results as CSV.

use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode};
use serde_json::{Map, Value};

use super::{csv_response, invalid_job, invalid_state, not_found, Job, Kind, State};
use crate::salesforce::rest::{dispatch, Call, Reply};
use crate::salesforce::schema::{FieldType, ObjectDef};
use crate::salesforce::soql::eval::{execute_on, Outcome};
use crate::salesforce::soql::{parser::parse, Selection};
use crate::salesforce::SfState;

/// Rows processed per hold of the org's lock.
const CHUNK: usize = 2000;

/// A job's results as CSV.
#[derive(Debug, Default)]
pub(crate) struct Results {
    successful: Vec<u8>,
    failed: Vec<u8>,
    unprocessed: Vec<u8>,
    /// A query job's header line and one line per record.
    header: Vec<u8>,
    lines: Vec<Vec<u8>>,
}

fn writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(vec![])
}

fn finish(w: csv::Writer<Vec<u8>>) -> Vec<u8> {
    w.into_inner().unwrap_or_default()
}

/// Start processing an ingest job whose upload is complete.
pub(crate) fn spawn_ingest(st: Arc<SfState>, id: String) {
    tokio::spawn(async move { run_ingest(&st, &id).await });
}

/// Wait while jobs are stalled (a fault); false if the job was aborted meanwhile.
async fn wait_while_stalled(st: &SfState, id: &str) -> bool {
    loop {
        {
            let bulk = st.bulk.lock();
            match bulk.jobs.get(id) {
                None => return false,
                Some(j) if j.state == State::Aborted => return false,
                Some(_) if !bulk.stalled => return true,
                Some(_) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Mark a job failed with a message.
fn fail(st: &SfState, id: &str, message: String) {
    let mut bulk = st.bulk.lock();
    if let Some(j) = bulk.jobs.get_mut(id) {
        j.state = State::Failed;
        j.error = Some(message);
        j.modstamp = st.clock.wall();
    }
}

/// An ingest job's upload, settings and caller, taken as it goes `InProgress`.
struct Work {
    upload: Vec<u8>,
    delimiter: u8,
    operation: String,
    object: String,
    external_id: Option<String>,
    ctx: crate::salesforce::middleware::AuthCtx,
    fail_every: Option<u64>,
}

fn take_work(st: &SfState, id: &str) -> Option<Work> {
    let mut bulk = st.bulk.lock();
    let fail_every = bulk.fail_every;
    let j = bulk.jobs.get_mut(id)?;
    j.state = State::InProgress;
    Some(Work {
        upload: std::mem::take(&mut j.upload),
        delimiter: j.delimiter.1,
        operation: j.operation.clone(),
        object: j.object.clone(),
        external_id: j.external_id.clone(),
        ctx: j.ctx.clone(),
        fail_every,
    })
}

async fn run_ingest(st: &SfState, id: &str) {
    if !wait_while_stalled(st, id).await {
        return;
    }
    let Some(work) = take_work(st, id) else {
        return;
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(work.delimiter)
        .from_reader(&work.upload[..]);
    let header = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return fail(st, id, format!("InvalidBatch : {e}")),
    };
    let rows: Result<Vec<csv::StringRecord>, _> = reader.records().collect();
    let rows = match rows {
        Ok(r) => r,
        Err(e) => return fail(st, id, format!("InvalidBatch : {e}")),
    };
    if !within_allowance(st, id, rows.len() as u64) {
        return;
    }
    let Some(obj) = st.org.read().schema.object_shared(&work.object) else {
        return fail(
            st,
            id,
            format!("InvalidBatch : unknown object {}", work.object),
        );
    };
    let mut out = Outcomes::new(&header);
    for (n, chunk) in rows.chunks(CHUNK).enumerate() {
        if !wait_while_stalled(st, id).await {
            out.unprocessed(&rows[n * CHUNK..]);
            break;
        }
        process_chunk(st, &work, &obj, &header, chunk, n * CHUNK, &mut out);
        tokio::task::yield_now().await;
    }
    complete(st, id, out);
}

/// Rows `first..` of a job under one hold of the org's lock.
fn process_chunk(
    st: &SfState,
    work: &Work,
    obj: &ObjectDef,
    header: &csv::StringRecord,
    chunk: &[csv::StringRecord],
    first: usize,
    out: &mut Outcomes,
) {
    let mut org = st.org.write();
    for (k, row) in chunk.iter().enumerate() {
        let count = (first + k + 1) as u64;
        let injected = work
            .fail_every
            .is_some_and(|e| e > 0 && count.is_multiple_of(e));
        let reply = if injected {
            Reply::from(crate::salesforce::errors::SfError::new(
                StatusCode::BAD_REQUEST,
                "UNABLE_TO_LOCK_ROW",
                "unable to obtain exclusive access to this record",
            ))
        } else {
            let (method, segs, body) = row_request(work, obj, header, row);
            dispatch(
                st,
                &mut org,
                &work.ctx,
                &Call::internal(method, segs, &body),
            )
        };
        out.record(work, header, row, &reply);
    }
}

/// Count the job's records against the daily allowance; fail it if they do not fit.
fn within_allowance(st: &SfState, id: &str, n: u64) -> bool {
    let mut bulk = st.bulk.lock();
    let limit = bulk.limit();
    if bulk.records_today + n > limit {
        drop(bulk);
        fail(
            st,
            id,
            format!(
                "ExceededQuota : the org's daily allowance of {limit} Bulk API records is spent"
            ),
        );
        return false;
    }
    bulk.records_today += n;
    true
}

fn complete(st: &SfState, id: &str, out: Outcomes) {
    let mut bulk = st.bulk.lock();
    let Some(j) = bulk.jobs.get_mut(id) else {
        return;
    };
    j.processed = out.processed;
    j.failed = out.failed;
    j.results.successful = finish(out.successful);
    j.results.failed = finish(out.failed_w);
    j.results.unprocessed = finish(out.unprocessed_w);
    if j.state != State::Aborted {
        j.state = State::JobComplete;
    }
    j.modstamp = st.clock.wall();
}

/// A CSV value as the JSON a REST body carries: `#N/A` is null, numbers and booleans typed.
fn typed(field: Option<&crate::salesforce::schema::FieldDef>, v: &str) -> Value {
    if v == "#N/A" {
        return Value::Null;
    }
    match field.map(|f| f.ftype) {
        Some(t) if t.is_numeric() => v
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(v.into()), Value::Number),
        Some(FieldType::Boolean) => match v.to_ascii_lowercase().as_str() {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            _ => Value::String(v.into()),
        },
        _ => Value::String(v.into()),
    }
}

/// The single REST request a row stands for.
fn row_request(
    work: &Work,
    obj: &ObjectDef,
    header: &csv::StringRecord,
    row: &csv::StringRecord,
) -> (Method, Vec<String>, Vec<u8>) {
    let mut fields = Map::new();
    let mut id = String::new();
    let mut ext = String::new();
    for (h, v) in header.iter().zip(row.iter()) {
        if h.eq_ignore_ascii_case("Id") {
            id = v.to_string();
        } else if work
            .external_id
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(h))
        {
            ext = v.to_string();
        } else if !v.is_empty() {
            fields.insert(h.to_string(), typed(obj.field(h), v));
        }
    }
    let body = serde_json::to_vec(&fields).unwrap_or_default();
    let s = |x: &str| x.to_string();
    match work.operation.as_str() {
        "insert" => (Method::POST, vec![s("sobjects"), obj.name.clone()], body),
        "update" => (
            Method::PATCH,
            vec![s("sobjects"), obj.name.clone(), id],
            body,
        ),
        "upsert" => {
            let field = work.external_id.clone().unwrap_or_default();
            let value = if field == "Id" { id } else { ext };
            (
                Method::PATCH,
                vec![s("sobjects"), obj.name.clone(), field, value],
                body,
            )
        }
        _ => (
            Method::DELETE,
            vec![s("sobjects"), obj.name.clone(), id],
            vec![],
        ),
    }
}

/// The results of an ingest job as they accumulate.
struct Outcomes {
    processed: u64,
    failed: u64,
    successful: csv::Writer<Vec<u8>>,
    failed_w: csv::Writer<Vec<u8>>,
    unprocessed_w: csv::Writer<Vec<u8>>,
}

impl Outcomes {
    fn new(header: &csv::StringRecord) -> Self {
        let with = |first: [&str; 2]| {
            let mut w = writer();
            let _ = w.write_record(first.iter().copied().chain(header.iter()));
            w
        };
        let mut unprocessed_w = writer();
        let _ = unprocessed_w.write_record(header.iter());
        Self {
            processed: 0,
            failed: 0,
            successful: with(["sf__Id", "sf__Created"]),
            failed_w: with(["sf__Id", "sf__Error"]),
            unprocessed_w,
        }
    }

    fn record(
        &mut self,
        work: &Work,
        header: &csv::StringRecord,
        row: &csv::StringRecord,
        reply: &Reply,
    ) {
        self.processed += 1;
        let given_id = (header.iter().zip(row.iter()))
            .find(|(h, _)| h.eq_ignore_ascii_case("Id"))
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        if reply.is_success() {
            let body = reply.body.as_ref();
            let id = (body.and_then(|b| b.get("id")).and_then(Value::as_str))
                .map_or(given_id, str::to_string);
            let created = reply.status == StatusCode::CREATED && work.operation != "delete";
            let first = [id, created.to_string()];
            let _ = self
                .successful
                .write_record(first.iter().map(String::as_str).chain(row.iter()));
        } else {
            self.failed += 1;
            let e = reply.body.as_ref().and_then(|b| b.get(0));
            let field = |k: &str| {
                e.and_then(|e| e.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or("")
            };
            let fields = (e.and_then(|e| e.get("fields")).and_then(Value::as_array))
                .map(|f| {
                    f.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let message = format!("{}:{}:{} --", field("errorCode"), field("message"), fields);
            let first = [given_id, message];
            let _ = self
                .failed_w
                .write_record(first.iter().map(String::as_str).chain(row.iter()));
        }
    }

    fn unprocessed(&mut self, rows: &[csv::StringRecord]) {
        for r in rows {
            let _ = self.unprocessed_w.write_record(r.iter());
        }
    }
}

/// A query job's SOQL, run at creation: the result lines are ready when it completes.
pub(crate) fn prepare_query(st: &Arc<SfState>, job: &mut Job, soql: &str) -> Result<(), Reply> {
    if !["query", "queryAll"].contains(&job.operation.as_str()) {
        return Err(invalid_job(format!("Invalid operation: {}", job.operation)));
    }
    let q = parse(soql).map_err(|e| Reply::from(e.into_sf_error(soql)))?;
    let Selection::Fields(paths) = &q.select else {
        return Err(invalid_job(
            "Aggregate queries are not supported by Bulk API 2.0",
        ));
    };
    if !q.children.is_empty() {
        return Err(invalid_job("Subqueries are not supported by Bulk API 2.0"));
    }
    let org = st.org.read();
    let today = st.clock.wall().date_naive();
    let v = format!("{}.0", job.version);
    let all = job.operation == "queryAll";
    let outcome = execute_on(&q, &org.schema, &org.data, &v, all, today)
        .map_err(|e| Reply::from(e.into_sf_error(soql)))?;
    let Outcome::Rows(rows) = outcome else {
        return Err(invalid_job(
            "COUNT() queries are not supported by Bulk API 2.0",
        ));
    };
    job.object = org
        .schema
        .object(&q.from)
        .map_or(q.from.clone(), |o| o.name.clone());
    drop(org);
    let names: Vec<String> = paths.iter().map(|p| p.text()).collect();
    let mut w = writer();
    let _ = w.write_record(&names);
    job.results.header = finish(w);
    job.results.lines = rows.iter().map(|r| csv_line(r, paths)).collect();
    job.processed = rows.len() as u64;
    job.state = State::UploadComplete;
    let (st, id) = (st.clone(), job.id.clone());
    tokio::spawn(async move {
        if wait_while_stalled(&st, &id).await {
            let mut bulk = st.bulk.lock();
            if let Some(j) = bulk.jobs.get_mut(&id).filter(|j| j.state != State::Aborted) {
                j.state = State::JobComplete;
                j.modstamp = st.clock.wall();
            }
        }
    });
    Ok(())
}

/// A row as a CSV line: each selected path's value, nulls empty.
fn csv_line(row: &Value, paths: &[crate::salesforce::soql::FieldPath]) -> Vec<u8> {
    let get = |m: &Value, key: &str| -> Value {
        (m.as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(key))))
        .map_or(Value::Null, |(_, v)| v.clone())
    };
    let values: Vec<String> = paths
        .iter()
        .map(|p| {
            let v = p.parts.iter().fold(row.clone(), |v, part| get(&v, part));
            match v {
                Value::Null => String::new(),
                Value::String(s) => s,
                other => other.to_string(),
            }
        })
        .collect();
    let mut w = writer();
    let _ = w.write_record(&values);
    finish(w)
}

/// `GET …/{id}/successfulResults | failedResults | unprocessedrecords | results`.
pub(crate) fn results(st: &SfState, id: &str, kind: Kind, part: &str, call: &Call<'_>) -> Response {
    let bulk = st.bulk.lock();
    let Some(job) = bulk.jobs.get(id).filter(|j| j.kind == kind) else {
        return not_found().into_response();
    };
    let done = job.state.finished();
    let r = &job.results;
    match (kind, part) {
        (Kind::Ingest, "unprocessedrecords") => csv_response(r.unprocessed.clone(), &[]),
        (Kind::Ingest, "successfulResults" | "failedResults") if !done => {
            invalid_state("Results are available once the job is complete").into_response()
        }
        (Kind::Ingest, "successfulResults") => csv_response(r.successful.clone(), &[]),
        (Kind::Ingest, "failedResults") => csv_response(r.failed.clone(), &[]),
        (Kind::Query, "results") if job.state != State::JobComplete => {
            invalid_state("Results are available once the job is JobComplete").into_response()
        }
        (Kind::Query, "results") => query_page(r, call),
        _ => not_found().into_response(),
    }
}

/// One page of a query job's results: `maxRecords` lines from `locator` on.
fn query_page(r: &Results, call: &Call<'_>) -> Response {
    let q = call.query.as_deref().unwrap_or("").as_bytes();
    let param = |k: &str| crate::salesforce::middleware::form_value(q, k);
    let from = param("locator")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(0);
    let max = param("maxRecords")
        .and_then(|m| m.parse::<usize>().ok())
        .filter(|m| *m > 0)
        .unwrap_or(usize::MAX);
    let from = from.min(r.lines.len());
    let to = from.saturating_add(max).min(r.lines.len());
    let mut body = r.header.clone();
    for line in &r.lines[from..to] {
        body.extend_from_slice(line);
    }
    let locator = if to < r.lines.len() {
        to.to_string()
    } else {
        "null".to_string()
    };
    csv_response(
        body,
        &[
            ("sforce-locator", locator),
            ("sforce-numberofrecords", (to - from).to_string()),
        ],
    )
}
