//! Each fault kind that lives in the mocks, seen from a plain HTTP client: the wire behaviour
//! it documents, and its removal (guard drop, clear_all, engine drop).

use std::time::Duration;

use crashcart::fault::{
    Dependencies, DependencyName, FaultEngine, FaultKind, FaultSpec, Latency, OutputDrift, Target,
    Trigger,
};
use crashcart_mocks::llm::{Flavour, DEFAULT_API_KEY};
use crashcart_mocks::{MockLlm, MockSalesforce};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Rig {
    sf: MockSalesforce,
    llm: MockLlm,
    http: reqwest::Client,
    token: String,
    engine: FaultEngine,
}

const V: &str = "/services/data/v59.0";

impl Rig {
    async fn start() -> Self {
        Self::with_flavour(Flavour::OpenAi).await
    }
    async fn with_flavour(flavour: Flavour) -> Self {
        let sf = MockSalesforce::builder().seed(4).start().await.unwrap();
        let llm = MockLlm::builder()
            .seed(4)
            .zero_delay()
            .flavour(flavour)
            .start()
            .await
            .unwrap();
        let engine = FaultEngine::new(
            42,
            Dependencies {
                salesforce: Some(sf.handle().clone()),
                llm: Some(llm.handle().clone()),
                network: None,
            },
        );
        let http = reqwest::Client::new();
        let mut rig = Self {
            sf,
            llm,
            http,
            token: String::new(),
            engine,
        };
        rig.token = rig.login().await.1["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        rig
    }
    async fn login(&self) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}/services/oauth2/token", self.sf.url()))
            .form(&[
                ("grant_type", "password"),
                ("client_id", "3MVG9crashcart.mock.consumer.key"),
                ("client_secret", "crashcart-consumer-secret"),
                ("username", "integration@crashcart.test"),
                ("password", "crashcart-Pa55"),
            ])
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }
    async fn sf_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut rb = self
            .http
            .request(method, format!("{}{V}{path}", self.sf.url()))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.unwrap();
        let (s, h) = (r.status(), r.headers().clone());
        let text = r.text().await.unwrap_or_default();
        (
            s,
            h,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
    async fn get(&self, path: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.sf_call(reqwest::Method::GET, path, None).await
    }
    async fn chat(&self, body: Value) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let r = self
            .http
            .post(format!("{}/v1/chat/completions", self.llm.url()))
            .bearer_auth(DEFAULT_API_KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        let (s, h) = (r.status(), r.headers().clone());
        (s, h, r.text().await.unwrap_or_default())
    }
}

fn on(dep: DependencyName) -> Target {
    Target {
        dependency: Some(dep),
        ..Target::default()
    }
}

fn error_code(v: &Value) -> &str {
    v[0]["errorCode"].as_str().unwrap_or("")
}

#[tokio::test]
async fn http_errors_speak_each_dependencys_language_with_retry_after() {
    let rig = Rig::start().await;
    let g = rig
        .engine
        .apply(
            FaultSpec::now(FaultKind::HttpError {
                status: 503,
                error_code: None,
                message: None,
                retry_after: Some(Duration::from_millis(1500)),
                retry_after_ms: Some(1500),
            })
            .target(Target {
                dependency: Some(DependencyName::Salesforce),
                route: Some("/services/data/*/sobjects/Contact*".into()),
                ..Target::default()
            })
            .named("sf-down"),
        )
        .unwrap();
    let (s, h, body) = rig
        .sf_call(
            reqwest::Method::POST,
            "/sobjects/Contact",
            Some(json!({"LastName": "X"})),
        )
        .await;
    assert_eq!(s, 503);
    assert_eq!(error_code(&body), "SERVER_UNAVAILABLE");
    assert_eq!(h["retry-after"], "2", "rounded up to whole seconds");
    assert_eq!(h["retry-after-ms"], "1500");
    assert_eq!(rig.get("/limits").await.0, 200, "other routes pass");
    let rec = rig
        .sf
        .handle()
        .history()
        .snapshot()
        .into_iter()
        .find(|r| r.operation == "sobject.create")
        .unwrap();
    assert_eq!(rec.fault.as_deref(), Some("sf-down"));
    drop(g);
    assert_eq!(
        rig.sf_call(
            reqwest::Method::POST,
            "/sobjects/Contact",
            Some(json!({"LastName": "X"}))
        )
        .await
        .0,
        201
    );

    // The LLM answers in its server flavour's shape.
    let _g = rig
        .engine
        .apply(
            FaultSpec::now(FaultKind::HttpError {
                status: 500,
                error_code: None,
                message: Some("GPU fell off the bus".into()),
                retry_after: None,
                retry_after_ms: None,
            })
            .target(on(DependencyName::Llm)),
        )
        .unwrap();
    let (s, _, body) = rig
        .chat(json!({"model": "instant", "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(s, 500);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["message"], "GPU fell off the bus");
    assert_eq!(v["error"]["type"], "server_error");

    // The token endpoint answers in OAuth's shape.
    let _g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::InvalidGrant))
        .unwrap();
    assert_eq!(
        rig.login().await,
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_grant", "error_description": "authentication failure"})
        )
    );
}

