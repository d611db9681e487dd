//! The REST data API under `/services/data`: versions, resources, limits, sObject metadata,
//! record CRUD and upsert with conditional requests, and SOQL queries with pagination.
//!
//! One handler takes every `/services/data/vXX.X/...` request and dispatches on the path
//! segments, so composite requests can run the same code on the same locked org.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Extension, Router};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{json, Map, Value};

use super::config::SalesforceConfig;
use super::errors::{ErrorCode, SfError};
use super::middleware::{form_value, AuthCtx};
use super::schema::ObjectDef;
use super::soql::eval::{execute_on, Outcome};
use super::soql::parser::parse;
use super::store::{Actor, OrgData, Precondition, Record, UpsertOutcome};
use super::validate::{validate_body, WriteMode};
use super::{ids, Org, SfState};

pub(crate) fn routes() -> Router<Arc<SfState>> {
    Router::new()
        .route("/services/data", get(versions))
        .route("/services/data/{version}", any(data_api_root))
        .route("/services/data/{version}/{*rest}", any(data_api))
}

/// A response produced by the dispatcher, before it becomes HTTP (composite embeds it).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Option<Value>,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) error_code: Option<&'static str>,
}

impl Reply {
    pub(crate) fn json(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
            headers: vec![],
            error_code: None,
        }
    }
    pub(crate) fn empty(status: StatusCode) -> Self {
        Self {
            status,
            body: None,
            headers: vec![],
            error_code: None,
        }
    }
    fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
    pub(crate) fn is_success(&self) -> bool {
        self.status.is_success()
    }
}

impl From<SfError> for Reply {
    fn from(e: SfError) -> Self {
        Self {
            status: e.status,
            body: Some(json!([e.to_json()])),
            headers: vec![],
            error_code: Some(e.code),
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut resp = match &self.body {
            Some(b) => (self.status, serde_json::to_vec(b).unwrap_or_default()).into_response(),
            None => self.status.into_response(),
        };
        if self.body.is_some() {
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json;charset=UTF-8"),
            );
        }
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        if let Some(code) = self.error_code {
            resp.extensions_mut().insert(ErrorCode(code));
        }
        resp
    }
}

/// Open query cursors (snapshots of result rows), oldest evicted first.
#[derive(Debug, Default)]
pub(crate) struct Cursors {
    /// A query's rows and the page size they are handed out in.
    open: HashMap<String, (Arc<Vec<Value>>, usize)>,
    order: VecDeque<String>,
    next: u64,
}

const MAX_CURSORS: usize = 50;

impl Cursors {
    fn open(&mut self, rows: Arc<Vec<Value>>, page: usize, org_seed: u64) -> String {
        self.next += 1;
        let locator = ids::make_id(
            "01g",
            "000",
            org_seed.wrapping_mul(1_000_003) % 1_000_000 + self.next,
        )[..15]
            .to_string();
        self.open.insert(locator.clone(), (rows, page));
        self.order.push_back(locator.clone());
        while self.order.len() > MAX_CURSORS {
            if let Some(old) = self.order.pop_front() {
                self.open.remove(&old);
            }
        }
        locator
    }
    fn get(&self, locator: &str) -> Option<(Arc<Vec<Value>>, usize)> {
        self.open.get(locator).cloned()
    }
}

async fn versions(State(st): State<Arc<SfState>>) -> Response {
    let lo = st.retired_below.load(Ordering::Relaxed) as u32;
    let hi = st.max_version.load(Ordering::Relaxed) as u32;
    let list: Vec<Value> = (lo..=hi)
        .map(|v| {
            json!({
                "label": SalesforceConfig::release_label(v),
                "url": format!("/services/data/v{v}.0"),
                "version": format!("{v}.0"),
            })
        })
        .collect();
    Reply::json(StatusCode::OK, Value::Array(list)).into_response()
}

/// What a request carries besides its path, as the dispatcher needs it.
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    pub(crate) segs: Vec<String>,
    pub(crate) query: Option<String>,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a [u8],
}

/// No headers: what the mock's own calls (Bulk rows, collections, trees) carry.
static NO_HEADERS: std::sync::LazyLock<HeaderMap> = std::sync::LazyLock::new(HeaderMap::new);

