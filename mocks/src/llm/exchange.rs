//! One request to the mock LLM, end to end:
//!
//! 1. sequence number and arrival time; body read under a size limit;
//! 2. the fault hook's verdict (delay, canned answer, drop, reset, or LLM shaping);
//! 3. API key check on `/v1`; model lookup; request validation; context-window check;
//! 4. admission to a generation slot (queue, or 429/503 when full; cold start);
//! 5. time to first token and per-token decoding on the tokio clock, streamed as SSE or
//!    NDJSON frames or answered whole;
//! 6. the history record, pushed when the last byte is sent (or the client leaves).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::content::{self, Finish, ToolCall};
use super::errors::{LlmError, LlmErrorCode};
use super::perf::Slot;
use super::request::{self, Api, GenRequest};
use super::{ollama, openai, responses, tokens, CapturePolicy, LlmState, ServedModel};
use crate::fault::{LlmShaping, RequestInfo};
use crate::history::{digest, Dependency, LlmExchange, PendingRecord, RequestRecord};
use crate::server::ConnControl;
use crate::wire::{
    aborting_response, bearer_token, canned_response, intervene, retry_after_ms, retry_count,
};

/// The router: one handler for every path, so every request gets the same treatment.
pub(crate) fn router(state: Arc<LlmState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// Which endpoint a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Models,
    Model,
    Chat,
    Completions,
    Embeddings,
    Responses,
    StoredResponse,
    OllamaRoot,
    OllamaTags,
    OllamaVersion,
    OllamaPs,
    OllamaShow,
    OllamaChat,
    OllamaGenerate,
    OllamaEmbed,
    OllamaEmbeddings,
    ControlHistory,
    ControlState,
    UnknownV1,
    Unknown,
}

/// Every operation name the mock LLM gives a request (what fault targets and the history
/// name).
pub const OPERATIONS: &[&str] = &[
    "openai.models",
    "openai.model",
    "openai.chat",
    "openai.completions",
    "openai.embeddings",
    "openai.responses",
    "openai.responses.stored",
    "openai.unknown",
    "ollama.root",
    "ollama.tags",
    "ollama.version",
    "ollama.ps",
    "ollama.show",
    "ollama.chat",
    "ollama.generate",
    "ollama.embed",
    "ollama.embeddings",
    "control",
    "unknown",
];

impl Endpoint {
    fn classify(method: &Method, path: &str) -> (Self, &'static str) {
        let p = path.trim_end_matches('/');
        let get = method == Method::GET || method == Method::HEAD;
        let post = method == Method::POST;
        use Endpoint::*;
        match p {
            "/v1/models" if get => (Models, "openai.models"),
            _ if get && p.starts_with("/v1/models/") => (Model, "openai.model"),
            "/v1/chat/completions" if post => (Chat, "openai.chat"),
            "/v1/completions" if post => (Completions, "openai.completions"),
            "/v1/embeddings" if post => (Embeddings, "openai.embeddings"),
            "/v1/responses" if post => (Responses, "openai.responses"),
            _ if (get || method == Method::DELETE) && stored_response_id(p).is_some() => {
                (StoredResponse, "openai.responses.stored")
            }
            "" if get => (OllamaRoot, "ollama.root"),
            "/api/tags" if get => (OllamaTags, "ollama.tags"),
            "/api/version" if get => (OllamaVersion, "ollama.version"),
            "/api/ps" if get => (OllamaPs, "ollama.ps"),
            "/api/show" if post => (OllamaShow, "ollama.show"),
            "/api/chat" if post => (OllamaChat, "ollama.chat"),
            "/api/generate" if post => (OllamaGenerate, "ollama.generate"),
            "/api/embed" if post => (OllamaEmbed, "ollama.embed"),
            "/api/embeddings" if post => (OllamaEmbeddings, "ollama.embeddings"),
            "/__crashcart/history" if get => (ControlHistory, "control"),
            "/__crashcart/state" if get => (ControlState, "control"),
            _ if p.starts_with("/v1") => (UnknownV1, "openai.unknown"),
            _ => (Unknown, "unknown"),
        }
    }

    fn is_openai(self) -> bool {
        use Endpoint::*;
        matches!(
            self,
            Models
                | Model
                | Chat
                | Completions
                | Embeddings
                | Responses
                | StoredResponse
                | UnknownV1
        )
    }
}

