//! The fault responders for wiremock-rs users: each answers in the dependency's language,
//! triggers as configured, and replays with the same seed.
#![cfg(feature = "wiremock")]

use std::time::{Duration, Instant};

use crashcart::fault::wiremock::{
    llm_overloaded, rate_limited, salesforce_request_limit, salesforce_session_expired,
    FaultResponder,
};
use crashcart::fault::{DependencyName, FaultKind, Latency, Trigger};
use crashcart_mocks::llm::Flavour;
use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn statuses(server: &MockServer, route: &str, n: usize) -> Vec<u16> {
    let http = reqwest::Client::new();
    let mut out = vec![];
    for _ in 0..n {
        out.push(
            http.get(format!("{}{route}", server.uri()))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    out
}

#[tokio::test]
async fn flaky_every_nth_and_seeded_probability() {
    let server = MockServer::start().await;
    let every_third = FaultResponder::new(
        1,
        FaultKind::HttpError {
            status: 503,
            error_code: None,
            message: None,
            retry_after: None,
            retry_after_ms: None,
        },
        ResponseTemplate::new(200),
    )
    .unwrap()
    .trigger(Trigger::EveryNth(3));
    Mock::given(path("/nth"))
        .respond_with(every_third)
        .mount(&server)
        .await;
    assert_eq!(
        statuses(&server, "/nth", 6).await,
        [200, 200, 503, 200, 200, 503]
    );
    let mut runs = vec![];
    for (i, seed) in [5u64, 5, 6].into_iter().enumerate() {
        let route = format!("/coin{i}");
        Mock::given(path(route.as_str()))
            .respond_with(FaultResponder::flaky(
                seed,
                0.5,
                500,
                ResponseTemplate::new(200),
            ))
            .mount(&server)
            .await;
        runs.push(statuses(&server, &route, 20).await);
    }
    assert_eq!(runs[0], runs[1], "same seed, same answers");
    assert_ne!(runs[0], runs[2]);
}

#[tokio::test]
async fn canned_answers_speak_each_services_language() {
    let server = MockServer::start().await;
    Mock::given(path("/expired"))
        .respond_with(salesforce_session_expired())
        .mount(&server)
        .await;
    Mock::given(path("/limit"))
        .respond_with(salesforce_request_limit(15_000))
        .mount(&server)
        .await;
    Mock::given(path("/rate"))
        .respond_with(rate_limited(Duration::from_millis(1500)))
        .mount(&server)
        .await;
    Mock::given(path("/llm"))
        .respond_with(llm_overloaded(Flavour::LlamaCpp, Duration::from_secs(4)))
        .mount(&server)
        .await;
    let get = |p: &str| reqwest::get(format!("{}{p}", server.uri()));
    let r = get("/expired").await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v[0]["errorCode"], "INVALID_SESSION_ID");
    let r = get("/limit").await.unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["sforce-limit-info"].to_str().unwrap()
        ),
        (403, "api-usage=15000/15000")
    );
    let r = get("/rate").await.unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["retry-after"].to_str().unwrap()
        ),
        (429, "2")
    );
    let r = get("/llm").await.unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["retry-after"].to_str().unwrap()
        ),
        (503, "4")
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "unavailable_error");
}

#[tokio::test]
async fn latency_and_llm_errors_and_refusals() {
    let server = MockServer::start().await;
    let slow = FaultResponder::new(
        1,
        FaultKind::Latency {
            latency: Latency::Fixed {
                value: Duration::from_millis(200),
            },
        },
        ResponseTemplate::new(200),
    )
    .unwrap();
    Mock::given(method("GET"))
        .and(path("/slow"))
        .respond_with(slow)
        .mount(&server)
        .await;
    let t = Instant::now();
    assert_eq!(statuses(&server, "/slow", 1).await, [200]);
    assert!(t.elapsed() >= Duration::from_millis(200));
    let llm = FaultResponder::new(
        1,
        FaultKind::HttpError {
            status: 500,
            error_code: None,
            message: None,
            retry_after: None,
            retry_after_ms: None,
        },
        ResponseTemplate::new(200),
    )
    .unwrap()
    .dependency(DependencyName::Llm)
    .trigger(Trigger::FirstN(1));
    Mock::given(path("/v1/chat/completions"))
        .respond_with(llm)
        .mount(&server)
        .await;
    let r = reqwest::Client::new()
        .get(format!("{}/v1/chat/completions", server.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "server_error");
    assert_eq!(
        statuses(&server, "/v1/chat/completions", 1).await,
        [200],
        "first_n: only the first"
    );
    let e = FaultResponder::new(1, FaultKind::RefuseConnections, ResponseTemplate::new(200))
        .unwrap_err();
    assert!(e.contains("refuse_connections cannot be expressed"), "{e}");
}
