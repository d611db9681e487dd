//! Request bodies of both APIs, parsed and validated into one [`GenRequest`].
//!
//! Validation errors use the imitated server's wording: OpenAI's (`Missing required parameter:
//! 'messages'.`, `Invalid type for 'max_tokens': expected an integer, but got a string
//! instead.`) on `/v1`, Go's JSON decoder's on Ollama's native API.

use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::errors::LlmError;

/// Which endpoint a generation came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `POST /v1/chat/completions`.
    OpenAiChat,
    /// `POST /v1/completions`.
    OpenAiCompletion,
    /// `POST /api/chat`.
    OllamaChat,
    /// `POST /api/generate`.
    OllamaGenerate,
    /// `POST /v1/responses`.
    OpenAiResponses,
}

impl Api {
    /// True for Ollama's native API.
    pub fn is_ollama(self) -> bool {
        matches!(self, Api::OllamaChat | Api::OllamaGenerate)
    }
}

/// One chat message, reduced to its text.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// `system`, `developer`, `user`, `assistant`, `tool`.
    pub role: String,
    /// The text content (parts joined).
    pub content: String,
}

/// What shape the answer must have.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching this schema.
    JsonSchema(Value),
}

/// A function the model may call.
#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    /// Function name.
    pub name: String,
    /// JSON Schema of the arguments.
    pub parameters: Value,
}

/// `tool_choice`.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolChoice {
    /// Never call a tool.
    None,
    /// Call one if the prompt names it.
    Auto,
    /// Always call one (the first).
    Required,
    /// Call this one.
    Named(String),
}

/// A generation request from either API.
#[derive(Clone, Debug)]
pub struct GenRequest {
    /// The endpoint.
    pub api: Api,
    /// The model as named by the client.
    pub model: String,
    /// The conversation (a completion's prompt is one user message; Ollama's `system` comes first).
    pub messages: Vec<Message>,
    /// Stream the answer.
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// Token budget of the answer.
    pub max_tokens: Option<u32>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Choices to generate.
    pub n: u32,
    /// Answer shape.
    pub format: OutputFormat,
    /// Tools offered.
    pub tools: Vec<Tool>,
    /// Tool policy.
    pub tool_choice: ToolChoice,
    /// Digest of everything that decides the content (not stream, stop, n or max_tokens).
    pub content_key: u64,
    /// The Responses API's parameters a response object repeats (`instructions`, `tools`,
    /// `text`, `previous_response_id`, …); `Null` for the other APIs.
    pub echo: Value,
    /// A legacy completion's prompts when `prompt` is an array of several: one answer (or
    /// `n`) per prompt, in order. Empty otherwise.
    pub prompts: Vec<String>,
    /// Log probabilities asked for, with this many alternatives a token (chat's `logprobs:
    /// true` with `top_logprobs`, legacy completions' `logprobs: k`); `None`: not asked.
    pub logprobs: Option<u32>,
    /// Ollama's `keep_alive`: how long the model stays loaded after this request (`None`:
    /// the server's default; `Duration::MAX` for a negative value, loaded until unloaded).
    pub keep_alive: Option<Duration>,
}

/// The most choices one request may ask for (prompts × `n`), as OpenAI bounds `n`.
pub const MAX_CHOICES: usize = 128;

impl GenRequest {
    /// The request for prompt `p` of a legacy completion with several prompts.
    pub fn for_prompt(&self, p: usize) -> GenRequest {
        let mut sub = self.clone();
        sub.messages = vec![Message {
            role: "user".into(),
            content: self.prompts.get(p).cloned().unwrap_or_default(),
        }];
        sub.content_key = self.content_key ^ (p as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        sub.prompts = vec![];
        sub
    }
}

/// How a value's type is named in OpenAI's messages.
fn openai_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a decimal",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn invalid_type(param: &str, expected: &str, got: &Value) -> LlmError {
    LlmError::invalid(
        format!(
            "Invalid type for '{param}': expected {expected}, but got {} instead.",
            openai_type(got)
        ),
        Some(param),
        Some("invalid_type"),
    )
}

pub(crate) fn missing(param: &str) -> LlmError {
    LlmError::invalid(
        format!("Missing required parameter: '{param}'."),
        Some(param),
        Some("missing_required_parameter"),
    )
}

/// A request body parsed once: the exchange reads the model from it for the fault hook, then
/// hands it to the endpoint's parser.
pub type ParsedBody = Result<Value, serde_json::Error>;