/// The id in `/v1/responses/{id}` (one segment).
fn stored_response_id(path: &str) -> Option<&str> {
    let id = path.strip_prefix("/v1/responses/")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// Per-request facts the answer needs.
pub(crate) struct Ctx {
    pub(crate) state: Arc<LlmState>,
    pub(crate) seq: u64,
    pub(crate) shaping: LlmShaping,
    pub(crate) conn: Option<Arc<ConnControl>>,
    pub(crate) pending: PendingRecord,
}

impl Ctx {
    /// The flavour errors are shaped in: the configured one on `/v1`, Ollama's on `/api`.
    fn flavour(&self, openai_api: bool) -> super::Flavour {
        if openai_api {
            self.state.config.flavour
        } else {
            super::Flavour::Ollama
        }
    }

    fn error(&self, e: &LlmError, openai_api: bool) -> Response {
        if openai_api {
            e.openai_response(self.state.config.flavour)
        } else {
            e.ollama_response()
        }
    }
}

async fn handle(State(st): State<Arc<LlmState>>, req: Request) -> Response {
    let seq = st.history.next_seq();
    let arrived = st.clock.elapsed();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let (endpoint, operation) = Endpoint::classify(&parts.method, &path);
    // A head past the imitated server's limits is refused by it; the body is not read.
    let refused = super::errors::head_policy(st.config.flavour).refuse(
        &parts.method,
        &parts.uri,
        &parts.headers,
    );
    let (bytes, too_large) = if refused.is_some() {
        (Bytes::new(), false)
    } else {
        let collected = http_body_util::Limited::new(body, st.config.max_body_bytes)
            .collect()
            .await;
        match collected {
            Ok(c) => (c.to_bytes(), false),
            Err(_) => (Bytes::new(), true),
        }
    };
    // Parsed once: the model for the fault hook now, the whole request for the endpoint later.
    let parsed: request::ParsedBody = serde_json::from_slice(&bytes);
    let model = parsed
        .as_ref()
        .ok()
        .and_then(|v| v.get("model"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let verdict = st.hook.verdict(&RequestInfo {
        seq,
        dependency: Dependency::Llm,
        method: &parts.method,
        path: &path,
        headers: &parts.headers,
        operation,
        sobject: None,
        record: None,
        client_id: None,
        user: None,
        model: model.as_deref(),
    });
    let token = bearer_token(&parts.headers).map(str::to_string);
    let record = new_record(seq, arrived, &parts, operation, &bytes, &verdict, model);
    let conn = parts.extensions.get::<Arc<ConnControl>>().cloned();
    let mut ctx = Ctx {
        state: st.clone(),
        seq,
        shaping: verdict.llm.clone().unwrap_or_default(),
        conn: conn.clone(),
        pending: PendingRecord {
            history: st.history.clone(),
            clock: st.clock.clone(),
            arrived,
            record: Some(record),
        },
    };
    if let Some(d) = verdict.delay {
        tokio::time::sleep(d).await;
    }
    let response = match (intervene(verdict.action, conn, &st.stop).await, refused) {
        (Some(r), _) | (None, Some(r)) => r,
        (None, None) if too_large => too_large_error(&ctx, endpoint),
        (None, None) => match authorize(&st, endpoint, token.as_deref()) {
            Err(e) => ctx.error(&e, true),
            // A streamed answer records itself when its last byte is sent.
            Ok(()) if endpoint == Endpoint::ControlHistory => {
                json_ok(&json!(st.history.page_for_query(parts.uri.query())))
            }
            Ok(()) => match serve(&mut ctx, endpoint, &parts.method, &path, &bytes, parsed).await {
                Served::Streaming(r) => return with_request_id(&st, seq, endpoint, r),
                Served::Done(r) => r,
            },
        },
    };
    finish_record(&mut ctx.pending, &response);
    ctx.pending.finish();
    with_request_id(&st, seq, endpoint, response)
}

/// OpenAI's `x-request-id` on every answer of the `/v1` API (the id a support ticket
/// quotes; openai-python exposes it as `_request_id`).
fn with_request_id(st: &LlmState, seq: u64, endpoint: Endpoint, mut r: Response) -> Response {
    if endpoint.is_openai() {
        let id = make_id(st, seq, "req_");
        if let Ok(v) = HeaderValue::from_str(&id) {
            r.headers_mut().insert("x-request-id", v);
        }
    }
    r
}

/// The history record of a request as it arrives (status and error code come later).
fn new_record(
    seq: u64,
    arrived: Duration,
    parts: &http::request::Parts,
    operation: &str,
    bytes: &Bytes,
    verdict: &crate::fault::Verdict,
    model: Option<String>,
) -> RequestRecord {
    RequestRecord {
        seq,
        dependency: Dependency::Llm,
        at_us: arrived.as_micros() as u64,
        latency_us: 0,
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        operation: operation.to_string(),
        sobject: None,
        record: None,
        status: 0,
        error_code: None,
        client_id: None,
        user: None,
        token_digest: bearer_token(&parts.headers).map(|t| digest(t.as_bytes())),
        body_digest: (!bytes.is_empty()).then(|| digest(bytes)),
        query_digest: None,
        body_len: bytes.len() as u64,
        fault: verdict.history_label(),
        retry_count: retry_count(&parts.headers),
        trace_id: crate::wire::trace_id(&parts.headers),
        idempotency_key: crate::wire::idempotency_key(&parts.headers),
        retry_after_ms: None,
        llm: model.map(|m| {
            Box::new(LlmExchange {
                model: m,
                ..LlmExchange::default()
            })
        }),
    }
}

/// A body over the size limit: 413 in the endpoint's error shape.
fn too_large_error(ctx: &Ctx, endpoint: Endpoint) -> Response {
    let e = LlmError::invalid(
        format!(
            "Request body too large: the limit is {} bytes.",
            ctx.state.config.max_body_bytes
        ),
        None,
        None,
    );
    let mut r = ctx.error(&e, endpoint.is_openai());
    *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    r
}

fn finish_record(pending: &mut PendingRecord, response: &Response) {
    if let Some(rec) = pending.record.as_mut() {
        rec.status = response.status().as_u16();
        rec.error_code = response
            .extensions()
            .get::<LlmErrorCode>()
            .map(|c| c.0.clone());
        rec.retry_after_ms = retry_after_ms(response.headers());
    }
}

fn authorize(st: &LlmState, endpoint: Endpoint, token: Option<&str>) -> Result<(), LlmError> {
    if !endpoint.is_openai() || st.config.api_keys.is_empty() {
        return Ok(());
    }
    match token {
        Some(t) if st.config.api_keys.iter().any(|k| k == t) => Ok(()),
        other => Err(LlmError::auth(other)),
    }
}

pub(crate) enum Served {
    /// The response is complete; record it now.
    Done(Response),
    /// The response streams and records itself at its end.
    Streaming(Response),
}

async fn serve(
    ctx: &mut Ctx,
    endpoint: Endpoint,
    method: &Method,
    path: &str,
    body: &[u8],
    parsed: request::ParsedBody,
) -> Served {
    use Endpoint::*;
    let st = ctx.state.clone();
    let done = Served::Done;
    match endpoint {
        Models => done(openai::models(&st)),
        Model => {
            let id = path.trim_end_matches('/').trim_start_matches("/v1/models/");
            done(match st.model(id) {
                Some(m) => openai::model(&st, &m.persona),
                None => ctx.error(&LlmError::model_not_found(id, st.config.flavour), true),
            })
        }
        Chat | Completions => match request::parse_openai_body(parsed, endpoint == Chat) {
            Ok(req) => generate(ctx, req).await,
            Err(e) => done(ctx.error(&e, true)),
        },
        OllamaChat | OllamaGenerate => {
            match request::parse_ollama_body(parsed, endpoint == OllamaChat) {
                Ok(req) => generate(ctx, req).await,
                Err(e) => done(ctx.error(&e, false)),
            }
        }
        Responses => match responses::parse(parsed, &st.responses) {
            Ok(req) => generate(ctx, req).await,
            Err(e) => done(ctx.error(&e, true)),
        },
        StoredResponse => {
            let id = stored_response_id(path.trim_end_matches('/')).unwrap_or("");
            let answer = if method == Method::DELETE {
                responses::delete(&st.responses, id)
            } else {
                responses::retrieve(&st.responses, id)
            };
            done(match answer {
                Ok(v) => json_ok(&v),
                Err(e) => ctx.error(&e, true),
            })
        }
        Embeddings | OllamaEmbed | OllamaEmbeddings => done(embed(ctx, endpoint, parsed).await),
        OllamaRoot => done((StatusCode::OK, "Ollama is running").into_response()),
        OllamaTags => done(ollama::tags(&st)),
        OllamaVersion => done(json_ok(&json!({"version": "0.6.3"}))),
        OllamaPs => done(ollama::ps(&st)),
        OllamaShow => done(ollama::show(&st, body)),
        ControlHistory => done(json_ok(&json!(st.history.page_for_query(None)))),
        ControlState => done(json_ok(&control_state(&st))),
        UnknownV1 => done(ctx.error(
            &LlmError {
                kind: super::errors::ErrorKind::NotFound,
                message: format!("Invalid URL ({method} {path})"),
            },
            true,
        )),
        Unknown => done(
            (
                StatusCode::NOT_FOUND,
                [(http::header::CONTENT_TYPE, "text/plain")],
                "404 page not found",
            )
                .into_response(),
        ),
    }
}

pub(crate) fn json_ok(v: &Value) -> Response {
    (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json")],
        serde_json::to_string(v).unwrap_or_default(),
    )
        .into_response()
}

fn control_state(st: &LlmState) -> Value {
    let models: Vec<Value> = st
        .models
        .iter()
        .map(
            |m| json!({"name": m.persona.name, "load": m.runtime.load(), "perf": m.runtime.perf()}),
        )
        .collect();
    json!({"flavour": st.config.flavour.to_string(), "seed": st.config.seed, "requests": st.history.completed(), "models": models})
}

fn model_or_error<'a>(
    ctx: &'a Ctx,
    name: &str,
    openai_api: bool,
) -> Result<&'a ServedModel, Response> {
    ctx.state.model(name).ok_or_else(|| {
        let flavour = ctx.flavour(openai_api);
        ctx.error(&LlmError::model_not_found(name, flavour), openai_api)
    })
}

async fn embed(ctx: &mut Ctx, endpoint: Endpoint, parsed: request::ParsedBody) -> Response {
    let openai_api = endpoint == Endpoint::Embeddings;
    let m = match request::object_of(parsed) {
        Ok(m) => m,
        Err(e) => return ctx.error(&e, openai_api),
    };
    let name = match m.get("model").and_then(Value::as_str) {
        Some(n) => n.to_string(),
        None if openai_api => {
            return ctx.error(
                &LlmError::invalid("you must provide a model parameter", None, None),
                true,
            )
        }
        None => {
            return ctx.error(
                &LlmError::invalid("model is required", Some("model"), None),
                false,
            )
        }
    };
    let served = match model_or_error(ctx, &name, openai_api) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let key = if endpoint == Endpoint::OllamaEmbeddings {
        "prompt"
    } else {
        "input"
    };
    let inputs = match request::embedding_inputs(m.get(key), key) {
        Ok(i) => i,
        Err(e) => return ctx.error(&e, openai_api),
    };
    let persona = served.persona.clone();
    let runtime = served.runtime.clone();
    let prompt_tokens: u32 = inputs.iter().map(|i| tokens::count(i)).sum();
    let longest = inputs.iter().map(|i| tokens::count(i)).max().unwrap_or(0);
    if longest > persona.context_window {
        let flavour = ctx.flavour(openai_api);
        return ctx.error(
            &LlmError::context_length(persona.context_window, longest, flavour),
            openai_api,
        );
    }
    let started = ctx.state.clock.elapsed();
    let slot = match runtime.admit().await {
        Ok(s) => s,
        Err(full) => {
            let flavour = ctx.flavour(openai_api);
            return ctx.error(
                &LlmError::overloaded(full.retry_after_s, flavour),
                openai_api,
            );
        }
    };
    sleep(runtime.ttft(prompt_tokens) + ctx.shaping.extra_ttft).await;
    let dim = m
        .get("dimensions")
        .and_then(Value::as_u64)
        .map(|d| (d as usize).clamp(1, persona.embedding_dim))
        .unwrap_or(persona.embedding_dim);
    let vectors: Vec<Vec<f32>> = inputs
        .iter()
        .map(|i| {
            let mut v = content::embed(
                ctx.state.config.seed,
                &persona.name,
                i,
                persona.embedding_dim,
            );
            v.truncate(dim);
            v
        })
        .collect();
    let elapsed = ctx.state.clock.elapsed().saturating_sub(started);
    let load = slot.load;
    drop(slot);
    let capture = capture(&ctx.state, &inputs.join("\n"));
    if let Some(llm) = ctx.pending.record.as_mut().and_then(|r| r.llm.as_mut()) {
        llm.prompt_tokens = prompt_tokens;
        llm.prompt = capture;
        llm.first_byte_us = Some(ctx.state.clock.elapsed().as_micros() as u64);
        llm.last_byte_us = llm.first_byte_us;
    }
    match endpoint {
        Endpoint::Embeddings => openai::embeddings(
            &name,
            &vectors,
            prompt_tokens,
            m.get("encoding_format").and_then(Value::as_str) == Some("base64"),
        ),
        Endpoint::OllamaEmbeddings => json_ok(&json!({"embedding": vectors[0]})),
        _ => ollama::embed(&name, &vectors, prompt_tokens, elapsed, load),
    }
}

fn capture(st: &LlmState, text: &str) -> Option<String> {
    match st.config.capture {
        CapturePolicy::Full => Some(text.to_string()),
        CapturePolicy::Hashed => Some(format!("sha256:{}", digest(text.as_bytes()))),
        CapturePolicy::Off => None,
    }
}

async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

/// One generated choice after limits.
#[derive(Clone, Debug)]
pub(crate) struct Choice {
    pub(crate) text: String,
    pub(crate) tool_calls: Vec<ToolCall>,
    pub(crate) finish: Finish,
    pub(crate) tokens: u32,
}

/// Everything a renderer needs to write a generation's answer.
#[derive(Clone, Debug)]
pub(crate) struct Generation {
    pub(crate) api: Api,
    /// The model as the client named it.
    pub(crate) model: String,
    pub(crate) id: String,
    pub(crate) created: chrono::DateTime<chrono::Utc>,
    pub(crate) prompt_tokens: u32,
    pub(crate) choices: Vec<Choice>,
    pub(crate) include_usage: bool,
    pub(crate) fingerprint: String,
    /// The Responses API's request parameters its response object repeats.
    pub(crate) echo: Value,
    /// Log probabilities asked for: alternatives a token.
    pub(crate) logprobs: Option<u32>,
}

impl Generation {
    pub(crate) fn completion_tokens(&self) -> u32 {
        self.choices.iter().map(|c| c.tokens).sum()
    }
}

/// Measured durations of a generation, for Ollama's timing fields.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Timings {
    pub(crate) total: Duration,
    pub(crate) load: Duration,
    pub(crate) prompt_eval: Duration,
    pub(crate) eval: Duration,
    pub(crate) eval_count: u32,
}

