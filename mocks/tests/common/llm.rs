//! Helpers for the mock LLM tests: in-process calls on a (possibly paused) clock.

use axum::Router;
use bytes::Bytes;
use crashcart_mocks::llm::{LlmHandle, MockLlmBuilder, DEFAULT_API_KEY};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A whole answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The `data:` payloads of an SSE body, asserting the framing (`data: …` + blank line).
    pub fn sse(&self) -> Vec<String> {
        let text = self.text();
        assert!(
            text.ends_with("\n\n"),
            "SSE body must end with a blank line: {text:?}"
        );
        text.trim_end_matches("\n\n")
            .split("\n\n")
            .map(|ev| {
                ev.strip_prefix("data: ")
                    .unwrap_or_else(|| panic!("event without 'data: ': {ev:?}"))
                    .to_string()
            })
            .collect()
    }
    /// The events of a typed SSE body (`event: NAME` + `data: JSON` + blank line), parsed,
    /// asserting that each event's name is its data's `type`.
    pub fn typed_sse(&self) -> Vec<Value> {
        let text = self.text();
        assert!(
            text.ends_with("\n\n"),
            "SSE body must end with a blank line"
        );
        text.trim_end_matches("\n\n")
            .split("\n\n")
            .map(|ev| {
                let (name, data) = ev
                    .strip_prefix("event: ")
                    .and_then(|rest| rest.split_once("\ndata: "))
                    .unwrap_or_else(|| panic!("not `event:` then `data:`: {ev:?}"));
                let v: Value = serde_json::from_str(data).unwrap();
                assert_eq!(v["type"], name, "{ev}");
                v
            })
            .collect()
    }
    /// The lines of an NDJSON body, parsed.
    pub fn ndjson(&self) -> Vec<Value> {
        let text = self.text();
        assert!(text.ends_with('\n'), "NDJSON ends with a newline: {text:?}");
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
            .collect()
    }
}

/// A mock LLM called in-process through its router.
pub struct Llm {
    pub router: Router,
    pub handle: LlmHandle,
}

impl Llm {
    pub fn build(builder: MockLlmBuilder) -> Self {
        let (router, handle) = builder
            .build_in_process("http://llm.test")
            .expect("mock builds");
        Self { router, handle }
    }

    pub fn instant() -> Self {
        Self::build(crashcart_mocks::MockLlm::builder().seed(3).zero_delay())
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&[u8]>,
    ) -> Answer {
        let mut rb = Request::builder().method(method).uri(path);
        if let Some(k) = key {
            rb = rb.header("authorization", format!("Bearer {k}"));
        }
        if body.is_some() {
            rb = rb.header("content-type", "application/json");
        }
        let req = rb
            .body(axum::body::Body::from(
                body.map(|b| b.to_vec()).unwrap_or_default(),
            ))
            .unwrap();
        self.send_request(req).await
    }

    /// Send a request built by the caller and read the whole answer.
    pub async fn send_request(&self, req: Request<axum::body::Body>) -> Answer {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        // Read frame by frame, keeping what arrived before a broken stream ended.
        let mut body_stream = resp.into_body();
        let mut body = Vec::new();
        while let Some(Ok(frame)) = body_stream.frame().await {
            if let Some(data) = frame.data_ref() {
                body.extend_from_slice(data);
            }
        }
        let body = Bytes::from(body);
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(
            Method::POST,
            path,
            Some(DEFAULT_API_KEY),
            Some(body.to_string().as_bytes()),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, Some(DEFAULT_API_KEY), None)
            .await
    }
}

/// A chat request with one user message.
pub fn chat(model: &str, content: &str) -> Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": content}]})
}

pub const NOTE: &str = "Summarize this visit note. Patient reports chest pain since 3 days. She takes metformin 500 mg twice daily. Blood pressure 150/95 at the last visit. Allergic to penicillin. Follow-up booked with Dr. Hopper.";