impl<'a> Call<'a> {
    /// A call the mock makes itself on a caller's behalf: no query, no headers.
    pub(crate) fn internal(method: Method, segs: Vec<String>, body: &'a [u8]) -> Self {
        Call {
            method,
            segs,
            query: None,
            headers: &NO_HEADERS,
            body,
        }
    }
}

async fn data_api_root(
    State(st): State<Arc<SfState>>,
    method: Method,
    Path(_version): Path<String>,
    ctx: Option<Extension<AuthCtx>>,
) -> Response {
    let Some(Extension(ctx)) = ctx else {
        return SfError::invalid_session().into_response();
    };
    if method != Method::GET && method != Method::HEAD {
        return SfError::method_not_allowed(method.as_str(), "GET,HEAD").into_response();
    }
    let v = format!("v{}.0", ctx.version);
    let base = format!("/services/data/{v}");
    let mut body = Map::new();
    for name in [
        "tooling",
        "metadata",
        "eclair",
        "folders",
        "prechatForms",
        "tabs",
        "appMenu",
        "quickActions",
        "theme",
        "search",
        "recent",
        "process",
        "analytics",
        "commerce",
        "parameterizedSearch",
    ] {
        body.insert(name.into(), Value::String(format!("{base}/{name}")));
    }
    for name in [
        "query",
        "queryAll",
        "sobjects",
        "limits",
        "composite",
        "jobs",
    ] {
        body.insert(name.into(), Value::String(format!("{base}/{name}")));
    }
    let _ = st;
    Reply::json(StatusCode::OK, Value::Object(body)).into_response()
}