#[tokio::test]
async fn triggers_every_nth_first_n_and_seeded_probability() {
    let rig = Rig::start().await;
    let fault = || FaultKind::HttpError {
        status: 500,
        error_code: None,
        message: None,
        retry_after: None,
        retry_after_ms: None,
    };
    let limits = Target {
        route: Some("*/limits".into()),
        ..Target::default()
    };
    let g = rig
        .engine
        .apply(
            FaultSpec::now(fault())
                .target(limits.clone())
                .trigger(Trigger::EveryNth(3)),
        )
        .unwrap();
    let mut seen = vec![];
    for _ in 0..6 {
        seen.push(rig.get("/limits").await.0.as_u16());
    }
    assert_eq!(seen, [200, 200, 500, 200, 200, 500]);
    drop(g);
    let g = rig
        .engine
        .apply(
            FaultSpec::now(fault())
                .target(limits.clone())
                .trigger(Trigger::FirstN(2)),
        )
        .unwrap();
    let mut seen = vec![];
    for _ in 0..4 {
        seen.push(rig.get("/limits").await.0.as_u16());
    }
    assert_eq!(seen, [500, 500, 200, 200]);
    drop(g);
    // The same seed draws the same sequence; another seed another one.
    let mut runs = vec![];
    for seed in [7, 7, 8] {
        let engine = FaultEngine::new(
            seed,
            Dependencies {
                salesforce: Some(rig.sf.handle().clone()),
                ..Dependencies::default()
            },
        );
        let _g = engine
            .apply(
                FaultSpec::now(fault())
                    .target(limits.clone())
                    .trigger(Trigger::Probability(0.5))
                    .named("coin"),
            )
            .unwrap();
        let mut seen = vec![];
        for _ in 0..24 {
            seen.push(rig.get("/limits").await.0 == 500);
        }
        runs.push(seen);
    }
    assert_eq!(runs[0], runs[1]);
    assert_ne!(runs[0], runs[2]);
    let hits = runs[0].iter().filter(|h| **h).count();
    assert!((4..=20).contains(&hits), "{hits} of 24");
}

#[tokio::test]
async fn empty_malformed_reset_and_hang() {
    let rig = Rig::start().await;
    let limits = Target {
        route: Some("*/limits".into()),
        ..Target::default()
    };
    let g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::EmptyResponse { status: 502 }).target(limits.clone()))
        .unwrap();
    let (s, _, body) = rig.get("/limits").await;
    assert_eq!((s.as_u16(), body), (502, Value::String(String::new())));
    drop(g);
    let g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::MalformedBody).target(limits.clone()))
        .unwrap();
    let r = rig
        .http
        .get(format!("{}{V}/limits", rig.sf.url()))
        .bearer_auth(&rig.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.is_err(), "the body is not JSON");
    drop(g);
    let g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::ResetMidBody).target(limits.clone()))
        .unwrap();
    let r = rig
        .http
        .get(format!("{}{V}/limits", rig.sf.url()))
        .bearer_auth(&rig.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err(), "the body breaks off");
    drop(g);
    let g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::ConnectionReset).target(limits.clone()))
        .unwrap();
    let e = rig
        .http
        .get(format!("{}{V}/limits", rig.sf.url()))
        .bearer_auth(&rig.token)
        .send()
        .await
        .unwrap_err();
    assert!(
        e.is_request() || e.is_connect() || e.to_string().contains("connection"),
        "{e}"
    );
    drop(g);
    let _g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::Hang).target(limits))
        .unwrap();
    let e = rig
        .http
        .get(format!("{}{V}/limits", rig.sf.url()))
        .bearer_auth(&rig.token)
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e}");
}

