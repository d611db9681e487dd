//! The Responses API of the mock LLM on the wire: the response object, typed SSE events in
//! order with sequence numbers, incomplete answers, stored responses, and its errors.

mod common;

use common::llm::{Llm, NOTE};
use http::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn a_whole_response_and_its_stream_carry_the_same_answer() {
    let llm = Llm::instant();
    let req = json!({"model": "instant", "input": NOTE, "instructions": "Be brief.", "metadata": {"ward": "3B"}});
    let whole = llm.post("/v1/responses", req.clone()).await.json();
    assert_eq!(whole["object"], "response");
    assert_eq!(whole["status"], "completed");
    assert_eq!(whole["instructions"], "Be brief.");
    assert_eq!(whole["metadata"], json!({"ward": "3B"}));
    let item = &whole["output"][0];
    assert_eq!(
        (item["type"].as_str(), item["role"].as_str()),
        (Some("message"), Some("assistant"))
    );
    let text = item["content"][0]["text"].as_str().unwrap().to_string();
    assert_eq!(item["content"][0]["type"], "output_text");
    let mut streamed = req;
    streamed["stream"] = json!(true);
    let events: Vec<Value> = llm.post("/v1/responses", streamed).await.typed_sse();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i, "{e}");
    }
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        &kinds[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    assert_eq!(kinds[kinds.len() - 1], "response.completed");
    let deltas: String = (events.iter())
        .filter(|e| e["type"] == "response.output_text.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect();
    assert_eq!(deltas, text, "the same answer for the same request");
    let done = &events[kinds.len() - 1]["response"];
    assert_eq!(done["output"][0]["content"][0]["text"], text.as_str());
    assert_eq!(done["usage"], whole["usage"]);
}

#[tokio::test]
async fn max_output_tokens_leaves_the_response_incomplete() {
    let llm = Llm::instant();
    let r = llm
        .post(
            "/v1/responses",
            json!({"model": "instant", "input": NOTE, "max_output_tokens": 16}),
        )
        .await
        .json();
    assert_eq!(r["status"], "incomplete", "{r}");
    assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
    assert!(r["usage"]["output_tokens"].as_u64().unwrap() <= 16);
    let low = llm
        .post(
            "/v1/responses",
            json!({"model": "instant", "input": NOTE, "max_output_tokens": 8}),
        )
        .await;
    assert_eq!(low.status, 400);
    assert_eq!(low.json()["error"]["code"], "integer_below_min_value");
}

#[tokio::test]
async fn stored_responses_continue_and_can_be_deleted() {
    let llm = Llm::instant();
    let first = llm
        .post("/v1/responses", json!({"model": "instant", "input": NOTE}))
        .await
        .json();
    let id = first["id"].as_str().unwrap();
    let got = llm.get(&format!("/v1/responses/{id}")).await;
    assert_eq!(
        (got.status.as_u16(), got.json()["id"].clone()),
        (200, json!(id))
    );
    let next = llm
        .post(
            "/v1/responses",
            json!({"model": "instant", "input": "And the allergies?", "previous_response_id": id}),
        )
        .await
        .json();
    assert_eq!(next["previous_response_id"], id);
    assert!(
        next["usage"]["input_tokens"].as_u64() > first["usage"]["input_tokens"].as_u64(),
        "the earlier turn is part of the prompt: {next}"
    );
    let del = llm
        .send(
            Method::DELETE,
            &format!("/v1/responses/{id}"),
            Some(crashcart_mocks::llm::DEFAULT_API_KEY),
            None,
        )
        .await;
    assert_eq!(del.json()["deleted"], true);
    assert_eq!(llm.get(&format!("/v1/responses/{id}")).await.status, 404);
    let unstored = llm
        .post(
            "/v1/responses",
            json!({"model": "instant", "input": NOTE, "store": false}),
        )
        .await
        .json();
    let path = format!("/v1/responses/{}", unstored["id"].as_str().unwrap());
    assert_eq!(
        llm.get(&path).await.status,
        404,
        "store: false keeps nothing"
    );
}

#[tokio::test]
async fn invalid_requests_answer_in_openai_words() {
    let llm = Llm::instant();
    let cases = [
        (json!({"model": "instant"}), "input"),
        (json!({"model": "instant", "input": 7}), "input"),
        (
            json!({"model": "instant", "input": [{"type": "image_generation_call"}]}),
            "input[0].type",
        ),
        (
            json!({"model": "instant", "input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}}),
            "text.format.name",
        ),
        (
            json!({"model": "instant", "input": "x", "tools": [{"type": "web_search"}]}),
            "tools[0].type",
        ),
        (
            json!({"model": "instant", "input": "x", "tools": [{"type": "function"}]}),
            "tools[0].name",
        ),
        (
            json!({"model": "instant", "input": "x", "previous_response_id": "resp_none"}),
            "previous_response_id",
        ),
    ];
    for (body, param) in cases {
        let r = llm.post("/v1/responses", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.json()["error"]["param"], param, "{body}: {}", r.text());
        assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    }
    let unknown = llm
        .post("/v1/responses", json!({"model": "gpt-9", "input": "x"}))
        .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn a_function_call_streams_its_arguments() {
    let llm = Llm::instant();
    let tools = json!([{"type": "function", "name": "find_slot", "parameters": {"type": "object", "properties": {"patient_id": {"type": "string"}}, "required": ["patient_id"]}}]);
    let req = json!({"model": "instant", "input": "x", "tools": tools, "tool_choice": {"type": "function", "name": "find_slot"}, "stream": true});
    let events: Vec<Value> = llm.post("/v1/responses", req).await.typed_sse();
    let args: String = (events.iter())
        .filter(|e| e["type"] == "response.function_call_arguments.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect();
    let done = events
        .iter()
        .find(|e| e["type"] == "response.function_call_arguments.done")
        .unwrap();
    assert_eq!(done["arguments"], args.as_str());
    let parsed: Value = serde_json::from_str(&args).unwrap();
    assert!(parsed["patient_id"].is_string(), "{parsed}");
    let last = &events[events.len() - 1];
    assert_eq!(last["response"]["output"][0]["type"], "function_call");
    assert_eq!(last["response"]["output"][0]["name"], "find_slot");
}