/// A frame of a streamed answer.
pub(crate) enum Frame {
    /// Bytes to send at once.
    Data(Bytes),
    /// A content piece: decoding `tokens` takes time, then the bytes go out.
    Piece { bytes: Bytes, tokens: u32 },
}

fn make_id(st: &LlmState, seq: u64, prefix: &str) -> String {
    let d = digest(format!("{}:{seq}", st.config.seed).as_bytes());
    format!("{prefix}{}", &d[..24])
}

async fn generate(ctx: &mut Ctx, req: GenRequest) -> Served {
    let openai_api = !req.api.is_ollama();
    let flavour = ctx.flavour(openai_api);
    let (persona, runtime, fingerprint) = match servable(ctx, &req, openai_api) {
        Ok(served) => served,
        Err(r) => return Served::Done(r),
    };
    let prompt_tokens = tokens::chat_prompt(req.messages.iter().map(|m| m.content.as_str()));
    if prompt_tokens > persona.context_window {
        return Served::Done(ctx.error(
            &LlmError::context_length(persona.context_window, prompt_tokens, flavour),
            openai_api,
        ));
    }
    // What the answer may spend: max_tokens, the room left in the window, a shaping cap.
    let room = persona.context_window - prompt_tokens;
    let mut budget = req.max_tokens.unwrap_or(room).min(room);
    if let Some(cap) = ctx.shaping.max_tokens {
        budget = budget.min(cap);
    }
    let choices: Vec<Choice> = if req.prompts.is_empty() {
        (0..req.n)
            .map(|i| choice(ctx, &persona, &req, i, budget))
            .collect()
    } else {
        (0..req.prompts.len())
            .map(|p| req.for_prompt(p))
            .flat_map(|sub| (0..sub.n).map(move |i| (sub.clone(), i)))
            .map(|(sub, i)| choice(ctx, &persona, &sub, i, budget))
            .collect()
    };
    let transcript: String = req
        .messages
        .iter()
        .map(|m| format!("{}: {}\n", m.role, m.content))
        .collect();
    let captured = capture(&ctx.state, &transcript);
    if let Some(llm) = ctx.pending.record.as_mut().and_then(|r| r.llm.as_mut()) {
        llm.prompt_tokens = prompt_tokens;
        llm.streamed = req.stream;
        llm.prompt = captured;
    }
    let started = ctx.state.clock.elapsed();
    let slot = match runtime.admit().await {
        Ok(s) => s,
        Err(full) => {
            return Served::Done(ctx.error(
                &LlmError::overloaded(full.retry_after_s, flavour),
                openai_api,
            ))
        }
    };
    runtime.keep_alive_next(req.keep_alive);
    if let Some(llm) = ctx.pending.record.as_mut().and_then(|r| r.llm.as_mut()) {
        llm.queue_wait_us = slot.queue_wait.as_micros() as u64;
    }
    let prefix = match req.api {
        Api::OpenAiCompletion => "cmpl-",
        Api::OpenAiResponses => "resp_",
        _ => "chatcmpl-",
    };
    let gen = Generation {
        api: req.api,
        model: req.model.clone(),
        id: make_id(&ctx.state, ctx.seq, prefix),
        created: ctx.state.clock.wall(),
        prompt_tokens,
        choices,
        include_usage: req.include_usage,
        fingerprint,
        echo: req.echo.clone(),
        logprobs: req.logprobs,
    };
    if req.api == Api::OpenAiResponses {
        ctx.state.responses.keep(&req, &gen);
    }
    let ttft = runtime.ttft(prompt_tokens) + ctx.shaping.extra_ttft;
    let run = Run::new(ctx, runtime, slot, started, ttft);
    let pending = PendingRecord {
        history: ctx.pending.history.clone(),
        clock: ctx.pending.clock.clone(),
        arrived: ctx.pending.arrived,
        record: ctx.pending.record.take(),
    };
    if req.stream {
        Served::Streaming(stream_response(run, gen, pending))
    } else {
        Served::Done(full_response(run, gen, pending).await)
    }
}

