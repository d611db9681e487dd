//! Ollama's native API of the mock LLM, pinned on the wire: NDJSON framing, the final line's
//! timing fields, `stream: false`, structured output, embeddings and `{"error": …}` errors.

mod common;

use common::llm::{chat, Llm, NOTE};
use crashcart_mocks::fault::{LlmShaping, Verdict};
use crashcart_mocks::llm::tokens;
use http::Method;
use serde_json::{json, Value};
use std::sync::Arc;

#[tokio::test]
async fn root_version_and_tags() {
    let llm = Llm::instant();
    let root = llm.send(Method::GET, "/", None, None).await;
    assert_eq!(
        (root.status.as_u16(), root.text().as_str()),
        (200, "Ollama is running")
    );
    assert!(llm.get("/api/version").await.json()["version"].is_string());
    let tags = llm.send(Method::GET, "/api/tags", None, None).await.json();
    let m = &tags["models"][0];
    assert_eq!(m["name"], "llama3.1:8b");
    assert_eq!(m["model"], "llama3.1:8b");
    assert!(m["size"].as_u64().unwrap() > 1_000_000_000);
    assert!(m["modified_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(m["details"]["format"], "gguf");
    assert_eq!(m["details"]["quantization_level"], "Q4_K_M");
    assert_eq!(m["details"]["families"], json!(["llama"]));
    let show = llm
        .post("/api/show", json!({"model": "qwen2.5:14b-instruct"}))
        .await
        .json();
    assert_eq!(show["model_info"]["qwen2.context_length"], 32768);
    assert_eq!(
        show["capabilities"],
        json!(["completion", "tools", "embedding"])
    );
}

#[tokio::test]
async fn streamed_chat_is_ndjson_with_a_final_timing_line() {
    let llm = Llm::instant();
    let r = llm.post("/api/chat", chat("instant", NOTE)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let lines = r.ndjson();
    let (last, body) = lines.split_last().unwrap();
    for l in body {
        assert_eq!(l["done"], false);
        assert_eq!(l["model"], "instant");
        assert_eq!(l["message"]["role"], "assistant");
        assert!(l["created_at"].as_str().unwrap().ends_with('Z'));
    }
    let text: String = body
        .iter()
        .map(|l| l["message"]["content"].as_str().unwrap())
        .collect();
    assert!(text.contains("metformin"), "{text}");
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["message"], json!({"role": "assistant", "content": ""}));
    for f in [
        "total_duration",
        "load_duration",
        "prompt_eval_duration",
        "eval_duration",
    ] {
        assert!(last[f].is_u64(), "{f}: {last}");
    }
    assert_eq!(last["prompt_eval_count"], tokens::chat_prompt([NOTE]));
    assert_eq!(last["eval_count"], tokens::count(&text));
    // stream:false gives the same content in one object.
    let mut req = chat("instant", NOTE);
    req["stream"] = json!(false);
    let whole = llm.post("/api/chat", req).await.json();
    assert_eq!(whole["message"]["content"], text);
    assert_eq!(whole["done"], true);
    assert_eq!(whole["eval_count"], last["eval_count"]);
}

#[tokio::test]
async fn generate_uses_response_and_honours_format_and_num_predict() {
    let llm = Llm::instant();
    let lines = llm
        .post("/api/generate", json!({"model": "instant", "prompt": NOTE, "system": "You are a clinical assistant.", "options": {"num_predict": 3}}))
        .await
        .ndjson();
    let last = lines.last().unwrap();
    assert_eq!(last["response"], "");
    assert_eq!(last["done_reason"], "length");
    assert!(last["eval_count"].as_u64().unwrap() <= 3);
    assert!(lines[0]["response"].is_string() && lines[0].get("message").is_none());
    let schema = json!({"type": "object", "properties": {"summary": {"type": "string"}, "priority": {"type": "integer", "minimum": 1, "maximum": 5}}, "required": ["summary", "priority"]});
    let whole = llm
        .post(
            "/api/generate",
            json!({"model": "instant", "prompt": NOTE, "format": schema, "stream": false}),
        )
        .await
        .json();
    let v: Value = serde_json::from_str(whole["response"].as_str().unwrap()).unwrap();
    assert!(
        jsonschema::validator_for(&schema).unwrap().is_valid(&v),
        "{v}"
    );
    let whole = llm.post("/api/chat", json!({"model": "instant", "messages": [{"role": "user", "content": NOTE}], "format": "json", "stream": false})).await.json();
    assert!(
        serde_json::from_str::<Value>(whole["message"]["content"].as_str().unwrap())
            .unwrap()
            .is_object()
    );
}

#[tokio::test]
async fn embed_and_legacy_embeddings() {
    let llm = Llm::instant();
    let j = llm
        .post(
            "/api/embed",
            json!({"model": "nomic-embed-text", "input": ["a b", "c"]}),
        )
        .await
        .json();
    assert_eq!(j["model"], "nomic-embed-text");
    assert_eq!(j["embeddings"].as_array().unwrap().len(), 2);
    assert_eq!(j["embeddings"][0].as_array().unwrap().len(), 768);
    assert_eq!(j["prompt_eval_count"], 3);
    assert!(j["total_duration"].is_u64() && j["load_duration"].is_u64());
    let legacy = llm
        .post(
            "/api/embeddings",
            json!({"model": "nomic-embed-text", "prompt": "a b"}),
        )
        .await
        .json();
    assert_eq!(legacy["embedding"], j["embeddings"][0]);
}

#[tokio::test]
async fn errors_are_a_single_error_string() {
    let llm = Llm::instant();
    let cases: Vec<(&str, &[u8], u16, &str)> = vec![
        (
            "/api/chat",
            br#"{"model":"ghost","messages":[]}"#,
            404,
            r#"model "ghost" not found, try pulling it first"#,
        ),
        ("/api/chat", br#"{"messages":[]}"#, 400, "model is required"),
        (
            "/api/chat",
            br#"{"model":"instant","stream":"yes"}"#,
            400,
            "json: cannot unmarshal string into Go struct field ChatRequest.stream of type bool",
        ),
        (
            "/api/generate",
            br#"{"model":"instant""#,
            400,
            "unexpected EOF",
        ),
        (
            "/api/generate",
            br#"[]"#,
            400,
            "json: cannot unmarshal array into Go value of type api.GenerateRequest",
        ),
        (
            "/api/embed",
            br#"{"model":"ghost","input":"x"}"#,
            404,
            r#"model "ghost" not found, try pulling it first"#,
        ),
    ];
    for (path, body, status, message) in cases {
        let r = llm.send(Method::POST, path, None, Some(body)).await;
        assert_eq!(r.status, status, "{path} {}", r.text());
        assert_eq!(r.json(), json!({"error": message}), "{path}");
    }
    let r = llm.send(Method::GET, "/api/nothing", None, None).await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (404, "404 page not found")
    );
}

#[tokio::test]
async fn a_mid_stream_error_arrives_as_one_line_with_status_200() {
    let llm = Llm::instant();
    llm.handle
        .set_fault_hook(Arc::new(|_: &crashcart_mocks::RequestInfo<'_>| {
            Verdict::shape_llm(LlmShaping {
                error_after_tokens: Some((
                    3,
                    "an error was encountered while running the model: CUDA error".into(),
                )),
                ..LlmShaping::default()
            })
        }));
    let r = llm.post("/api/chat", chat("instant", NOTE)).await;
    assert_eq!(r.status, 200);
    let lines = r.ndjson();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(
        lines[3],
        json!({"error": "an error was encountered while running the model: CUDA error"})
    );
    // The same fault on the OpenAI API: an SSE event with an "error" key, no [DONE].
    let mut req = chat("instant", NOTE);
    req["stream"] = json!(true);
    let events = llm.post("/v1/chat/completions", req).await.sse();
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(
        last["error"]["message"],
        "an error was encountered while running the model: CUDA error"
    );
    let rec = llm.handle.history().snapshot();
    assert_eq!(rec[0].status, 200);
    assert_eq!(rec[0].error_code.as_deref(), Some("stream_error"));
    assert_eq!(rec[0].fault.as_deref(), Some("llm-shaping"));
    assert_eq!(rec[0].llm.as_ref().unwrap().completion_tokens, {
        let text: String = lines[..3]
            .iter()
            .map(|l| l["message"]["content"].as_str().unwrap())
            .collect();
        tokens::count(&text)
    });
}
