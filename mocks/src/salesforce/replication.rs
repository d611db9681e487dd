//! Polling for changes, as replication clients do: `GET /sobjects/{Object}/updated/?start=&end=`
//! (ids of records created or changed in the window) and `/deleted/` (ids and dates of
//! records deleted in it). Salesforce's rules: the window is at least a minute long, starts
//! at most 30 days ago, and is covered up to the last whole minute before now.

use chrono::{DateTime, Duration, DurationRound, Utc};
use http::StatusCode;
use serde_json::json;

use super::errors::SfError;
use super::middleware::form_value;
use super::rest::{Call, Reply};
use super::schema::ObjectDef;
use super::validate::{format_datetime, parse_datetime};
use super::{Org, SfState};

/// How far back a window may start.
const RETENTION_DAYS: i64 = 30;

fn replication_error(message: &str) -> Reply {
    SfError::new(StatusCode::BAD_REQUEST, "INVALID_REPLICATION_DATE", message).into()
}

fn minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::minutes(1)).unwrap_or(t)
}

/// The window a request asks for: `start`, and `end` capped at the last whole minute.
fn window(st: &SfState, call: &Call<'_>) -> Result<(DateTime<Utc>, DateTime<Utc>), Reply> {
    let q = call.query.as_deref().unwrap_or("").as_bytes();
    // A `+00:00` offset sent unescaped arrives as a space.
    let param = |k: &str| form_value(q, k).map(|v| v.replace(' ', "+"));
    let (Some(start), Some(end)) = (param("start"), param("end")) else {
        return Err(SfError::new(
            StatusCode::BAD_REQUEST,
            "MISSING_ARGUMENT",
            "start and end are required",
        )
        .into());
    };
    let (Some(start), Some(end)) = (parse_datetime(&start), parse_datetime(&end)) else {
        return Err(replication_error(
            "start and end must be ISO 8601 date-times",
        ));
    };
    let now = st.clock.wall();
    if end - start <= Duration::minutes(1) {
        return Err(replication_error(
            "startDate must chronologically precede endDate by more than one minute",
        ));
    }
    if start < now - Duration::days(RETENTION_DAYS) {
        return Err(replication_error(
            "startDate cannot be more than 30 days ago",
        ));
    }
    Ok((start, minute(end.min(now))))
}

/// `GET /sobjects/{Object}/updated/`.
pub(crate) fn updated(st: &SfState, org: &Org, obj: &ObjectDef, call: &Call<'_>) -> Reply {
    let (start, covered) = match window(st, call) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let mut ids: Vec<&str> = (org.data.records(&obj.name))
        .filter(|r| !r.deleted && r.modified >= start && r.modified < covered)
        .map(|r| r.id.as_str())
        .collect();
    ids.sort_unstable();
    Reply::json(
        StatusCode::OK,
        json!({"ids": ids, "latestDateCovered": format_datetime(covered)}),
    )
}

/// `GET /sobjects/{Object}/deleted/`.
pub(crate) fn deleted(st: &SfState, org: &Org, obj: &ObjectDef, call: &Call<'_>) -> Reply {
    let (start, covered) = match window(st, call) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let mut gone: Vec<(&str, DateTime<Utc>)> = (org.data.records(&obj.name))
        .filter(|r| r.deleted && r.modified >= start && r.modified < covered)
        .map(|r| (r.id.as_str(), r.modified))
        .collect();
    gone.sort_unstable();
    let records: Vec<_> = (gone.iter())
        .map(|(id, at)| json!({"id": id, "deletedDate": format_datetime(*at)}))
        .collect();
    let earliest = minute(st.clock.wall_at(std::time::Duration::ZERO));
    Reply::json(
        StatusCode::OK,
        json!({
            "deletedRecords": records,
            "earliestDateAvailable": format_datetime(earliest),
            "latestDateCovered": format_datetime(covered),
        }),
    )
}
