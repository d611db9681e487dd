//! The fault hook seen from a plain HTTP client: each verdict produces its wire behaviour and
//! is recorded in the history.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use crashcart_mocks::{CannedResponse, Dependency, MockSalesforce, RequestInfo, Verdict};
use http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn respond_verdict_replaces_the_answer_and_is_recorded() {
    let org = Org::start().await;
    org.sf
        .handle()
        .set_fault_hook(Arc::new(|req: &RequestInfo<'_>| {
            if req.operation == "sobject.create" && req.sobject == Some("Contact") {
                Verdict::respond(
                    CannedResponse::json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &json!([{"message": "down", "errorCode": "SERVER_UNAVAILABLE"}]),
                    )
                    .with_header("Retry-After", "2"),
                )
                .labelled("sf-outage")
            } else {
                Verdict::pass()
            }
        }));
    let r = org
        .post("/sobjects/Contact", json!({"LastName": "X"}))
        .await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("2"));
    assert_eq!(org.get("/limits").await.status, 200, "other routes pass");
    let h = org.sf.handle().history().snapshot();
    let rec = h.iter().find(|r| r.operation == "sobject.create").unwrap();
    assert_eq!(rec.fault.as_deref(), Some("sf-outage"));
    assert_eq!(rec.status, 503);
    assert_eq!(rec.retry_after_ms, Some(2000));
    assert_eq!(
        rec.client_id.as_deref(),
        Some(CLIENT_ID),
        "hooks can target by client id"
    );
    org.sf.handle().clear_fault_hook();
    assert_eq!(
        org.post("/sobjects/Contact", json!({"LastName": "X"}))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn drop_verdict_holds_until_the_client_gives_up() {
    let org = Org::start().await;
    org.sf
        .handle()
        .set_fault_hook(Arc::new(|req: &RequestInfo<'_>| {
            if req.dependency == Dependency::Salesforce {
                Verdict::drop_request()
            } else {
                Verdict::pass()
            }
        }));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = client
        .get(org.data("/limits"))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let history = org.sf.handle().history();
    let Org { sf, .. } = org;
    sf.shutdown().await;
    let rec = history
        .snapshot()
        .into_iter()
        .find(|r| r.operation == "limits")
        .expect("a dropped request is still recorded");
    assert_eq!(rec.status, 0);
    assert_eq!(rec.fault.as_deref(), Some("drop"));
}

#[tokio::test]
async fn reset_verdicts_reset_the_connection() {
    let org = Org::start().await;
    org.sf
        .handle()
        .set_fault_hook(Arc::new(|req: &RequestInfo<'_>| match req.operation {
            "limits" => Verdict::reset(),
            "sobjects.list" => {
                let mut c = CannedResponse::json(
                    StatusCode::OK,
                    &json!({"encoding": "UTF-8", "sobjects": [1, 2, 3]}),
                );
                c.reset_after_body = true;
                Verdict::respond(c)
            }
            _ => Verdict::pass(),
        }));
    let err = org
        .http
        .get(org.data("/limits"))
        .bearer_auth(&org.token)
        .send()
        .await
        .unwrap_err();
    assert!(
        !err.is_timeout() && err.status().is_none(),
        "no HTTP answer, just a broken connection: {err}"
    );
    // Mid-body: the head arrives, the body breaks.
    let resp = org
        .http
        .get(org.data("/sobjects"))
        .bearer_auth(&org.token)
        .send()
        .await;
    let broken = match resp {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(broken, "the body must not complete cleanly");
    let h = org.sf.handle().history().snapshot();
    assert!(h
        .iter()
        .any(|r| r.operation == "limits" && r.status == 0 && r.fault.as_deref() == Some("reset")));
}

#[tokio::test(start_paused = true)]
async fn delay_verdict_runs_on_the_tokio_clock() {
    use tower::ServiceExt;
    let (app, handle) = MockSalesforce::builder()
        .build_in_process("http://mock.test")
        .unwrap();
    handle.set_fault_hook(Arc::new(|_: &RequestInfo<'_>| {
        Verdict::delay(Duration::from_secs(30))
    }));
    let start = tokio::time::Instant::now();
    let resp = app
        .oneshot(
            http::Request::get("/services/data")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(30),
        "exactly the delay, in virtual time"
    );
    let rec = &handle.history().snapshot()[0];
    assert_eq!(rec.latency_us, 30_000_000);
    assert_eq!(rec.fault.as_deref(), Some("delay"));
}