async fn data_api(
    State(st): State<Arc<SfState>>,
    method: Method,
    Path((_version, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ctx: Option<Extension<AuthCtx>>,
    body: Bytes,
) -> Response {
    let Some(Extension(ctx)) = ctx else {
        return SfError::invalid_session().into_response();
    };
    let call = Call {
        method,
        segs: rest
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect(),
        query,
        headers: &headers,
        body: &body,
    };
    if call.segs.first().map(String::as_str) == Some("jobs") {
        return super::bulk::handle(&st, &ctx, &call);
    }
    let reply = if call.method == Method::GET || call.method == Method::HEAD {
        let org = st.org.read();
        dispatch_read(&st, &org, &ctx, &call)
    } else {
        let mut org = st.org.write();
        dispatch(&st, &mut org, &ctx, &call)
    };
    let head = call.method == Method::HEAD;
    let mut resp = reply.into_response();
    if head {
        *resp.body_mut() = axum::body::Body::empty();
    }
    resp
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn actor(st: &SfState, ctx: &AuthCtx) -> Actor {
    Actor {
        user_id: ctx.user_id.clone(),
        username: Some(ctx.username.clone()),
        now: st.clock.wall(),
        at_us: st.now_us(),
    }
}

/// Requests that only read.
pub(crate) fn dispatch_read(st: &SfState, org: &Org, ctx: &AuthCtx, call: &Call<'_>) -> Reply {
    let segs: Vec<&str> = call.segs.iter().map(String::as_str).collect();
    let v = format!("{}.0", ctx.version);
    let allowed_get = |allowed: &str| -> Option<Reply> {
        (call.method != Method::GET && call.method != Method::HEAD)
            .then(|| SfError::method_not_allowed(call.method.as_str(), allowed).into())
    };
    match segs.as_slice() {
        ["limits"] => allowed_get("GET,HEAD").unwrap_or_else(|| limits(st)),
        ["sobjects"] => allowed_get("GET,HEAD").unwrap_or_else(|| sobjects_list(org, &v)),
        ["sobjects", o] => match org.schema.object(o) {
            None => SfError::not_found().into(),
            Some(obj) => Reply::json(
                StatusCode::OK,
                json!({"objectDescribe": object_summary(obj, &v), "recentItems": []}),
            ),
        },
        ["sobjects", o, "describe"] => match org.schema.object(o) {
            None => SfError::not_found().into(),
            Some(obj) => describe(org, obj, &v),
        },
        ["sobjects", o, "updated"] => match org.schema.object(o) {
            None => SfError::not_found().into(),
            Some(obj) => super::replication::updated(st, org, obj, call),
        },
        ["sobjects", o, "deleted"] => match org.schema.object(o) {
            None => SfError::not_found().into(),
            Some(obj) => super::replication::deleted(st, org, obj, call),
        },
        ["sobjects", o, id] => match org.schema.object(o) {
            None => SfError::not_found().into(),
            Some(obj) => get_record(org, obj, id, call, &v),
        },
        ["sobjects", o, field, value] => match org.schema.object(o) {
            None => SfError::not_found().into(),
            Some(obj) => match resolve_external(org, obj, field, value, &v) {
                Ok(id) => get_record(org, obj, &id, call, &v),
                Err(r) => r,
            },
        },
        ["query"] | ["queryAll"] => run_query(st, org, call, &v, segs[0] == "queryAll"),
        ["search"] => {
            let q = call.query.as_deref().unwrap_or("").as_bytes();
            let today = st.clock.wall().date_naive();
            match form_value(q, "q") {
                None => SfError::new(
                    StatusCode::BAD_REQUEST,
                    "MALFORMED_SEARCH",
                    "No search term found. The search term must be enclosed in braces.",
                )
                .into(),
                Some(q) => search_reply(super::sosl::search(org, &q, &v, today)),
            }
        }
        ["parameterizedSearch"] => {
            let params = search_params(call.query.as_deref().unwrap_or(""));
            let today = st.clock.wall().date_naive();
            search_reply(super::sosl::parameterized(org, &params, &v, today))
        }
        ["query", locator] | ["queryAll", locator] => next_page(st, locator, &v, segs[0]),
        ["composite", "sobjects", o] => super::collections::retrieve(st, org, ctx, o, call),
        _ => SfError::not_found().into(),
    }
}

/// Every request; writes need the org mutably.
pub(crate) fn dispatch(st: &SfState, org: &mut Org, ctx: &AuthCtx, call: &Call<'_>) -> Reply {
    if call.method == Method::GET || call.method == Method::HEAD {
        return dispatch_read(st, org, ctx, call);
    }
    let segs: Vec<&str> = call.segs.iter().map(String::as_str).collect();
    let v = format!("{}.0", ctx.version);
    let body = match parse_body(call) {
        Ok(b) => b,
        Err(e) => return e.into(),
    };
    match (call.method.as_str(), segs.as_slice()) {
        ("POST", ["sobjects", o]) | ("POST", ["sobjects", o, "Id"]) => {
            with_object(org, o, |org, obj| {
                create(st, org, obj, ctx, body.as_ref(), &v)
            })
        }
        ("PATCH", ["sobjects", o, id]) => with_object(org, o, |org, obj| {
            update(st, org, obj, ctx, id, body.as_ref(), call)
        }),
        ("DELETE", ["sobjects", o, id]) => {
            with_object(org, o, |org, obj| delete(st, org, obj, ctx, id))
        }
        ("PATCH" | "POST", ["sobjects", o, field, value]) => with_object(org, o, |org, obj| {
            upsert(st, org, obj, ctx, field, value, body.as_ref(), &v, call)
        }),
        ("DELETE", ["sobjects", o, field, value]) => with_object(org, o, |org, obj| {
            match resolve_external(org, obj, field, value, &v) {
                Ok(id) => delete(st, org, obj, ctx, &id),
                Err(r) => r,
            }
        }),
        ("POST", ["parameterizedSearch"]) => {
            let today = st.clock.wall().date_naive();
            let params = body.clone().unwrap_or(Value::Null);
            search_reply(super::sosl::parameterized(org, &params, &v, today))
        }
        ("POST", ["composite"]) => super::composite::composite(st, org, ctx, body.as_ref()),
        ("POST", ["composite", "batch"]) => super::composite::batch(st, org, ctx, body.as_ref()),
        ("POST", ["composite", "graph"]) => super::composite::graph(st, org, ctx, body.as_ref()),
        ("POST", ["composite", "tree", o]) => super::tree::tree(st, org, ctx, o, body.as_ref()),
        (_, ["composite", "sobjects", ..]) => {
            super::collections::collection(st, org, ctx, call, body.as_ref())
        }
        (m, ["sobjects", _]) => SfError::method_not_allowed(m, "GET,HEAD,POST").into(),
        (m, ["sobjects", _, _]) => SfError::method_not_allowed(m, "GET,HEAD,PATCH,DELETE").into(),
        (m, ["query" | "queryAll" | "limits" | "sobjects", ..]) => {
            SfError::method_not_allowed(m, "GET,HEAD").into()
        }
        _ => SfError::not_found().into(),
    }
}

fn with_object(org: &mut Org, name: &str, f: impl FnOnce(&mut Org, &ObjectDef) -> Reply) -> Reply {
    match org.schema.object_shared(name) {
        None => SfError::not_found().into(),
        Some(obj) => f(org, &obj),
    }
}

/// Parse a JSON body (absent for an empty body), checking the content type.
pub(crate) fn parse_body(call: &Call<'_>) -> Result<Option<Value>, SfError> {
    if call.body.is_empty() {
        return Ok(None);
    }
    if let Some(ct) = call
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !(mime.is_empty() || mime == "application/json" || mime.ends_with("+json")) {
            return Err(SfError::unsupported_media_type(&mime));
        }
    }
    serde_json::from_slice(call.body)
        .map(Some)
        .map_err(json_error)
}

/// A serde_json error in Salesforce's JSON_PARSER_ERROR wording.
pub(crate) fn json_error(e: serde_json::Error) -> SfError {
    let what = e.to_string();
    let what = what.split(" at line ").next().unwrap_or(&what).to_string();
    SfError::json_parser(format!(
        "{what} at [line:{}, column:{}]",
        e.line(),
        e.column()
    ))
}

fn object_body<'a>(
    body: Option<&'a Value>,
    obj: &ObjectDef,
) -> Result<&'a Map<String, Value>, SfError> {
    match body {
        Some(Value::Object(m)) => Ok(m),
        Some(other) => Err(SfError::json_parser(format!(
            "Cannot deserialize instance of {} from {} value [line:1, column:1]",
            obj.name,
            match other {
                Value::Array(_) => "START_ARRAY",
                Value::String(_) => "VALUE_STRING",
                Value::Number(_) => "VALUE_NUMBER_INT",
                Value::Bool(_) => "VALUE_TRUE",
                _ => "VALUE_NULL",
            }
        ))),
        None => Err(SfError::json_parser(
            "No content to map due to end-of-input at [line:1, column:0]",
        )),
    }
}