/// The model a generation names, if it is served and can complete: its persona, runtime and
/// fingerprint; else the answer to send.
fn servable(
    ctx: &Ctx,
    req: &GenRequest,
    openai_api: bool,
) -> Result<(super::Persona, Arc<super::ModelRuntime>, String), Response> {
    let served = model_or_error(ctx, &req.model, openai_api)?;
    if !served.persona.can(super::Capability::Completion) {
        let msg = format!(
            "\"{}\" does not support {}",
            req.model,
            if req.api == Api::OllamaGenerate || req.api == Api::OpenAiCompletion {
                "generate"
            } else {
                "chat"
            }
        );
        return Err(ctx.error(&LlmError::invalid(msg, Some("model"), None), openai_api));
    }
    Ok((
        served.persona.clone(),
        served.runtime.clone(),
        served.fingerprint.clone(),
    ))
}

/// Choice `i` of a generation within `budget` tokens: drift, stop sequences and the budget
/// applied. An answer the budget could not hold ends with `length`, as a real server stops
/// at `max_tokens` mid-answer.
fn choice(ctx: &Ctx, persona: &super::Persona, req: &GenRequest, i: u32, budget: u32) -> Choice {
    let generated = content::generate_within(ctx.state.config.seed, persona, req, i, budget);
    match generated.output {
        content::Output::Text(t) => {
            let t = match &ctx.shaping.drift {
                Some(d) => d.apply(&t),
                None => t,
            };
            let (text, mut finish) = content::limit(&t, &req.stop, Some(budget));
            if generated.cut && text.len() == t.len() {
                finish = Finish::Length;
            }
            let tokens = tokens::count(&text);
            Choice {
                text,
                tool_calls: vec![],
                finish,
                tokens,
            }
        }
        content::Output::ToolCalls(calls) => {
            let tokens = calls
                .iter()
                .map(|c| tokens::count(&c.arguments.to_string()) + 3)
                .sum();
            Choice {
                text: String::new(),
                tool_calls: calls,
                finish: if generated.cut {
                    Finish::Length
                } else {
                    Finish::ToolCalls
                },
                tokens,
            }
        }
    }
}

