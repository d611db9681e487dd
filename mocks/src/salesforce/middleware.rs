//! What happens around every request to the mock Salesforce, in order:
//! sequence number and arrival time, body read (with a size limit), caller identification,
//! the fault hook's verdict, the API-version / session / daily-quota gates of the data API,
//! the handler, the `Sforce-Limit-Info` header, and finally the history record.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;

use super::errors::{ErrorCode, SfError};
use super::SfState;
use crate::fault::{Action, RequestInfo};
use crate::head::{HeadFacts, HeadPolicy, RawAnswer, Unreadable};
use crate::history::{digest, Dependency, PendingRecord, RequestRecord};
use crate::server::ConnControl;
pub(crate) use crate::wire::bearer_token;
use crate::wire::{intervene, retry_after_ms, retry_count};

/// The caller of a data-API request, as established by the middleware.
#[derive(Clone, Debug)]
pub(crate) struct AuthCtx {
    pub(crate) user_id: String,
    pub(crate) username: String,
    /// API version major number from the path.
    pub(crate) version: u32,
}

/// The caller of a request, read from the session store once per request.
#[derive(Debug)]
struct Caller {
    client_id: Option<String>,
    username: String,
    user_id: String,
    /// The session is neither expired nor revoked.
    live: bool,
}

/// What the middleware learned from the path.
#[derive(Debug, Default)]
pub(crate) struct RouteInfo {
    pub(crate) dependency: Option<Dependency>,
    pub(crate) operation: &'static str,
    pub(crate) sobject: Option<String>,
    pub(crate) record: Option<String>,
    /// `Some` for data-API paths with a well-formed version (`v59.0` → 59).
    pub(crate) version: Option<u32>,
    /// A `/services/data/<something>` path whose version segment is malformed.
    pub(crate) bad_version: bool,
}

/// Parse `v59.0` → 59.
pub(crate) fn parse_version(seg: &str) -> Option<u32> {
    let rest = seg.strip_prefix('v')?;
    let (major, minor) = rest.split_once('.')?;
    if minor != "0" {
        return None;
    }
    major.parse().ok()
}

/// Every operation name [`classify`] gives (what fault targets and the history name).
pub const OPERATIONS: &[&str] = &[
    "oauth.token",
    "oauth.revoke",
    "oauth.introspect",
    "oauth.userinfo",
    "oauth.other",
    "soap.login",
    "identity",
    "control",
    "versions",
    "resources",
    "limits",
    "sobjects.list",
    "sobject.create",
    "sobject.info",
    "sobject.describe",
    "sobject.get",
    "sobject.update",
    "sobject.delete",
    "sobject.upsert",
    "sobject.replication",
    "query",
    "queryAll",
    "search",
    "bulk.ingest",
    "bulk.upload",
    "bulk.query",
    "streaming",
    "composite",
    "composite.batch",
    "composite.graph",
    "composite.tree",
    "composite.sobjects",
    "unknown",
];

