//! The fault schedule on tokio's paused clock: faults start and end exactly on time, flap,
//! repeat, and all go away when the schedule is dropped.

use std::time::Duration;

use axum::body::Body;
use axum::Router;
use crashcart::fault::model::{Flap, Repeat};
use crashcart::fault::{Dependencies, FaultEngine, FaultKind, FaultSpec, Target};
use crashcart_mocks::MockSalesforce;
use http_body_util::BodyExt;
use tokio::time::Instant;
use tower::ServiceExt;

struct Org {
    app: Router,
    token: String,
}

impl Org {
    async fn start() -> (Self, crashcart_mocks::salesforce::SalesforceHandle) {
        let (app, handle) = MockSalesforce::builder()
            .daily_api_limit(1_000_000)
            .build_in_process("http://mock.test")
            .unwrap();
        let req = http::Request::post("/services/oauth2/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("grant_type=password&client_id=3MVG9crashcart.mock.consumer.key&client_secret=crashcart-consumer-secret&username=integration@crashcart.test&password=crashcart-Pa55"))
            .unwrap();
        let resp = app.clone().oneshot(req).await.unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
        let token = body["access_token"].as_str().unwrap().to_string();
        (Self { app, token }, handle)
    }
    async fn limits(&self) -> u16 {
        let req = http::Request::get("/services/data/v59.0/limits")
            .header("authorization", format!("Bearer {}", self.token))
            .body(Body::empty())
            .unwrap();
        self.app
            .clone()
            .oneshot(req)
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

fn outage() -> FaultSpec {
    FaultSpec::now(FaultKind::HttpError {
        status: 503,
        error_code: None,
        message: None,
        retry_after: None,
        retry_after_ms: None,
    })
    .target(Target {
        route: Some("*/limits".into()),
        ..Target::default()
    })
}

/// The status of /limits at each whole second from `from` to `to`.
async fn timeline(org: &Org, origin: Instant, from: u64, to: u64) -> Vec<u16> {
    let mut out = vec![];
    for s in from..=to {
        tokio::time::sleep_until(origin + Duration::from_millis(s * 1000 + 500)).await;
        out.push(org.limits().await);
    }
    out
}

#[tokio::test(start_paused = true)]
async fn a_fault_is_active_from_at_for_its_duration_exactly() {
    let (org, sf) = Org::start().await;
    let engine = FaultEngine::new(
        1,
        Dependencies {
            salesforce: Some(sf.clone()),
            ..Dependencies::default()
        },
    );
    let origin = Instant::now();
    let mut spec = outage().named("window");
    spec.at = Some(Duration::from_secs(3));
    spec.duration = Some(Duration::from_secs(2));
    let _schedule = engine.schedule(vec![spec], origin).unwrap();
    assert_eq!(
        timeline(&org, origin, 0, 6).await,
        [200, 200, 200, 503, 503, 200, 200]
    );
    let ev = engine.events();
    let at = |e: &str| ev.iter().find(|x| x.event == e).unwrap().at_us;
    let start = sf.clock().elapsed().as_micros() as u64 - origin.elapsed().as_micros() as u64;
    assert_eq!(
        at("activated") - start,
        3_000_000,
        "activation on time to the microsecond"
    );
    assert_eq!(at("removed") - start, 5_000_000);
}

#[tokio::test(start_paused = true)]
async fn flapping_and_repeating() {
    let (org, sf) = Org::start().await;
    let engine = FaultEngine::new(
        1,
        Dependencies {
            salesforce: Some(sf),
            ..Dependencies::default()
        },
    );
    let origin = Instant::now();
    let mut flap = outage().named("flap");
    flap.duration = Some(Duration::from_secs(6));
    flap.flap = Some(Flap {
        on: Duration::from_secs(1),
        off: Duration::from_secs(2),
    });
    let schedule = engine.schedule(vec![flap], origin).unwrap();
    // on [0,1), off [1,3), on [3,4), off [4,6), gone after 6
    assert_eq!(
        timeline(&org, origin, 0, 7).await,
        [503, 200, 200, 503, 200, 200, 200, 200]
    );
    assert!(schedule.is_finished());
    drop(schedule);

    let origin = Instant::now();
    let mut rep = outage().named("repeat");
    rep.at = Some(Duration::from_secs(1));
    rep.duration = Some(Duration::from_secs(1));
    rep.repeat = Some(Repeat {
        every: Duration::from_secs(3),
        times: Some(3),
    });
    let _s = engine.schedule(vec![rep], origin).unwrap();
    assert_eq!(
        timeline(&org, origin, 0, 10).await,
        [200, 503, 200, 200, 503, 200, 200, 503, 200, 200, 200]
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_schedule_removes_active_faults_and_bad_specs_refuse_it_whole() {
    let (org, sf) = Org::start().await;
    let engine = FaultEngine::new(
        1,
        Dependencies {
            salesforce: Some(sf),
            ..Dependencies::default()
        },
    );
    let schedule = engine
        .schedule(
            vec![outage(), FaultSpec::now(FaultKind::QuotaExhausted)],
            Instant::now(),
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(engine.active().len(), 2);
    assert_eq!(org.limits().await, 503);
    drop(schedule);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(engine.active().is_empty());
    assert_eq!(org.limits().await, 200);

    let bad = FaultSpec::now(FaultKind::HttpError {
        status: 999,
        error_code: None,
        message: None,
        retry_after: None,
        retry_after_ms: None,
    });
    let err = engine
        .schedule(vec![outage(), bad], Instant::now())
        .unwrap_err();
    assert!(
        err.to_string().contains("valid HTTP status, got 999"),
        "{err}"
    );
    let net = FaultSpec::now(FaultKind::RefuseConnections);
    let err = engine.schedule(vec![net], Instant::now()).unwrap_err();
    assert!(err.to_string().contains("needs a chaos proxy"), "{err}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(
        engine.active().is_empty(),
        "nothing of a refused schedule was applied"
    );
}

#[tokio::test(start_paused = true)]
async fn latency_faults_delay_by_their_distribution() {
    let (org, sf) = Org::start().await;
    let engine = FaultEngine::new(
        1,
        Dependencies {
            salesforce: Some(sf),
            ..Dependencies::default()
        },
    );
    let _g = engine
        .apply(
            FaultSpec::now(FaultKind::Latency {
                latency: crashcart::fault::Latency::Fixed {
                    value: Duration::from_millis(1500),
                },
            })
            .target(Target {
                route: Some("*/limits".into()),
                ..Target::default()
            }),
        )
        .unwrap();
    let t = Instant::now();
    assert_eq!(org.limits().await, 200);
    assert_eq!(t.elapsed(), Duration::from_millis(1500));
    drop(_g);
    let _g = engine
        .apply(
            FaultSpec::now(FaultKind::Latency {
                latency: crashcart::fault::Latency::Uniform {
                    min: Duration::from_millis(100),
                    max: Duration::from_millis(300),
                },
            })
            .target(Target {
                route: Some("*/limits".into()),
                ..Target::default()
            }),
        )
        .unwrap();
    let mut seen = vec![];
    for _ in 0..20 {
        let t = Instant::now();
        org.limits().await;
        seen.push(t.elapsed());
    }
    assert!(
        seen.iter()
            .all(|d| *d >= Duration::from_millis(100) && *d <= Duration::from_millis(301)),
        "{seen:?}"
    );
    assert!(
        seen.iter().collect::<std::collections::BTreeSet<_>>().len() > 5,
        "spread: {seen:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn llm_timing_separates_time_to_first_token_and_inter_token_delay() {
    let (app, llm) = crashcart_mocks::MockLlm::builder()
        .zero_delay()
        .build_in_process("http://llm.test")
        .unwrap();
    let engine = FaultEngine::new(
        1,
        Dependencies {
            llm: Some(llm.clone()),
            ..Dependencies::default()
        },
    );
    let fixed = |ms| {
        Some(crashcart::fault::Latency::Fixed {
            value: Duration::from_millis(ms),
        })
    };
    let _g = engine
        .apply(FaultSpec::now(FaultKind::LlmTiming {
            ttft: fixed(2000),
            inter_token: fixed(50),
        }))
        .unwrap();
    let body = serde_json::json!({"model": "instant", "stream": true, "messages": [{"role": "user", "content": "Patient reports a cough for two weeks. No fever."}]});
    let req = http::Request::post("/v1/chat/completions")
        .header(
            "authorization",
            format!("Bearer {}", crashcart_mocks::llm::DEFAULT_API_KEY),
        )
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    let rec = &llm.history().snapshot()[0];
    let x = rec.llm.as_ref().unwrap();
    assert_eq!(x.first_byte_us.unwrap() - rec.at_us, 2_000_000, "TTFT");
    let pieces = text.matches("\"content\":").count() as u64 - 1; // minus the role chunk
    assert_eq!(
        x.last_byte_us.unwrap() - x.first_byte_us.unwrap(),
        50_000 * pieces,
        "inter-token"
    );
    assert_eq!(rec.fault.as_deref(), Some("llm_timing"));
}

#[tokio::test(start_paused = true)]
async fn revoked_refresh_tokens_and_cut_streams() {
    let (org, sf) = Org::start().await;
    let token = sf
        .mint_refresh_token(
            "3MVG9crashcart.mock.consumer.key",
            "integration@crashcart.test",
        )
        .unwrap();
    let engine = FaultEngine::new(
        1,
        Dependencies {
            salesforce: Some(sf),
            ..Dependencies::default()
        },
    );
    let _g = engine
        .apply(FaultSpec::now(FaultKind::RevokeRefreshTokens {
            client_id: None,
            username: None,
        }))
        .unwrap();
    let req = http::Request::post("/services/oauth2/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("grant_type=refresh_token&client_id=3MVG9crashcart.mock.consumer.key&client_secret=crashcart-consumer-secret&refresh_token={token}")))
        .unwrap();
    let resp = org.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 400);
    let v: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(v["error"], "invalid_grant");

    let (app, llm) = crashcart_mocks::MockLlm::builder()
        .zero_delay()
        .build_in_process("http://llm.test")
        .unwrap();
    let engine = FaultEngine::new(
        1,
        Dependencies {
            llm: Some(llm.clone()),
            ..Dependencies::default()
        },
    );
    let _g = engine
        .apply(FaultSpec::now(FaultKind::LlmStreamCut { after_tokens: 2 }))
        .unwrap();
    let body = serde_json::json!({"model": "instant", "stream": true, "messages": [{"role": "user", "content": "Patient reports a cough for two weeks. No fever."}]});
    let req = http::Request::post("/v1/chat/completions")
        .header(
            "authorization",
            format!("Bearer {}", crashcart_mocks::llm::DEFAULT_API_KEY),
        )
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert!(
        resp.into_body().collect().await.is_err(),
        "the stream breaks"
    );
    assert_eq!(
        llm.history().snapshot()[0].error_code.as_deref(),
        Some("stream_cut")
    );
}