/// An already parsed body as a JSON object (OpenAI wording on failure).
pub fn object_of(parsed: ParsedBody) -> Result<Map<String, Value>, LlmError> {
    match parsed {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(invalid_type("body", "an object", &other)),
        Err(_) => Err(LlmError::unparseable_json()),
    }
}

/// The text of a message's `content` (a string, or an array of `{type:"text", text}` parts).
pub(crate) fn content_text(v: Option<&Value>, param: &str) -> Result<String, LlmError> {
    match v {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => Ok(parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n")),
        Some(other) => Err(invalid_type(
            param,
            "one of a string or array of objects",
            other,
        )),
    }
}

pub(crate) fn opt_uint(
    m: &Map<String, Value>,
    key: &str,
    min: u64,
    max: u64,
) -> Result<Option<u32>, LlmError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let n = v
                .as_u64()
                .or_else(|| v.as_i64().map(|_| 0))
                .ok_or_else(|| invalid_type(key, "an integer", v))?;
            let n = if v.as_i64().is_some_and(|i| i < 0) {
                0
            } else {
                n
            };
            if n < min {
                return Err(LlmError::invalid(format!("Invalid '{key}': integer below minimum value. Expected a value >= {min}, but got {v} instead."), Some(key), Some("integer_below_min_value")));
            }
            if n > max {
                return Err(LlmError::invalid(format!("Invalid '{key}': integer above maximum value. Expected a value <= {max}, but got {v} instead."), Some(key), Some("integer_above_max_value")));
            }
            Ok(Some(n as u32))
        }
    }
}

pub(crate) fn check_number(m: &Map<String, Value>, key: &str, max: f64) -> Result<(), LlmError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(()),
        Some(v) => {
            let x = v.as_f64().ok_or_else(|| invalid_type(key, "a number", v))?;
            if x < 0.0 {
                return Err(LlmError::invalid(format!("Invalid '{key}': decimal below minimum value. Expected a value >= 0, but got {v} instead."), Some(key), Some("decimal_below_min_value")));
            }
            if x > max {
                return Err(LlmError::invalid(format!("Invalid '{key}': decimal above maximum value. Expected a value <= {max}, but got {v} instead."), Some(key), Some("decimal_above_max_value")));
            }
            Ok(())
        }
    }
}

fn stop_list(v: Option<&Value>, param: &str) -> Result<Vec<String>, LlmError> {
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid_type(param, "an array of strings", s))
            })
            .collect(),
        Some(other) => Err(invalid_type(
            param,
            "one of a string or array of strings",
            other,
        )),
    }
}

pub(crate) fn model_of(m: &Map<String, Value>) -> Result<String, LlmError> {
    match m.get("model") {
        None | Some(Value::Null) => Err(LlmError::invalid(
            "you must provide a model parameter",
            None,
            None,
        )),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(invalid_type("model", "a string", other)),
    }
}

pub(crate) fn content_key(parts: &[&Value]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(serde_json::to_vec(p).unwrap_or_default());
        h.update([0]);
    }
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().unwrap_or_default())
}

fn response_format(v: Option<&Value>) -> Result<OutputFormat, LlmError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(OutputFormat::Text);
    };
    let obj = v
        .as_object()
        .ok_or_else(|| invalid_type("response_format", "an object", v))?;
    match obj.get("type").and_then(Value::as_str) {
        Some("text") => Ok(OutputFormat::Text),
        Some("json_object") => Ok(OutputFormat::JsonObject),
        Some("json_schema") => {
            let js = obj
                .get("json_schema")
                .and_then(Value::as_object)
                .ok_or_else(|| missing("response_format.json_schema"))?;
            if !js.get("name").is_some_and(Value::is_string) {
                return Err(missing("response_format.json_schema.name"));
            }
            Ok(OutputFormat::JsonSchema(
                js.get("schema").cloned().unwrap_or_else(|| serde_json::json!({"type": "object"})),
            ))
        }
        Some(other) => Err(LlmError::invalid(format!("Invalid value: '{other}'. Supported values are: 'json_object', 'json_schema', and 'text'."), Some("response_format.type"), Some("invalid_value"))),
        None => Err(missing("response_format.type")),
    }
}

