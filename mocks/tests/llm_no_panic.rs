//! Property tests: random and mutated request bodies never panic the mock LLM, and every
//! failure is an error in the API's own shape (never an empty 500). The request parsers of
//! both APIs are also run directly: any JSON becomes a valid request or a 4xx error with a
//! body in every flavour's shape.

mod common;

use std::sync::OnceLock;

use common::llm::Llm;
use crashcart_mocks::llm::request::{
    embedding_inputs, parse_ollama_body, parse_openai_body, GenRequest,
};
use crashcart_mocks::llm::{Flavour, LlmError};
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

const PATHS: [&str; 8] = [
    "/v1/chat/completions",
    "/v1/responses",
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
        field in prop::sample::select(&["model", "messages", "prompt", "input", "stream", "max_tokens", "n", "stop", "response_format", "tools", "tool_choice", "format", "options", "temperature", "stream_options", "instructions", "text", "previous_response_id", "max_output_tokens"][..]),
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

const FLAVOURS: [Flavour; 4] = [
    Flavour::OpenAi,
    Flavour::Vllm,
    Flavour::LlamaCpp,
    Flavour::Ollama,
];

/// A valid chat/completion/generate body with up to three fields replaced by anything.
fn mutated_body() -> impl Strategy<Value = Value> {
    let field = prop::sample::select(vec![
        "model",
        "messages",
        "prompt",
        "system",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "n",
        "stop",
        "seed",
        "temperature",
        "top_p",
        "response_format",
        "tools",
        "tool_choice",
        "format",
        "options",
    ]);
    prop::collection::vec((field, any_json()), 0..4).prop_map(|edits| {
        let mut body = json!({
            "model": "instant",
            "messages": [{"role": "user", "content": "Patient reports a cough."}],
            "prompt": "Patient reports a cough.",
            "max_tokens": 16,
            "options": {"num_predict": 16},
        });
        for (k, v) in edits {
            body[k] = v;
        }
        body
    })
}

/// An error is answerable in every shape: a message, a 4xx status, and each flavour's body
/// has `error.message`.
fn check_error(e: &LlmError) -> Result<(), TestCaseError> {
    prop_assert!(!e.message.is_empty());
    for f in FLAVOURS {
        prop_assert!(e.status(f).is_client_error(), "{e:?} in {f}");
        let body = e.openai_body(f);
        prop_assert!(body["error"]["message"].is_string(), "{body}");
    }
    Ok(())
}

fn check_openai(body: &Value, chat: bool) -> Result<(), TestCaseError> {
    match parse_openai_body(Ok(body.clone()), chat) {
        Ok(req) => check_request(&req, chat)?,
        Err(e) => check_error(&e)?,
    }
    Ok(())
}

fn check_ollama(body: &Value, chat: bool) -> Result<(), TestCaseError> {
    match parse_ollama_body(Ok(body.clone()), chat) {
        Ok(req) => {
            prop_assert!(!req.model.is_empty());
            prop_assert_eq!(req.n, 1);
            // A budget is never smaller than asked for (no wrap-around past u32::MAX).
            if let Some(n) = body["options"]["num_predict"].as_i64().filter(|n| *n >= 0) {
                prop_assert_eq!(req.max_tokens, Some(n.min(u32::MAX as i64) as u32));
            }
        }
        Err(e) => check_error(&e)?,
    }
    Ok(())
}

/// What a parsed OpenAI request promises the exchange.
fn check_request(req: &GenRequest, chat: bool) -> Result<(), TestCaseError> {
    prop_assert!((1..=128).contains(&req.n));
    prop_assert!(req.stop.len() <= 4);
    prop_assert!(req.max_tokens != Some(0));
    if chat {
        prop_assert!(!req.messages.is_empty());
    } else {
        prop_assert_eq!(req.messages.len(), 1);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_parses_or_fails_in_the_apis_shape(body in any_json(), chat in any::<bool>()) {
        check_openai(&body, chat)?;
        check_ollama(&body, chat)?;
        if let Err(e) = embedding_inputs(body.get("input"), "input") {
            check_error(&e)?;
        }
    }

    #[test]
    fn mutated_requests_parse_or_fail_in_the_apis_shape(body in mutated_body(), chat in any::<bool>()) {
        check_openai(&body, chat)?;
        check_ollama(&body, chat)?;
    }

    #[test]
    fn arbitrary_bytes_fail_in_the_apis_shape(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let parsed = || serde_json::from_slice::<Value>(&bytes);
        if parsed().is_err() {
            check_error(&parse_openai_body(parsed(), true).unwrap_err())?;
            check_error(&parse_ollama_body(parsed(), false).unwrap_err())?;
        }
    }
}

#[test]
fn an_empty_object_names_the_missing_model_in_both_apis() {
    let empty = Value::Object(serde_json::Map::new());
    assert_eq!(
        parse_openai_body(Ok(empty.clone()), true)
            .unwrap_err()
            .message,
        "you must provide a model parameter"
    );
    assert_eq!(
        parse_ollama_body(Ok(empty), true).unwrap_err().message,
        "model is required"
    );
}

#[test]
fn ollama_num_predict_past_u32_saturates_instead_of_wrapping() {
    let body =
        json!({"model": "instant", "prompt": "x", "options": {"num_predict": 4_294_967_296_i64}});
    let req = parse_ollama_body(Ok(body), false).unwrap();
    assert_eq!(
        req.max_tokens,
        Some(u32::MAX),
        "2^32 must not wrap to a budget of 0"
    );
}