#[tokio::test]
async fn token_faults_expire_sessions_and_shorten_the_ttl() {
    let rig = Rig::start().await;
    assert_eq!(rig.get("/limits").await.0, 200);
    let _g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::ExpireTokens {
            client_id: None,
            username: None,
            share: None,
        }))
        .unwrap();
    let (s, _, body) = rig.get("/limits").await;
    assert_eq!((s.as_u16(), error_code(&body)), (401, "INVALID_SESSION_ID"));
    let before = rig.sf.handle().token_ttl();
    let g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::TokenTtl {
            ttl: Duration::from_secs(5),
        }))
        .unwrap();
    assert_eq!(rig.login().await.0, 200);
    assert_eq!(rig.sf.handle().token_ttl(), Duration::from_secs(5));
    drop(g);
    assert_eq!(
        rig.sf.handle().token_ttl(),
        before,
        "restored when the fault ends"
    );
}

#[tokio::test]
async fn governor_limits_quota_long_requests_and_row_locks() {
    let rig = Rig::start().await;
    let g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::QuotaExhausted))
        .unwrap();
    let (s, h, body) = rig.get("/limits").await;
    assert_eq!(
        (s.as_u16(), error_code(&body)),
        (403, "REQUEST_LIMIT_EXCEEDED")
    );
    let (_, max) = rig.sf.handle().api_usage();
    assert_eq!(
        h["sforce-limit-info"],
        format!("api-usage={max}/{max}").as_str()
    );
    drop(g);
    let (s, h, _) = rig.get("/limits").await;
    assert_eq!(s, 200);
    assert_ne!(
        h["sforce-limit-info"],
        format!("api-usage={max}/{max}").as_str(),
        "usage restored"
    );

    let g = rig
        .engine
        .apply(
            FaultSpec::now(FaultKind::ConcurrentLongRequests).target(Target {
                operation: Some("query".into()),
                ..Target::default()
            }),
        )
        .unwrap();
    let (s, _, body) = rig.get("/query?q=SELECT+Id+FROM+Contact").await;
    assert_eq!(
        (s.as_u16(), body[0]["message"].as_str().unwrap()),
        (403, "ConcurrentPerOrgLongTxn Limit exceeded.")
    );
    drop(g);

    let (_, _, created) = rig
        .sf_call(
            reqwest::Method::POST,
            "/sobjects/Contact",
            Some(json!({"LastName": "Locked"})),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let _g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::RowLock {
            records: vec![id.clone()],
        }))
        .unwrap();
    let (s, _, body) = rig
        .sf_call(
            reqwest::Method::PATCH,
            &format!("/sobjects/Contact/{id}"),
            Some(json!({"FirstName": "Ada"})),
        )
        .await;
    assert_eq!((s.as_u16(), error_code(&body)), (400, "UNABLE_TO_LOCK_ROW"));
    assert!(body[0]["message"].as_str().unwrap().ends_with(&id));
    assert_eq!(
        rig.get(&format!("/sobjects/Contact/{id}")).await.0,
        200,
        "reads are not locked"
    );
}