fn tools_of(m: &Map<String, Value>) -> Result<(Vec<Tool>, ToolChoice), LlmError> {
    let mut tools = vec![];
    if let Some(v) = m.get("tools").filter(|v| !v.is_null()) {
        let arr = v
            .as_array()
            .ok_or_else(|| invalid_type("tools", "an array", v))?;
        for (i, t) in arr.iter().enumerate() {
            let f = t
                .get("function")
                .ok_or_else(|| missing(&format!("tools[{i}].function")))?;
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| missing(&format!("tools[{i}].function.name")))?;
            tools.push(Tool {
                name: name.to_string(),
                parameters: f
                    .get("parameters")
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
            });
        }
    }
    let choice = match m.get("tool_choice") {
        None | Some(Value::Null) => ToolChoice::Auto,
        Some(Value::String(s)) => tool_choice_mode(s)?,
        Some(v) => {
            let name = v
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| missing("tool_choice.function.name"))?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(LlmError::invalid(
                    format!("Invalid value for 'tool_choice': tool '{name}' not found in 'tools'."),
                    Some("tool_choice"),
                    Some("invalid_value"),
                ));
            }
            ToolChoice::Named(name.to_string())
        }
    };
    if choice != ToolChoice::None && choice != ToolChoice::Auto && tools.is_empty() {
        return Err(LlmError::invalid("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", Some("tool_choice"), None));
    }
    Ok((tools, choice))
}

/// `tools` and `tool_choice` of a chat request (a completion offers none).
fn chat_tools(m: &Map<String, Value>, chat: bool) -> Result<(Vec<Tool>, ToolChoice), LlmError> {
    if chat {
        tools_of(m)
    } else {
        Ok((vec![], ToolChoice::None))
    }
}

const ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// `logprobs` (and chat's `top_logprobs`), in OpenAI's words when wrong.
fn logprobs_of(m: &Map<String, Value>, chat: bool) -> Result<Option<u32>, LlmError> {
    if !chat {
        return opt_uint(m, "logprobs", 0, 5);
    }
    let asked = match m.get("logprobs") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(invalid_type("logprobs", "a boolean", other)),
    };
    let top = opt_uint(m, "top_logprobs", 0, 20)?;
    match (asked, top) {
        (false, Some(_)) => Err(LlmError::invalid("Invalid value for 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.", Some("top_logprobs"), Some("invalid_value"))),
        (false, None) => Ok(None),
        (true, top) => Ok(Some(top.unwrap_or(0))),
    }
}

/// Parse `POST /v1/chat/completions` or `POST /v1/completions`.
pub fn parse_openai(body: &[u8], chat: bool) -> Result<GenRequest, LlmError> {
    parse_openai_body(serde_json::from_slice(body), chat)
}

/// [`parse_openai`] on a body already parsed.
pub fn parse_openai_body(parsed: ParsedBody, chat: bool) -> Result<GenRequest, LlmError> {
    let m = object_of(parsed)?;
    let model = model_of(&m)?;
    let mut messages = vec![];
    let mut prompts = vec![];
    if chat {
        let v = m.get("messages").ok_or_else(|| missing("messages"))?;
        let arr = v
            .as_array()
            .ok_or_else(|| invalid_type("messages", "an array of objects", v))?;
        if arr.is_empty() {
            return Err(LlmError::invalid("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", Some("messages"), Some("empty_array")));
        }
        for (i, msg) in arr.iter().enumerate() {
            let p = format!("messages[{i}]");
            let o = msg
                .as_object()
                .ok_or_else(|| invalid_type(&p, "an object", msg))?;
            let role = o.get("role").ok_or_else(|| missing(&format!("{p}.role")))?;
            let role = role
                .as_str()
                .ok_or_else(|| invalid_type(&format!("{p}.role"), "a string", role))?;
            if !ROLES.contains(&role) {
                return Err(LlmError::invalid(format!("Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."), Some(&format!("{p}.role")), Some("invalid_value")));
            }
            messages.push(Message {
                role: role.to_string(),
                content: content_text(o.get("content"), &format!("{p}.content"))?,
            });
        }
    } else {
        let v = m.get("prompt").ok_or_else(|| missing("prompt"))?;
        if let Value::Array(a) = v {
            prompts = a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
        }
        let prompt = match v {
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n"),
            other => {
                return Err(invalid_type(
                    "prompt",
                    "one of a string or array of strings",
                    other,
                ))
            }
        };
        messages.push(Message {
            role: "user".into(),
            content: prompt,
        });
    }
    let stream = match m.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(invalid_type("stream", "a boolean", other)),
    };
    let include_usage = m
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let max_tokens = match opt_uint(&m, "max_completion_tokens", 1, u32::MAX as u64)? {
        Some(n) => Some(n),
        None => opt_uint(&m, "max_tokens", 1, u32::MAX as u64)?,
    };
    check_number(&m, "temperature", 2.0)?;
    check_number(&m, "top_p", 1.0)?;
    match m.get("seed") {
        None | Some(Value::Null) => {}
        Some(v) if v.is_i64() || v.is_u64() => {}
        Some(v) => return Err(invalid_type("seed", "an integer", v)),
    }
    let n = opt_uint(&m, "n", 1, 128)?.unwrap_or(1);
    if prompts.len() < 2 {
        prompts.clear();
    } else if prompts.len() * n as usize > MAX_CHOICES {
        return Err(LlmError::invalid(
            format!(
                "Invalid 'prompt': {} prompts with n={n} ask for more than {MAX_CHOICES} choices.",
                prompts.len()
            ),
            Some("prompt"),
            Some("invalid_value"),
        ));
    }
    let stop = stop_list(m.get("stop"), "stop")?;
    if stop.len() > 4 {
        return Err(LlmError::invalid("Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array with length 5 instead.", Some("stop"), Some("array_above_max_length")));
    }
    let format = response_format(m.get("response_format"))?;
    let (tools, tool_choice) = chat_tools(&m, chat)?;
    let logprobs = logprobs_of(&m, chat)?;
    let null = Value::Null;
    let get = |k: &str| m.get(k).unwrap_or(&null);
    let content_key = content_key(&[
        get("model"),
        get("messages"),
        get("prompt"),
        get("response_format"),
        get("tools"),
        get("tool_choice"),
        get("seed"),
        get("temperature"),
    ]);
    Ok(GenRequest {
        api: if chat {
            Api::OpenAiChat
        } else {
            Api::OpenAiCompletion
        },
        model,
        messages,
        stream,
        include_usage,
        max_tokens,
        stop,
        n,
        format,
        tools,
        tool_choice,
        content_key,
        echo: Value::Null,
        prompts,
        logprobs,
        keep_alive: None,
    })
}

