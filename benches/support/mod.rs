//! Shared by the load benches: a closed-loop HTTP driver on keep-alive connections, and the
//! bare-axum baselines every mock is measured against in the same run.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The HTTP client of the benches.
pub type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// A client keeping up to `pool` idle connections per host.
pub fn client(pool: usize) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(pool)
        .build_http()
}

/// One request to repeat.
#[derive(Clone)]
pub struct Target {
    /// Absolute URL.
    pub url: String,
    /// `GET` or `POST`.
    pub method: http::Method,
    /// Bearer token, if any.
    pub token: Option<String>,
    /// JSON body, if any.
    pub body: Bytes,
}

impl Target {
    pub fn get(url: impl Into<String>, token: Option<&str>) -> Self {
        Self {
            url: url.into(),
            method: http::Method::GET,
            token: token.map(str::to_string),
            body: Bytes::new(),
        }
    }
    pub fn post(url: impl Into<String>, token: Option<&str>, body: &serde_json::Value) -> Self {
        Self {
            url: url.into(),
            method: http::Method::POST,
            token: token.map(str::to_string),
            body: Bytes::from(body.to_string()),
        }
    }
}

/// What a drive measured.
#[derive(Clone, Debug)]
pub struct Drive {
    pub elapsed: Duration,
    /// Response body bytes received in all.
    pub bytes: u64,
    /// Per-request latency, microseconds.
    pub latency_us: hdrhistogram::Histogram<u64>,
}

/// Send `total` requests over `concurrency` workers, each reading its whole body.
pub async fn drive(client: &HttpClient, target: &Target, total: u64, concurrency: u64) -> Drive {
    let left = Arc::new(AtomicU64::new(total));
    let bytes = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = vec![];
    for _ in 0..concurrency.min(total.max(1)) {
        let client = client.clone();
        let left = left.clone();
        let bytes = bytes.clone();
        let target = target.clone();
        let uri: http::Uri = target.url.parse().expect("valid URL");
        tasks.push(tokio::spawn(async move {
            let mut hist = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                let sent = Instant::now();
                let mut req = http::Request::builder()
                    .method(target.method.clone())
                    .uri(uri.clone());
                if let Some(t) = &target.token {
                    req = req.header("authorization", format!("Bearer {t}"));
                }
                if !target.body.is_empty() {
                    req = req.header("content-type", "application/json");
                }
                let resp = client
                    .request(req.body(Full::new(target.body.clone())).unwrap())
                    .await
                    .expect("request");
                assert!(
                    resp.status().is_success(),
                    "{} {}",
                    target.url,
                    resp.status()
                );
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                let _ = hist.record(sent.elapsed().as_micros() as u64);
            }
            hist
        }));
    }
    let mut latency_us = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
    for t in tasks {
        let _ = latency_us.add(t.await.expect("worker"));
    }
    Drive {
        elapsed: start.elapsed(),
        bytes: bytes.load(Ordering::Relaxed),
        latency_us,
    }
}

/// A constant JSON body shaped like a small API answer.
pub const CONSTANT_JSON: &str = r#"{"attributes":{"type":"Contact","url":"/services/data/v59.0/sobjects/Contact/003000000000001AAA"},"Id":"003000000000001AAA","LastName":"Synthetic"}"#;

/// Start the bare-axum baseline: `GET /constant` (constant JSON) and `GET /sse/{n}` (`n`
/// constant SSE chunks, then `data: [DONE]`). Returns its base URL.
pub async fn start_baseline() -> String {
    use axum::extract::Path;
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/constant",
            get(|| async { ([(http::header::CONTENT_TYPE, "application/json;charset=UTF-8")], CONSTANT_JSON) }),
        )
        .route(
            "/sse/{n}",
            get(|Path(n): Path<usize>| async move {
                let chunk = Bytes::from_static(br#"data: {"id":"chatcmpl-0","object":"chat.completion.chunk","created":0,"model":"instant","choices":[{"index":0,"delta":{"content":" word"},"logprobs":null,"finish_reason":null}]}

"#);
                let frames = (0..n).map(move |_| Ok::<_, std::io::Error>(chunk.clone()))
                    .chain(std::iter::once(Ok(Bytes::from_static(b"data: [DONE]\n\n"))));
                (
                    [(http::header::CONTENT_TYPE, "text/event-stream; charset=utf-8")],
                    axum::body::Body::from_stream(futures_util::stream::iter(frames)),
                )
            }),
        );
    // Served by the same accept loop as the mocks (hyper, TCP_NODELAY), so the ratio
    // isolates what a mock does per request from how connections are served.
    let (stop, _signal) = crashcart_mocks::server::StopHandle::new();
    let listen = crashcart_mocks::server::ListenConfig::default();
    let server = crashcart_mocks::server::serve(app, &listen, stop)
        .await
        .expect("baseline binds");
    let base = server.base_url();
    // The baseline lives as long as the bench process.
    std::mem::forget(server);
    base
}

/// A two-worker runtime, like the CI machine's two cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Medians of (baseline, mock) rates over rounds, and the median of the per-round ratios.
pub fn medians(rounds: &[(f64, f64)]) -> (f64, f64, f64) {
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    (
        median(rounds.iter().map(|r| r.0).collect()),
        median(rounds.iter().map(|r| r.1).collect()),
        median(rounds.iter().map(|r| r.1 / r.0).collect()),
    )
}

/// Log in to a mock Salesforce with the password grant of its default app and user.
pub async fn salesforce_token(base_url: &str) -> String {
    let token: serde_json::Value = reqwest::Client::new()
        .post(format!("{base_url}/services/oauth2/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "3MVG9crashcart.mock.consumer.key"),
            ("client_secret", "crashcart-consumer-secret"),
            ("username", "integration@crashcart.test"),
            ("password", "crashcart-Pa55"),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token JSON");
    token["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// The least a TCP proxy can do: accept and `copy_bidirectional`. Returns its address.
pub async fn minimal_proxy(upstream: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let _ = client.set_nodelay(true);
                if let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = up.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                }
            });
        }
    });
    addr
}