/// The timing state of one generation.
struct Run {
    ctx_state: Arc<LlmState>,
    runtime: Arc<super::ModelRuntime>,
    slot: Option<Slot>,
    started: Duration,
    ttft: Option<Duration>,
    prompt_eval: Duration,
    decode_started: Option<Duration>,
    shaping: LlmShaping,
    pieces_sent: u32,
    tokens_sent: u32,
    conn: Option<Arc<ConnControl>>,
    first_byte: Option<Duration>,
    last_byte: Option<Duration>,
    next_due: Option<tokio::time::Instant>,
}

impl Run {
    fn new(
        ctx: &Ctx,
        runtime: Arc<super::ModelRuntime>,
        slot: Slot,
        started: Duration,
        ttft: Duration,
    ) -> Self {
        Self {
            ctx_state: ctx.state.clone(),
            runtime,
            slot: Some(slot),
            started,
            ttft: Some(ttft),
            prompt_eval: Duration::ZERO,
            decode_started: None,
            shaping: ctx.shaping.clone(),
            pieces_sent: 0,
            tokens_sent: 0,
            conn: ctx.conn.clone(),
            first_byte: None,
            last_byte: None,
            next_due: None,
        }
    }

    fn now(&self) -> Duration {
        self.ctx_state.clock.elapsed()
    }