/// How Go's decoder names a JSON value's kind.
fn go_kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    }
}

/// Go's decoder's message for a field of the wrong type.
fn go_type_error(strukt: &str, field: &str, gotype: &str, got: &Value) -> LlmError {
    LlmError::invalid(
        format!(
            "json: cannot unmarshal {} into Go struct field {strukt}.{field} of type {gotype}",
            go_kind(got)
        ),
        Some(field),
        None,
    )
}

/// Parse `POST /api/chat` or `POST /api/generate` (Ollama's native API).
pub fn parse_ollama(body: &[u8], chat: bool) -> Result<GenRequest, LlmError> {
    parse_ollama_body(serde_json::from_slice(body), chat)
}

/// [`parse_ollama`] on a body already parsed.
pub fn parse_ollama_body(parsed: ParsedBody, chat: bool) -> Result<GenRequest, LlmError> {
    let strukt = if chat {
        "ChatRequest"
    } else {
        "GenerateRequest"
    };
    let m = ollama_object(parsed, strukt)?;
    let model = match m.get("model") {
        None | Some(Value::Null) => {
            return Err(LlmError::invalid("model is required", Some("model"), None))
        }
        Some(Value::String(s)) if s.is_empty() => {
            return Err(LlmError::invalid("model is required", Some("model"), None))
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(go_type_error(strukt, "model", "string", other)),
    };
    let messages = ollama_messages(&m, chat, strukt)?;
    let stream = match m.get("stream") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(go_type_error(strukt, "stream", "bool", other)),
    };
    let null = Value::Null;
    let options = m.get("options").unwrap_or(&null);
    let (max_tokens, stop) = ollama_options(options, strukt)?;
    let format = ollama_format(m.get("format"), strukt)?;
    let keep_alive = ollama_keep_alive(m.get("keep_alive"))?;
    let (tools, tool_choice) = chat_tools(&m, chat)?;
    let get = |k: &str| m.get(k).unwrap_or(&null);
    let content_key = content_key(&[
        get("model"),
        get("messages"),
        get("prompt"),
        get("system"),
        get("format"),
        get("tools"),
        options.get("seed").unwrap_or(&null),
        options.get("temperature").unwrap_or(&null),
    ]);
    Ok(GenRequest {
        api: if chat {
            Api::OllamaChat
        } else {
            Api::OllamaGenerate
        },
        model,
        messages,
        stream,
        include_usage: false,
        max_tokens,
        stop,
        n: 1,
        format,
        tools,
        tool_choice,
        content_key,
        echo: Value::Null,
        prompts: vec![],
        logprobs: None,
        keep_alive,
    })
}

