//! The OpenAI-compatible API of the mock LLM, pinned on the wire: bodies, SSE framing, usage,
//! limits, structured output, tools, embeddings, auth and bad input.

mod common;

use base64::Engine;
use common::llm::{chat, Llm, NOTE};
use crashcart_mocks::llm::{tokens, Flavour};
use crashcart_mocks::MockLlm;
use http::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn models_list_and_model_lookup() {
    let llm = Llm::instant();
    let r = llm.get("/v1/models").await;
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["object"], "list");
    let first = &j["data"][0];
    assert_eq!(first["id"], "llama3.1:8b");
    assert_eq!(first["object"], "model");
    assert!(first["created"].is_i64() && first["owned_by"].is_string());
    assert_eq!(llm.get("/v1/models/instant").await.json()["id"], "instant");
    let missing = llm.get("/v1/models/gpt-9").await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json(),
        json!({"error": {"message": "The model `gpt-9` does not exist or you do not have access to it.", "type": "invalid_request_error", "param": null, "code": "model_not_found"}})
    );
}

#[tokio::test]
async fn chat_completion_shape_usage_and_determinism() {
    let llm = Llm::instant();
    let r = llm
        .post("/v1/chat/completions", chat("instant", NOTE))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let j = r.json();
    let keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "object",
            "created",
            "model",
            "choices",
            "usage",
            "system_fingerprint"
        ]
    );
    assert!(j["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(j["object"], "chat.completion");
    assert_eq!(j["model"], "instant");
    let choice = &j["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "stop");
    assert!(choice["logprobs"].is_null());
    assert_eq!(choice["message"]["role"], "assistant");
    let content = choice["message"]["content"].as_str().unwrap();
    assert!(content.contains("metformin 500 mg"), "{content}");
    assert_eq!(j["usage"]["prompt_tokens"], tokens::chat_prompt([NOTE]));
    assert_eq!(j["usage"]["completion_tokens"], tokens::count(content));
    assert_eq!(
        j["usage"]["total_tokens"].as_u64().unwrap(),
        j["usage"]["prompt_tokens"].as_u64().unwrap()
            + j["usage"]["completion_tokens"].as_u64().unwrap()
    );
    // Same seed, model and request: the same answer.
    let again = llm
        .post("/v1/chat/completions", chat("instant", NOTE))
        .await
        .json();
    assert_eq!(again["choices"][0]["message"]["content"], content);
}

#[tokio::test]
async fn streamed_chat_is_sse_role_content_finish_usage_done() {
    let llm = Llm::instant();
    let mut req = chat("instant", NOTE);
    req["stream"] = json!(true);
    req["stream_options"] = json!({"include_usage": true});
    let r = llm.post("/v1/chat/completions", req).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    let events = r.sse();
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], chunks[0]["id"]);
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "", "refusal": null})
    );
    assert!(chunks[0]["usage"].is_null() && chunks[0].as_object().unwrap().contains_key("usage"));
    let n = chunks.len();
    let finish = &chunks[n - 2];
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = &chunks[n - 1];
    assert_eq!(usage["choices"], json!([]));
    let streamed: String = chunks[1..n - 2]
        .iter()
        .map(|c| {
            assert!(c["choices"][0]["finish_reason"].is_null());
            c["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let whole = llm
        .post("/v1/chat/completions", chat("instant", NOTE))
        .await
        .json();
    assert_eq!(
        streamed,
        whole["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(usage["usage"], whole["usage"]);
    // One content chunk per piece of the token approximation.
    assert_eq!(n - 3, tokens::pieces(&streamed).len());
    let rec = llm.handle.history().snapshot();
    let streamed_rec = rec
        .iter()
        .find(|r| r.llm.as_ref().is_some_and(|l| l.streamed))
        .unwrap();
    assert_eq!(
        streamed_rec.llm.as_ref().unwrap().completion_tokens,
        tokens::count(&streamed)
    );
    assert_eq!(
        streamed_rec.llm.as_ref().unwrap().finish_reason.as_deref(),
        Some("stop")
    );
}

#[tokio::test]
async fn max_tokens_truncates_with_length_and_stop_sequences_cut() {
    let llm = Llm::instant();
    let mut req = chat("instant", NOTE);
    req["max_tokens"] = json!(5);
    let j = llm.post("/v1/chat/completions", req.clone()).await.json();
    assert_eq!(j["choices"][0]["finish_reason"], "length");
    assert!(j["usage"]["completion_tokens"].as_u64().unwrap() <= 5);
    req.as_object_mut().unwrap().remove("max_tokens");
    req["max_completion_tokens"] = json!(3);
    let j = llm.post("/v1/chat/completions", req).await.json();
    assert_eq!(j["choices"][0]["finish_reason"], "length");
    let mut req = chat("instant", NOTE);
    req["stop"] = json!(["metformin"]);
    req["n"] = json!(2);
    req["temperature"] = json!(0.2);
    req["seed"] = json!(42);
    let j = llm.post("/v1/chat/completions", req).await.json();
    assert_eq!(j["choices"].as_array().unwrap().len(), 2);
    for c in j["choices"].as_array().unwrap() {
        let text = c["message"]["content"].as_str().unwrap();
        assert!(!text.contains("metformin"), "{text}");
        assert_eq!(c["finish_reason"], "stop");
    }
    assert_eq!(j["choices"][1]["index"], 1);
}

#[tokio::test]
async fn json_schema_and_json_object_outputs_are_valid_json() {
    let llm = Llm::instant();
    let schema = json!({
        "type": "object",
        "properties": {
            "summary": {"type": "string"},
            "urgency": {"type": "string", "enum": ["routine", "soon", "urgent"]},
            "medications": {"type": "array", "items": {"type": "string"}},
            "needs_interpreter": {"type": "boolean"}
        },
        "required": ["summary", "urgency", "medications", "needs_interpreter"],
        "additionalProperties": false
    });
    let mut req = chat("instant", NOTE);
    req["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "visit_prep", "strict": true, "schema": schema}});
    let j = llm.post("/v1/chat/completions", req).await.json();
    let content: Value =
        serde_json::from_str(j["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert!(
        jsonschema::validator_for(&schema)
            .unwrap()
            .is_valid(&content),
        "{content}"
    );
    let mut req = chat("instant", NOTE);
    req["response_format"] = json!({"type": "json_object"});
    let j = llm.post("/v1/chat/completions", req).await.json();
    let content: Value =
        serde_json::from_str(j["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert!(content["summary"].is_string(), "{content}");
}

#[tokio::test]
async fn tool_choice_forces_a_tool_call_whole_and_streamed() {
    let llm = Llm::instant();
    let tools = json!([{"type": "function", "function": {"name": "book_appointment", "parameters": {"type": "object", "properties": {"patient_id": {"type": "string"}, "start": {"type": "string", "format": "date-time"}}, "required": ["patient_id", "start"]}}}]);
    let mut req = chat("instant", NOTE);
    req["tools"] = tools.clone();
    req["tool_choice"] = json!("required");
    let j = llm.post("/v1/chat/completions", req.clone()).await.json();
    let choice = &j["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert!(choice["message"]["content"].is_null());
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "book_appointment");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args["patient_id"].is_string() && args["start"].is_string());
    // Streamed: the fragments of the arguments add up to the same JSON.
    req["stream"] = json!(true);
    let events = llm.post("/v1/chat/completions", req).await.sse();
    let mut streamed_args = String::new();
    let mut name = None;
    for e in &events[..events.len() - 1] {
        let c: Value = serde_json::from_str(e).unwrap();
        if let Some(tc) = c["choices"][0]["delta"]["tool_calls"].get(0) {
            if let Some(n) = tc["function"]["name"].as_str() {
                name = Some(n.to_string());
            }
            streamed_args.push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(name.as_deref(), Some("book_appointment"));
    assert_eq!(serde_json::from_str::<Value>(&streamed_args).unwrap(), args);
    // Without tool_choice, a tool is called only when the prompt names it.
    let mut req = chat("instant", NOTE);
    req["tools"] = tools;
    let j = llm.post("/v1/chat/completions", req).await.json();
    assert_eq!(j["choices"][0]["finish_reason"], "stop");
}

/// An agent loop (openai-node's `runTools`, a hand-written one) sends the tool's result back
/// and expects text: a model does not call the same tool again for the same question.
#[tokio::test]
async fn a_tool_result_is_answered_in_text() {
    let llm = Llm::instant();
    let tools = json!([{"type": "function", "function": {"name": "find_slot", "parameters": {"type": "object", "properties": {"patient_id": {"type": "string"}}}}}]);
    let question = json!({"role": "user", "content": "Please find_slot for patient CC-SYN-1."});
    let req =
        json!({"model": "instant", "tools": tools, "tool_choice": "auto", "messages": [question]});
    let first = llm.post("/v1/chat/completions", req.clone()).await.json();
    assert_eq!(
        first["choices"][0]["finish_reason"], "tool_calls",
        "{first}"
    );
    let asked = first["choices"][0]["message"].clone();
    let call_id = asked["tool_calls"][0]["id"].clone();
    let mut again = req;
    again["messages"] = json!([
        question,
        asked,
        {"role": "tool", "tool_call_id": call_id, "content": "{\"start\": \"2026-12-08T09:00:00Z\"}"}
    ]);
    let second = llm.post("/v1/chat/completions", again.clone()).await.json();
    assert_eq!(second["choices"][0]["finish_reason"], "stop", "{second}");
    assert!(second["choices"][0]["message"]["content"].is_string());
    // `required` still forces a call, as it does on a real server.
    again["tool_choice"] = json!("required");
    let forced = llm.post("/v1/chat/completions", again).await.json();
    assert_eq!(forced["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn legacy_completions_answer_each_prompt_of_an_array() {
    let llm = Llm::instant();
    let body = json!({"model": "instant", "prompt": ["Cough for 2 weeks.", "Sprained ankle.", "Migraine."], "n": 2, "max_tokens": 6});
    let j = llm.post("/v1/completions", body).await.json();
    let choices = j["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 6, "3 prompts × n=2: {j}");
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
    }
    assert_ne!(
        choices[0]["text"], choices[2]["text"],
        "prompts answered apart"
    );
    let too_many: Vec<String> = (0..65).map(|i| format!("prompt {i}")).collect();
    let r = llm
        .post(
            "/v1/completions",
            json!({"model": "instant", "prompt": too_many, "n": 2}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "prompt");
    // Every answer carries OpenAI's request id.
    let r = llm
        .post(
            "/v1/completions",
            json!({"model": "instant", "prompt": "x"}),
        )
        .await;
    assert!(r.header("x-request-id").unwrap_or("").starts_with("req_"));
}

#[tokio::test]
async fn logprobs_whole_and_streamed_in_both_apis() {
    let llm = Llm::instant();
    let mut req = chat("instant", NOTE);
    req["logprobs"] = json!(true);
    req["top_logprobs"] = json!(3);
    let whole = llm.post("/v1/chat/completions", req.clone()).await.json();
    let content = whole["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap()
        .clone();
    let spelled: String = content.iter().filter_map(|t| t["token"].as_str()).collect();
    assert_eq!(
        spelled,
        whole["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(content[0]["top_logprobs"].as_array().unwrap().len(), 3);
    req["stream"] = json!(true);
    let events = llm.post("/v1/chat/completions", req).await.sse();
    let streamed: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|c| c["choices"][0]["logprobs"]["content"].get(0).cloned())
        .collect();
    assert_eq!(
        streamed, content,
        "the stream carries the same log probabilities"
    );
    let bad = llm
        .post("/v1/chat/completions", json!({"model": "instant", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["param"], "top_logprobs");
    let legacy = llm
        .post(
            "/v1/completions",
            json!({"model": "instant", "prompt": NOTE, "logprobs": 2, "max_tokens": 8}),
        )
        .await
        .json();
    let lp = &legacy["choices"][0]["logprobs"];
    assert_eq!(
        lp["tokens"].as_array().unwrap().len(),
        lp["token_logprobs"].as_array().unwrap().len()
    );
    assert_eq!(lp["text_offset"][0], 0);
}

#[tokio::test]
async fn legacy_completions_whole_and_streamed() {
    let llm = Llm::instant();
    let j = llm
        .post(
            "/v1/completions",
            json!({"model": "instant", "prompt": NOTE, "max_tokens": 4}),
        )
        .await
        .json();
    assert_eq!(j["object"], "text_completion");
    assert!(j["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(j["choices"][0]["finish_reason"], "length");
    let text = j["choices"][0]["text"].as_str().unwrap().to_string();
    let events = llm
        .post(
            "/v1/completions",
            json!({"model": "instant", "prompt": NOTE, "max_tokens": 4, "stream": true}),
        )
        .await
        .sse();
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let streamed: String = chunks
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(streamed, text);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );
}

#[tokio::test]
async fn embeddings_float_and_base64_agree() {
    let llm = Llm::instant();
    let j = llm
        .post(
            "/v1/embeddings",
            json!({"model": "nomic-embed-text", "input": ["chest pain", "penicillin allergy"]}),
        )
        .await
        .json();
    assert_eq!(j["object"], "list");
    assert_eq!(j["model"], "nomic-embed-text");
    assert_eq!(j["data"].as_array().unwrap().len(), 2);
    assert_eq!(j["data"][1]["index"], 1);
    assert_eq!(j["data"][0]["object"], "embedding");
    let v: Vec<f32> = serde_json::from_value(j["data"][0]["embedding"].clone()).unwrap();
    assert_eq!(v.len(), 768);
    assert_eq!(
        j["usage"],
        json!({"prompt_tokens": 3 + 5, "total_tokens": 3 + 5})
    );
    let b = llm.post("/v1/embeddings", json!({"model": "nomic-embed-text", "input": "chest pain", "encoding_format": "base64"})).await.json();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(decoded, v);
    let small = llm
        .post(
            "/v1/embeddings",
            json!({"model": "nomic-embed-text", "input": "x", "dimensions": 8}),
        )
        .await
        .json();
    assert_eq!(small["data"][0]["embedding"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn api_keys_are_checked_with_openai_shaped_401s() {
    let llm = Llm::instant();
    let body = chat("instant", "hi").to_string();
    let none = llm
        .send(
            Method::POST,
            "/v1/chat/completions",
            None,
            Some(body.as_bytes()),
        )
        .await;
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"]["type"], "invalid_request_error");
    assert!(none.json()["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("You didn't provide an API key."));
    let wrong = llm
        .send(
            Method::POST,
            "/v1/chat/completions",
            Some("sk-wrong-key-123456"),
            Some(body.as_bytes()),
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["error"]["code"], "invalid_api_key");
    assert!(wrong.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("sk-************3456"));
    let rec = llm.handle.history().snapshot();
    assert_eq!(rec[1].error_code.as_deref(), Some("invalid_api_key"));
    assert!(
        rec[1].token_digest.is_some() && !serde_json::to_string(&rec).unwrap().contains("sk-wrong")
    );
    // No keys configured: anyone may call (like a default vLLM).
    let open = Llm::build(MockLlm::builder().zero_delay().api_keys(vec![]));
    assert_eq!(
        open.send(
            Method::POST,
            "/v1/chat/completions",
            None,
            Some(body.as_bytes())
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn bad_input_gets_the_real_error_shape_never_a_500() {
    let llm = Llm::instant();
    let cases: Vec<(&[u8], u16, &str)> = vec![
        (b"{not json", 400, "We could not parse the JSON body"),
        (b"[1,2]", 400, "Invalid type for 'body'"),
        (br#"{"messages":[{"role":"user","content":"x"}]}"#, 400, "you must provide a model parameter"),
        (br#"{"model":"instant"}"#, 400, "Missing required parameter: 'messages'."),
        (br#"{"model":"instant","messages":"hello"}"#, 400, "Invalid type for 'messages'"),
        (br#"{"model":"instant","messages":[{"content":"x"}]}"#, 400, "Missing required parameter: 'messages[0].role'."),
        (br#"{"model":"instant","messages":[{"role":"user","content":5}]}"#, 400, "Invalid type for 'messages[0].content'"),
        (br#"{"model":"instant","messages":[{"role":"user","content":"x"}],"n":0}"#, 400, "Invalid 'n': integer below minimum value."),
        (br#"{"model":"instant","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#, 400, "Invalid type for 'stream'"),
        (br#"{"model":"instant","messages":[{"role":"user","content":"x"}],"response_format":{"type":"xml"}}"#, 400, "Invalid value: 'xml'."),
        (br#"{"model":"nope","messages":[{"role":"user","content":"x"}]}"#, 404, "The model `nope` does not exist"),
    ];
    for (body, status, needle) in cases {
        let r = llm
            .send(
                Method::POST,
                "/v1/chat/completions",
                Some(crashcart_mocks::llm::DEFAULT_API_KEY),
                Some(body),
            )
            .await;
        assert_eq!(
            r.status,
            status,
            "{} → {}",
            String::from_utf8_lossy(body),
            r.text()
        );
        let e = &r.json()["error"];
        assert!(
            e["message"].as_str().unwrap().contains(needle),
            "{}",
            r.text()
        );
        assert!(
            e.as_object().unwrap().contains_key("param")
                && e.as_object().unwrap().contains_key("code")
        );
    }
    let r = llm.post("/v1/nothing-here", json!({})).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["error"]["message"],
        "Invalid URL (POST /v1/nothing-here)"
    );
    let r = llm
        .post("/v1/chat/completions", chat("nomic-embed-text", "x"))
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn context_window_overflow_in_each_flavour() {
    let long = "word ".repeat(5000);
    for (flavour, code_path, expected) in [
        (
            Flavour::OpenAi,
            "/error/code",
            json!("context_length_exceeded"),
        ),
        (Flavour::Vllm, "/error/code", json!(400)),
        (
            Flavour::LlamaCpp,
            "/error/type",
            json!("exceed_context_size_error"),
        ),
        (
            Flavour::Ollama,
            "/error/type",
            json!("invalid_request_error"),
        ),
    ] {
        let llm = Llm::build(MockLlm::builder().zero_delay().flavour(flavour));
        let r = llm
            .post("/v1/chat/completions", chat("meditron:7b", &long))
            .await;
        assert_eq!(r.status, 400, "{flavour}");
        assert_eq!(
            r.json().pointer(code_path),
            Some(&expected),
            "{flavour}: {}",
            r.text()
        );
    }
    let llm = Llm::instant();
    let r = llm
        .post("/v1/chat/completions", chat("meditron:7b", &long))
        .await;
    let msg = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.starts_with("This model's maximum context length is 4096 tokens. However, your messages resulted in 5007 tokens."), "{msg}");
}
