//! Property tests: random and mutated request bodies never panic the mock LLM, and every
//! failure is an error in the API's own shape (never an empty 500).

mod common;

use std::sync::OnceLock;

use common::llm::Llm;
use http::Method;
use proptest::prelude::*;
use serde_json::{json, Value};

struct Fixture {
    rt: tokio::runtime::Runtime,
    llm: Llm,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let llm = rt.block_on(async { Llm::instant() });
        Fixture { rt, llm }
    })
}

const PATHS: [&str; 7] = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/api/chat",
    "/api/generate",
    "/api/embed",
    "/api/show",
];

fn check(path: &str, body: &[u8]) -> Result<(), TestCaseError> {
    let f = fixture();
    let r = f.rt.block_on(f.llm.send(
        Method::POST,
        path,
        Some(crashcart_mocks::llm::DEFAULT_API_KEY),
        Some(body),
    ));
    prop_assert!(
        r.status.as_u16() != 500 || !r.body.is_empty(),
        "empty 500 on {path}"
    );
    prop_assert!(r.status.as_u16() < 500, "{path}: {} {}", r.status, r.text());
    if !r.status.is_success() {
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| {
            TestCaseError::fail(format!(
                "{path}: error body is not JSON ({e}): {}",
                r.text()
            ))
        })?;
        if path.starts_with("/v1") {
            prop_assert!(v["error"]["message"].is_string(), "{path}: {v}");
        } else {
            prop_assert!(v["error"].is_string(), "{path}: {v}");
        }
    }
    Ok(())
}

/// A JSON value of any shape, small.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |x| x.is_finite())
            .prop_map(|x| json!(x)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(path in prop::sample::select(&PATHS[..]), body in prop::collection::vec(any::<u8>(), 0..64)) {
        check(path, &body)?;
    }

    /// Valid requests with one field replaced by a value of any type.
    #[test]
    fn mutated_fields_never_panic(
        path in prop::sample::select(&PATHS[..]),
        field in prop::sample::select(&["model", "messages", "prompt", "input", "stream", "max_tokens", "n", "stop", "response_format", "tools", "tool_choice", "format", "options", "temperature", "stream_options"][..]),
        value in any_json(),
    ) {
        let mut body = json!({
            "model": "instant",
            "messages": [{"role": "user", "content": "Patient reports a cough for 2 weeks."}],
            "prompt": "Patient reports a cough.",
            "input": "cough",
        });
        body[field] = value;
        check(path, body.to_string().as_bytes())?;
    }

    /// Arbitrary JSON Schemas in response_format never panic and the answer is JSON.
    #[test]
    fn arbitrary_schemas_give_json(schema in any_json()) {
        let body = json!({"model": "instant", "messages": [{"role": "user", "content": "A note. The patient is well today."}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}});
        let f = fixture();
        let r = f.rt.block_on(f.llm.send(Method::POST, "/v1/chat/completions", Some(crashcart_mocks::llm::DEFAULT_API_KEY), Some(body.to_string().as_bytes())));
        prop_assert!(r.status.as_u16() < 500, "{}", r.text());
        if r.status == 200 {
            let content = r.json()["choices"][0]["message"]["content"].as_str().unwrap_or("").to_string();
            prop_assert!(serde_json::from_str::<Value>(&content).is_ok(), "{content}");
        }
    }
}