fn limits(st: &SfState) -> Reply {
    let used = st.api_used.load(Ordering::Relaxed);
    let max = st.api_max.load(Ordering::Relaxed);
    let pair = |m: u64, r: u64| json!({"Max": m, "Remaining": r});
    Reply::json(
        StatusCode::OK,
        json!({
            "ConcurrentAsyncGetReportInstances": pair(200, 200),
            "ConcurrentSyncReportRuns": pair(20, 20),
            "DailyApiRequests": pair(max, max.saturating_sub(used)),
            "DailyAsyncApexExecutions": pair(250000, 250000),
            "DailyBulkApiBatches": pair(15000, 15000),
            "DailyBulkV2QueryJobs": pair(10000, 10000),
            "DataStorageMB": pair(1024, 1000),
            "FileStorageMB": pair(1024, 1024),
            "HourlyTimeBasedWorkflow": pair(1000, 1000),
            "SingleEmail": pair(5000, 5000),
        }),
    )
}

fn object_summary(obj: &ObjectDef, v: &str) -> Value {
    let base = format!("/services/data/v{v}/sobjects/{}", obj.name);
    json!({
        "activateable": false,
        "createable": true,
        "custom": obj.custom(),
        "customSetting": false,
        "deletable": true,
        "deprecatedAndHidden": false,
        "feedEnabled": false,
        "keyPrefix": obj.key_prefix,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "layoutable": true,
        "mergeable": false,
        "mruEnabled": true,
        "name": obj.name,
        "queryable": true,
        "replicateable": true,
        "retrieveable": true,
        "searchable": true,
        "triggerable": true,
        "undeletable": true,
        "updateable": true,
        "urls": {
            "rowTemplate": format!("{base}/{{ID}}"),
            "defaultValues": format!("{base}/defaultValues?recordTypeId&fields"),
            "describe": format!("{base}/describe"),
            "sobject": base,
        },
    })
}

fn sobjects_list(org: &Org, v: &str) -> Reply {
    let list: Vec<Value> = org.schema.objects().map(|o| object_summary(o, v)).collect();
    Reply::json(
        StatusCode::OK,
        json!({"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": list}),
    )
}

