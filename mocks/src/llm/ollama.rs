//! Ollama's native API bodies: `/api/tags`, `/api/ps`, `/api/show`, chat and generate
//! (NDJSON lines, the last with `done_reason` and nanosecond timings, or one object with
//! `stream: false`), and `/api/embed`.

use std::time::Duration;

use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::errors::LlmError;
use super::exchange::{json_ok, Frame, Generation, Timings};
use super::persona::{Capability, Persona};
use super::request::Api;
use super::{tokens, LlmState};
use crate::history::digest;

fn details(p: &Persona) -> Value {
    json!({
        "parent_model": "",
        "format": "gguf",
        "family": p.family,
        "families": [p.family],
        "parameter_size": p.parameter_size,
        "quantization_level": p.quantization,
    })
}

/// A plausible on-disk size from the parameter count and quantization.
fn size_bytes(p: &Persona) -> u64 {
    let n: f64 = p
        .parameter_size
        .trim_end_matches(['B', 'M'])
        .parse()
        .unwrap_or(1.0);
    let params = if p.parameter_size.ends_with('M') {
        n * 1e6
    } else {
        n * 1e9
    };
    let bits = if p.quantization.starts_with("Q4") {
        4.5
    } else if p.quantization.starts_with("Q8") {
        8.5
    } else {
        16.0
    };
    (params * bits / 8.0) as u64
}

fn model_entry(st: &LlmState, p: &Persona) -> Value {
    json!({
        "name": p.name,
        "model": p.name,
        "modified_at": (st.clock.wall() - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "size": size_bytes(p),
        "digest": format!("{}{}", digest(p.name.as_bytes()), digest(p.family.as_bytes())),
        "details": details(p),
    })
}

/// `GET /api/tags`.
pub(crate) fn tags(st: &LlmState) -> Response {
    let models: Vec<Value> = st
        .models
        .iter()
        .map(|m| model_entry(st, &m.persona))
        .collect();
    json_ok(&json!({"models": models}))
}

/// `GET /api/ps`: the models loaded: generating now, or used within their `keep_alive`.
pub(crate) fn ps(st: &LlmState) -> Response {
    let models: Vec<Value> = st
        .models
        .iter()
        .filter_map(|m| Some((m, m.runtime.loaded_for()?)))
        .map(|(m, left)| {
            let mut e = model_entry(st, &m.persona);
            e["size_vram"] = e["size"].clone();
            // A model kept loaded (negative keep_alive) expires centuries ahead, as Ollama says.
            let left = left.min(Duration::from_secs(300 * 365 * 86_400));
            let left = chrono::Duration::from_std(left).unwrap_or_default();
            e["expires_at"] =
                json!((st.clock.wall() + left).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true));
            e
        })
        .collect();
    json_ok(&json!({"models": models}))
}