/// Overlapping faults on one piece of state, ended in the order they began (found by
/// `crashcart explore`: the quota stayed spent for good) or in reverse: the state is held
/// while any of them is in force and is the original once all have ended.
#[tokio::test]
async fn overlapping_state_faults_restore_the_state_from_before_the_first() {
    let rig = Rig::start().await;
    let sf = rig.sf.handle();
    let (used, max) = sf.api_usage();
    assert!(used < max);
    for first_ends_first in [true, false] {
        let a = rig
            .engine
            .apply(FaultSpec::now(FaultKind::QuotaExhausted))
            .unwrap();
        let b = rig
            .engine
            .apply(FaultSpec::now(FaultKind::QuotaExhausted))
            .unwrap();
        let (earlier, later) = if first_ends_first { (a, b) } else { (b, a) };
        drop(earlier);
        assert_eq!(sf.api_usage().0, max, "still spent while one is in force");
        drop(later);
        assert_eq!(sf.api_usage().0, used, "restored once both ended");
    }
    // Three token TTLs, the middle one ending first, then the newest, then the oldest.
    let ttl = |secs| {
        FaultSpec::now(FaultKind::TokenTtl {
            ttl: Duration::from_secs(secs),
        })
    };
    let before = sf.token_ttl();
    let (x, y, z) = (
        rig.engine.apply(ttl(10)).unwrap(),
        rig.engine.apply(ttl(20)).unwrap(),
        rig.engine.apply(ttl(30)).unwrap(),
    );
    drop(y);
    assert_eq!(sf.token_ttl(), Duration::from_secs(30));
    drop(z);
    assert_eq!(
        sf.token_ttl(),
        Duration::from_secs(10),
        "the oldest in force"
    );
    drop(x);
    assert_eq!(sf.token_ttl(), before);
    // And when the engine goes, newest first.
    let _ = rig.engine.apply(ttl(10)).map(std::mem::forget);
    let _ = rig.engine.apply(ttl(20)).map(std::mem::forget);
    rig.engine.clear_all();
    assert_eq!(sf.token_ttl(), before);
}