/// Ollama's `keep_alive` (`api.Duration`): seconds as a number, or a Go duration string
/// (`"5m"`, `"1h30m"`, `"0"`); negative keeps the model loaded.
fn ollama_keep_alive(v: Option<&Value>) -> Result<Option<Duration>, LlmError> {
    let secs = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => go_duration(s).ok_or_else(|| {
            LlmError::invalid(
                format!("time: invalid duration {s:?}"),
                Some("keep_alive"),
                None,
            )
        })?,
        Some(other) => {
            return Err(LlmError::invalid(
                format!("Unsupported type: '{}'", go_kind(other)),
                Some("keep_alive"),
                None,
            ))
        }
    };
    // Past about a century (or negative), the model stays loaded.
    Ok(Some(if (0.0..3.0e9).contains(&secs) {
        Duration::from_secs_f64(secs)
    } else {
        Duration::MAX
    }))
}

/// A Go duration string in seconds (`time.ParseDuration`): an optional sign, then numbers
/// each with a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`); `"0"` alone needs none.
fn go_duration(s: &str) -> Option<f64> {
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let is_num = |c: char| c.is_ascii_digit() || c == '.';
        let end = rest.find(|c: char| !is_num(c)).unwrap_or(rest.len());
        let n: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let unit_end = rest.find(is_num).unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Some(if negative { -total } else { total })
}

/// `tool_choice` given as a string (both OpenAI APIs): `none`, `auto` or `required`.
pub(crate) fn tool_choice_mode(s: &str) -> Result<ToolChoice, LlmError> {
    Ok(match s {
        "none" => ToolChoice::None,
        "auto" => ToolChoice::Auto,
        "required" => ToolChoice::Required,
        other => {
            return Err(LlmError::invalid(
                format!(
                "Invalid value: '{other}'. Supported values are: 'none', 'auto', and 'required'."
            ),
                Some("tool_choice"),
                Some("invalid_value"),
            ))
        }
    })
}

/// The body as a JSON object, or Go's decoder's error for `api.<strukt>`.
fn ollama_object(parsed: ParsedBody, strukt: &str) -> Result<Map<String, Value>, LlmError> {
    match parsed {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(LlmError::invalid(
            format!(
                "json: cannot unmarshal {} into Go value of type api.{strukt}",
                go_kind(&other)
            ),
            None,
            None,
        )),
        Err(e) if e.is_eof() => Err(LlmError::invalid("unexpected EOF", None, None)),
        Err(_) => Err(LlmError::invalid(
            "invalid character in JSON request body",
            None,
            None,
        )),
    }
}

/// The conversation: `system` first, then `messages` (chat) or `prompt` (generate).
fn ollama_messages(
    m: &Map<String, Value>,
    chat: bool,
    strukt: &str,
) -> Result<Vec<Message>, LlmError> {
    let mut messages = vec![];
    if let Some(sys) = m.get("system").and_then(Value::as_str) {
        messages.push(Message {
            role: "system".into(),
            content: sys.to_string(),
        });
    }
    if !chat {
        match m.get("prompt") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => messages.push(Message {
                role: "user".into(),
                content: s.clone(),
            }),
            Some(other) => return Err(go_type_error(strukt, "prompt", "string", other)),
        }
        return Ok(messages);
    }
    match m.get("messages") {
        None | Some(Value::Null) => {}
        Some(Value::Array(arr)) => {
            for msg in arr {
                let role = msg.get("role").and_then(Value::as_str).unwrap_or("user");
                let content = match msg.get("content") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => {
                        return Err(go_type_error("Message", "content", "string", other))
                    }
                };
                messages.push(Message {
                    role: role.to_string(),
                    content,
                });
            }
        }
        Some(other) => return Err(go_type_error(strukt, "messages", "[]api.Message", other)),
    }
    Ok(messages)
}

/// `options.num_predict` (negative: no limit; past `u32::MAX`: `u32::MAX`) and
/// `options.stop`.
fn ollama_options(options: &Value, strukt: &str) -> Result<(Option<u32>, Vec<String>), LlmError> {
    if !options.is_null() && !options.is_object() {
        return Err(go_type_error(
            strukt,
            "options",
            "map[string]interface {}",
            options,
        ));
    }
    let max_tokens = match options.get("num_predict") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(n) if n < 0 => None,
            Some(n) => Some(n.min(u32::MAX as i64) as u32),
            None => {
                return Err(LlmError::invalid(
                    format!("option \"num_predict\" must be of type integer, got {v}"),
                    Some("options"),
                    None,
                ))
            }
        },
    };
    let stop = stop_list(options.get("stop"), "options.stop")?;
    Ok((max_tokens, stop))
}