    /// Wait the time to first token (once).
    async fn prefill(&mut self) {
        if let Some(t) = self.ttft.take() {
            let before = self.now();
            sleep(t).await;
            self.prompt_eval = self.now() - before;
            self.decode_started = Some(self.now());
            self.next_due = Some(tokio::time::Instant::now());
        }
    }

    /// Wait until `d` after the previous piece was due: deadlines accumulate, so timer
    /// rounding does not add up over a long stream.
    async fn pace(&mut self, d: Duration) {
        if d.is_zero() {
            return;
        }
        let now = tokio::time::Instant::now();
        let due = self.next_due.unwrap_or(now) + d;
        self.next_due = Some(due);
        tokio::time::sleep_until(due).await;
    }

    fn timings(&self) -> Timings {
        let now = self.now();
        Timings {
            total: now.saturating_sub(self.started),
            load: self.slot.as_ref().map(|s| s.load).unwrap_or_default(),
            prompt_eval: self.prompt_eval,
            eval: now.saturating_sub(self.decode_started.unwrap_or(now)),
            eval_count: self.tokens_sent,
        }
    }

    fn sent(&mut self) {
        let now = self.now();
        self.first_byte.get_or_insert(now);
        self.last_byte = Some(now);
    }

    fn record(
        &self,
        pending: &mut PendingRecord,
        status: u16,
        finish: Option<&str>,
        error: Option<&str>,
    ) {
        if let Some(rec) = pending.record.as_mut() {
            rec.status = status;
            rec.error_code = error.map(str::to_string);
            if let Some(llm) = rec.llm.as_mut() {
                llm.completion_tokens = self.tokens_sent;
                llm.first_byte_us = self.first_byte.map(|d| d.as_micros() as u64);
                llm.last_byte_us = self.last_byte.map(|d| d.as_micros() as u64);
                llm.finish_reason = finish.map(str::to_string);
            }
        }
    }
}

