//! The mock LLM is safe on any input: JSON schemas that ask for more than fits stop at the
//! token budget with `finish_reason: "length"` (time and memory follow the budget, never the
//! schema's numbers), `$ref` cycles end, and over-long request heads get each imitated
//! server's own answer.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::llm::{Answer, Llm};
use crashcart_mocks::llm::{Flavour, DEFAULT_API_KEY};
use crashcart_mocks::MockLlm;
use http::Method;
use serde_json::{json, Value};

/// How long a bounded answer may take, even in a debug build on a loaded machine. A schema
/// that is not bounded (the old code) runs for minutes and gigabytes instead.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// Send `body` to `path` of an instant mock on its own thread, waiting at most
/// [`ANSWER_WITHIN`] for the answer.
fn bounded(path: &'static str, body: Value) -> Answer {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let llm = rt.block_on(async { Llm::instant() });
        let answer = rt.block_on(llm.post(path, body));
        let _ = tx.send(answer);
    });
    rx.recv_timeout(ANSWER_WITHIN)
        .expect("the mock answers within the bound, whatever the schema asks for")
}

fn chat_with_schema(schema: Value, max_tokens: Option<u32>) -> Value {
    let mut body = json!({"model": "instant", "messages": [{"role": "user", "content": "Patient reports a cough for two weeks. No fever today."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "huge", "schema": schema}}});
    if let Some(n) = max_tokens {
        body["max_tokens"] = json!(n);
    }
    body
}

fn huge_arrays(min_items: u64, min_length: u64) -> Value {
    json!({"type": "object", "properties": {"notes": {"type": "array", "minItems": min_items,
        "items": {"type": "string", "minLength": min_length}}}, "required": ["notes"]})
}