fn describe(org: &Org, obj: &ObjectDef, v: &str) -> Reply {
    let fields: Vec<Value> = obj
        .fields
        .iter()
        .map(|f| {
            let picklist: Vec<Value> = f
                .picklist
                .iter()
                .map(|p| {
                    json!({"active": true, "defaultValue": f.default.as_ref().and_then(Value::as_str) == Some(p.as_str()), "label": p, "validFor": null, "value": p})
                })
                .collect();
            json!({
                "autoNumber": f.ftype == super::schema::FieldType::Autonumber,
                "calculated": !f.compound.is_empty(),
                "caseSensitive": f.case_sensitive,
                "createable": f.writable(),
                "custom": f.custom(),
                "defaultValue": f.default,
                "defaultedOnCreate": f.default.is_some() || f.system || f.name == "OwnerId",
                "externalId": f.external_id,
                "filterable": true,
                "groupable": true,
                "idLookup": f.name == "Id" || f.external_id,
                "label": f.label,
                "length": f.length,
                "name": f.name,
                "nameField": f.name == "Name",
                "nillable": !f.required && f.name != "Id" && !f.system,
                "picklistValues": picklist,
                "referenceTo": f.reference_to,
                "relationshipName": f.relationship_name,
                "restrictedPicklist": f.restricted,
                "soapType": f.ftype.soap_type(),
                "sortable": true,
                "type": f.ftype.describe_name(),
                "unique": f.unique,
                "updateable": f.writable(),
            })
        })
        .collect();
    let named = org.schema.child_relationships(&obj.name);
    let children: Vec<Value> = org
        .schema
        .objects()
        .flat_map(|child| {
            let named = &named;
            child
                .fields
                .iter()
                .filter(|f| f.reference_to.iter().any(|t| t.eq_ignore_ascii_case(&obj.name)) && !f.system)
                .map(move |f| {
                    let name = named
                        .iter()
                        .find(|(_, c, rf)| c.name == child.name && rf.name == f.name)
                        .map(|(n, ..)| n.clone());
                    json!({"childSObject": child.name, "field": f.name, "cascadeDelete": false, "relationshipName": name})
                })
        })
        .collect();
    let mut body = object_summary(obj, v);
    body["fields"] = Value::Array(fields);
    body["childRelationships"] = Value::Array(children);
    body["recordTypeInfos"] = json!([]);
    Reply::json(StatusCode::OK, body)
}

fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn parse_http_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Resolve `{field}/{value}` to one record id, or the reply to send (404 or 300).
fn resolve_external(
    org: &Org,
    obj: &ObjectDef,
    field: &str,
    value: &str,
    v: &str,
) -> Result<String, Reply> {
    let Some(f) = obj.field(field).filter(|f| f.external_id || f.name == "Id") else {
        return Err(SfError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Provided external ID field does not exist or is not accessible: {field}"),
        )
        .into());
    };
    if f.name == "Id" {
        return ids::normalize(value).ok_or_else(|| SfError::not_found().into());
    }
    let matches = org
        .data
        .find_by(obj, &f.name, &Value::String(value.to_string()));
    match matches.len() {
        0 => Err(SfError::not_found().into()),
        1 => Ok(matches[0].clone()),
        _ => Err(Reply::json(
            StatusCode::MULTIPLE_CHOICES,
            Value::Array(
                matches
                    .iter()
                    .map(|id| {
                        Value::String(format!("/services/data/v{v}/sobjects/{}/{id}", obj.name))
                    })
                    .collect(),
            ),
        )),
    }
}

fn lookup<'a>(org: &'a Org, obj: &ObjectDef, id: &str) -> Result<&'a Record, Reply> {
    let Some(id18) = ids::normalize(id) else {
        return Err(SfError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Provided external ID field does not exist or is not accessible: {id}"),
        )
        .into());
    };
    match org.data.get(&obj.name, &id18) {
        None => Err(SfError::not_found().into()),
        Some(r) if r.deleted => Err(super::store::deleted().into()),
        Some(r) => Ok(r),
    }
}