/// What the shaping says to do before piece number `n` (0-based).
enum Break {
    None,
    Error(String),
    Cut,
    Stall,
}

fn break_at(shaping: &LlmShaping, n: u32) -> Break {
    if let Some((after, msg)) = &shaping.error_after_tokens {
        if n == *after {
            return Break::Error(msg.clone());
        }
    }
    if shaping.cut_after_tokens == Some(n) {
        return Break::Cut;
    }
    if shaping.stall_after_tokens == Some(n) {
        return Break::Stall;
    }
    Break::None
}

async fn full_response(mut run: Run, gen: Generation, mut pending: PendingRecord) -> Response {
    run.prefill().await;
    let all_tokens = gen.completion_tokens();
    let pieces: u32 = gen
        .choices
        .iter()
        .map(|c| tokens::pieces(&c.text).len() as u32 + c.tool_calls.len() as u32)
        .sum();
    // Where a shaping fault breaks the generation, only the pieces before it are decoded.
    let broken = (0..pieces).find_map(|n| match break_at(&run.shaping, n) {
        Break::None => None,
        b => Some((n, b)),
    });
    let (decode_pieces, decode_tokens) = match &broken {
        Some((n, _)) => (*n, all_tokens * n / pieces.max(1)),
        None => (pieces, all_tokens),
    };
    sleep(run.runtime.decode(decode_tokens) + run.shaping.extra_inter_token * decode_pieces).await;
    run.tokens_sent = decode_tokens;
    let openai_api = !gen.api.is_ollama();
    let flavour = run.ctx_state.config.flavour;
    let response = match broken {
        Some((_, Break::Error(msg))) => {
            let e = LlmError::internal(msg);
            run.record(&mut pending, 500, None, Some(e.history_code()));
            if openai_api {
                e.openai_response(flavour)
            } else {
                e.ollama_response()
            }
        }
        Some((_, Break::Stall)) => {
            run.ctx_state.stop.stopped().await;
            return aborting_response();
        }
        Some((_, Break::Cut)) => {
            let body = render_full(&gen, &run.timings());
            let body = Bytes::from(body.into_bytes());
            let half = body.slice(..body.len() / 2);
            run.sent();
            run.record(&mut pending, 200, None, Some("stream_cut"));
            let mut r = canned_response(
                crate::fault::CannedResponse {
                    status: StatusCode::OK,
                    headers: json_headers(),
                    body: half,
                    reset_after_body: true,
                },
                run.conn.clone(),
            );
            r.headers_mut().remove(http::header::CONTENT_LENGTH);
            r
        }
        _ => {
            run.tokens_sent = all_tokens;
            let body = render_full(&gen, &run.timings());
            run.sent();
            let finish = gen.choices.first().map(|c| c.finish.as_str());
            run.record(&mut pending, 200, finish, None);
            let mut r = Response::new(Body::from(body));
            *r.headers_mut() = json_headers();
            r
        }
    };
    drop(run.slot.take());
    pending.finish();
    response
}

fn json_headers() -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h
}

fn render_full(gen: &Generation, t: &Timings) -> String {
    let v = match gen.api {
        Api::OpenAiChat => openai::chat_full(gen),
        Api::OpenAiCompletion => openai::completion_full(gen),
        Api::OllamaChat | Api::OllamaGenerate => ollama::full(gen, t),
        Api::OpenAiResponses => responses::full(gen),
    };
    serde_json::to_string(&v).unwrap_or_default()
}

/// How long a stream cut mid-token stays open after its last half frame, so the client reads
/// what was sent before the reset.
const CUT_AFTER: Duration = Duration::from_millis(50);

/// The streamed answer: frames paced by the performance model and the shaping.
struct StreamState {
    run: Run,
    gen: Generation,
    frames: VecDeque<Frame>,
    pending: PendingRecord,
    finished: bool,
    abort_next: bool,
    /// Frames handed out so far (a Responses error event is numbered after them).
    frames_sent: u32,
}

