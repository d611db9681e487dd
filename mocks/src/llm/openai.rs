//! The OpenAI-compatible API's bodies: model list, chat completions and legacy completions
//! (whole, or as SSE chunks ending in `data: [DONE]`), embeddings (float or base64).

use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};

use super::exchange::{json_ok, Choice, Frame, Generation};
use super::logprobs;
use super::persona::Persona;
use super::{tokens, LlmState};

fn model_entry(st: &LlmState, p: &Persona) -> Value {
    json!({
        "id": p.name,
        "object": "model",
        "created": st.clock.wall().timestamp() - 86_400,
        "owned_by": "crashcart",
    })
}

/// `GET /v1/models`.
pub(crate) fn models(st: &LlmState) -> Response {
    let data: Vec<Value> = st
        .models
        .iter()
        .map(|m| model_entry(st, &m.persona))
        .collect();
    json_ok(&json!({"object": "list", "data": data}))
}

/// `GET /v1/models/{id}`.
pub(crate) fn model(st: &LlmState, p: &Persona) -> Response {
    json_ok(&model_entry(st, p))
}

fn usage(g: &Generation) -> Value {
    let c = g.completion_tokens();
    json!({"prompt_tokens": g.prompt_tokens, "completion_tokens": c, "total_tokens": g.prompt_tokens + c})
}

fn tool_calls_json(c: &Choice) -> Value {
    c.tool_calls
        .iter()
        .map(|t| json!({"id": t.id, "type": "function", "function": {"name": t.name, "arguments": t.arguments.to_string()}}))
        .collect()
}

/// A whole `chat.completion`.
pub(crate) fn chat_full(g: &Generation) -> Value {
    let choices: Vec<Value> = g
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let mut message = json!({"role": "assistant", "content": c.text, "refusal": null});
            if !c.tool_calls.is_empty() {
                message["content"] = Value::Null;
                message["tool_calls"] = tool_calls_json(c);
            }
            let lp = (g.logprobs)
                .filter(|_| c.tool_calls.is_empty())
                .map_or(Value::Null, |k| logprobs::chat(&key(g, i), &c.text, k));
            json!({"index": i, "message": message, "logprobs": lp, "finish_reason": c.finish.as_str()})
        })
        .collect();
    json!({
        "id": g.id,
        "object": "chat.completion",
        "created": g.created.timestamp(),
        "model": g.model,
        "choices": choices,
        "usage": usage(g),
        "system_fingerprint": g.fingerprint,
    })
}

/// A whole `text_completion`.
pub(crate) fn completion_full(g: &Generation) -> Value {
    let choices: Vec<Value> = g
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let lp = (g.logprobs).map_or(Value::Null, |k| {
                logprobs::completion(&key(g, i), &c.text, k)
            });
            json!({"text": c.text, "index": i, "logprobs": lp, "finish_reason": c.finish.as_str()})
        })
        .collect();
    json!({
        "id": g.id,
        "object": "text_completion",
        "created": g.created.timestamp(),
        "model": g.model,
        "system_fingerprint": g.fingerprint,
        "choices": choices,
        "usage": usage(g),
    })
}

/// What a choice's log probabilities are drawn from: the model and the choice (with each
/// token's text), so the same answer has the same log probabilities.
fn key(g: &Generation, i: usize) -> String {
    format!("{}:{i}", g.model)
}

fn event(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// The stream's last event.
pub(crate) fn done_event() -> Bytes {
    Bytes::from_static(b"data: [DONE]\n\n")
}

/// An error in the middle of a stream (openai-python raises `APIError` on it).
pub(crate) fn error_event(message: &str) -> Bytes {
    event(
        &json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}}),
    )
}

struct Chunker<'a> {
    g: &'a Generation,
    object: &'static str,
}

impl Chunker<'_> {
    fn chunk(&self, choices: Value) -> Value {
        let mut v = json!({
            "id": self.g.id,
            "object": self.object,
            "created": self.g.created.timestamp(),
            "model": self.g.model,
            "system_fingerprint": self.g.fingerprint,
            "choices": choices,
        });
        if self.g.include_usage {
            v["usage"] = Value::Null;
        }
        v
    }
    /// Events for content pieces of one choice: the chunk is rendered once around a
    /// placeholder, and each piece is only escaped into it (the stream's hot path).
    fn piece_template(&self, choices: impl Fn(&str) -> Value) -> PieceTemplate {
        const MARK: &str = "\u{1}crashcart-piece\u{1}";
        let rendered = format!("data: {}\n\n", self.chunk(choices(MARK)));
        let marker = serde_json::to_string(MARK).unwrap_or_default();
        match rendered.split_once(&marker) {
            Some((head, tail)) => PieceTemplate {
                head: head.to_string(),
                tail: tail.to_string(),
            },
            None => PieceTemplate {
                head: rendered,
                tail: String::new(),
            },
        }
    }

    fn usage_frame(&self) -> Option<Frame> {
        self.g.include_usage.then(|| {
            let mut v = self.chunk(json!([]));
            v["usage"] = usage(self.g);
            Frame::Data(event(&v))
        })
    }
}