#[tokio::test]
async fn schema_drift_changes_describe_and_queries_and_is_undone() {
    let rig = Rig::start().await;
    let (_, _, created) = rig
        .sf_call(
            reqwest::Method::POST,
            "/sobjects/Contact",
            Some(json!({"LastName": "Drift", "Patient_External_Id__c": "CC-D-1"})),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let fields = |d: &Value| {
        d["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::FieldRenamed {
            object: "Contact".into(),
            field: "Patient_External_Id__c".into(),
            to: "Patient_Ext_Id__c".into(),
        }))
        .unwrap();
    let (_, _, describe) = rig.get("/sobjects/Contact/describe").await;
    assert!(fields(&describe).contains(&"Patient_Ext_Id__c".to_string()));
    assert!(!fields(&describe).contains(&"Patient_External_Id__c".to_string()));
    let (s, _, body) = rig
        .get("/query?q=SELECT+Patient_External_Id__c+FROM+Contact")
        .await;
    assert_eq!((s.as_u16(), error_code(&body)), (400, "INVALID_FIELD"));
    let (_, _, rec) = rig.get(&format!("/sobjects/Contact/{id}")).await;
    assert_eq!(
        rec["Patient_Ext_Id__c"], "CC-D-1",
        "the data moved with the rename"
    );
    drop(g);
    let (_, _, rec) = rig.get(&format!("/sobjects/Contact/{id}")).await;
    assert_eq!(rec["Patient_External_Id__c"], "CC-D-1");

    let g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::RequiredFieldAdded {
            object: "Contact".into(),
            field: "Consent__c".into(),
        }))
        .unwrap();
    let (s, _, body) = rig
        .sf_call(
            reqwest::Method::POST,
            "/sobjects/Contact",
            Some(json!({"LastName": "NoConsent"})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), error_code(&body)),
        (400, "REQUIRED_FIELD_MISSING")
    );
    drop(g);

    let g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::ApiVersionRetired { below: 60 }))
        .unwrap();
    let (s, _, body) = rig.get("/limits").await;
    assert_eq!(
        (s.as_u16(), error_code(&body)),
        (410, "UNSUPPORTED_API_VERSION")
    );
    drop(g);
    assert_eq!(rig.get("/limits").await.0, 200);

    let err = rig
        .engine
        .apply(FaultSpec::now(FaultKind::FieldRemoved {
            object: "Contact".into(),
            field: "Nope__c".into(),
        }))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("Contact.Nope__c does not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn picklist_value_withdrawn() {
    let rig = Rig::start().await;
    let (_, _, describe) = rig.get("/sobjects/Contact/describe").await;
    let field = describe["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["type"] == "picklist" && !f["picklistValues"].as_array().unwrap().is_empty())
        .expect("Contact has a picklist")
        .clone();
    let name = field["name"].as_str().unwrap().to_string();
    let value = field["picklistValues"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let _g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::PicklistValueWithdrawn {
            object: "Contact".into(),
            field: name.clone(),
            value: value.clone(),
        }))
        .unwrap();
    let (s, _, body) = rig
        .sf_call(
            reqwest::Method::POST,
            "/sobjects/Contact",
            Some(json!({"LastName": "P", name: value})),
        )
        .await;
    assert_eq!(
        (s.as_u16(), error_code(&body)),
        (400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST")
    );
}

#[tokio::test]
async fn llm_drift_truncation_overload_and_slots() {
    let rig = Rig::start().await;
    let ask = json!({"model": "instant", "messages": [{"role": "user", "content": "Patient reports chest pain since 3 days. She takes metformin 500 mg."}], "response_format": {"type": "json_object"}});
    let g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::LlmOutputDrift {
            drift: OutputDrift::CodeFence,
        }))
        .unwrap();
    let content = serde_json::from_str::<Value>(&rig.chat(ask.clone()).await.2).unwrap()["choices"]
        [0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        content.starts_with("```json\n") && content.ends_with("\n```"),
        "{content}"
    );
    drop(g);
    let g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::LlmOutputDrift {
            drift: OutputDrift::RenameKey {
                from: "summary".into(),
                to: "summary_text".into(),
            },
        }))
        .unwrap();
    let v: Value = serde_json::from_str(&rig.chat(ask.clone()).await.2).unwrap();
    let inner: Value =
        serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert!(
        inner.get("summary").is_none() && inner["summary_text"].is_string(),
        "{inner}"
    );
    drop(g);
    let g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::LlmTruncate { max_tokens: 4 }))
        .unwrap();
    let v: Value = serde_json::from_str(&rig.chat(ask.clone()).await.2).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() <= 4);
    drop(g);
    let g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::LlmOverloaded {
            retry_after: Duration::from_secs(3),
        }))
        .unwrap();
    let (s, h, _) = rig.chat(ask.clone()).await;
    assert_eq!((s.as_u16(), h["retry-after"].to_str().unwrap()), (429, "3"));
    drop(g);
    let g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::LlmSlots {
            model: Some("llama3.1:8b".into()),
            slots: 1,
            queue_depth: Some(0),
        }))
        .unwrap();
    assert_eq!(
        rig.llm
            .handle()
            .runtime("llama3.1:8b")
            .unwrap()
            .load()
            .slots,
        1
    );
    drop(g);
    assert_eq!(
        rig.llm
            .handle()
            .runtime("llama3.1:8b")
            .unwrap()
            .load()
            .slots,
        4,
        "restored"
    );
    // The same overload in the llama.cpp flavour is a 503.
    let rig = Rig::with_flavour(Flavour::LlamaCpp).await;
    let _g = rig
        .engine
        .apply(FaultSpec::now(FaultKind::LlmOverloaded {
            retry_after: Duration::from_millis(1200),
        }))
        .unwrap();
    let (s, h, body) = rig.chat(ask).await;
    assert_eq!((s.as_u16(), h["retry-after"].to_str().unwrap()), (503, "2"));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["type"],
        "unavailable_error"
    );
}

