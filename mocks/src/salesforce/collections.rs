//! sObject Collections: `/composite/sobjects`. Create (`POST`), update by `Id` (`PATCH`) and
//! delete (`DELETE ?ids=`) of up to 200 records; upsert by an external id
//! (`PATCH /composite/sobjects/{Object}/{ExternalIdField}`, API 46.0 and later); retrieve of
//! up to 2,000 records of one object (`GET ?ids=&fields=` or `POST {"ids", "fields"}`). Each
//! record runs through the same dispatcher as a single request, on the org locked once for
//! the whole call; with `allOrNone` one failure rolls every record back.

use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::errors::SfError;
use super::middleware::{form_value, AuthCtx};
use super::rest::{dispatch, dispatch_read, Call, Reply};
use super::Org;
use super::SfState;

/// Records a create, update, upsert or delete call takes.
const MAX_WRITE: usize = 200;
/// Records a retrieve call takes.
const MAX_RETRIEVE: usize = 2000;
/// The first API version that serves upsert by external id in a collection.
const UPSERT_SINCE: u32 = 46;

/// One record of a collection call: the single request it stands for (method, path segments
/// under the data API, body, and the record id the answer names), or why it is refused
/// without being run.
type CollectionItem = Result<(Method, Vec<String>, Vec<u8>, Option<String>), SfError>;

/// `POST|PATCH|DELETE /composite/sobjects[/{Object}[/{ExternalIdField}]]`.
pub(crate) fn collection(
    st: &SfState,
    org: &mut Org,
    ctx: &AuthCtx,
    call: &Call<'_>,
    body: Option<&Value>,
) -> Reply {
    let tail: Vec<&str> = call.segs.iter().skip(2).map(String::as_str).collect();
    let items = match (call.method.as_str(), tail.as_slice()) {
        ("DELETE", []) => ids_param(call, MAX_WRITE).map(|ids| delete_items(org, call, ids)),
        ("POST" | "PATCH", []) => write_items(&call.method, body),
        ("POST", [object]) => return retrieve_posted(st, org, ctx, object, body),
        ("PATCH", [object, field]) if ctx.version >= UPSERT_SINCE => {
            upsert_items(object, field, body)
        }
        (m, []) => return SfError::method_not_allowed(m, "GET,POST,PATCH,DELETE").into(),
        (m, [_]) => return SfError::method_not_allowed(m, "GET,POST").into(),
        _ => return SfError::not_found().into(),
    };
    match items {
        Ok((all_or_none, items)) => run_items(st, org, ctx, all_or_none, items),
        Err(reply) => reply,
    }
}

/// More records than a collection call takes: Salesforce's `EXCEEDED_ID_LIMIT`.
fn over_limit(max: usize) -> Reply {
    SfError::new(
        StatusCode::BAD_REQUEST,
        "EXCEEDED_ID_LIMIT",
        format!("record limit reached. cannot submit more than {max} records into this call"),
    )
    .into()
}

/// The `ids` query parameter (at most `max`).
fn ids_param(call: &Call<'_>, max: usize) -> Result<Vec<String>, Reply> {
    let q = call.query.as_deref().unwrap_or("");
    let ids: Vec<String> = form_value(q.as_bytes(), "ids")
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if ids.len() > max {
        return Err(over_limit(max));
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
            Ok((
                Method::DELETE,
                vec!["sobjects".into(), obj, id.clone()],
                vec![],
                Some(id),
            ))
        })
        .collect();
    (aon, items)
}

/// The `records` and `allOrNone` of a write's body (at most [`MAX_WRITE`] records).
fn records_of(body: Option<&Value>) -> Result<(bool, &[Value]), Reply> {
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
    if records.len() > MAX_WRITE {
        return Err(over_limit(MAX_WRITE));
    }
    Ok((aon, records))
}

/// `POST` (create) or `PATCH` (update by `Id`) of `{"records": […], "allOrNone": …}`.
fn write_items(
    method: &Method,
    body: Option<&Value>,
) -> Result<(bool, Vec<CollectionItem>), Reply> {
    let (aon, records) = records_of(body)?;
    let items = records.iter().map(|rec| write_item(method, rec)).collect();
    Ok((aon, items))
}

/// A record's `attributes.type` and its fields without `attributes`.
fn typed_fields(rec: &Value) -> Result<(String, serde_json::Map<String, Value>), SfError> {
    let obj = rec
        .pointer("/attributes/type")
        .and_then(Value::as_str)
        .unwrap_or("");
    if obj.is_empty() {
        return Err(SfError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            "sObject type is required in attributes.type",
        ));
    }
    let mut fields = rec.as_object().cloned().unwrap_or_default();
    fields.remove("attributes");
    Ok((obj.to_string(), fields))
}

fn write_item(method: &Method, rec: &Value) -> CollectionItem {
    let (obj, mut fields) = typed_fields(rec)?;
    if *method == Method::POST {
        let body = serde_json::to_vec(&fields).unwrap_or_default();
        return Ok((Method::POST, vec!["sobjects".into(), obj], body, None));
    }
    let id = fields
        .remove("Id")
        .or_else(|| fields.remove("id"))
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let body = serde_json::to_vec(&fields).unwrap_or_default();
    Ok((
        Method::PATCH,
        vec!["sobjects".into(), obj, id.clone()],
        body,
        Some(id),
    ))
}

