//! Toxiproxy's HTTP API over a [`ChaosProxy`], so Toxiproxy clients drive crashcart's proxy
//! unmodified. Errors are Toxiproxy's `{"error": "…", "status": N}`.
//!
//! | route | what |
//! |---|---|
//! | `GET /version` | `{"version": …}` |
//! | `POST /reset` | enable every proxy, remove every toxic |
//! | `GET /proxies`, `POST /proxies` | list (by name), create (201) |
//! | `POST /populate` | create or replace many (201, `{"proxies": […]}`) |
//! | `GET`, `POST`/`PATCH`, `DELETE /proxies/{proxy}` | read, update (`enabled`, `listen`, `upstream`), delete |
//! | `GET`, `POST /proxies/{proxy}/toxics` | list, add |
//! | `GET`, `POST`/`PATCH`, `DELETE /proxies/{proxy}/toxics/{toxic}` | read, update, remove |

// Handlers return `Result<_, Response>` as axum does (the error path only).
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use crashcart_mocks::server::{self, ListenConfig, RunningServer, StopHandle};
use http::StatusCode;
use serde_json::{json, Value};

use super::{ChaosProxy, ProxyError};

/// The version the API reports (the Toxiproxy API level it follows).
pub const VERSION: &str = "2.12.0";

/// Toxiproxy's own API port.
pub const DEFAULT_API_PORT: u16 = 8474;

fn error(e: ProxyError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        axum::Json(json!({"error": e.message, "status": e.status})),
    )
        .into_response()
}

/// The names in a request's path (proxy, toxic). A segment that does not decode to text
/// names no proxy there can be: answered as Toxiproxy answers an unknown proxy, in its shape
/// (axum's own rejection is plain text).
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(UnknownName))]
struct Names<T>(T);

/// The rejection of [`Names`].
struct UnknownName;

impl From<axum::extract::rejection::PathRejection> for UnknownName {
    fn from(_: axum::extract::rejection::PathRejection) -> Self {
        UnknownName
    }
}

impl IntoResponse for UnknownName {
    fn into_response(self) -> Response {
        error(ProxyError::new(404, "proxy not found"))
    }
}

fn parse(body: &Bytes) -> Result<Value, Response> {
    serde_json::from_slice(body).map_err(|e| {
        error(ProxyError {
            status: 400,
            message: format!("bad request: invalid JSON ({e})"),
        })
    })
}

fn field<'a>(v: &'a Value, key: &str) -> Result<Option<&'a str>, Response> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(error(ProxyError {
            status: 400,
            message: format!("bad request: {key} must be a string, got {other}"),
        })),
    }
}

fn enabled_of(v: &Value) -> Result<Option<bool>, Response> {
    match v.get("enabled") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(error(ProxyError {
            status: 400,
            message: format!("bad request: enabled must be a boolean, got {other}"),
        })),
    }
}

/// The API's router.
pub fn router(proxy: ChaosProxy) -> Router {
    Router::new()
        .route(
            "/version",
            get(|| async { axum::Json(json!({"version": VERSION})) }),
        )
        .route("/reset", post(reset))
        .route("/proxies", get(list).post(create))
        .route("/populate", post(populate))
        .route(
            "/proxies/{proxy}",
            get(show).post(update).patch(update).delete(delete),
        )
        .route("/proxies/{proxy}/toxics", get(toxics).post(add_toxic))
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(show_toxic)
                .post(update_toxic)
                .patch(update_toxic)
                .delete(delete_toxic),
        )
        .fallback(|| async {
            error(ProxyError {
                status: 404,
                message: "not found".into(),
            })
        })
        .with_state(proxy)
}

/// Serve the API on `addr` (loopback unless `allow_remote`).
pub async fn serve(
    proxy: ChaosProxy,
    addr: SocketAddr,
    allow_remote: bool,
) -> Result<RunningServer, crashcart_mocks::MockError> {
    let (stop, _signal) = StopHandle::new();
    let listen = ListenConfig {
        bind: addr,
        allow_non_loopback: allow_remote,
        tls: None,
    };
    server::serve(router(proxy), &listen, stop).await
}

async fn reset(State(p): State<ChaosProxy>) -> Response {
    p.reset();
    StatusCode::NO_CONTENT.into_response()
}

async fn list(State(p): State<ChaosProxy>) -> Response {
    axum::Json(p.list()).into_response()
}

async fn create_one(p: &ChaosProxy, v: &Value) -> Result<super::ProxyInfo, Response> {
    if !v.is_object() {
        return Err(error(ProxyError {
            status: 400,
            message: "bad request: a proxy must be a JSON object".into(),
        }));
    }
    let name = field(v, "name")?.unwrap_or("");
    let listen = field(v, "listen")?.unwrap_or("");
    let upstream = field(v, "upstream")?.unwrap_or("");
    let enabled = enabled_of(v)?.unwrap_or(true);
    p.create(name, listen, upstream, enabled)
        .await
        .map_err(error)
}

async fn create(State(p): State<ChaosProxy>, body: Bytes) -> Response {
    let v = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match create_one(&p, &v).await {
        Ok(info) => (StatusCode::CREATED, axum::Json(info)).into_response(),
        Err(r) => r,
    }
}