#[tokio::test]
async fn clear_all_and_engine_drop_remove_everything() {
    let rig = Rig::start().await;
    let before_ttl = rig.sf.handle().token_ttl();
    rig.engine
        .apply(FaultSpec::now(FaultKind::QuotaExhausted))
        .unwrap()
        .forget();
    rig.engine
        .apply(FaultSpec::now(FaultKind::TokenTtl {
            ttl: Duration::from_secs(1),
        }))
        .unwrap()
        .forget();
    let g = rig
        .engine
        .apply(
            FaultSpec::now(FaultKind::Latency {
                latency: Latency::Fixed {
                    value: Duration::from_secs(30),
                },
            })
            .target(on(DependencyName::Llm)),
        )
        .unwrap();
    assert_eq!(rig.engine.active().len(), 3);
    assert_eq!(rig.get("/limits").await.0, 403);
    rig.engine.clear_all();
    assert!(rig.engine.active().is_empty());
    assert_eq!(rig.get("/limits").await.0, 200);
    assert_eq!(rig.sf.handle().token_ttl(), before_ttl);
    drop(g); // after clear_all: a no-op
    let all = rig.engine.events();
    let events: Vec<&str> = all.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(events.iter().filter(|e| **e == "activated").count(), 3);
    assert_eq!(events.iter().filter(|e| **e == "removed").count(), 3);
    // Dropping the engine (shutdown) clears its faults and uninstalls its hook.
    rig.engine
        .apply(FaultSpec::now(FaultKind::QuotaExhausted))
        .unwrap()
        .forget();
    let Rig {
        sf,
        engine,
        http,
        token,
        ..
    } = rig;
    drop(engine);
    let r = http
        .get(format!("{}{V}/limits", sf.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

impl Rig {
    /// A Bulk API 2.0 insert of Contacts with these last names, closed; its id.
    async fn bulk_insert(&self, last_names: &[&str]) -> String {
        let (s, _, job) = self
            .sf_call(
                reqwest::Method::POST,
                "/jobs/ingest",
                Some(json!({"object": "Contact", "operation": "insert"})),
            )
            .await;
        assert_eq!(s, 200, "{job}");
        let id = job["id"].as_str().unwrap().to_string();
        let csv = format!("LastName\n{}\n", last_names.join("\n"));
        let put = self
            .http
            .put(format!("{}{V}/jobs/ingest/{id}/batches", self.sf.url()))
            .bearer_auth(&self.token)
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 201);
        let close = Some(json!({"state": "UploadComplete"}));
        self.sf_call(reqwest::Method::PATCH, &format!("/jobs/ingest/{id}"), close)
            .await;
        id
    }

    /// The job's info once its state is one of `states`, or after 10 s.
    async fn bulk_until(&self, id: &str, states: &[&str]) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (_, _, info) = self.get(&format!("/jobs/ingest/{id}")).await;
            let state = info["state"].as_str().unwrap_or("");
            if states.contains(&state) || tokio::time::Instant::now() > deadline {
                return info;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn bulk_faults_stall_jobs_fail_records_and_spend_the_allowance() {
    let rig = Rig::start().await;
    // A stuck job: InProgress (or not yet started) while the fault lasts, done after.
    let stuck = rig
        .engine
        .apply(FaultSpec::now(FaultKind::BulkJobStuck))
        .unwrap();
    let id = rig.bulk_insert(&["A", "B"]).await;
    for _ in 0..3 {
        let (_, _, info) = rig.get(&format!("/jobs/ingest/{id}")).await;
        assert!(
            ["UploadComplete", "InProgress"].contains(&info["state"].as_str().unwrap()),
            "{info}"
        );
    }
    drop(stuck);
    assert_eq!(
        rig.bulk_until(&id, &["JobComplete"]).await["state"],
        "JobComplete"
    );
    // Every second record fails while the fault lasts.
    let failing = rig
        .engine
        .apply(FaultSpec::now(FaultKind::BulkRecordsFail { every: 2 }))
        .unwrap();
    let id = rig.bulk_insert(&["C", "D", "E", "F"]).await;
    let info = rig.bulk_until(&id, &["JobComplete"]).await;
    assert_eq!(info["numberRecordsFailed"], 2, "{info}");
    drop(failing);
    // The allowance spent: the job fails; once the fault ends, jobs pass again.
    let spent = rig
        .engine
        .apply(FaultSpec::now(FaultKind::BulkLimitSpent))
        .unwrap();
    let id = rig.bulk_insert(&["G"]).await;
    let info = rig.bulk_until(&id, &["Failed", "JobComplete"]).await;
    assert_eq!(info["state"], "Failed", "{info}");
    drop(spent);
    let id = rig.bulk_insert(&["H"]).await;
    let info = rig.bulk_until(&id, &["Failed", "JobComplete"]).await;
    assert_eq!(
        (info["state"].clone(), info["numberRecordsFailed"].clone()),
        (json!("JobComplete"), json!(0)),
        "{info}"
    );
}

impl Rig {
    /// One CometD exchange with the mock's Streaming API.
    async fn cometd(&self, messages: Value) -> Vec<Value> {
        let r = self
            .http
            .post(format!("{}/cometd/59.0", self.sf.url()))
            .bearer_auth(&self.token)
            .json(&messages)
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    /// A client subscribed to Contact change events, replaying from `replay`; its id and
    /// the subscribe answer.
    async fn subscriber(&self, replay: i64) -> (String, Value) {
        let hs = self
            .cometd(json!([{"channel": "/meta/handshake", "version": "1.0"}]))
            .await;
        let client = hs[0]["clientId"].as_str().unwrap().to_string();
        let channel = "/data/ContactChangeEvent";
        let sub = self
            .cometd(json!([{"channel": "/meta/subscribe", "clientId": client, "subscription": channel, "ext": {"replay": {channel: replay}}}]))
            .await;
        (client, sub[0].clone())
    }

    /// The change events one `/meta/connect` carries, and the connect answer.
    async fn connect(&self, client: &str) -> (Vec<Value>, Value) {
        let mut out = self
            .cometd(json!([{"channel": "/meta/connect", "clientId": client, "connectionType": "long-polling"}]))
            .await;
        let answer = out.pop().unwrap();
        (out, answer)
    }

    async fn contact(&self, last: &str) {
        let body = Some(json!({"LastName": last}));
        let (s, _, _) = self
            .sf_call(reqwest::Method::POST, "/sobjects/Contact", body)
            .await;
        assert_eq!(s, 201);
    }
}

#[tokio::test]
async fn change_event_faults_drop_subscribers_lose_events_expire_replays_and_spend_publishing() {
    let rig = Rig::start().await;
    let (client, _) = rig.subscriber(-1).await;
    rig.connect(&client).await;
    // Events written while the fault lasts are lost; those after it arrive.
    let dropped = rig
        .engine
        .apply(FaultSpec::now(FaultKind::EventsDropped))
        .unwrap();
    rig.contact("Lost").await;
    drop(dropped);
    rig.contact("Kept").await;
    let (events, _) = rig.connect(&client).await;
    let names: Vec<&Value> = events
        .iter()
        .map(|e| &e["data"]["payload"]["Name"]["LastName"])
        .collect();
    assert_eq!(names, [&json!("Kept")]);
    assert_eq!(rig.sf.handle().streaming_lost().len(), 1);
    let first_replay = events[0]["data"]["event"]["replayId"].as_i64().unwrap();
    // A disconnect: the subscriber is told to handshake again.
    rig.engine
        .apply(FaultSpec::now(FaultKind::SubscriberDisconnect))
        .unwrap()
        .forget();
    let (_, answer) = rig.connect(&client).await;
    assert_eq!(answer["error"], "403::Unknown client", "{answer}");
    // Retention lapsed: replaying from an old id is refused until the fault ends.
    let expired = rig
        .engine
        .apply(FaultSpec::now(FaultKind::ReplayExpired))
        .unwrap();
    let (_, refused) = rig.subscriber(first_replay - 1).await;
    assert_eq!(refused["successful"], false, "{refused}");
    drop(expired);
    let (_, accepted) = rig.subscriber(first_replay - 1).await;
    assert_eq!(accepted["successful"], true, "{accepted}");
    // The hourly publish allowance spent: publishing fails until the fault ends.
    let spent = rig
        .engine
        .apply(FaultSpec::now(FaultKind::PublishLimitSpent))
        .unwrap();
    let publish = || {
        let body = Some(json!({"Reason__c": "rebook"}));
        rig.sf_call(
            reqwest::Method::POST,
            "/sobjects/Appointment_Request__e",
            body,
        )
    };
    let (status, _, body) = publish().await;
    assert_eq!(status, 400);
    assert_eq!(body[0]["errorCode"], "LIMIT_EXCEEDED", "{body}");
    drop(spent);
    assert_eq!(publish().await.0, 201);
    rig.engine.clear_all();
}