/// `PATCH /composite/sobjects/{Object}/{ExternalIdField}`: each record upserted by the value
/// of its external id field, as `PATCH /sobjects/{Object}/{Field}/{value}` would.
fn upsert_items(
    object: &str,
    field: &str,
    body: Option<&Value>,
) -> Result<(bool, Vec<CollectionItem>), Reply> {
    let (aon, records) = records_of(body)?;
    let items = records
        .iter()
        .map(|rec| upsert_item(object, field, rec))
        .collect();
    Ok((aon, items))
}

fn upsert_item(object: &str, field: &str, rec: &Value) -> CollectionItem {
    let (obj, mut fields) = typed_fields(rec)?;
    if obj != object {
        return Err(SfError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            format!("The sObject type {obj} doesn't match the sObject type {object} in the URI"),
        ));
    }
    let key = fields
        .keys()
        .find(|k| k.eq_ignore_ascii_case(field))
        .cloned();
    let value = match key.and_then(|k| fields.remove(&k)) {
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(v @ (Value::Number(_) | Value::Bool(_))) => v.to_string(),
        _ => {
            return Err(SfError::new(
                StatusCode::BAD_REQUEST,
                "MISSING_ARGUMENT",
                format!("{field} not specified"),
            ))
        }
    };
    let body = serde_json::to_vec(&fields).unwrap_or_default();
    let segs = vec!["sobjects".into(), obj, field.to_string(), value];
    Ok((Method::PATCH, segs, body, None))
}

/// Run a collection's records in order; with `allOrNone`, one failure rolls back all.
fn run_items(
    st: &SfState,
    org: &mut Org,
    ctx: &AuthCtx,
    all_or_none: bool,
    items: Vec<CollectionItem>,
) -> Reply {
    let snapshot = all_or_none.then(|| org.data.clone());
    let mut out = vec![];
    let mut any_failed = false;
    for item in items {
        let (reply, id) = match item {
            Err(refused) => (Reply::from(refused), None),
            Ok((method, segs, body, id)) => {
                let call = Call::internal(method, segs, &body);
                (dispatch(st, org, ctx, &call), id)
            }
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

fn rolled_back() -> Value {
    json!({"success": false, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "Record rolled back because not all records were valid and the request was using AllOrNone header", "fields": []}]})
}

/// A record's result: `{id, success, errors}`, with `created` where the single request said
/// it (an upsert's `UpsertResult`); errors keyed `statusCode`, as collections answer them.
fn result_of(reply: &Reply, id: Option<String>) -> Value {
    if reply.is_success() {
        let body = reply.body.as_ref();
        let id = body
            .and_then(|b| b.get("id"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or(id);
        let mut result = json!({"id": id, "success": true, "errors": []});
        if let Some(created) = body.and_then(|b| b.get("created")) {
            result["created"] = created.clone();
        }
        result
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

/// `GET /composite/sobjects/{Obj}?ids=…&fields=…`.
pub(crate) fn retrieve(
    st: &SfState,
    org: &Org,
    ctx: &AuthCtx,
    obj: &str,
    call: &Call<'_>,
) -> Reply {
    let ids = match ids_param(call, MAX_RETRIEVE) {
        Ok(ids) => ids,
        Err(reply) => return reply,
    };
    let q = call.query.as_deref().unwrap_or("");
    match form_value(q.as_bytes(), "fields") {
        Some(fields) => retrieve_ids(st, org, ctx, obj, ids, &fields),
        None => fields_required(),
    }
}

/// `POST /composite/sobjects/{Obj}` with `{"ids": […], "fields": […]}` (jsforce's
/// `retrieve([ids])`): the same answer as the `GET` form, for up to 2,000 ids.
fn retrieve_posted(
    st: &SfState,
    org: &Org,
    ctx: &AuthCtx,
    obj: &str,
    body: Option<&Value>,
) -> Reply {
    let strings = |key: &str| -> Option<Vec<String>> {
        body?
            .get(key)?
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let Some(ids) = strings("ids").filter(|ids| !ids.is_empty()) else {
        return SfError::new(
            StatusCode::BAD_REQUEST,
            "MISSING_ARGUMENT",
            "ids parameter is required",
        )
        .into();
    };
    if ids.len() > MAX_RETRIEVE {
        return over_limit(MAX_RETRIEVE);
    }
    match strings("fields").filter(|f| !f.is_empty()) {
        Some(fields) => retrieve_ids(st, org, ctx, obj, ids, &fields.join(",")),
        None => fields_required(),
    }
}

fn fields_required() -> Reply {
    SfError::new(
        StatusCode::BAD_REQUEST,
        "MALFORMED_QUERY",
        "fields parameter is required",
    )
    .into()
}

/// Each id read as `GET /sobjects/{Obj}/{id}?fields=…` would: the record, or `null` where
/// the id names none; an unknown field fails the whole call with its 400.
fn retrieve_ids(
    st: &SfState,
    org: &Org,
    ctx: &AuthCtx,
    obj: &str,
    ids: Vec<String>,
    fields: &str,
) -> Reply {
    let query = format!(
        "fields={}",
        percent_encoding::utf8_percent_encode(fields, percent_encoding::NON_ALPHANUMERIC)
    );
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let segs = vec!["sobjects".into(), obj.to_string(), id];
        let call = Call {
            query: Some(query.clone()),
            ..Call::internal(Method::GET, segs, &[])
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