/// Classify a path into dependency, operation and addressed object.
pub(crate) fn classify(method: &Method, path: &str) -> RouteInfo {
    let trimmed = path.trim_end_matches('/');
    let segs: Vec<&str> = trimmed.split('/').skip(1).collect();
    let mut info = RouteInfo {
        dependency: Some(Dependency::Salesforce),
        operation: "unknown",
        ..Default::default()
    };
    match segs.as_slice() {
        ["services", "oauth2", rest @ ..] => {
            info.dependency = Some(Dependency::SalesforceAuth);
            info.operation = match rest {
                ["token"] => "oauth.token",
                ["revoke"] => "oauth.revoke",
                ["introspect"] => "oauth.introspect",
                ["userinfo"] => "oauth.userinfo",
                _ => "oauth.other",
            };
        }
        ["services", "Soap", "u", v, ..] => {
            info.dependency = Some(Dependency::SalesforceAuth);
            info.operation = "soap.login";
            info.version = parse_version(&format!("v{v}"));
        }
        ["id", ..] => {
            info.dependency = Some(Dependency::SalesforceAuth);
            info.operation = "identity";
        }
        ["cometd", v, ..] => {
            info.operation = "streaming";
            match parse_version(&format!("v{v}")) {
                Some(n) => info.version = Some(n),
                None => info.bad_version = true,
            }
        }
        ["__crashcart", ..] => {
            info.dependency = Some(Dependency::Control);
            info.operation = "control";
        }
        ["services", "data"] => info.operation = "versions",
        ["services", "data", v, rest @ ..] => {
            match parse_version(v) {
                Some(n) => info.version = Some(n),
                None => {
                    info.bad_version = true;
                    return info;
                }
            }
            let m = method.as_str();
            info.operation = match rest {
                [] => "resources",
                ["limits"] => "limits",
                ["sobjects"] => "sobjects.list",
                ["sobjects", o] => {
                    info.sobject = Some(o.to_string());
                    if m == "POST" {
                        "sobject.create"
                    } else {
                        "sobject.info"
                    }
                }
                ["sobjects", o, "describe"] => {
                    info.sobject = Some(o.to_string());
                    "sobject.describe"
                }
                ["sobjects", o, "updated" | "deleted"] if m == "GET" => {
                    info.sobject = Some(o.to_string());
                    "sobject.replication"
                }
                ["sobjects", o, id] => {
                    info.sobject = Some(o.to_string());
                    info.record = Some(id.to_string());
                    match m {
                        "PATCH" => "sobject.update",
                        "DELETE" => "sobject.delete",
                        "POST" => "sobject.create",
                        _ => "sobject.get",
                    }
                }
                ["sobjects", o, _field, value] => {
                    info.sobject = Some(o.to_string());
                    info.record = Some(value.to_string());
                    match m {
                        "PATCH" | "POST" => "sobject.upsert",
                        "DELETE" => "sobject.delete",
                        _ => "sobject.get",
                    }
                }
                ["query"] | ["query", _] => "query",
                ["search"] | ["parameterizedSearch"] => "search",
                ["jobs", "ingest", _, "batches"] => "bulk.upload",
                ["jobs", "ingest", ..] => "bulk.ingest",
                ["jobs", "query", ..] => "bulk.query",
                ["queryAll"] | ["queryAll", _] => "queryAll",
                ["composite"] => "composite",
                ["composite", "batch"] => "composite.batch",
                ["composite", "graph"] => "composite.graph",
                ["composite", "tree", o] => {
                    info.sobject = Some(o.to_string());
                    "composite.tree"
                }
                ["composite", "sobjects", o, ..] => {
                    info.sobject = Some(o.to_string());
                    "composite.sobjects"
                }
                ["composite", "sobjects"] => "composite.sobjects",
                _ => "unknown",
            };
        }
        _ => {}
    }
    info
}

/// A value of an `application/x-www-form-urlencoded` body.
pub(crate) fn form_value(body: &[u8], key: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn limit_header(st: &SfState) -> HeaderValue {
    let used = st.api_used.load(Ordering::Relaxed);
    let max = st.api_max.load(Ordering::Relaxed);
    HeaderValue::from_str(&format!("api-usage={used}/{max}"))
        .unwrap_or(HeaderValue::from_static("api-usage=0/0"))
}

/// The gates of the data API: version, session, quota. `Ok` carries the caller.
fn gate(
    st: &SfState,
    route: &RouteInfo,
    caller: Option<&Caller>,
) -> Result<Option<AuthCtx>, Response> {
    if route.bad_version {
        return Err(SfError::not_found().into_response());
    }
    let Some(version) = route.version else {
        return Ok(None);
    };
    if route.dependency != Some(Dependency::Salesforce) {
        return Ok(None);
    }
    if (version as u64) < st.retired_below.load(Ordering::Relaxed) {
        return Err(SfError::new(
            StatusCode::GONE,
            "UNSUPPORTED_API_VERSION",
            format!("API version {version}.0 has been retired and is no longer available"),
        )
        .into_response());
    }
    if version as u64 > st.max_version.load(Ordering::Relaxed) {
        return Err(SfError::not_found().into_response());
    }
    let Some(session) = caller.filter(|c| c.live) else {
        // The Streaming API answers a bad session in Bayeux messages (its handler does).
        if route.operation == "streaming" {
            return Ok(None);
        }
        return Err(SfError::invalid_session().into_response());
    };
    let ctx = AuthCtx {
        user_id: session.user_id.clone(),
        username: session.username.clone(),
        version,
    };
    // Streaming API requests do not count against the org's API requests.
    if route.operation == "streaming" {
        return Ok(Some(ctx));
    }
    let max = st.api_max.load(Ordering::Relaxed);
    let counted = st
        .api_used
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
            (u < max).then_some(u + 1)
        })
        .is_ok();
    if !counted {
        let mut resp = SfError::request_limit().into_response();
        resp.headers_mut()
            .insert("sforce-limit-info", limit_header(st));
        return Err(resp);
    }
    Ok(Some(ctx))
}

