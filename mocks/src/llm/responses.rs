//! The OpenAI Responses API as OpenAI and vLLM serve it: `POST /v1/responses` (whole, or
//! streamed as typed SSE events), `GET` and `DELETE /v1/responses/{id}`.
//!
//! A request becomes the same [`GenRequest`] as a chat completion: `instructions` a system
//! message, `input` (a string or message, `function_call` and `function_call_output` items)
//! the conversation, `text.format` the output format, flat `function` tools, and
//! `previous_response_id` the stored conversation it continues. So the performance model,
//! drift, overload and every LLM fault apply to it as they do to chat. Stored responses are
//! bounded: the oldest are forgotten past [`STORED`], as a server's retention would.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::errors::{ErrorKind, LlmError};
use super::exchange::{Frame, Generation};
use super::request::{
    check_number, content_key, content_text, invalid_type, missing, model_of, object_of, opt_uint,
    tool_choice_mode, Api, GenRequest, Message, OutputFormat, ParsedBody, Tool, ToolChoice,
};
use super::tokens;

/// Responses kept for `previous_response_id` and `GET /v1/responses/{id}`.
pub(crate) const STORED: usize = 1000;

/// A stored response: the conversation a follow-up continues, and the response object.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    conversation: Vec<Message>,
    body: Value,
}

/// The responses a server keeps (`store: true`, the default), oldest forgotten first.
#[derive(Debug, Default)]
pub(crate) struct ResponseStore {
    inner: Mutex<(VecDeque<String>, HashMap<String, Stored>)>,
}

impl ResponseStore {
    fn put(&self, id: String, stored: Stored) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (order, by_id) = &mut *guard;
        order.push_back(id.clone());
        by_id.insert(id, stored);
        while order.len() > STORED {
            if let Some(old) = order.pop_front() {
                by_id.remove(&old);
            }
        }
    }

    fn get(&self, id: &str) -> Option<Stored> {
        let guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        guard.1.get(id).cloned()
    }

    fn delete(&self, id: &str) -> bool {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (order, by_id) = &mut *guard;
        order.retain(|k| k != id);
        by_id.remove(id).is_some()
    }

    /// Keep a generated response (when its request asked to store it).
    pub(crate) fn keep(&self, req: &GenRequest, g: &Generation) {
        if req.echo.get("store") == Some(&Value::Bool(false)) {
            return;
        }
        let skip = usize::from(req.echo.get("instructions").is_some_and(Value::is_string));
        let mut conversation: Vec<Message> = req.messages.iter().skip(skip).cloned().collect();
        conversation.extend(answer_messages(g));
        let body = full(g);
        self.put(g.id.clone(), Stored { conversation, body });
    }
}

/// What the model said, as messages a follow-up's conversation holds.
fn answer_messages(g: &Generation) -> Vec<Message> {
    let Some(c) = g.choices.first() else {
        return vec![];
    };
    if c.tool_calls.is_empty() {
        return vec![Message {
            role: "assistant".into(),
            content: c.text.clone(),
        }];
    }
    (c.tool_calls.iter())
        .map(|t| Message {
            role: "assistant".into(),
            content: format!("{}({})", t.name, t.arguments),
        })
        .collect()
}

fn not_found(id: &str) -> LlmError {
    LlmError {
        kind: ErrorKind::NotFound,
        message: format!("Response with id '{id}' not found."),
    }
}

/// `GET /v1/responses/{id}`: the stored response object.
pub(crate) fn retrieve(store: &ResponseStore, id: &str) -> Result<Value, LlmError> {
    store.get(id).map(|s| s.body).ok_or_else(|| not_found(id))
}

/// `DELETE /v1/responses/{id}`.
pub(crate) fn delete(store: &ResponseStore, id: &str) -> Result<Value, LlmError> {
    match store.delete(id) {
        true => Ok(json!({"id": id, "object": "response.deleted", "deleted": true})),
        false => Err(not_found(id)),
    }
}