/// `format`: absent or `""` (text), `"json"`, or a JSON Schema object.
fn ollama_format(format: Option<&Value>, strukt: &str) -> Result<OutputFormat, LlmError> {
    Ok(match format {
        None | Some(Value::Null) => OutputFormat::Text,
        Some(Value::String(s)) if s.is_empty() => OutputFormat::Text,
        Some(Value::String(s)) if s == "json" => OutputFormat::JsonObject,
        Some(Value::String(s)) => {
            return Err(LlmError::invalid(
                format!("invalid format: {s:?}; expected \"json\" or a valid JSON Schema"),
                Some("format"),
                None,
            ))
        }
        Some(schema @ Value::Object(_)) => OutputFormat::JsonSchema(schema.clone()),
        Some(other) => return Err(go_type_error(strukt, "format", "json.RawMessage", other)),
    })
}

/// Inputs of an embedding request: `input` as a string, strings, or token arrays.
pub fn embedding_inputs(v: Option<&Value>, param: &str) -> Result<Vec<String>, LlmError> {
    match v {
        None | Some(Value::Null) => Err(missing(param)),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) if a.is_empty() => Err(LlmError::invalid(
            format!("'{param}' : input cannot be an empty array"),
            Some(param),
            None,
        )),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(format!("t{n}")),
                Value::Array(toks) => Ok(toks
                    .iter()
                    .map(|t| format!("t{t}"))
                    .collect::<Vec<_>>()
                    .join(" ")),
                other => Err(invalid_type(
                    param,
                    "one of a string or array of strings",
                    other,
                )),
            })
            .collect(),
        Some(other) => Err(invalid_type(
            param,
            "one of a string or array of strings",
            other,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(body: Value) -> LlmError {
        parse_openai(body.to_string().as_bytes(), true).unwrap_err()
    }

    #[test]
    fn openai_validation_speaks_openai() {
        let e = err(json!({"model": "m"}));
        assert_eq!(e.message, "Missing required parameter: 'messages'.");
        let e = err(json!({"model": "m", "messages": []}));
        assert!(e.message.starts_with("Invalid 'messages': empty array."));
        let e = err(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": "5"}),
        );
        assert_eq!(
            e.message,
            "Invalid type for 'max_tokens': expected an integer, but got a string instead."
        );
        let e = err(json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]}));
        assert!(e.message.starts_with("Invalid value: 'robot'."));
        let e = err(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3}),
        );
        assert!(e.message.contains("Expected a value <= 2"));
        let e = err(json!({"messages": [{"role": "user", "content": "x"}]}));
        assert_eq!(e.message, "you must provide a model parameter");
        assert_eq!(
            parse_openai(b"{nope", true).unwrap_err(),
            LlmError::unparseable_json()
        );
    }

    #[test]
    fn content_key_ignores_streaming_and_limits() {
        let a = parse_openai(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}]})
                .to_string()
                .as_bytes(),
            true,
        )
        .unwrap();
        let b = parse_openai(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": true, "max_tokens": 3, "n": 2}).to_string().as_bytes(), true).unwrap();
        let c = parse_openai(
            json!({"model": "m", "messages": [{"role": "user", "content": "y"}]})
                .to_string()
                .as_bytes(),
            true,
        )
        .unwrap();
        assert_eq!(a.content_key, b.content_key);
        assert_ne!(a.content_key, c.content_key);
    }

    #[test]
    fn ollama_defaults_to_streaming_and_reports_go_type_errors() {
        let r = parse_ollama(br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"format":"json","options":{"num_predict":5}}"#, true).unwrap();
        assert!(r.stream);
        assert_eq!(r.max_tokens, Some(5));
        assert_eq!(r.format, OutputFormat::JsonObject);
        let e = parse_ollama(br#"{"model":"m","stream":"yes"}"#, true).unwrap_err();
        assert_eq!(
            e.message,
            "json: cannot unmarshal string into Go struct field ChatRequest.stream of type bool"
        );
        assert_eq!(
            parse_ollama(br#"{"prompt":"x"}"#, false)
                .unwrap_err()
                .message,
            "model is required"
        );
    }
}
