//! Property tests: random SOQL and random JSON bodies never panic the mock, and every failure
//! is a Salesforce-shaped error array (never an empty 500).

use std::sync::OnceLock;

use axum::body::Body;
use axum::Router;
use crashcart_mocks::salesforce::SalesforceHandle;
use crashcart_mocks::MockSalesforce;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::Value;
use tower::ServiceExt;

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: Router,
    token: String,
    _handle: SalesforceHandle,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (app, handle) = rt.block_on(async {
            MockSalesforce::builder().daily_api_limit(u64::MAX).build_in_process("http://mock.test").unwrap()
        });
        let token = rt.block_on(async {
            let (status, body) = send(&app, "POST", "/services/oauth2/token", Some("application/x-www-form-urlencoded"), "", "grant_type=password&client_id=3MVG9crashcart.mock.consumer.key&client_secret=crashcart-consumer-secret&username=integration@crashcart.test&password=crashcart-Pa55".into()).await;
            assert_eq!(status, 200);
            body["access_token"].as_str().unwrap().to_string()
        });
        rt.block_on(async {
            handle.insert("Contact", serde_json::json!({"LastName": "Seed", "Patient_External_Id__c": "CC-SEED"})).unwrap();
        });
        Fixture { rt, app, token, _handle: handle }
    })
}

async fn send(
    app: &Router,
    method: &str,
    path: &str,
    ct: Option<&str>,
    token: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = http::Request::builder().method(method).uri(path);
    if let Some(ct) = ct {
        req = req.header("content-type", ct);
    }
    if !token.is_empty() {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json)
}

fn assert_salesforce_shaped(status: u16, body: &Value, what: &str) {
    assert!(status < 500, "{what}: status {status} {body}");
    if status >= 400 {
        let arr = body
            .as_array()
            .unwrap_or_else(|| panic!("{what}: error is not an array: {body}"));
        assert!(!arr.is_empty(), "{what}");
        assert!(
            arr[0]["errorCode"].is_string() && arr[0]["message"].is_string(),
            "{what}: {body}"
        );
    }
}

fn soql_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("SELECT".to_string()),
        Just("FROM".to_string()),
        Just("WHERE".to_string()),
        Just("AND".to_string()),
        Just("OR".to_string()),
        Just("NOT".to_string()),
        Just("IN".to_string()),
        Just("LIKE".to_string()),
        Just("ORDER BY".to_string()),
        Just("LIMIT".to_string()),
        Just("OFFSET".to_string()),
        Just("NULLS LAST".to_string()),
        Just("COUNT()".to_string()),
        Just("Contact".to_string()),
        Just("Event".to_string()),
        Just("Id".to_string()),
        Just("Who.Name".to_string()),
        Just("LastName".to_string()),
        Just("Birthdate".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just(",".to_string()),
        Just("=".to_string()),
        Just("!=".to_string()),
        Just("<=".to_string()),
        Just("'x%'".to_string()),
        Just("null".to_string()),
        Just("TRUE".to_string()),
        Just("2024-01-01".to_string()),
        Just("2024-01-01T10:00:00Z".to_string()),
        Just("-3.5".to_string()),
        Just("42".to_string()),
        Just("'".to_string()),
        Just("\\".to_string()),
        Just(":bind".to_string()),
        Just(".".to_string()),
        "[a-zA-Z_]{1,8}",
        "\\PC{0,6}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::String),
        prop_oneof![
            Just("LastName"),
            Just("Birthdate"),
            Just("AccountId"),
            Just("Preferred_Language__c"),
            Just("Email")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("LastName".to_string()),
                    Just("FirstName".to_string()),
                    Just("Birthdate".to_string()),
                    Just("AccountId".to_string()),
                    Just("Preferred_Language__c".to_string()),
                    Just("Email".to_string()),
                    Just("attributes".to_string()),
                    Just("records".to_string()),
                    Just("compositeRequest".to_string()),
                    Just("allOrNone".to_string()),
                    "[A-Za-z_]{1,10}"
                ],
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_soql_never_panics(parts in prop::collection::vec(soql_fragment(), 0..14)) {
        let f = fixture();
        let q = parts.join(" ");
        let path = format!("/services/data/v59.0/query?q={}", percent_encoding::utf8_percent_encode(&q, percent_encoding::NON_ALPHANUMERIC));
        let (status, body) = f.rt.block_on(send(&f.app, "GET", &path, None, &f.token, vec![]));
        assert_salesforce_shaped(status, &body, &q);
    }

    #[test]
    fn random_json_bodies_never_panic(body in json_value(), target in 0usize..6, raw in prop::collection::vec(any::<u8>(), 0..40)) {
        let f = fixture();
        let (method, path) = [
            ("POST", "/services/data/v59.0/sobjects/Contact"),
            ("PATCH", "/services/data/v59.0/sobjects/Contact/Patient_External_Id__c/CC-SEED"),
            ("POST", "/services/data/v59.0/composite"),
            ("POST", "/services/data/v59.0/composite/sobjects"),
            ("PATCH", "/services/data/v59.0/composite/sobjects"),
            ("POST", "/services/data/v59.0/sobjects/Event"),
        ][target];
        let bytes = serde_json::to_vec(&body).unwrap();
        let (status, resp) = f.rt.block_on(send(&f.app, method, path, Some("application/json"), &f.token, bytes));
        assert_salesforce_shaped(status, &resp, &format!("{method} {path} {body}"));
        let (status, resp) = f.rt.block_on(send(&f.app, method, path, Some("application/json"), &f.token, raw.clone()));
        assert_salesforce_shaped(status, &resp, &format!("{method} {path} raw {raw:?}"));
    }
}
