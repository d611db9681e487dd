//! Real clients, unmodified, against the mock LLM over real sockets: openai-python (chat,
//! stream, embeddings, structured output parsed by the client, tool calls, its own error
//! classes, and its own retry honouring Retry-After) and ollama-python (native API).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crashcart_mocks::fault::{CannedResponse, RequestInfo, Verdict};
use crashcart_mocks::llm::{Flavour, LlmError};
use crashcart_mocks::MockLlm;
use serde_json::{json, Value};
use support::{run_json, script, venv_python};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_python_works_unmodified() {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let llm = MockLlm::builder()
        .seed(5)
        .zero_delay()
        .start()
        .await
        .unwrap();
    let s = llm.handle().connection_settings();
    let out = run_json(
        &python,
        &script("openai_flow.py"),
        &[
            "flow",
            "--base-url",
            &s.openai_base_url,
            "--api-key",
            &s.api_key,
            "--model",
            "llama3.1:8b",
        ],
        &[],
    )
    .await;
    let chat = &out["chat"];
    assert!(
        chat["content"]
            .as_str()
            .unwrap()
            .contains("metformin 500 mg"),
        "{out}"
    );
    assert_eq!(chat["finish_reason"], "stop");
    let lp = &out["logprobs"];
    assert_eq!(
        lp["tokens"], lp["text"],
        "the tokens spell the answer: {lp}"
    );
    assert_eq!(
        (lp["top"].clone(), lp["negative"].clone()),
        (json!(2), json!(true))
    );
    let several = out["several_prompts"].as_array().unwrap();
    assert_eq!(several.len(), 2, "one choice per prompt: {out}");
    assert_eq!(
        (several[0]["index"].clone(), several[1]["index"].clone()),
        (json!(0), json!(1))
    );
    assert_ne!(
        several[0]["text"], several[1]["text"],
        "each prompt its own answer"
    );
    assert!(
        out["request_id"].as_str().unwrap_or("").starts_with("req_"),
        "the client read x-request-id: {out}"
    );
    // The stream carries the same text as the whole answer, and the same usage.
    assert_eq!(out["stream"]["content"], chat["content"]);
    assert!(out["stream"]["chunks"].as_u64().unwrap() > 5);
    assert_eq!(out["stream"]["usage"], chat["usage"]);
    assert_eq!(out["stream"]["finish_reason"], "stop");
    // openai-python asks for base64 embeddings and decodes them itself.
    assert_eq!(out["embedding"]["count"], 2);
    assert_eq!(out["embedding"]["dim"], 768);
    // The client parsed the json_schema answer into its pydantic model.
    let parsed = &out["parsed"];
    assert!(
        ["routine", "soon", "urgent"].contains(&parsed["urgency"].as_str().unwrap()),
        "{parsed}"
    );
    assert!(parsed["summary"].as_str().unwrap().len() > 10);
    assert!(parsed["medications"].is_array() && parsed["needs_interpreter"].is_boolean());
    assert_eq!(out["tool_call"]["name"], "book_appointment");
    assert_eq!(out["tool_call"]["finish_reason"], "tool_calls");
    assert!(out["tool_call"]["arguments"]["patient_id"].is_string());
    assert_eq!(out["not_found"]["status"], 404);
    assert_eq!(out["not_found"]["code"], "model_not_found");
    assert_eq!(
        out["auth"],
        serde_json::json!({"status": 401, "code": "invalid_api_key"})
    );
    // The history saw each call once (no retries on success) with the client's retry header.
    let h = llm.handle().history().snapshot();
    assert!(h
        .iter()
        .filter(|r| r.operation == "openai.chat")
        .all(|r| r.retry_count == Some(0)));
    assert!(h.iter().any(|r| r.llm.as_ref().is_some_and(|l| l.streamed)));
    llm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_python_retries_a_429_after_the_retry_after_it_was_given() {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let llm = MockLlm::builder().zero_delay().start().await.unwrap();
    let first = Arc::new(AtomicBool::new(true));
    llm.handle()
        .set_fault_hook(Arc::new(move |req: &RequestInfo<'_>| {
            if req.operation == "openai.chat" && first.swap(false, Ordering::SeqCst) {
                let e = LlmError::overloaded(1, Flavour::OpenAi);
                Verdict::respond(
                    CannedResponse::json(
                        e.status(Flavour::OpenAi),
                        &e.openai_body(Flavour::OpenAi),
                    )
                    .with_header("retry-after", "1"),
                )
            } else {
                Verdict::pass()
            }
        }));
    let s = llm.handle().connection_settings();
    let out = run_json(
        &python,
        &script("openai_flow.py"),
        &[
            "retry",
            "--base-url",
            &s.openai_base_url,
            "--api-key",
            &s.api_key,
            "--model",
            "instant",
        ],
        &[],
    )
    .await;
    assert!(out["content"].as_str().unwrap().len() > 10, "{out}");
    let h = llm.handle().history().snapshot();
    let attempts: Vec<_> = h.iter().filter(|r| r.operation == "openai.chat").collect();
    assert_eq!(attempts.len(), 2, "{h:?}");
    assert_eq!((attempts[0].status, attempts[1].status), (429, 200));
    assert_eq!(attempts[0].retry_after_ms, Some(1000));
    assert_eq!(
        (attempts[0].retry_count, attempts[1].retry_count),
        (Some(0), Some(1))
    );
    let gap_ms = (attempts[1].at_us - attempts[0].at_us) / 1000;
    assert!(
        gap_ms >= 990,
        "the client waited only {gap_ms} ms after Retry-After: 1"
    );
    assert!(
        gap_ms < 5000,
        "the client waited {gap_ms} ms, far beyond Retry-After: 1"
    );
    llm.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_python_works_unmodified() {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let llm = MockLlm::builder()
        .seed(5)
        .zero_delay()
        .start()
        .await
        .unwrap();
    let host = llm.handle().connection_settings().ollama_host;
    let out = run_json(
        &python,
        &script("ollama_flow.py"),
        &["--host", &host, "--model", "llama3.1:8b"],
        &[],
    )
    .await;
    assert!(
        out["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "meditron:7b"),
        "{out}"
    );
    let chat = &out["chat"];
    assert!(
        chat["content"].as_str().unwrap().contains("metformin"),
        "{out}"
    );
    assert_eq!(
        (chat["done"].as_bool(), chat["done_reason"].as_str()),
        (Some(true), Some("stop"))
    );
    assert!(
        chat["eval_count"].as_u64().unwrap() > 5 && chat["prompt_eval_count"].as_u64().unwrap() > 5
    );
    assert!(out["structured"]["summary"].is_string() && out["structured"]["priority"].is_i64());
    assert_eq!(out["generate"]["done_reason"], "length");
    assert!(out["generate"]["eval_count"].as_u64().unwrap() <= 3);
    let g = &out["generate"];
    assert_eq!(
        g["context"].as_u64(),
        Some(g["prompt_eval_count"].as_u64().unwrap() + g["eval_count"].as_u64().unwrap()),
        "the final context holds the prompt's and the answer's tokens: {g}"
    );
    assert!(
        out["ps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "llama3.1:8b"),
        "a model used within its keep_alive is loaded: {}",
        out["ps"]
    );
    assert!(
        out["kept"].as_i64().unwrap() > 2200,
        "keep_alive -1 keeps it loaded: {out}"
    );
    assert_eq!(out["unloaded"], true, "keep_alive 0 unloads it: {out}");
    let expires = chrono::DateTime::parse_from_rfc3339(out["ten_minutes"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let left = expires - chrono::Utc::now();
    assert!(
        left > chrono::Duration::minutes(9) && left <= chrono::Duration::minutes(10),
        "keep_alive \"10m\": {left}"
    );
    assert_eq!(
        out["bad_keep_alive"],
        serde_json::json!({"status": 400, "error": "time: invalid duration \"soon\""})
    );
    assert_eq!(out["embed"], serde_json::json!({"count": 1, "dim": 768}));
    assert_eq!(out["missing"]["status"], 404);
    assert_eq!(
        out["missing"]["error"],
        "model \"no-such-model\" not found, try pulling it first"
    );
    llm.shutdown().await;
}

/// The Responses API through openai-python's own methods: whole, streamed, parsed into a
/// pydantic model (whole and through the stream helper), a function call continued by
/// `previous_response_id`, retrieve and delete, and its errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_python_responses_api_works_unmodified() {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let llm = MockLlm::builder()
        .seed(9)
        .zero_delay()
        .start()
        .await
        .unwrap();
    let s = llm.handle().connection_settings();
    let args = [
        "responses",
        "--base-url",
        &s.openai_base_url,
        "--api-key",
        &s.api_key,
        "--model",
        "llama3.1:8b",
    ];
    let out = run_json(&python, &script("openai_flow.py"), &args, &[]).await;
    assert_eq!(out["whole"]["status"], "completed", "{out}");
    assert!(out["whole"]["id"].as_str().unwrap().starts_with("resp_"));
    assert!(out["whole"]["text"].as_str().unwrap().len() > 10);
    let usage = &out["whole"]["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap())
    );
    let events: Vec<&str> = out["stream"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(events.first(), Some(&"response.created"));
    assert_eq!(events.last(), Some(&"response.completed"));
    assert!(
        events
            .iter()
            .filter(|e| **e == "response.output_text.delta")
            .count()
            > 3
    );
    assert_eq!(out["stream"]["text"], out["stream_final"], "deltas add up");
    for parsed in [&out["parsed"], &out["stream_parsed"]] {
        assert!(
            ["routine", "soon", "urgent"].contains(&parsed["urgency"].as_str().unwrap()),
            "{parsed}"
        );
        assert!(parsed["medications"].is_array(), "{parsed}");
    }
    let tool = &out["tool"];
    assert_eq!(tool["name"], "find_slot");
    assert!(tool["arguments"]["patient_id"].is_string(), "{tool}");
    assert_eq!(
        tool["answer_types"],
        json!(["message"]),
        "the tool's output is answered in text"
    );
    assert!(tool["previous"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(out["after_delete"], 404);
    assert_eq!(out["unknown_previous"], "previous_response_not_found");
    let ops: Vec<String> = (llm.handle().history().snapshot().iter())
        .map(|r| r.operation.to_string())
        .collect();
    assert!(
        ops.iter().filter(|o| *o == "openai.responses").count() >= 6,
        "{ops:?}"
    );
    assert!(ops.iter().any(|o| o == "openai.responses.stored"));
    llm.shutdown().await;
}

/// The faults of chat completions apply to the Responses API: a 429 with Retry-After that
/// openai-python's own retry honours, and a stream that ends in an error event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_reach_the_responses_api() {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let llm = MockLlm::builder().zero_delay().start().await.unwrap();
    let first = Arc::new(AtomicBool::new(true));
    llm.handle()
        .set_fault_hook(Arc::new(move |req: &RequestInfo<'_>| {
            if req.operation != "openai.responses" {
                return Verdict::pass();
            }
            if first.swap(false, Ordering::SeqCst) {
                let e = LlmError::overloaded(1, Flavour::OpenAi);
                return Verdict::respond(
                    CannedResponse::json(
                        e.status(Flavour::OpenAi),
                        &e.openai_body(Flavour::OpenAi),
                    )
                    .with_header("retry-after", "1"),
                );
            }
            Verdict::shape_llm(crashcart_mocks::fault::LlmShaping {
                error_after_tokens: Some((3, "the model crashed".into())),
                ..Default::default()
            })
        }));
    let s = llm.handle().connection_settings();
    let args = [
        "responses-faults",
        "--base-url",
        &s.openai_base_url,
        "--api-key",
        &s.api_key,
        "--model",
        "instant",
    ];
    let out = run_json(&python, &script("openai_flow.py"), &args, &[]).await;
    assert_eq!(out["whole_status"], 500, "{out}");
    assert_eq!(out["stream_error"]["message"], "the model crashed", "{out}");
    assert_eq!(out["stream_error"]["deltas"], 3, "{out}");
    let h = llm.handle().history().snapshot();
    let calls: Vec<_> = (h.iter())
        .filter(|r| r.operation == "openai.responses")
        .collect();
    assert_eq!((calls[0].status, calls[1].status), (429, 500), "{calls:?}");
    assert_eq!(
        (calls[0].retry_count, calls[1].retry_count),
        (Some(0), Some(1)),
        "the client retried the 429 on its own"
    );
    llm.shutdown().await;
}