/// The middleware itself.
pub(crate) async fn track(State(st): State<Arc<SfState>>, req: Request, next: Next) -> Response {
    let seq = st.history.next_seq();
    let arrived = st.clock.elapsed();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let route = classify(&parts.method, &path);
    let dependency = route.dependency.unwrap_or(Dependency::Salesforce);
    // A head past Salesforce's limits is refused by its front servers; the body is not read.
    let (bytes, early) = match HEAD_POLICY.refuse(&parts.method, &parts.uri, &parts.headers) {
        Some(refused) => (Bytes::new(), Some(refused)),
        None => {
            let limit = if route.operation == "bulk.upload" {
                st.config.max_bulk_upload_bytes
            } else {
                st.config.max_body_bytes
            };
            read_body(body, limit).await
        }
    };
    let token = bearer_token(&parts.headers);
    // One look at the session store: who is calling, and is the session live.
    let caller = token.and_then(|t| caller_of(&st, t));
    let (client_id, user) = match &caller {
        Some(s) => (s.client_id.clone(), Some(s.username.clone())),
        None if route.operation.starts_with("oauth.") => (
            form_value(&bytes, "client_id"),
            form_value(&bytes, "username"),
        ),
        None => (None, None),
    };
    let verdict = st.hook.verdict(&RequestInfo {
        seq,
        dependency,
        method: &parts.method,
        path: &path,
        headers: &parts.headers,
        operation: route.operation,
        sobject: route.sobject.as_deref(),
        record: route.record.as_deref(),
        client_id: client_id.as_deref(),
        user: user.as_deref(),
        model: None,
    });
    // From here on the client may give up at any await; the guard records the request anyway.
    let mut pending = PendingRecord {
        history: st.history.clone(),
        clock: st.clock.clone(),
        arrived,
        record: Some(new_record(
            seq,
            arrived,
            &parts,
            &route,
            (client_id, user),
            &bytes,
            verdict.history_label(),
        )),
    };
    if let Some(d) = verdict.delay {
        tokio::time::sleep(d).await;
    }
    let conn = parts.extensions.get::<Arc<ConnControl>>().cloned();
    let dropped = matches!(verdict.action, Action::Drop | Action::Reset | Action::Lose);
    let lose = matches!(verdict.action, Action::Lose);
    let canned_code = canned_error_code(&verdict.action);
    let response = match intervene(verdict.action, conn.clone(), &st.stop).await {
        Some(r) => r,
        None => match early {
            Some(e) => e,
            None => {
                let gated = gate(&st, &route, caller.as_ref());
                serve_gated(&st, gated, parts, bytes, next).await
            }
        },
    };
    if let Some(rec) = pending.record.as_mut() {
        if !dropped {
            rec.status = response.status().as_u16();
        }
        rec.error_code = response
            .extensions()
            .get::<ErrorCode>()
            .map(|c| c.0.to_string())
            .or(canned_code);
        rec.retry_after_ms = retry_after_ms(response.headers());
    }
    pending.finish();
    if lose {
        // The handler ran (a write landed); the client gets a reset instead of its answer.
        if let Some(conn) = &conn {
            conn.reset();
        }
        return crate::wire::aborting_response();
    }
    response
}

