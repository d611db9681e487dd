//! Composite requests: `/composite` (up to 25 subrequests, `@{ref.field}` references,
//! `allOrNone`). Subrequests run through the same dispatcher as single requests, on the org
//! locked once for the whole call, and an `allOrNone` failure restores the org as it was.
//! sObject Collections are in `collections.rs`.

use std::collections::HashMap;

use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Map, Value};

use super::errors::SfError;
use super::middleware::{parse_version, AuthCtx};
use super::rest::{dispatch, Call, Reply};
use super::Org;
use super::SfState;

const MAX_SUBREQUESTS: usize = 25;

fn halted(message: &str) -> Value {
    json!({"body": [{"errorCode": "PROCESSING_HALTED", "message": message}], "httpHeaders": {}, "httpStatusCode": 400})
}

/// Why a subrequest's references could not be replaced.
enum Unresolved {
    /// A reference names nothing (Salesforce's message).
    Missing(String),
    /// The text grew past the request body limit.
    TooLarge,
}

/// Replace `@{ref.path}` in a string with values from earlier results, the text staying
/// within `limit` bytes (each reference may expand to a whole earlier result).
fn substitute(
    text: &str,
    results: &HashMap<String, Value>,
    limit: usize,
) -> Result<String, Unresolved> {
    let mut out = String::with_capacity(text.len().min(limit));
    let mut rest = text;
    while let Some(start) = rest.find("@{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(Unresolved::Missing(format!(
                "Invalid reference specified: {after}"
            )));
        };
        let expr = &after[..end];
        let value = resolve(expr, results).ok_or_else(|| {
            Unresolved::Missing(format!("Invalid reference specified. No value for {expr} found in {}. Provided referenceId ('{}') doesn't exist, or the referenced field was not returned by that request.", expr.split('.').next().unwrap_or(""), expr.split('.').next().unwrap_or("")))
        })?;
        match value {
            Value::String(s) => out.push_str(&s),
            other => out.push_str(&other.to_string()),
        }
        if out.len() > limit {
            return Err(Unresolved::TooLarge);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    if out.len() > limit {
        return Err(Unresolved::TooLarge);
    }
    Ok(out)
}

/// Follow `ref.a.b[0].c` into a result body.
fn resolve(expr: &str, results: &HashMap<String, Value>) -> Option<Value> {
    let mut parts = expr.split('.');
    let mut cur = results.get(parts.next()?)?.clone();
    for part in parts {
        let (name, index) = match part.split_once('[') {
            Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        cur = cur.get(name)?.clone();
        if let Some(i) = index {
            cur = cur.get(i)?.clone();
        }
    }
    (!cur.is_null()).then_some(cur)
}

/// `POST /composite`.
pub(crate) fn composite(st: &SfState, org: &mut Org, ctx: &AuthCtx, body: Option<&Value>) -> Reply {
    let Some(body) = body.and_then(Value::as_object) else {
        return SfError::json_parser("No content to map due to end-of-input at [line:1, column:0]")
            .into();
    };
    let all_or_none = body
        .get("allOrNone")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(subs) = body.get("compositeRequest").and_then(Value::as_array) else {
        return SfError::new(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "compositeRequest is required",
        )
        .into();
    };
    if subs.is_empty() || subs.len() > MAX_SUBREQUESTS {
        return SfError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            format!("Composite requests must have between 1 and {MAX_SUBREQUESTS} subrequests"),
        )
        .into();
    }
    let out = run_composite(st, org, ctx, subs, all_or_none);
    Reply::json(StatusCode::OK, json!({"compositeResponse": out}))
}