/// `POST /api/show`.
pub(crate) fn show(st: &LlmState, body: &[u8]) -> Response {
    let name = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.get("model")
            .or(v.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let Some(name) = name else {
        return LlmError::invalid("model is required", Some("model"), None).ollama_response();
    };
    let Some(m) = st.model(&name) else {
        return LlmError {
            kind: super::errors::ErrorKind::ModelNotFound,
            message: format!("model '{name}' not found"),
        }
        .ollama_response();
    };
    let p = &m.persona;
    let mut info = Map::new();
    info.insert("general.architecture".into(), json!(p.family));
    info.insert(
        format!("{}.context_length", p.family),
        json!(p.context_window),
    );
    info.insert(
        format!("{}.embedding_length", p.family),
        json!(p.embedding_dim),
    );
    let caps: Vec<&str> = p
        .capabilities
        .iter()
        .map(|c| match c {
            Capability::Completion => "completion",
            Capability::Tools => "tools",
            Capability::Embedding => "embedding",
        })
        .collect();
    json_ok(&json!({
        "modelfile": format!("FROM {}\n", p.name),
        "parameters": format!("num_ctx {}", p.context_window),
        "template": "{{ .Prompt }}",
        "details": details(p),
        "model_info": info,
        "capabilities": caps,
        "modified_at": (st.clock.wall() - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    }))
}

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

fn created_at(g: &Generation) -> String {
    g.created
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn message(content: &str, g: &Generation, with_tools: bool) -> (&'static str, Value) {
    match g.api {
        Api::OllamaGenerate => ("response", json!(content)),
        _ => {
            let mut m = json!({"role": "assistant", "content": content});
            if with_tools {
                if let Some(c) = g.choices.first().filter(|c| !c.tool_calls.is_empty()) {
                    let calls: Vec<Value> = c
                        .tool_calls
                        .iter()
                        .map(|t| json!({"function": {"name": t.name, "arguments": t.arguments}}))
                        .collect();
                    m["tool_calls"] = json!(calls);
                }
            }
            ("message", m)
        }
    }
}

fn done_fields(v: &mut Value, g: &Generation, t: &Timings) {
    let reason = g.choices.first().map(|c| match c.finish {
        super::content::Finish::Length => "length",
        _ => "stop",
    });
    v["done_reason"] = json!(reason.unwrap_or("stop"));
    v["done"] = json!(true);
    v["total_duration"] = json!(ns(t.total));
    v["load_duration"] = json!(ns(t.load));
    v["prompt_eval_count"] = json!(g.prompt_tokens);
    v["prompt_eval_duration"] = json!(ns(t.prompt_eval));
    v["eval_count"] = json!(t.eval_count);
    v["eval_duration"] = json!(ns(t.eval));
    if g.api == Api::OllamaGenerate {
        v["context"] = json!(context(g, t.eval_count));
    }
}

/// `/api/generate`'s final `context`: the token ids of the prompt and the answer (what a
/// client sends back as `context` to continue), deterministic for the generation.
fn context(g: &Generation, answered: u32) -> Vec<u32> {
    let seed = u64::from_str_radix(&digest(g.id.as_bytes())[..12], 16).unwrap_or(0);
    (0..u64::from(g.prompt_tokens + answered))
        .map(|i| {
            let x =
                (seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            100 + (x >> 40) as u32 % 32_000
        })
        .collect()
}

/// The whole answer (`stream: false`).
pub(crate) fn full(g: &Generation, t: &Timings) -> Value {
    let text = g.choices.first().map(|c| c.text.as_str()).unwrap_or("");
    let (key, m) = message(text, g, true);
    let mut v = json!({"model": g.model, "created_at": created_at(g)});
    v[key] = m;
    done_fields(&mut v, g, t);
    v
}

fn line(v: &Value) -> Bytes {
    Bytes::from(format!("{v}\n"))
}

/// The NDJSON lines before the final one.
pub(crate) fn frames(g: &Generation) -> Vec<Frame> {
    let mut out = vec![];
    let Some(c) = g.choices.first() else {
        return out;
    };
    if !c.tool_calls.is_empty() {
        let (key, m) = message("", g, true);
        let mut v = json!({"model": g.model, "created_at": created_at(g)});
        v[key] = m;
        v["done"] = json!(false);
        out.push(Frame::Piece {
            bytes: line(&v),
            tokens: c.tokens.max(1),
        });
        return out;
    }
    for piece in tokens::pieces(&c.text) {
        let (key, m) = message(piece, g, false);
        let mut v = json!({"model": g.model, "created_at": created_at(g)});
        v[key] = m;
        v["done"] = json!(false);
        out.push(Frame::Piece {
            bytes: line(&v),
            tokens: tokens::of_piece(piece),
        });
    }
    out
}

/// The final line: empty content, `done: true`, `done_reason` and the timings.
pub(crate) fn final_line(g: &Generation, t: &Timings) -> Bytes {
    let (key, m) = message("", g, false);
    let mut v = json!({"model": g.model, "created_at": created_at(g)});
    v[key] = m;
    done_fields(&mut v, g, t);
    line(&v)
}

/// An error in the middle of a stream: one line, HTTP status stays 200.
pub(crate) fn error_line(message: &str) -> Bytes {
    line(&json!({"error": message}))
}

/// `POST /api/embed`.
pub(crate) fn embed(
    model: &str,
    vectors: &[Vec<f32>],
    prompt_tokens: u32,
    total: Duration,
    load: Duration,
) -> Response {
    json_ok(&json!({
        "model": model,
        "embeddings": vectors,
        "total_duration": ns(total),
        "load_duration": ns(load),
        "prompt_eval_count": prompt_tokens,
    }))
}