impl StreamState {
    async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if self.abort_next {
            // Half a frame went out: now the connection breaks, mid-token. The server writes
            // frames out when the body waits, so a model without delays must wait once here:
            // resetting at once would discard what was sent but not yet read, and the client
            // would see no byte at all instead of a stream cut short.
            self.abort_next = false;
            sleep(CUT_AFTER).await;
            if let Some(conn) = &self.run.conn {
                conn.reset();
            }
            return Some(Err(std::io::Error::from(
                std::io::ErrorKind::ConnectionReset,
            )));
        }
        if self.finished {
            return None;
        }
        self.run.prefill().await;
        let frame = self.frames.pop_front();
        self.frames_sent += u32::from(frame.is_some());
        let Some(frame) = frame else {
            // The end: the tail (`[DONE]` or Ollama's final line), then record and free the slot.
            let tail = match self.gen.api {
                Api::OllamaChat | Api::OllamaGenerate => {
                    ollama::final_line(&self.gen, &self.run.timings())
                }
                // Its last event, `response.completed`, is the last frame.
                Api::OpenAiResponses => Bytes::new(),
                _ => openai::done_event(),
            };
            self.run.sent();
            let finish = self.gen.choices.first().map(|c| c.finish.as_str());
            self.run.record(&mut self.pending, 200, finish, None);
            self.end();
            return Some(Ok(tail));
        };
        match frame {
            Frame::Data(b) => {
                self.run.sent();
                Some(Ok(b))
            }
            Frame::Piece { bytes, tokens } => {
                match break_at(&self.run.shaping, self.run.pieces_sent) {
                    Break::None => {}
                    Break::Error(msg) => {
                        let line = match self.gen.api {
                            Api::OllamaChat | Api::OllamaGenerate => ollama::error_line(&msg),
                            Api::OpenAiResponses => responses::error_event(&msg, self.frames_sent),
                            _ => openai::error_event(&msg),
                        };
                        self.run.sent();
                        self.run
                            .record(&mut self.pending, 200, None, Some("stream_error"));
                        self.end();
                        return Some(Ok(line));
                    }
                    Break::Cut => {
                        self.run.sent();
                        self.run
                            .record(&mut self.pending, 200, None, Some("stream_cut"));
                        self.end();
                        self.abort_next = true;
                        return Some(Ok(bytes.slice(..bytes.len() / 2)));
                    }
                    Break::Stall => {
                        self.run.ctx_state.stop.stopped().await;
                        self.run
                            .record(&mut self.pending, 200, None, Some("stream_stalled"));
                        self.end();
                        return Some(Err(std::io::Error::from(
                            std::io::ErrorKind::ConnectionReset,
                        )));
                    }
                }
                let d = self.run.runtime.decode(tokens) + self.run.shaping.extra_inter_token;
                self.run.pace(d).await;
                self.run.pieces_sent += 1;
                self.run.tokens_sent += tokens;
                self.run.sent();
                Some(Ok(bytes))
            }
        }
    }

    fn end(&mut self) {
        self.finished = true;
        drop(self.run.slot.take());
        self.pending.finish();
    }
}

fn stream_response(run: Run, gen: Generation, pending: PendingRecord) -> Response {
    let (frames, content_type) = match gen.api {
        Api::OpenAiChat => (
            openai::chat_frames(&gen),
            "text/event-stream; charset=utf-8",
        ),
        Api::OpenAiCompletion => (
            openai::completion_frames(&gen),
            "text/event-stream; charset=utf-8",
        ),
        Api::OllamaChat | Api::OllamaGenerate => (ollama::frames(&gen), "application/x-ndjson"),
        Api::OpenAiResponses => (responses::frames(&gen), "text/event-stream; charset=utf-8"),
    };
    let state = StreamState {
        run,
        gen,
        frames: frames.into(),
        pending,
        finished: false,
        abort_next: false,
        frames_sent: 0,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        let item = s.next().await?;
        Some((item, s))
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    r
}

#[cfg(test)]
mod operation_names {
    use super::*;

    #[test]
    fn every_classified_operation_is_listed() {
        let paths = [
            ("GET", "/v1/models"),
            ("GET", "/v1/models/llama3.1:8b"),
            ("POST", "/v1/chat/completions"),
            ("POST", "/v1/completions"),
            ("POST", "/v1/embeddings"),
            ("POST", "/v1/responses"),
            ("GET", "/v1/responses/resp_1"),
            ("POST", "/v1/other"),
            ("GET", "/"),
            ("GET", "/api/tags"),
            ("GET", "/api/version"),
            ("GET", "/api/ps"),
            ("POST", "/api/show"),
            ("POST", "/api/chat"),
            ("POST", "/api/generate"),
            ("POST", "/api/embed"),
            ("POST", "/api/embeddings"),
            ("GET", "/__crashcart/history"),
            ("GET", "/elsewhere"),
        ];
        let mut seen = std::collections::BTreeSet::new();
        for (m, p) in paths {
            let (_, op) = Endpoint::classify(&m.parse().unwrap(), p);
            assert!(OPERATIONS.contains(&op), "{m} {p}: {op} is not listed");
            seen.insert(op);
        }
        assert_eq!(
            seen.len(),
            OPERATIONS.len(),
            "every listed name is reachable"
        );
    }
}
