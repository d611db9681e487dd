//! The HTTP transport seam: how the reference integration (and anything else in crashcart that
//! plays a client) sends a request. Two transports behind one small type:
//!
//! - [`Transport::sockets`]: real TCP through reqwest (external SUTs' world: wall time,
//!   proxies, network faults).
//! - [`Transport::in_process`]: the request goes straight into an axum [`Router`] by its
//!   `host:port`, with no socket, so a whole run fits on tokio's paused clock.
//!
//! Both take a whole request and give back a whole response (bodies are small JSON documents;
//! an SSE stream arrives whole and is parsed after). A per-call timeout is the caller's choice:
//! `None` waits forever, which is exactly the `no-timeout` defect.

pub mod sim;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, Method};
use tower::ServiceExt;

/// A request to send.
#[derive(Clone, Debug)]
pub struct HttpRequest {
    /// Method.
    pub method: Method,
    /// Absolute URL.
    pub url: String,
    /// Headers.
    pub headers: HeaderMap,
    /// Body, if any.
    pub body: Option<Bytes>,
}

impl HttpRequest {
    /// A request without headers or body.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: HeaderMap::new(),
            body: None,
        }
    }

    /// Add a header (ignored when the name or value is not valid HTTP).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            self.headers.insert(n, v);
        }
        self
    }

    /// A JSON body.
    pub fn json(self, body: &serde_json::Value) -> Self {
        let mut r = self.header("content-type", "application/json");
        r.body = Some(Bytes::from(body.to_string()));
        r
    }

    /// A form body.
    pub fn form(self, fields: &[(&str, &str)]) -> Self {
        let encoded = fields
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut r = self.header("content-type", "application/x-www-form-urlencoded");
        r.body = Some(Bytes::from(encoded));
        r
    }
}

/// Percent-encode a form or query component.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A whole response.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl HttpResponse {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why no response came back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The call's timeout passed.
    #[error("timed out")]
    Timeout,
    /// No connection, a reset, or a body cut short.
    #[error("connection failed: {0}")]
    Connection(String),
}

/// How requests travel.
#[derive(Clone)]
pub enum Transport {
    /// Real sockets.
    Sockets(reqwest::Client),
    /// Straight into routers, by `host:port`.
    InProcess(Arc<InProcessHosts>),
}

/// The routers an in-process transport reaches, and the simulated network between.
#[derive(Default)]
pub struct InProcessHosts {
    routers: HashMap<String, (Router, Option<crate::fault::DependencyName>)>,
    net: Option<Arc<crate::transport::sim::SimNetwork>>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sockets(_) => f.write_str("Transport::Sockets"),
            Self::InProcess(m) => write!(f, "Transport::InProcess({:?})", m.routers.keys()),
        }
    }
}

impl Transport {
    /// Real TCP with a pooled client.
    pub fn sockets() -> Self {
        Self::Sockets(
            reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
        )
    }

    /// In-process: `hosts` maps `host:port` (as in the URLs) to the router that serves it.
    pub fn in_process(hosts: impl IntoIterator<Item = (String, Router)>) -> Self {
        Self::InProcess(Arc::new(InProcessHosts {
            routers: hosts.into_iter().map(|(h, r)| (h, (r, None))).collect(),
            net: None,
        }))
    }

    /// In-process through a simulated network: each host is a dependency whose network
    /// faults `net` applies (simulation mode).
    pub fn simulated(
        hosts: impl IntoIterator<Item = (String, Router, Option<crate::fault::DependencyName>)>,
        net: Arc<crate::transport::sim::SimNetwork>,
    ) -> Self {
        Self::InProcess(Arc::new(InProcessHosts {
            routers: hosts.into_iter().map(|(h, r, d)| (h, (r, d))).collect(),
            net: Some(net),
        }))
    }

    /// Send a request and read the whole response, within `timeout` if given.
    pub async fn send(
        &self,
        req: HttpRequest,
        timeout: Option<Duration>,
    ) -> Result<HttpResponse, TransportError> {
        let fut = self.send_inner(req);
        match timeout {
            Some(t) => tokio::time::timeout(t, fut)
                .await
                .unwrap_or(Err(TransportError::Timeout)),
            None => fut.await,
        }
    }

    async fn send_inner(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        match self {
            Self::Sockets(client) => {
                let mut b = client.request(req.method, &req.url).headers(req.headers);
                if let Some(body) = req.body {
                    b = b.body(body);
                }
                let r = b.send().await.map_err(|e| {
                    if e.is_timeout() {
                        TransportError::Timeout
                    } else {
                        TransportError::Connection(e.to_string())
                    }
                })?;
                let status = r.status().as_u16();
                let headers = r.headers().clone();
                let body = r
                    .bytes()
                    .await
                    .map_err(|e| TransportError::Connection(e.to_string()))?;
                Ok(HttpResponse {
                    status,
                    headers,
                    body,
                })
            }
            Self::InProcess(hosts) => {
                let uri: http::Uri = req
                    .url
                    .parse()
                    .map_err(|e| TransportError::Connection(format!("bad URL {}: {e}", req.url)))?;
                let authority = uri
                    .authority()
                    .map(|a| a.as_str().to_string())
                    .unwrap_or_default();
                let (router, dep) = hosts.routers.get(&authority).cloned().ok_or_else(|| {
                    TransportError::Connection(format!("connection refused: {authority}"))
                })?;
                let request_len = req.body.as_ref().map_or(0, |b| b.len()) + 200;
                let mut builder = http::Request::builder().method(req.method).uri(uri);
                if let Some(h) = builder.headers_mut() {
                    *h = req.headers;
                    if let Ok(v) = http::HeaderValue::from_str(&authority) {
                        h.insert(http::header::HOST, v);
                    }
                }
                let request = builder
                    .body(axum::body::Body::from(req.body.unwrap_or_default()))
                    .map_err(|e| TransportError::Connection(e.to_string()))?;
                let serve = async move {
                    let response = router
                        .oneshot(request)
                        .await
                        .map_err(|e| TransportError::Connection(e.to_string()))?;
                    let (parts, body) = response.into_parts();
                    let body = axum::body::to_bytes(body, usize::MAX)
                        .await
                        .map_err(|e| TransportError::Connection(e.to_string()))?;
                    Ok(HttpResponse {
                        status: parts.status.as_u16(),
                        headers: parts.headers,
                        body,
                    })
                };
                match &hosts.net {
                    Some(net) => net.carry(dep, request_len, serve).await,
                    None => serve.await,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn in_process_routes_by_authority_and_times_out_on_the_paused_clock() {
        let app = Router::new()
            .route("/ok", axum::routing::post(|b: Bytes| async move { b }))
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    "late"
                }),
            );
        let t = Transport::in_process([("svc:80".to_string(), app)]);
        let r = t
            .send(
                HttpRequest::new(Method::POST, "http://svc:80/ok")
                    .json(&serde_json::json!({"a": 1})),
                None,
            )
            .await
            .unwrap();
        assert_eq!((r.status, r.json()["a"].as_i64()), (200, Some(1)));
        let slow = t
            .send(
                HttpRequest::new(Method::GET, "http://svc:80/slow"),
                Some(Duration::from_secs(2)),
            )
            .await;
        assert_eq!(slow.unwrap_err(), TransportError::Timeout);
        let other = t
            .send(HttpRequest::new(Method::GET, "http://elsewhere:1/"), None)
            .await;
        assert!(matches!(other, Err(TransportError::Connection(_))));
        assert_eq!(urlencode("a b&c=d+é"), "a%20b%26c%3Dd%2B%C3%A9");
    }
}