/// Parse `POST /v1/responses` (OpenAI's wording on failure).
pub(crate) fn parse(parsed: ParsedBody, store: &ResponseStore) -> Result<GenRequest, LlmError> {
    let m = object_of(parsed)?;
    let model = model_of(&m)?;
    let mut messages = vec![];
    let instructions = match m.get("instructions") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(invalid_type("instructions", "a string", other)),
    };
    if let Some(text) = &instructions {
        messages.push(Message {
            role: "system".into(),
            content: text.clone(),
        });
    }
    let previous = match m.get("previous_response_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(other) => return Err(invalid_type("previous_response_id", "a string", other)),
    };
    if let Some(id) = &previous {
        let stored = store.get(id).ok_or_else(|| {
            LlmError::invalid(
                format!("Previous response with id '{id}' not found."),
                Some("previous_response_id"),
                Some("previous_response_not_found"),
            )
        })?;
        messages.extend(stored.conversation);
    }
    messages.extend(input_messages(m.get("input"))?);
    let format = text_format(m.get("text"))?;
    let (tools, tool_choice) = tools_of(&m)?;
    let max_tokens = opt_uint(&m, "max_output_tokens", 16, u32::MAX as u64)?;
    check_number(&m, "temperature", 2.0)?;
    check_number(&m, "top_p", 1.0)?;
    let stream = match m.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(invalid_type("stream", "a boolean", other)),
    };
    let null = Value::Null;
    let get = |k: &str| m.get(k).unwrap_or(&null);
    let key = content_key(&[
        get("model"),
        get("input"),
        get("instructions"),
        get("text"),
        get("tools"),
        get("tool_choice"),
        get("previous_response_id"),
        get("temperature"),
    ]);
    Ok(GenRequest {
        api: Api::OpenAiResponses,
        model,
        messages,
        stream,
        include_usage: true,
        max_tokens,
        stop: vec![],
        n: 1,
        format,
        tools,
        tool_choice,
        content_key: key,
        echo: echo(&m),
        prompts: vec![],
        logprobs: None,
        keep_alive: None,
    })
}

/// The request's parameters a response object repeats, with the server's defaults.
fn echo(m: &Map<String, Value>) -> Value {
    let or = |k: &str, default: Value| {
        m.get(k)
            .filter(|v| !v.is_null())
            .cloned()
            .unwrap_or(default)
    };
    json!({
        "instructions": or("instructions", Value::Null),
        "max_output_tokens": or("max_output_tokens", Value::Null),
        "metadata": or("metadata", json!({})),
        "parallel_tool_calls": or("parallel_tool_calls", json!(true)),
        "previous_response_id": or("previous_response_id", Value::Null),
        "reasoning": {"effort": null, "summary": null},
        "store": or("store", json!(true)),
        "temperature": or("temperature", json!(1.0)),
        "text": or("text", json!({"format": {"type": "text"}})),
        "tool_choice": or("tool_choice", json!("auto")),
        "tools": or("tools", json!([])),
        "top_p": or("top_p", json!(1.0)),
        "truncation": or("truncation", json!("disabled")),
        "user": or("user", Value::Null),
    })
}

/// `input`: a string (one user message) or a list of items.
fn input_messages(v: Option<&Value>) -> Result<Vec<Message>, LlmError> {
    match v {
        None | Some(Value::Null) => Err(missing("input")),
        Some(Value::String(s)) => Ok(vec![Message {
            role: "user".into(),
            content: s.clone(),
        }]),
        Some(Value::Array(items)) => items.iter().enumerate().map(input_item).collect(),
        Some(other) => Err(invalid_type(
            "input",
            "one of a string or array of objects",
            other,
        )),
    }
}