/// Salesforce's request-head limits, documented: "In each REST call, the maximum length for
/// the combined URI and headers is 16,384 bytes. A request exceeding this limit returns a 431
/// Request Header Fields Too Large error. If the URI itself exceeds this limit, the request
/// returns a 414 URI Too Long error." The answers come from its Jetty front servers: Jetty's
/// `Bad Message` page, not a JSON error array.
pub(crate) const HEAD_POLICY: HeadPolicy = HeadPolicy {
    // Past hyper's own URI limit (65,534 bytes), so an over-long URI is a 414, not a 431.
    read_buffer: 128 * 1024,
    judge: judge_head,
    unreadable: |why| match why {
        Unreadable::UriTooLong => jetty_bad_message(StatusCode::URI_TOO_LONG),
        Unreadable::HeadTooLarge => jetty_bad_message(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
    },
};

/// The most bytes of URI, and of URI and headers together, Salesforce reads.
const MAX_HEAD_BYTES: usize = 16_384;

fn judge_head(f: &HeadFacts) -> Option<RawAnswer> {
    if f.target > MAX_HEAD_BYTES {
        Some(jetty_bad_message(StatusCode::URI_TOO_LONG))
    } else if f.head > MAX_HEAD_BYTES {
        Some(jetty_bad_message(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ))
    } else {
        None
    }
}

/// Jetty's answer to a request it will not read (`ErrorHandler.badMessageError`).
fn jetty_bad_message(status: StatusCode) -> RawAnswer {
    RawAnswer::new(
        status,
        Some("text/html;charset=iso-8859-1"),
        format!(
            "<h1>Bad Message {}</h1><pre>reason: {}</pre>",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ),
    )
}

/// The body, read under the size limit; past it, or unreadable, the error to answer with.
async fn read_body(body: Body, limit: usize) -> (Bytes, Option<Response>) {
    let collected = http_body_util::Limited::new(body, limit).collect().await;
    match collected {
        Ok(c) => (c.to_bytes(), None),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            let e = SfError::body_too_large(limit);
            (Bytes::new(), Some(e.into_response()))
        }
        Err(_) => (
            Bytes::new(),
            Some(SfError::json_parser("The request body could not be read").into_response()),
        ),
    }
}

/// The caller a bearer token names, if the session store knows it.
fn caller_of(st: &SfState, token: &str) -> Option<Caller> {
    let now = st.clock.elapsed();
    let auth = st.auth.lock();
    let s = auth.session(token)?;
    Some(Caller {
        client_id: s.client_id.clone(),
        username: s.username.clone(),
        user_id: s.user_id.clone(),
        live: auth.check(token, now).is_ok(),
    })
}

/// A canned Salesforce error keeps its errorCode in the history, like a real one.
fn canned_error_code(action: &Action) -> Option<String> {
    match action {
        Action::Respond(c) if c.status.as_u16() >= 400 => {
            serde_json::from_slice::<serde_json::Value>(&c.body)
                .ok()
                .and_then(|v| v[0]["errorCode"].as_str().map(str::to_string))
        }
        _ => None,
    }
}

/// The history record of a request as it arrives (status and error code come later).
fn new_record(
    seq: u64,
    arrived: std::time::Duration,
    parts: &http::request::Parts,
    route: &RouteInfo,
    (client_id, user): (Option<String>, Option<String>),
    bytes: &Bytes,
    fault: Option<String>,
) -> RequestRecord {
    RequestRecord {
        seq,
        dependency: route.dependency.unwrap_or(Dependency::Salesforce),
        at_us: arrived.as_micros() as u64,
        latency_us: 0,
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        operation: route.operation.to_string(),
        sobject: route.sobject.clone(),
        record: route.record.clone(),
        status: 0,
        error_code: None,
        client_id,
        user,
        token_digest: bearer_token(&parts.headers).map(|t| digest(t.as_bytes())),
        body_digest: (!bytes.is_empty()).then(|| digest(bytes)),
        query_digest: parts.uri.query().map(|q| digest(q.as_bytes())),
        body_len: bytes.len() as u64,
        fault,
        retry_count: retry_count(&parts.headers),
        trace_id: crate::wire::trace_id(&parts.headers),
        idempotency_key: crate::wire::idempotency_key(&parts.headers),
        retry_after_ms: None,
        llm: None,
    }
}

