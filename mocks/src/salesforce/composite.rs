//! Composite requests: `/composite` (up to 25 subrequests, `@{ref.field}` references,
//! `allOrNone`) and `/composite/sobjects` collections (up to 200 records). Subrequests run
//! through the same dispatcher as single requests, on the org locked once for the whole call,
//! and an `allOrNone` failure restores the org as it was.

use std::collections::HashMap;

use http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Map, Value};

use super::errors::SfError;
use super::middleware::{form_value, parse_version, AuthCtx};
use super::rest::{dispatch, dispatch_read, Call, Reply};
use super::Org;
use super::SfState;

const MAX_SUBREQUESTS: usize = 25;
const MAX_COLLECTION: usize = 200;

/// One subrequest of a collection call: method, path segments, body, and the record id.
type CollectionItem = (Method, Vec<String>, Vec<u8>, Option<String>);

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
    Reply::json(StatusCode::OK, json!({"compositeResponse": out}))
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

fn rolled_back() -> Value {
    json!({"success": false, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all records were valid and the request was using AllOrNone header", "fields": []}]})
}

fn result_of(reply: &Reply, id: Option<String>) -> Value {
    if reply.is_success() {
        let id = reply
            .body
            .as_ref()
            .and_then(|b| b.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(id);
        json!({"id": id, "success": true, "errors": []})
    } else {
        let errors: Vec<Value> = reply
            .body
            .as_ref()
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|e| json!({"statusCode": e["errorCode"], "message": e["message"], "fields": e.get("fields").cloned().unwrap_or(json!([]))}))
                    .collect()
            })
            .unwrap_or_default();
        json!({"success": false, "errors": errors})
    }
}

/// `POST|PATCH|DELETE /composite/sobjects`.
pub(crate) fn collection(
    st: &SfState,
    org: &mut Org,
    ctx: &AuthCtx,
    call: &Call<'_>,
    body: Option<&Value>,
) -> Reply {
    let items = match call.method.as_str() {
        "DELETE" => ids_param(call).map(|ids| delete_items(org, call, ids)),
        "POST" | "PATCH" => write_items(&call.method, body),
        m => return SfError::method_not_allowed(m, "GET,POST,PATCH,DELETE").into(),
    };
    match items {
        Ok((all_or_none, items)) => run_items(st, org, ctx, all_or_none, items),
        Err(reply) => reply,
    }
}

/// More records than a collection call takes: Salesforce's `EXCEEDED_ID_LIMIT`.
fn over_limit() -> Reply {
    SfError::new(
        StatusCode::BAD_REQUEST,
        "EXCEEDED_ID_LIMIT",
        format!(
            "record limit reached. cannot submit more than {MAX_COLLECTION} records into this call"
        ),
    )
    .into()
}

/// The `ids` query parameter (at most [`MAX_COLLECTION`]).
fn ids_param(call: &Call<'_>) -> Result<Vec<String>, Reply> {
    let q = call.query.as_deref().unwrap_or("");
    let ids: Vec<String> = form_value(q.as_bytes(), "ids")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if ids.len() > MAX_COLLECTION {
        return Err(over_limit());
    }
    Ok(ids)
}

/// `DELETE ?ids=…&allOrNone=…`: one delete per id, on the object its key prefix names.
fn delete_items(org: &Org, call: &Call<'_>, ids: Vec<String>) -> (bool, Vec<CollectionItem>) {
    let q = call.query.as_deref().unwrap_or("");
    let aon = form_value(q.as_bytes(), "allOrNone").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let items = ids
        .into_iter()
        .map(|id| {
            let obj = super::ids::normalize(&id)
                .and_then(|n| org.schema.object_for_id(&n).map(|o| o.name.clone()))
                .unwrap_or_else(|| "_".into());
            (
                Method::DELETE,
                vec!["sobjects".into(), obj, id.clone()],
                vec![],
                Some(id),
            )
        })
        .collect();
    (aon, items)
}