fn get_record(org: &Org, obj: &ObjectDef, id: &str, call: &Call<'_>, v: &str) -> Reply {
    let record = match lookup(org, obj, id) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let etag = record.etag();
    let last_modified = http_date(record.modified);
    if let Some(inm) = call
        .headers
        .get(http::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        if inm.split(',').any(|t| t.trim() == etag || t.trim() == "*") {
            return Reply::empty(StatusCode::NOT_MODIFIED).header("etag", etag);
        }
    }
    if let Some(ims) = call
        .headers
        .get(http::header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(t) = parse_http_date(ims) {
            if record.modified.timestamp() <= t.timestamp() {
                return Reply::empty(StatusCode::NOT_MODIFIED).header("etag", etag);
            }
        }
    }
    let fields = match call
        .query
        .as_deref()
        .and_then(|q| form_value(q.as_bytes(), "fields"))
    {
        None => None,
        Some(list) => {
            let mut names = vec![];
            for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match obj.field(name) {
                    Some(f) => names.push(f.name.clone()),
                    None => return SfError::unknown_field(&obj.name, name).into(),
                }
            }
            Some(names)
        }
    };
    Reply::json(
        StatusCode::OK,
        org.data.render(obj, record, v, fields.as_deref()),
    )
    .header("etag", etag)
    .header("last-modified", last_modified)
}

fn create(
    st: &SfState,
    org: &mut Org,
    obj: &ObjectDef,
    ctx: &AuthCtx,
    body: Option<&Value>,
    v: &str,
) -> Reply {
    let map = match object_body(body, obj) {
        Ok(m) => m,
        Err(e) => return e.into(),
    };
    let values = match validate_body(obj, map, WriteMode::Create) {
        Ok(v) => v,
        Err(e) => return e.into(),
    };
    let Org { schema, data } = org;
    match data.create(schema, obj, values, &actor(st, ctx)) {
        Ok(id) => Reply::json(StatusCode::CREATED, created(data, obj, &id)).header(
            "location",
            format!("/services/data/v{v}/sobjects/{}/{id}", obj.name),
        ),
        Err(e) => e.into(),
    }
}

/// A create's answer; a published platform event says it was queued, with its `EventUuid`
/// (as high-volume platform events answer since API 52.0).
fn created(data: &OrgData, obj: &ObjectDef, id: &str) -> Value {
    if !obj.platform_event() {
        return json!({"id": id, "success": true, "errors": []});
    }
    let uuid = data
        .get(&obj.name, id)
        .map(|r| r.get("EventUuid").clone())
        .unwrap_or_default();
    json!({"id": id, "success": true, "errors": [
        {"statusCode": "OPERATION_ENQUEUED", "message": uuid, "fields": []}
    ]})
}

/// Check `If-Match` / `If-Unmodified-Since` against a record. `Ok` names the precondition used.
fn precondition(record: &Record, headers: &HeaderMap) -> Result<Precondition, SfError> {
    if let Some(im) = headers.get(http::header::IF_MATCH) {
        let im = im
            .to_str()
            .map_err(|_| bad_precondition_header("If-Match"))?;
        let tags: Vec<&str> = im
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if tags.is_empty() || tags.iter().any(|t| *t != "*" && !t.starts_with('"')) {
            return Err(bad_precondition_header("If-Match"));
        }
        let etag = record.etag();
        if !tags.iter().any(|t| *t == "*" || *t == etag) {
            return Err(precondition_failed());
        }
        return Ok(Precondition::IfMatch);
    }
    if let Some(ius) = headers.get(http::header::IF_UNMODIFIED_SINCE) {
        let t = ius
            .to_str()
            .ok()
            .and_then(parse_http_date)
            .ok_or_else(|| bad_precondition_header("If-Unmodified-Since"))?;
        if record.modified.timestamp() > t.timestamp() {
            return Err(precondition_failed());
        }
        return Ok(Precondition::IfUnmodifiedSince);
    }
    Ok(Precondition::None)
}

fn bad_precondition_header(name: &str) -> SfError {
    SfError::new(
        StatusCode::BAD_REQUEST,
        "INVALID_HEADER_TYPE",
        format!("Invalid value for the {name} header"),
    )
}

fn precondition_failed() -> SfError {
    SfError::new(
        StatusCode::PRECONDITION_FAILED,
        "PRECONDITION_FAILED",
        "The requested resource has been modified since the condition in the request header; the request was not processed",
    )
}