/// One item of `input`: a message, a `function_call` the model made, or a tool's output.
fn input_item((i, item): (usize, &Value)) -> Result<Message, LlmError> {
    let p = format!("input[{i}]");
    let o = item
        .as_object()
        .ok_or_else(|| invalid_type(&p, "an object", item))?;
    let kind = o.get("type").and_then(Value::as_str).unwrap_or("message");
    let text = |key: &str| content_text(o.get(key), &format!("{p}.{key}"));
    match kind {
        "message" => {
            let role = o
                .get("role")
                .and_then(Value::as_str)
                .ok_or_else(|| missing(&format!("{p}.role")))?;
            if !["user", "assistant", "system", "developer"].contains(&role) {
                return Err(LlmError::invalid(format!("Invalid value: '{role}'. Supported values are: 'assistant', 'system', 'developer', and 'user'."), Some(&format!("{p}.role")), Some("invalid_value")));
            }
            Ok(Message {
                role: role.to_string(),
                content: text("content")?,
            })
        }
        "function_call" => {
            let name = o.get("name").and_then(Value::as_str).unwrap_or("");
            let args = o.get("arguments").and_then(Value::as_str).unwrap_or("");
            Ok(Message {
                role: "assistant".into(),
                content: format!("{name}({args})"),
            })
        }
        "function_call_output" => {
            if !o.get("call_id").is_some_and(Value::is_string) {
                return Err(missing(&format!("{p}.call_id")));
            }
            Ok(Message {
                role: "tool".into(),
                content: text("output")?,
            })
        }
        other => Err(LlmError::invalid(
            format!("Invalid value: '{other}'. Supported values are: 'message', 'function_call', and 'function_call_output'."),
            Some(&format!("{p}.type")),
            Some("invalid_value"),
        )),
    }
}

/// `text.format`: `text`, `json_object`, or `json_schema` with `name` and `schema`.
fn text_format(v: Option<&Value>) -> Result<OutputFormat, LlmError> {
    let Some(f) = v.and_then(|t| t.get("format")).filter(|f| !f.is_null()) else {
        return Ok(OutputFormat::Text);
    };
    match f.get("type").and_then(Value::as_str) {
        Some("text") => Ok(OutputFormat::Text),
        Some("json_object") => Ok(OutputFormat::JsonObject),
        Some("json_schema") => {
            if !f.get("name").is_some_and(Value::is_string) {
                return Err(missing("text.format.name"));
            }
            let schema = f.get("schema").ok_or_else(|| missing("text.format.schema"))?;
            Ok(OutputFormat::JsonSchema(schema.clone()))
        }
        Some(other) => Err(LlmError::invalid(format!("Invalid value: '{other}'. Supported values are: 'text', 'json_object', and 'json_schema'."), Some("text.format.type"), Some("invalid_value"))),
        None => Err(missing("text.format.type")),
    }
}

/// `tools` (flat `{type: "function", name, parameters}`; a self-hosted model has no built-in
/// tools) and `tool_choice`.
fn tools_of(m: &Map<String, Value>) -> Result<(Vec<Tool>, ToolChoice), LlmError> {
    let mut tools = vec![];
    let listed = m.get("tools").filter(|v| !v.is_null());
    let listed = match listed {
        None => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(other) => return Err(invalid_type("tools", "an array", other)),
    };
    for (i, t) in listed.iter().enumerate() {
        match t.get("type").and_then(Value::as_str) {
            Some("function") => {}
            Some(other) => return Err(LlmError::invalid(format!("Tool type '{other}' is not supported by this model: only 'function' tools are."), Some(&format!("tools[{i}].type")), Some("invalid_value"))),
            None => return Err(missing(&format!("tools[{i}].type"))),
        }
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| missing(&format!("tools[{i}].name")))?;
        tools.push(Tool {
            name: name.to_string(),
            parameters: (t.get("parameters").cloned())
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        });
    }
    let choice = match m.get("tool_choice") {
        None | Some(Value::Null) => ToolChoice::Auto,
        Some(Value::String(s)) => tool_choice_mode(s)?,
        Some(v) => {
            let name = (v.get("name").and_then(Value::as_str))
                .ok_or_else(|| missing("tool_choice.name"))?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(LlmError::invalid(
                    format!("Tool choice '{name}' not found in 'tools' parameter."),
                    Some("tool_choice"),
                    Some("invalid_value"),
                ));
            }
            ToolChoice::Named(name.to_string())
        }
    };
    Ok((tools, choice))
}