#[test]
fn a_schema_asking_for_huge_arrays_stops_at_max_tokens_with_length() {
    let a = bounded(
        "/v1/chat/completions",
        chat_with_schema(huge_arrays(100_000, 100_000), Some(64)),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let used = v["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(within_a_piece(used, 64), "{used}");
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.starts_with("{\"notes\":[\""), "{content}");
    assert!(
        serde_json::from_str::<Value>(content).is_err(),
        "cut mid-answer, as a real server stops at max_tokens: {content}"
    );
    // The schema's numbers change nothing: a hundred times less asked, the same answer size.
    let small = bounded(
        "/v1/chat/completions",
        chat_with_schema(huge_arrays(1_000, 1_000), Some(64)),
    );
    let small_used = small.json()["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(within_a_piece(small_used, 64), "{small_used}");
}

/// The mock cuts at whole pieces (a word and its punctuation, up to four tokens each): an
/// answer cut at `budget` uses the budget but for the part of a piece.
fn within_a_piece(used: u64, budget: u64) -> bool {
    (budget - 3..=budget).contains(&used)
}

#[test]
fn without_max_tokens_the_context_window_bounds_the_answer() {
    let a = bounded(
        "/v1/chat/completions",
        chat_with_schema(huge_arrays(100_000, 100_000), None),
    );
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let prompt = v["usage"]["prompt_tokens"].as_u64().unwrap();
    let used = v["usage"]["completion_tokens"].as_u64().unwrap();
    // The instant model's window is 8192 tokens.
    assert!(
        within_a_piece(used, 8192 - prompt),
        "{used} of {}",
        8192 - prompt
    );
}

#[test]
fn ollama_format_schemas_stop_at_num_predict() {
    let body = json!({"model": "instant", "stream": false, "format": huge_arrays(100_000, 100_000),
        "messages": [{"role": "user", "content": "Patient reports a cough."}], "options": {"num_predict": 50}});
    let a = bounded("/api/chat", body);
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["done_reason"], "length");
    assert!(within_a_piece(v["eval_count"].as_u64().unwrap(), 50), "{v}");
}

#[test]
fn ref_cycles_and_fan_out_end_within_the_budget() {
    let ten: serde_json::Map<String, Value> = (0..10)
        .map(|i| (format!("p{i}"), json!({"$ref": "#"})))
        .collect();
    let schemas = [
        // Each level refers to the root ten times: 10^8 values before the depth bound.
        json!({"type": "object", "properties": ten}),
        json!({"$ref": "#"}),
        json!({"$ref": "#/$defs/A", "$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"$ref": "#/$defs/A"}}}),
        json!({"type": "object", "properties": {"a": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}}}),
    ];
    for schema in schemas {
        let a = bounded(
            "/v1/chat/completions",
            chat_with_schema(schema.clone(), Some(200)),
        );
        assert_eq!(a.status, 200, "{schema}: {}", a.text());
        let used = a.json()["usage"]["completion_tokens"].as_u64().unwrap();
        assert!(used <= 200, "{schema}: {used}");
    }
}

#[test]
fn nesting_deeper_than_eight_levels_is_answered_with_null() {
    let mut schema = json!({"type": "string"});
    // 50 levels: as deep as a request body may nest (serde_json's limit is 128).
    for _ in 0..50 {
        schema = json!({"type": "object", "properties": {"next": schema}});
    }
    let a = bounded("/v1/chat/completions", chat_with_schema(schema, None));
    assert_eq!(a.status, 200, "{}", a.text());
    let v: Value = serde_json::from_str(
        a.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let mut cur = &v;
    let mut depth = 0;
    while let Some(next) = cur.get("next") {
        cur = next;
        depth += 1;
    }
    assert_eq!(depth, 9);
    assert!(cur.is_null());
}

#[test]
fn tool_arguments_that_do_not_fit_end_with_length() {
    let body = json!({"model": "instant", "max_tokens": 40, "tool_choice": "required",
        "messages": [{"role": "user", "content": "Book the visit."}],
        "tools": [{"type": "function", "function": {"name": "book", "parameters": huge_arrays(100_000, 100_000)}}]});
    let a = bounded("/v1/chat/completions", body);
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert!(v["choices"][0]["message"]["tool_calls"].is_array());
}

/// What an in-process mock of `flavour` answers to a GET with this target and headers.
async fn head_answer(flavour: Flavour, target: &str, headers: &[(&str, String)]) -> Answer {
    let llm = Llm::build(MockLlm::builder().flavour(flavour).zero_delay());
    let mut rb = http::Request::builder().method(Method::GET).uri(target);
    rb = rb.header("authorization", format!("Bearer {DEFAULT_API_KEY}"));
    for (k, v) in headers {
        rb = rb.header(*k, v);
    }
    let req = rb.body(axum::body::Body::empty()).unwrap();
    llm.send_request(req).await
}

#[tokio::test]
async fn over_long_heads_get_each_servers_own_answer() {
    let pad = |n: usize| "a".repeat(n);
    // OpenAI: Cloudflare's 414 page past 32 KB of URI.
    let a = head_answer(Flavour::OpenAi, &format!("/v1/models?{}", pad(33_000)), &[]).await;
    assert_eq!(a.status, 414);
    assert_eq!(a.header("content-type"), Some("text/html"));
    assert!(a
        .text()
        .contains("<center><h1>414 Request-URI Too Large</h1></center>"));
    assert!(a.text().contains("<center>cloudflare</center>"));
    // llama.cpp: cpp-httplib's empty 414 past 8,192 bytes of request line, empty 400 past
    // 8,192 bytes of one header line.
    let a = head_answer(
        Flavour::LlamaCpp,
        &format!("/v1/models?{}", pad(8_200)),
        &[],
    )
    .await;
    assert_eq!((a.status.as_u16(), a.body.len()), (414, 0));
    let a = head_answer(Flavour::LlamaCpp, "/v1/models", &[("x-pad", pad(8_200))]).await;
    assert_eq!((a.status.as_u16(), a.body.len()), (400, 0));
    let ok = head_answer(Flavour::LlamaCpp, "/v1/models", &[("x-pad", pad(8_000))]).await;
    assert_eq!(ok.status, 200);
    // vLLM: uvicorn's 400 past h11's 4 MiB.
    let a = head_answer(
        Flavour::Vllm,
        "/v1/models",
        &[("x-pad", pad(4 * 1024 * 1024))],
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.text(), "Invalid HTTP request received.");
    assert_eq!(a.header("content-type"), Some("text/plain; charset=utf-8"));
    // Ollama: Go's plain-text 431 past 1 MiB + 4 KiB of head.
    let a = head_answer(Flavour::Ollama, "/api/tags", &[("x-pad", pad(1_100_000))]).await;
    assert_eq!(a.status, 431);
    assert_eq!(a.text(), "431 Request Header Fields Too Large");
    let ok = head_answer(Flavour::Ollama, "/api/tags", &[("x-pad", pad(1_000_000))]).await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn heads_too_large_to_read_get_the_servers_answer_on_a_socket() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let llm = MockLlm::builder()
        .flavour(Flavour::Ollama)
        .zero_delay()
        .start()
        .await
        .unwrap();
    // Longer than hyper reads a URI: the server layer refuses it, in Go's words.
    let request = format!(
        "GET /api/tags?{} HTTP/1.1\r\nhost: x\r\n\r\n",
        "a".repeat(70_000)
    );
    let mut s = tokio::net::TcpStream::connect(llm.local_addr())
        .await
        .unwrap();
    let _ = s.write_all(request.as_bytes()).await;
    let mut out = vec![];
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the server answers and closes the connection")
        .ok();
    let answer = String::from_utf8_lossy(&out);
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{answer}"
    );
    assert!(
        answer.ends_with("\r\n\r\n431 Request Header Fields Too Large"),
        "{answer}"
    );
    llm.shutdown().await;
}