/// A request past the gates: the handler's answer, with `Sforce-Limit-Info` on data-API calls.
async fn serve_gated(
    st: &SfState,
    gated: Result<Option<AuthCtx>, Response>,
    mut parts: http::request::Parts,
    bytes: Bytes,
    next: Next,
) -> Response {
    let ctx = match gated {
        Ok(ctx) => ctx,
        Err(resp) => return resp,
    };
    let authed = ctx.is_some();
    if let Some(ctx) = ctx {
        parts.extensions.insert(ctx);
    }
    let mut resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if authed {
        resp.headers_mut()
            .insert("sforce-limit-info", limit_header(st));
    }
    resp
}

#[cfg(test)]
mod operation_names {
    use super::*;

    #[test]
    fn every_classified_operation_is_listed() {
        let paths = [
            ("POST", "/services/oauth2/token"),
            ("POST", "/services/oauth2/revoke"),
            ("POST", "/services/oauth2/introspect"),
            ("GET", "/services/oauth2/userinfo"),
            ("GET", "/services/oauth2/authorize"),
            ("POST", "/services/Soap/u/59.0"),
            ("GET", "/id/00D/005"),
            ("GET", "/__crashcart/history"),
            ("GET", "/services/data"),
            ("GET", "/services/data/v59.0"),
            ("GET", "/services/data/v59.0/limits"),
            ("GET", "/services/data/v59.0/sobjects"),
            ("POST", "/services/data/v59.0/sobjects/Contact"),
            ("GET", "/services/data/v59.0/sobjects/Contact"),
            ("GET", "/services/data/v59.0/sobjects/Contact/describe"),
            ("GET", "/services/data/v59.0/sobjects/Contact/003"),
            ("PATCH", "/services/data/v59.0/sobjects/Contact/003"),
            ("DELETE", "/services/data/v59.0/sobjects/Contact/003"),
            ("PATCH", "/services/data/v59.0/sobjects/Contact/Ext__c/1"),
            ("GET", "/services/data/v59.0/sobjects/Contact/updated"),
            ("GET", "/services/data/v59.0/query"),
            ("GET", "/services/data/v59.0/queryAll"),
            ("GET", "/services/data/v59.0/search"),
            ("POST", "/services/data/v59.0/jobs/ingest"),
            ("PUT", "/services/data/v59.0/jobs/ingest/750/batches"),
            ("POST", "/services/data/v59.0/jobs/query"),
            ("POST", "/services/data/v59.0/composite"),
            ("POST", "/services/data/v59.0/composite/sobjects"),
            ("POST", "/services/data/v59.0/composite/batch"),
            ("POST", "/cometd/59.0"),
            ("POST", "/services/data/v59.0/composite/graph"),
            ("POST", "/services/data/v59.0/composite/tree/Account"),
            ("GET", "/services/data/v59.0/nothing/here"),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (m, p) in paths {
            let op = classify(&m.parse().unwrap(), p).operation;
            assert!(OPERATIONS.contains(&op), "{m} {p}: {op} is not listed");
            seen.insert(op);
        }
        assert_eq!(
            seen.len(),
            OPERATIONS.len(),
            "every listed name is reachable"
        );
    }

    /// A fault aimed at an sObject reaches the collection calls on it too.
    #[test]
    fn collection_calls_name_their_sobject() {
        for (m, p) in [
            ("POST", "/services/data/v59.0/composite/sobjects/Contact"),
            ("GET", "/services/data/v59.0/composite/sobjects/Contact"),
            (
                "PATCH",
                "/services/data/v59.0/composite/sobjects/Contact/Patient_External_Id__c",
            ),
        ] {
            let info = classify(&m.parse().unwrap(), p);
            assert_eq!(info.operation, "composite.sobjects");
            assert_eq!(info.sobject.as_deref(), Some("Contact"), "{m} {p}");
        }
    }
}