/// `POST` (create) or `PATCH` (update by `Id`) of `{"records": […], "allOrNone": …}`.
fn write_items(
    method: &Method,
    body: Option<&Value>,
) -> Result<(bool, Vec<CollectionItem>), Reply> {
    let Some(b) = body.and_then(Value::as_object) else {
        return Err(SfError::json_parser(
            "No content to map due to end-of-input at [line:1, column:0]",
        )
        .into());
    };
    let aon = b.get("allOrNone").and_then(Value::as_bool).unwrap_or(false);
    let records = b
        .get("records")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if records.len() > MAX_COLLECTION {
        return Err(over_limit());
    }
    let items = records.iter().map(|rec| write_item(method, rec)).collect();
    Ok((aon, items))
}

fn write_item(method: &Method, rec: &Value) -> CollectionItem {
    let obj = rec
        .pointer("/attributes/type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut fields = rec.as_object().cloned().unwrap_or_default();
    fields.remove("attributes");
    if *method == Method::POST {
        let body = serde_json::to_vec(&fields).unwrap_or_default();
        return (Method::POST, vec!["sobjects".into(), obj], body, None);
    }
    let id = fields
        .remove("Id")
        .or_else(|| fields.remove("id"))
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let body = serde_json::to_vec(&fields).unwrap_or_default();
    (
        Method::PATCH,
        vec!["sobjects".into(), obj, id.clone()],
        body,
        Some(id),
    )
}

/// Run a collection's subrequests in order; with `allOrNone`, one failure rolls back all.
fn run_items(
    st: &SfState,
    org: &mut Org,
    ctx: &AuthCtx,
    all_or_none: bool,
    items: Vec<CollectionItem>,
) -> Reply {
    let empty = HeaderMap::new();
    let snapshot = all_or_none.then(|| org.data.clone());
    let mut out = vec![];
    let mut any_failed = false;
    for (method, segs, body, id) in items {
        let reply = if segs.get(1).is_some_and(|o| o.is_empty()) {
            Reply::from(SfError::new(
                StatusCode::BAD_REQUEST,
                "INVALID_TYPE",
                "sObject type is required in attributes.type",
            ))
        } else {
            let call = Call {
                method,
                segs,
                query: None,
                headers: &empty,
                body: &body,
            };
            dispatch(st, org, ctx, &call)
        };
        any_failed |= !reply.is_success();
        out.push((reply.is_success(), result_of(&reply, id)));
    }
    let results: Vec<Value> = if let (true, Some(snapshot)) = (any_failed, snapshot) {
        org.data = snapshot;
        out.into_iter()
            .map(|(ok, r)| if ok { rolled_back() } else { r })
            .collect()
    } else {
        out.into_iter().map(|(_, r)| r).collect()
    };
    Reply::json(StatusCode::OK, Value::Array(results))
}

/// `GET /composite/sobjects/{Obj}?ids=…&fields=…`.
pub(crate) fn retrieve(
    st: &SfState,
    org: &Org,
    ctx: &AuthCtx,
    obj: &str,
    call: &Call<'_>,
) -> Reply {
    let ids = match ids_param(call) {
        Ok(ids) => ids,
        Err(reply) => return reply,
    };
    let q = call.query.as_deref().unwrap_or("");
    let Some(fields) = form_value(q.as_bytes(), "fields") else {
        return SfError::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "fields parameter is required",
        )
        .into();
    };
    let empty = HeaderMap::new();
    let query = format!(
        "fields={}",
        percent_encoding::utf8_percent_encode(&fields, percent_encoding::NON_ALPHANUMERIC)
    );
    let mut out = vec![];
    for id in ids {
        let call = Call {
            method: Method::GET,
            segs: vec!["sobjects".into(), obj.to_string(), id],
            query: Some(query.clone()),
            headers: &empty,
            body: &[],
        };
        let reply = dispatch_read(st, org, ctx, &call);
        if reply.status == StatusCode::BAD_REQUEST {
            return reply;
        }
        out.push(if reply.is_success() {
            reply.body.unwrap_or(Value::Null)
        } else {
            Value::Null
        });
    }
    Reply::json(StatusCode::OK, Value::Array(out))
}
