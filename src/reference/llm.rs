//! The reference integration's LLM client (OpenAI-compatible `/v1`): a visit-preparation
//! note as JSON (`response_format: json_schema`), and a case summary read from an SSE stream.
//!
//! Drift handling: the JSON is taken from prose or code fences when the model wraps it, and
//! checked for the keys the integration needs; a note that lacks them is not used. With
//! `no-drift-handling` the answer is parsed as it comes, and anything unexpected fails the
//! booking.

use http::Method;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::defect::{Defect, Defects};
use super::resilience::{CallError, Dependency};
use crate::transport::HttpRequest;

/// Why the LLM step gave nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// No answer (breaker open, timeouts, connection errors).
    #[error(transparent)]
    Call(#[from] CallError),
    /// An error status.
    #[error("the LLM answered {0}")]
    Status(u16),
    /// An answer the integration cannot use (not JSON, keys missing, a broken stream).
    #[error("unusable LLM answer: {0}")]
    Unusable(String),
}

/// The keys a visit-preparation note must have.
pub const PREP_KEYS: [&str; 2] = ["summary", "questions"];

/// The client.
#[derive(Debug)]
pub struct Llm {
    /// The dependency (breaker, retries).
    pub dep: Dependency,
    base_url: String,
    api_key: String,
    model: String,
    defects: Defects,
}

impl Llm {
    /// A client for `base_url` (ending in `/v1`).
    pub fn new(
        dep: Dependency,
        base_url: &str,
        api_key: &str,
        model: &str,
        defects: Defects,
    ) -> Self {
        Self {
            dep,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key: api_key.to_string(),
            model: model.to_string(),
            defects,
        }
    }

    fn request(&self, body: &Value) -> HttpRequest {
        HttpRequest::new(Method::POST, format!("{}/chat/completions", self.base_url))
            .header("authorization", &format!("Bearer {}", self.api_key))
            .json(body)
    }

    /// A visit-preparation note for a patient, as JSON with [`PREP_KEYS`].
    pub async fn visit_prep(&self, patient: &Value, deadline: Instant) -> Result<Value, LlmError> {
        let body = json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": "You prepare clinicians for visits. Answer in JSON."},
                {"role": "user", "content": format!(
                    "Prepare a short visit note for {} {}, born {}. Preferred language: {}.",
                    patient["first_name"].as_str().unwrap_or("the patient"),
                    patient["last_name"].as_str().unwrap_or(""),
                    patient["birthdate"].as_str().unwrap_or("unknown"),
                    patient["language"].as_str().unwrap_or("English"),
                )}
            ],
            "max_tokens": 200,
            "temperature": 0,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "visit_prep",
                    "schema": {
                        "type": "object",
                        "properties": {
                            "summary": {"type": "string"},
                            "questions": {"type": "array", "items": {"type": "string"}}
                        },
                        "required": PREP_KEYS
                    }
                }
            }
        });
        let r = self.dep.call(&self.request(&body), deadline).await?;
        if r.status != 200 {
            return Err(LlmError::Status(r.status));
        }
        let content = r.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if self.defects.has(Defect::NoDriftHandling) {
            // Trust the model: parse as it comes and index straight into it.
            let v: Value = serde_json::from_str(&content)
                .map_err(|e| LlmError::Unusable(format!("not JSON: {e}")))?;
            if v["summary"].is_null() {
                return Err(LlmError::Unusable("no `summary`".into()));
            }
            return Ok(v);
        }
        let v = extract_json(&content)
            .ok_or_else(|| LlmError::Unusable("no JSON object in the answer".into()))?;
        match PREP_KEYS.iter().find(|k| v.get(**k).is_none()) {
            Some(k) => Err(LlmError::Unusable(format!("the note lacks `{k}`"))),
            None => Ok(v),
        }
    }

    /// A summary of a case, streamed (SSE) and assembled; a stream that ends without
    /// `data: [DONE]` or with an error event is unusable.
    pub async fn summarize(&self, text: &str, deadline: Instant) -> Result<String, LlmError> {
        let body = json!({
            "model": self.model,
            "stream": true,
            "max_tokens": 120,
            "messages": [
                {"role": "system", "content": "Summarise clinical case notes in two sentences."},
                {"role": "user", "content": text}
            ]
        });
        let r = self.dep.call(&self.request(&body), deadline).await?;
        if r.status != 200 {
            return Err(LlmError::Status(r.status));
        }
        let mut out = String::new();
        let mut done = false;
        for line in String::from_utf8_lossy(&r.body).lines() {
            let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                continue;
            };
            if data == "[DONE]" {
                done = true;
                break;
            }
            let v: Value = serde_json::from_str(data)
                .map_err(|e| LlmError::Unusable(format!("bad stream event: {e}")))?;
            if v.get("error").is_some() {
                return Err(LlmError::Unusable(format!("stream error: {}", v["error"])));
            }
            if let Some(piece) = v["choices"][0]["delta"]["content"].as_str() {
                out.push_str(piece);
            }
        }
        if !done {
            return Err(LlmError::Unusable("the stream ended early".into()));
        }
        Ok(out)
    }
}

/// The JSON object in a model's answer: as is, inside a code fence, or inside prose.
pub fn extract_json(content: &str) -> Option<Value> {
    if let Ok(v @ Value::Object(_)) = serde_json::from_str(content.trim()) {
        return Some(v);
    }
    let (a, b) = (content.find('{')?, content.rfind('}')?);
    match serde_json::from_str(content.get(a..=b)?) {
        Ok(v @ Value::Object(_)) => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_found_in_fences_and_prose() {
        let plain = r#"{"summary": "s", "questions": []}"#;
        assert_eq!(extract_json(plain).unwrap()["summary"], "s");
        let fenced = format!("```json\n{plain}\n```");
        assert_eq!(extract_json(&fenced).unwrap()["summary"], "s");
        let prose = format!("Here is the JSON you asked for: {plain} Let me know!");
        assert_eq!(extract_json(&prose).unwrap()["summary"], "s");
        assert_eq!(extract_json("no json here"), None);
        assert_eq!(extract_json("[1, 2]"), None);
    }
}