fn update(
    st: &SfState,
    org: &mut Org,
    obj: &ObjectDef,
    ctx: &AuthCtx,
    id: &str,
    body: Option<&Value>,
    call: &Call<'_>,
) -> Reply {
    let (id18, pre) = match lookup(org, obj, id) {
        Ok(r) => match precondition(r, call.headers) {
            Ok(p) => (r.id.clone(), p),
            Err(e) => return e.into(),
        },
        Err(reply) => return reply,
    };
    let map = match object_body(body, obj) {
        Ok(m) => m,
        Err(e) => return e.into(),
    };
    let values = match validate_body(obj, map, WriteMode::Update) {
        Ok(v) => v,
        Err(e) => return e.into(),
    };
    let Org { schema, data } = org;
    match data.update(schema, obj, &id18, values, &actor(st, ctx), pre) {
        Ok(()) => {
            let etag = data
                .get(&obj.name, &id18)
                .map(Record::etag)
                .unwrap_or_default();
            Reply::empty(StatusCode::NO_CONTENT).header("etag", etag)
        }
        Err(e) => e.into(),
    }
}

fn delete(st: &SfState, org: &mut Org, obj: &ObjectDef, ctx: &AuthCtx, id: &str) -> Reply {
    let Some(id18) = ids::normalize(id) else {
        return SfError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Provided external ID field does not exist or is not accessible: {id}"),
        )
        .into();
    };
    match org.data.delete(obj, &id18, &actor(st, ctx)) {
        Ok(()) => Reply::empty(StatusCode::NO_CONTENT),
        Err(e) => e.into(),
    }
}

#[allow(clippy::too_many_arguments)]
fn upsert(
    st: &SfState,
    org: &mut Org,
    obj: &ObjectDef,
    ctx: &AuthCtx,
    field: &str,
    value: &str,
    body: Option<&Value>,
    v: &str,
    call: &Call<'_>,
) -> Reply {
    if field.eq_ignore_ascii_case("Id") && call.method == Method::POST {
        return create(st, org, obj, ctx, body, v);
    }
    let Some(f) = obj.field(field).filter(|f| f.external_id).cloned() else {
        return SfError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("Provided external ID field does not exist or is not accessible: {field}"),
        )
        .into();
    };
    let map = match object_body(body, obj) {
        Ok(m) => m,
        Err(e) => return e.into(),
    };
    let mut map = map.clone();
    map.retain(|k, _| !k.eq_ignore_ascii_case(&f.name));
    let ext_value = match super::validate::coerce(&f, &Value::String(value.to_string())) {
        Ok(v) => v,
        Err(e) => return e.into(),
    };
    // Validate as an update first (unknown fields etc.); required fields only matter on insert.
    let exists = !org.data.find_by(obj, &f.name, &ext_value).is_empty();
    let mode = if exists {
        WriteMode::Update
    } else {
        WriteMode::Create
    };
    let mut check = map.clone();
    if mode == WriteMode::Create {
        check.insert(f.name.clone(), ext_value.clone());
    }
    let values = match validate_body(obj, &check, mode) {
        Ok(mut vals) => {
            vals.remove(&f.name);
            vals
        }
        Err(e) => return e.into(),
    };
    let Org { schema, data } = org;
    match data.upsert(schema, obj, &f.name, &ext_value, values, &actor(st, ctx)) {
        Ok(UpsertOutcome::Created(id)) => Reply::json(
            StatusCode::CREATED,
            json!({"id": id, "success": true, "errors": [], "created": true}),
        )
        .header(
            "location",
            format!("/services/data/v{v}/sobjects/{}/{id}", obj.name),
        ),
        Ok(UpsertOutcome::Updated(id)) => {
            if ctx.version >= 46 {
                Reply::json(
                    StatusCode::OK,
                    json!({"id": id, "success": true, "errors": [], "created": false}),
                )
            } else {
                Reply::empty(StatusCode::NO_CONTENT)
            }
        }
        Ok(UpsertOutcome::Ambiguous(ids)) => Reply::json(
            StatusCode::MULTIPLE_CHOICES,
            Value::Array(
                ids.iter()
                    .map(|id| {
                        Value::String(format!("/services/data/v{v}/sobjects/{}/{id}", obj.name))
                    })
                    .collect(),
            ),
        ),
        Err(e) => e.into(),
    }
}