/// `msg_…` or `fc_…`: an output item's id, from the response's.
fn item_id(g: &Generation, prefix: &str, k: usize) -> String {
    let tail = g.id.trim_start_matches("resp_");
    format!("{prefix}{tail}{k:02}")
}

/// The finished output items: one message, or one `function_call` per tool call.
fn output_items(g: &Generation) -> Vec<Value> {
    let Some(c) = g.choices.first() else {
        return vec![];
    };
    if c.tool_calls.is_empty() {
        return vec![message_item(g, "completed", Some(&c.text))];
    }
    (c.tool_calls.iter().enumerate())
        .map(|(k, t)| {
            let args = t.arguments.to_string();
            function_item(g, k, &t.id, &t.name, &args, "completed")
        })
        .collect()
}

fn text_part(text: &str) -> Value {
    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
}

fn message_item(g: &Generation, status: &str, text: Option<&str>) -> Value {
    let content: Vec<Value> = text.map(text_part).into_iter().collect();
    json!({"type": "message", "id": item_id(g, "msg_", 0), "status": status, "role": "assistant", "content": content})
}

fn function_item(
    g: &Generation,
    k: usize,
    call: &str,
    name: &str,
    args: &str,
    status: &str,
) -> Value {
    json!({"type": "function_call", "id": item_id(g, "fc_", k), "call_id": call, "name": name, "arguments": args, "status": status})
}

/// Whether the answer ran out of `max_output_tokens`.
fn incomplete(g: &Generation) -> bool {
    g.choices
        .first()
        .is_some_and(|c| c.finish == super::content::Finish::Length)
}

/// The response object in a state: `in_progress` with no output yet, or finished.
fn response_object(g: &Generation, finished: bool) -> Value {
    let (status, details) = match (finished, incomplete(g)) {
        (false, _) => ("in_progress", Value::Null),
        (true, true) => ("incomplete", json!({"reason": "max_output_tokens"})),
        (true, false) => ("completed", Value::Null),
    };
    let mut v = g.echo.clone();
    if !v.is_object() {
        v = json!({});
    }
    let c = g.completion_tokens();
    let usage = json!({
        "input_tokens": g.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": c,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": g.prompt_tokens + c,
    });
    let fields = [
        ("id", json!(g.id)),
        ("object", json!("response")),
        ("created_at", json!(g.created.timestamp())),
        ("status", json!(status)),
        ("error", Value::Null),
        ("incomplete_details", details),
        ("model", json!(g.model)),
        (
            "output",
            json!(if finished { output_items(g) } else { vec![] }),
        ),
        ("usage", if finished { usage } else { Value::Null }),
    ];
    for (k, val) in fields {
        v[k] = val;
    }
    v
}

/// A whole response object.
pub(crate) fn full(g: &Generation) -> Value {
    response_object(g, true)
}

/// The SSE events of a streamed response, `response.created` to `response.completed` (or
/// `response.incomplete`), numbered by `sequence_number`.
pub(crate) fn frames(g: &Generation) -> Vec<Frame> {
    let mut ev = Events::default();
    let started = response_object(g, false);
    ev.data("response.created", json!({"response": started}));
    ev.data("response.in_progress", json!({"response": started}));
    if let Some(c) = g.choices.first() {
        if c.tool_calls.is_empty() {
            message_events(&mut ev, g, &c.text);
        }
        for (k, t) in c.tool_calls.iter().enumerate() {
            function_events(&mut ev, g, k, &t.id, &t.name, &t.arguments.to_string());
        }
    }
    let last = if incomplete(g) {
        "response.incomplete"
    } else {
        "response.completed"
    };
    ev.data(last, json!({"response": full(g)}));
    ev.frames
}