/// The subrequests of a composite request (or of one graph), in order; with `allOrNone`
/// the first failure rolls every earlier one back and halts the rest.
fn run_composite(
    st: &SfState,
    org: &mut Org,
    ctx: &AuthCtx,
    subs: &[Value],
    all_or_none: bool,
) -> Vec<Value> {
    let snapshot = all_or_none.then(|| org.data.clone());
    let mut results: HashMap<String, Value> = HashMap::new();
    let mut out: Vec<Value> = vec![];
    let mut failed_at: Option<usize> = None;
    for (i, sub) in subs.iter().enumerate() {
        let reference = sub
            .get("referenceId")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if failed_at.is_some() && all_or_none {
            let mut v = halted("The transaction was rolled back since another operation in the same transaction failed.");
            v["referenceId"] = Value::String(reference);
            out.push(v);
            continue;
        }
        let reply = run_sub(st, org, ctx, sub, &results);
        let mut entry = json!({
            "body": reply.body.clone().unwrap_or(Value::Null),
            "httpHeaders": reply.headers.iter().map(|(k, v)| (canonical_header(k), Value::String(v.clone()))).collect::<Map<_, _>>(),
            "httpStatusCode": reply.status.as_u16(),
            "referenceId": reference,
        });
        if reply.is_success() {
            if let Some(b) = &reply.body {
                results.insert(reference.clone(), b.clone());
            }
        } else if failed_at.is_none() {
            failed_at = Some(i);
        }
        if reply.body.is_none() {
            entry["body"] = Value::Null;
        }
        out.push(entry);
    }
    if let (Some(failed), Some(snapshot)) = (failed_at, snapshot) {
        org.data = snapshot;
        for entry in out.iter_mut().take(failed) {
            let reference = entry["referenceId"].clone();
            *entry = halted("The transaction was rolled back since another operation in the same transaction failed.");
            entry["referenceId"] = reference;
        }
    }
    out
}

/// Nodes a graph takes, and graphs a request takes.
const MAX_GRAPH_NODES: usize = 500;
const MAX_GRAPHS: usize = 75;

/// `POST /composite/graph`: graphs of up to 500 subrequests, each all or nothing (a failure
/// rolls its graph back, not the others), answered `{graphs: [{graphId, graphResponse,
/// isSuccessful}]}`.
pub(crate) fn graph(st: &SfState, org: &mut Org, ctx: &AuthCtx, body: Option<&Value>) -> Reply {
    let Some(graphs) = body.and_then(|b| b.get("graphs")).and_then(Value::as_array) else {
        return SfError::new(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "graphs is required",
        )
        .into();
    };
    if graphs.is_empty() || graphs.len() > MAX_GRAPHS {
        return SfError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            format!("A request must have between 1 and {MAX_GRAPHS} graphs"),
        )
        .into();
    }
    let mut out = vec![];
    for g in graphs {
        let id = g.get("graphId").cloned().unwrap_or(Value::Null);
        let subs = g.get("compositeRequest").and_then(Value::as_array);
        let Some(subs) = subs.filter(|s| !s.is_empty() && s.len() <= MAX_GRAPH_NODES) else {
            return SfError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_INPUT",
                format!("Each graph must have between 1 and {MAX_GRAPH_NODES} nodes"),
            )
            .into();
        };
        let responses = run_composite(st, org, ctx, subs, true);
        let ok = responses
            .iter()
            .all(|r| r["httpStatusCode"].as_u64().is_some_and(|c| c < 400));
        out.push(json!({"graphId": id, "graphResponse": {"compositeResponse": responses}, "isSuccessful": ok}));
    }
    Reply::json(StatusCode::OK, json!({"graphs": out}))
}

/// Subrequests a batch takes.
const MAX_BATCH: usize = 25;