/// A pre-rendered SSE event with a hole for a JSON string.
struct PieceTemplate {
    head: String,
    tail: String,
}

impl PieceTemplate {
    fn frame(&self, piece: &str) -> Frame {
        let escaped = serde_json::to_string(piece).unwrap_or_default();
        let mut s = String::with_capacity(self.head.len() + escaped.len() + self.tail.len());
        s.push_str(&self.head);
        s.push_str(&escaped);
        s.push_str(&self.tail);
        Frame::Piece {
            bytes: Bytes::from(s),
            tokens: tokens::of_piece(piece),
        }
    }
}

/// The SSE frames of a streamed chat completion (before `[DONE]`).
pub(crate) fn chat_frames(g: &Generation) -> Vec<Frame> {
    let ck = Chunker {
        g,
        object: "chat.completion.chunk",
    };
    let choice = |i: usize, delta: Value, finish: Value| json!([{"index": i, "delta": delta, "logprobs": null, "finish_reason": finish}]);
    let mut frames = vec![];
    for (i, c) in g.choices.iter().enumerate() {
        if c.tool_calls.is_empty() {
            frames.push(Frame::Data(event(&ck.chunk(choice(
                i,
                json!({"role": "assistant", "content": "", "refusal": null}),
                Value::Null,
            )))));
            match g.logprobs {
                None => {
                    let template =
                        ck.piece_template(|p| choice(i, json!({"content": p}), Value::Null));
                    for piece in tokens::pieces(&c.text) {
                        frames.push(template.frame(piece));
                    }
                }
                Some(k) => {
                    for (t, piece) in tokens::pieces(&c.text).into_iter().enumerate() {
                        let entry = logprobs::chat_entry(&key(g, i), t, piece, k);
                        let mut ch = choice(i, json!({"content": piece}), Value::Null);
                        ch[0]["logprobs"] = json!({"content": [entry], "refusal": null});
                        frames.push(Frame::Piece {
                            bytes: event(&ck.chunk(ch)),
                            tokens: tokens::of_piece(piece),
                        });
                    }
                }
            }
        } else {
            frames.push(Frame::Data(event(&ck.chunk(choice(
                i,
                json!({"role": "assistant", "content": null, "refusal": null}),
                Value::Null,
            )))));
            for (k, t) in c.tool_calls.iter().enumerate() {
                let head = json!({"tool_calls": [{"index": k, "id": t.id, "type": "function", "function": {"name": t.name, "arguments": ""}}]});
                frames.push(Frame::Piece {
                    bytes: event(&ck.chunk(choice(i, head, Value::Null))),
                    tokens: 1,
                });
                let args = t.arguments.to_string();
                for piece in split_args(&args) {
                    let delta =
                        json!({"tool_calls": [{"index": k, "function": {"arguments": piece}}]});
                    frames.push(Frame::Piece {
                        bytes: event(&ck.chunk(choice(i, delta, Value::Null))),
                        tokens: tokens::count(piece).max(1),
                    });
                }
            }
        }
        frames.push(Frame::Data(event(&ck.chunk(choice(
            i,
            json!({}),
            json!(c.finish.as_str()),
        )))));
    }
    frames.extend(ck.usage_frame());
    frames
}

/// JSON arguments in short fragments, as models stream them.
pub(crate) fn split_args(args: &str) -> Vec<&str> {
    let mut out = vec![];
    let mut start = 0;
    let mut count = 0;
    for (i, _) in args.char_indices() {
        if count == 12 {
            out.push(&args[start..i]);
            start = i;
            count = 0;
        }
        count += 1;
    }
    if start < args.len() {
        out.push(&args[start..]);
    }
    out
}

/// The SSE frames of a streamed legacy completion (before `[DONE]`).
pub(crate) fn completion_frames(g: &Generation) -> Vec<Frame> {
    let ck = Chunker {
        g,
        object: "text_completion",
    };
    let mut frames = vec![];
    for (i, c) in g.choices.iter().enumerate() {
        let all = g
            .logprobs
            .map(|k| logprobs::completion(&key(g, i), &c.text, k));
        for (t, piece) in tokens::pieces(&c.text).into_iter().enumerate() {
            let lp = all.as_ref().map_or(Value::Null, |a| {
                let at = |k: &str| json!([a[k][t].clone()]);
                json!({"tokens": at("tokens"), "token_logprobs": at("token_logprobs"), "top_logprobs": at("top_logprobs"), "text_offset": at("text_offset")})
            });
            frames.push(Frame::Piece {
                bytes: event(&ck.chunk(
                    json!([{"text": piece, "index": i, "logprobs": lp, "finish_reason": null}]),
                )),
                tokens: tokens::of_piece(piece),
            });
        }
        frames.push(Frame::Data(event(&ck.chunk(
            json!([{"text": "", "index": i, "logprobs": null, "finish_reason": c.finish.as_str()}]),
        ))));
    }
    frames.extend(ck.usage_frame());
    frames
}

/// `POST /v1/embeddings`.
pub(crate) fn embeddings(
    model: &str,
    vectors: &[Vec<f32>],
    prompt_tokens: u32,
    base64: bool,
) -> Response {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    json_ok(&json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }))
}