fn search_reply(result: Result<Value, SfError>) -> Reply {
    match result {
        Ok(v) => Reply::json(StatusCode::OK, v),
        Err(e) => e.into(),
    }
}

/// `GET /parameterizedSearch?q=…&sobject=Contact&Contact.fields=Id,Name&Contact.limit=5`
/// as the JSON body `POST` takes.
fn search_params(query: &str) -> Value {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let sobjects: Vec<Value> = (pairs.iter())
        .filter(|(k, _)| k == "sobject")
        .map(|(_, name)| {
            let mut o = json!({"name": name});
            if let Some(f) = get(&format!("{name}.fields")) {
                o["fields"] = json!(f);
            }
            if let Some(n) = get(&format!("{name}.limit")).and_then(|n| n.parse::<u64>().ok()) {
                o["limit"] = json!(n);
            }
            o
        })
        .collect();
    let mut params = json!({"q": get("q").unwrap_or_default(), "sobjects": sobjects});
    if let Some(scope) = get("in") {
        params["in"] = json!(scope);
    }
    if let Some(n) = get("overallLimit").and_then(|n| n.parse::<u64>().ok()) {
        params["overallLimit"] = json!(n);
    }
    params
}

/// `Sforce-Query-Options: batchSize=n`: the page size a client asks for, within
/// Salesforce's 200 to 2,000.
fn batch_size(headers: &http::HeaderMap) -> Option<usize> {
    let options = headers.get("sforce-query-options")?.to_str().ok()?;
    let n = (options.split(',').map(str::trim))
        .find_map(|o| o.strip_prefix("batchSize="))?
        .trim()
        .parse::<usize>()
        .ok()?;
    Some(n.clamp(200, 2000))
}

fn page_reply(
    rows: Arc<Vec<Value>>,
    page: usize,
    locator: Option<String>,
    offset: usize,
    v: &str,
    kind: &str,
) -> Reply {
    let end = (offset + page).min(rows.len());
    let records: Vec<Value> = rows[offset.min(rows.len())..end].to_vec();
    let done = end >= rows.len();
    let mut body = json!({"totalSize": rows.len(), "done": done, "records": records});
    if !done {
        if let Some(loc) = locator {
            body["nextRecordsUrl"] =
                Value::String(format!("/services/data/v{v}/{kind}/{loc}-{end}"));
        }
    }
    Reply::json(StatusCode::OK, body)
}

fn run_query(st: &SfState, org: &Org, call: &Call<'_>, v: &str, all: bool) -> Reply {
    let Some(q) = call
        .query
        .as_deref()
        .and_then(|q| form_value(q.as_bytes(), "q"))
    else {
        return SfError::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "A query string has to be specified",
        )
        .into();
    };
    let parsed = match parse(&q) {
        Ok(p) => p,
        Err(e) => return e.into_sf_error(&q).into(),
    };
    let today = st.clock.wall().date_naive();
    match execute_on(&parsed, &org.schema, &org.data, v, all, today) {
        Err(e) => e.into_sf_error(&q).into(),
        Ok(Outcome::Count(n)) => Reply::json(
            StatusCode::OK,
            json!({"totalSize": n, "done": true, "records": []}),
        ),
        Ok(Outcome::Rows(rows)) => {
            let kind = if all { "queryAll" } else { "query" };
            let page = batch_size(call.headers).unwrap_or(st.config.query_page_size);
            if rows.len() > page {
                let rows = Arc::new(rows);
                let locator = st.cursors.lock().open(rows.clone(), page, st.config.seed);
                page_reply(rows, page, Some(locator), 0, v, kind)
            } else {
                page_reply(Arc::new(rows), page, None, 0, v, kind)
            }
        }
    }
}

fn next_page(st: &SfState, locator: &str, v: &str, kind: &str) -> Reply {
    let invalid = || {
        SfError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        )
    };
    let Some((loc, offset)) = locator.rsplit_once('-') else {
        return invalid().into();
    };
    let Ok(offset) = offset.parse::<usize>() else {
        return invalid().into();
    };
    let Some((rows, page)) = st.cursors.lock().get(loc) else {
        return invalid().into();
    };
    if offset > rows.len() {
        return invalid().into();
    }
    page_reply(rows, page, Some(loc.to_string()), offset, v, kind)
}