fn message_events(ev: &mut Events, g: &Generation, text: &str) {
    let id = item_id(g, "msg_", 0);
    let at = json!({"item_id": id, "output_index": 0, "content_index": 0});
    let with = |extra: Value| merge(&at, extra);
    ev.data(
        "response.output_item.added",
        json!({"output_index": 0, "item": message_item(g, "in_progress", None)}),
    );
    ev.data(
        "response.content_part.added",
        with(json!({"part": text_part("")})),
    );
    for piece in tokens::pieces(text) {
        let delta = with(json!({"delta": piece, "logprobs": []}));
        ev.piece("response.output_text.delta", delta, tokens::of_piece(piece));
    }
    ev.data(
        "response.output_text.done",
        with(json!({"text": text, "logprobs": []})),
    );
    ev.data(
        "response.content_part.done",
        with(json!({"part": text_part(text)})),
    );
    ev.data(
        "response.output_item.done",
        json!({"output_index": 0, "item": message_item(g, "completed", Some(text))}),
    );
}

fn function_events(ev: &mut Events, g: &Generation, k: usize, call: &str, name: &str, args: &str) {
    let id = item_id(g, "fc_", k);
    let added = function_item(g, k, call, name, "", "in_progress");
    ev.piece(
        "response.output_item.added",
        json!({"output_index": k, "item": added}),
        1,
    );
    for piece in super::openai::split_args(args) {
        let delta = json!({"item_id": id, "output_index": k, "delta": piece});
        let n = tokens::count(piece).max(1);
        ev.piece("response.function_call_arguments.delta", delta, n);
    }
    let done = json!({"item_id": id, "output_index": k, "arguments": args});
    ev.data("response.function_call_arguments.done", done);
    let item = function_item(g, k, call, name, args, "completed");
    ev.data(
        "response.output_item.done",
        json!({"output_index": k, "item": item}),
    );
}

fn merge(base: &Value, extra: Value) -> Value {
    let mut v = base.clone();
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

/// Frames under construction, each event numbered as it is added.
#[derive(Default)]
struct Events {
    frames: Vec<Frame>,
}

impl Events {
    fn render(&self, kind: &str, mut body: Value) -> Bytes {
        body["type"] = json!(kind);
        body["sequence_number"] = json!(self.frames.len());
        Bytes::from(format!("event: {kind}\ndata: {body}\n\n"))
    }
    fn data(&mut self, kind: &str, body: Value) {
        let bytes = self.render(kind, body);
        self.frames.push(Frame::Data(bytes));
    }
    fn piece(&mut self, kind: &str, body: Value, tokens: u32) {
        let bytes = self.render(kind, body);
        self.frames.push(Frame::Piece { bytes, tokens });
    }
}

/// An error in the middle of a stream: OpenAI's `error` event.
pub(crate) fn error_event(message: &str, sequence_number: u32) -> Bytes {
    let body = json!({"type": "error", "code": "server_error", "message": message, "param": null, "sequence_number": sequence_number});
    Bytes::from(format!("event: error\ndata: {body}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_forgets_the_oldest_past_its_bound() {
        let store = ResponseStore::default();
        for i in 0..=STORED {
            let stored = Stored {
                conversation: vec![],
                body: json!(i),
            };
            store.put(format!("resp_{i}"), stored);
        }
        assert!(store.get("resp_0").is_none());
        assert_eq!(store.get("resp_1").map(|s| s.body), Some(json!(1)));
        assert!(store.delete(&format!("resp_{STORED}")));
        assert!(!store.delete(&format!("resp_{STORED}")));
    }
}