/// `POST /composite/batch`: up to 25 independent subrequests (`url` from the version on,
/// `richInput` the body), each answered `{statusCode, result}`; with `haltOnError`, those
/// after a failure are not run (412 `BATCH_PROCESSING_HALTED`).
pub(crate) fn batch(st: &SfState, org: &mut Org, ctx: &AuthCtx, body: Option<&Value>) -> Reply {
    let Some(subs) = body
        .and_then(|b| b.get("batchRequests"))
        .and_then(Value::as_array)
    else {
        return SfError::new(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "batchRequests is required",
        )
        .into();
    };
    if subs.is_empty() || subs.len() > MAX_BATCH {
        return SfError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_BATCH_REQUEST",
            format!("A batch must have between 1 and {MAX_BATCH} subrequests"),
        )
        .into();
    }
    let halt = body
        .and_then(|b| b.get("haltOnError"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut failed = false;
    let mut results = vec![];
    for sub in subs {
        if failed && halt {
            results.push(json!({"statusCode": 412, "result": [{"errorCode": "BATCH_PROCESSING_HALTED", "message": "Batch processing halted per request"}]}));
            continue;
        }
        let url = sub.get("url").and_then(Value::as_str).unwrap_or("");
        let url = match url.trim_start_matches('/') {
            u if u.starts_with("services/data/") => format!("/{u}"),
            u => format!("/services/data/{u}"),
        };
        let as_composite =
            json!({"method": sub.get("method"), "url": url, "body": sub.get("richInput")});
        let reply = run_sub(st, org, ctx, &as_composite, &HashMap::new());
        failed |= !reply.is_success();
        results.push(json!({"statusCode": reply.status.as_u16(), "result": reply.body}));
    }
    Reply::json(
        StatusCode::OK,
        json!({"hasErrors": failed, "results": results}),
    )
}

fn canonical_header(name: &str) -> String {
    match name {
        "location" => "Location".into(),
        "etag" => "ETag".into(),
        "last-modified" => "Last-Modified".into(),
        other => other.into(),
    }
}

fn run_sub(
    st: &SfState,
    org: &mut Org,
    ctx: &AuthCtx,
    sub: &Value,
    results: &HashMap<String, Value>,
) -> Reply {
    let method = sub.get("method").and_then(Value::as_str).unwrap_or("GET");
    let Ok(method) = Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
        return SfError::method_not_allowed(method, "GET,POST,PATCH,DELETE").into();
    };
    let Some(url) = sub.get("url").and_then(Value::as_str) else {
        return SfError::new(StatusCode::BAD_REQUEST, "INVALID_FIELD", "url is required").into();
    };
    let limit = st.config.max_body_bytes;
    let url = match substitute(url, results, limit) {
        Ok(u) => u,
        Err(e) => return unresolved(e, limit),
    };
    let body_text = match sub.get("body") {
        None | Some(Value::Null) => String::new(),
        Some(b) => match substitute(&b.to_string(), results, limit) {
            Ok(t) => t,
            Err(e) => return unresolved(e, limit),
        },
    };
    let (path, query) = match url.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (url.clone(), None),
    };
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (version, rest) = match segs.as_slice() {
        ["services", "data", v, rest @ ..] => match parse_version(v) {
            Some(n) => (n, rest.to_vec()),
            None => return SfError::not_found().into(),
        },
        _ => return SfError::not_found().into(),
    };
    let mut headers = HeaderMap::new();
    if let Some(h) = sub.get("httpHeaders").and_then(Value::as_object) {
        for (k, v) in h {
            if let (Ok(name), Some(Ok(value))) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                v.as_str().map(http::HeaderValue::from_str),
            ) {
                headers.insert(name, value);
            }
        }
    }
    let sub_ctx = AuthCtx {
        version,
        ..ctx.clone()
    };
    let call = Call {
        method,
        segs: rest
            .iter()
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect(),
        query,
        headers: &headers,
        body: body_text.as_bytes(),
    };
    if matches!(call.segs.first().map(String::as_str), Some("composite")) {
        return SfError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "Composite requests cannot be nested",
        )
        .into();
    }
    dispatch(st, org, &sub_ctx, &call)
}

fn unresolved(e: Unresolved, limit: usize) -> Reply {
    match e {
        Unresolved::Missing(message) => processing_halted(message),
        Unresolved::TooLarge => SfError::body_too_large(limit).into(),
    }
}

fn processing_halted(message: String) -> Reply {
    let mut r = Reply::from(SfError::new(
        StatusCode::BAD_REQUEST,
        "PROCESSING_HALTED",
        message,
    ));
    r.error_code = Some("PROCESSING_HALTED");
    r
}