/// One proxy of a `/populate` body, checked before anything changes.
struct Wanted<'a> {
    item: &'a Value,
    name: &'a str,
}

/// Every item checked first: a JSON object with a name, addresses that parse and may be used,
/// no name twice. Nothing is created unless all are good.
fn check_populate<'a>(p: &ChaosProxy, items: &'a [Value]) -> Result<Vec<Wanted<'a>>, Response> {
    let mut out: Vec<Wanted> = vec![];
    for item in items {
        if !item.is_object() {
            return Err(error(ProxyError::new(
                400,
                "bad request: a proxy must be a JSON object",
            )));
        }
        let name = field(item, "name")?.unwrap_or("");
        let upstream = field(item, "upstream")?.unwrap_or("");
        let listen = field(item, "listen")?.unwrap_or("127.0.0.1:0");
        enabled_of(item)?;
        p.check_new(name, listen, upstream).map_err(error)?;
        if out.iter().any(|w| w.name == name) {
            return Err(error(ProxyError::new(
                400,
                format!("bad request: proxy {name:?} appears twice"),
            )));
        }
        out.push(Wanted { item, name });
    }
    Ok(out)
}

/// `POST /populate`: create or replace many proxies, all or nothing. Every item is checked
/// first; if creating one still fails (its port taken), the ones created by this call are
/// removed again and the ones it replaced come back as they were (without their toxics).
async fn populate(State(p): State<ChaosProxy>, body: Bytes) -> Response {
    let v = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(items) = v.as_array() else {
        return error(ProxyError {
            status: 400,
            message: "bad request: populate takes a JSON array of proxies".into(),
        });
    };
    let wanted = match check_populate(&p, items) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (mut out, mut created, mut replaced) = (vec![], vec![], vec![]);
    for w in wanted {
        // Same name: replace it (Toxiproxy recreates a proxy whose config changed).
        if let Ok(existing) = p.info(w.name) {
            let same = w.item.get("upstream").and_then(Value::as_str)
                == Some(existing.upstream.as_str())
                && w.item
                    .get("listen")
                    .and_then(Value::as_str)
                    .is_none_or(|l| l == existing.listen);
            if same {
                out.push(existing);
                continue;
            }
            let _ = p.delete(w.name);
            replaced.push(existing);
        }
        match create_one(&p, w.item).await {
            Ok(info) => {
                created.push(info.name.clone());
                out.push(info);
            }
            Err(r) => {
                for name in &created {
                    let _ = p.delete(name);
                }
                for old in &replaced {
                    let _ = p
                        .create(&old.name, &old.listen, &old.upstream, old.enabled)
                        .await;
                }
                return r;
            }
        }
    }
    (StatusCode::CREATED, axum::Json(json!({"proxies": out}))).into_response()
}

async fn show(State(p): State<ChaosProxy>, Names(name): Names<String>) -> Response {
    match p.info(&name) {
        Ok(i) => axum::Json(i).into_response(),
        Err(e) => error(e),
    }
}

async fn update(State(p): State<ChaosProxy>, Names(name): Names<String>, body: Bytes) -> Response {
    let v = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (listen, upstream, enabled) =
        match (field(&v, "listen"), field(&v, "upstream"), enabled_of(&v)) {
            (Ok(l), Ok(u), Ok(e)) => (l, u, e),
            (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r,
        };
    let mut result = p.update(&name, listen, upstream).await;
    if let (Ok(_), Some(e)) = (&result, enabled) {
        result = p.set_enabled(&name, e);
    }
    match result {
        Ok(i) => axum::Json(i).into_response(),
        Err(e) => error(e),
    }
}

async fn delete(State(p): State<ChaosProxy>, Names(name): Names<String>) -> Response {
    match p.delete(&name) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}

async fn toxics(State(p): State<ChaosProxy>, Names(name): Names<String>) -> Response {
    match p.info(&name) {
        Ok(i) => axum::Json(i.toxics).into_response(),
        Err(e) => error(e),
    }
}

async fn add_toxic(
    State(p): State<ChaosProxy>,
    Names(name): Names<String>,
    body: Bytes,
) -> Response {
    let v = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match p.add_toxic(&name, &v) {
        Ok(t) => axum::Json(t).into_response(),
        Err(e) => error(e),
    }
}

async fn show_toxic(
    State(p): State<ChaosProxy>,
    Names((name, toxic)): Names<(String, String)>,
) -> Response {
    match p.toxic(&name, &toxic) {
        Ok(t) => axum::Json(t).into_response(),
        Err(e) => error(e),
    }
}

async fn update_toxic(
    State(p): State<ChaosProxy>,
    Names((name, toxic)): Names<(String, String)>,
    body: Bytes,
) -> Response {
    let v = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match p.update_toxic(&name, &toxic, &v) {
        Ok(t) => axum::Json(t).into_response(),
        Err(e) => error(e),
    }
}

async fn delete_toxic(
    State(p): State<ChaosProxy>,
    Names((name, toxic)): Names<(String, String)>,
) -> Response {
    match p.remove_toxic(&name, &toxic) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}
