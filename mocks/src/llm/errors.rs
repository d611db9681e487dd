//! Errors of the mock LLM, rendered in the shape of the server being imitated.
//!
//! The OpenAI-compatible endpoints answer in the configured [`Flavour`]; Ollama's native API
//! always answers `{"error": "…"}`.

use std::fmt;
use std::str::FromStr;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::head::{HeadPolicy, RawAnswer, Unreadable};

/// Which server the OpenAI-compatible API imitates, for error shapes and overload status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavour {
    /// api.openai.com: `{"error":{"message","type","param","code"}}`, overload 429.
    #[default]
    OpenAi,
    /// vLLM: like OpenAI, with the integer status in `code` and exception-like types.
    Vllm,
    /// llama.cpp's server: `{"error":{"code","message","type"}}`, overload 503.
    LlamaCpp,
    /// Ollama's `/v1`: `type` from the status, `param` and `code` null, overload 503.
    Ollama,
}

impl FromStr for Flavour {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "openai" => Ok(Self::OpenAi),
            "vllm" => Ok(Self::Vllm),
            "llamacpp" | "llama.cpp" | "llama-cpp" => Ok(Self::LlamaCpp),
            "ollama" => Ok(Self::Ollama),
            other => Err(format!(
                "unknown server flavour {other:?} (expected openai, vllm, llamacpp or ollama)"
            )),
        }
    }
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OpenAi => "openai",
            Self::Vllm => "vllm",
            Self::LlamaCpp => "llamacpp",
            Self::Ollama => "ollama",
        })
    }
}

/// What went wrong, independent of the shape it is rendered in.
#[derive(Clone, Debug, PartialEq)]
pub enum ErrorKind {
    /// Malformed or invalid request (400).
    InvalidRequest {
        /// The offending parameter, if one.
        param: Option<String>,
        /// OpenAI's error code (`missing_required_parameter`, `invalid_type`, …), if any.
        code: Option<&'static str>,
    },
    /// Missing or wrong API key (401).
    Auth {
        /// True when a key was sent (and was wrong).
        key_sent: bool,
    },
    /// Unknown model (404).
    ModelNotFound,
    /// Unknown route (404).
    NotFound,
    /// The prompt does not fit the context window (400).
    ContextLength {
        /// The window.
        n_ctx: u32,
        /// The prompt's tokens.
        n_prompt: u32,
    },
    /// The queue is full (429 or 503, with `Retry-After`).
    Overloaded {
        /// Seconds to wait.
        retry_after_s: u64,
    },
    /// The generation failed (500).
    Internal,
}

/// An error answer of the mock LLM.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The message, in the imitated server's words.
    pub message: String,
}

/// The error code a response carried, stored in its extensions for the history.
#[derive(Clone, Debug)]
pub(crate) struct LlmErrorCode(pub(crate) String);

impl LlmError {
    /// A 400 on a parameter.
    pub fn invalid(
        message: impl Into<String>,
        param: Option<&str>,
        code: Option<&'static str>,
    ) -> Self {
        Self {
            kind: ErrorKind::InvalidRequest {
                param: param.map(str::to_string),
                code,
            },
            message: message.into(),
        }
    }

    /// OpenAI's answer to a body that is not JSON.
    pub fn unparseable_json() -> Self {
        Self::invalid("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)", None, None)
    }

    /// A model the server does not have.
    pub fn model_not_found(model: &str, flavour: Flavour) -> Self {
        let message = match flavour {
            Flavour::OpenAi => {
                format!("The model `{model}` does not exist or you do not have access to it.")
            }
            Flavour::Vllm => format!("The model `{model}` does not exist."),
            Flavour::LlamaCpp => format!("model '{model}' not found"),
            Flavour::Ollama => format!("model \"{model}\" not found, try pulling it first"),
        };
        Self {
            kind: ErrorKind::ModelNotFound,
            message,
        }
    }

    /// A prompt longer than the context window.
    pub fn context_length(n_ctx: u32, n_prompt: u32, flavour: Flavour) -> Self {
        let message = match flavour {
            Flavour::LlamaCpp => format!("the request exceeds the available context size ({n_prompt} tokens > {n_ctx} tokens), try increasing it"),
            Flavour::Ollama => "the input length exceeds the context length".to_string(),
            _ => format!("This model's maximum context length is {n_ctx} tokens. However, your messages resulted in {n_prompt} tokens. Please reduce the length of the messages."),
        };
        Self {
            kind: ErrorKind::ContextLength { n_ctx, n_prompt },
            message,
        }
    }

    /// The queue is full.
    pub fn overloaded(retry_after_s: u64, flavour: Flavour) -> Self {
        let message = match flavour {
            Flavour::OpenAi => "Rate limit reached: too many concurrent requests for this model. Please try again later.".to_string(),
            Flavour::Vllm => "The server is overloaded: the request queue is full.".to_string(),
            Flavour::LlamaCpp => "Server is busy: no slot available and the queue is full".to_string(),
            Flavour::Ollama => "server busy, please try again.  maximum pending requests exceeded".to_string(),
        };
        Self {
            kind: ErrorKind::Overloaded { retry_after_s },
            message,
        }
    }

    /// A missing or wrong API key.
    pub fn auth(sent: Option<&str>) -> Self {
        let message = match sent {
            None => "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).".to_string(),
            Some(k) => format!("Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.", redact(k)),
        };
        Self {
            kind: ErrorKind::Auth {
                key_sent: sent.is_some(),
            },
            message,
        }
    }

    /// A failed generation.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Internal,
            message: message.into(),
        }
    }

    /// HTTP status for a flavour.
    pub fn status(&self, flavour: Flavour) -> StatusCode {
        match &self.kind {
            ErrorKind::InvalidRequest { .. } | ErrorKind::ContextLength { .. } => {
                StatusCode::BAD_REQUEST
            }
            ErrorKind::Auth { .. } => StatusCode::UNAUTHORIZED,
            ErrorKind::ModelNotFound | ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Overloaded { .. } => match flavour {
                Flavour::OpenAi => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            },
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The short code recorded in the history.
    pub fn history_code(&self) -> &'static str {
        match &self.kind {
            ErrorKind::InvalidRequest { code, .. } => code.unwrap_or("invalid_request_error"),
            ErrorKind::Auth { .. } => "invalid_api_key",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::NotFound => "not_found",
            ErrorKind::ContextLength { .. } => "context_length_exceeded",
            ErrorKind::Overloaded { .. } => "overloaded",
            ErrorKind::Internal => "internal_error",
        }
    }

    /// The body in the OpenAI-compatible shape of a flavour.
    pub fn openai_body(&self, flavour: Flavour) -> Value {
        let status = self.status(flavour);
        let msg = &self.message;
        match flavour {
            Flavour::OpenAi => {
                let (typ, param, code): (&str, Option<&str>, Option<&str>) = match &self.kind {
                    ErrorKind::InvalidRequest { param, code } => {
                        ("invalid_request_error", param.as_deref(), *code)
                    }
                    ErrorKind::Auth { key_sent: true } => {
                        ("invalid_request_error", None, Some("invalid_api_key"))
                    }
                    ErrorKind::Auth { key_sent: false } => ("invalid_request_error", None, None),
                    ErrorKind::ModelNotFound => {
                        ("invalid_request_error", None, Some("model_not_found"))
                    }
                    ErrorKind::NotFound => ("invalid_request_error", None, None),
                    ErrorKind::ContextLength { .. } => (
                        "invalid_request_error",
                        Some("messages"),
                        Some("context_length_exceeded"),
                    ),
                    ErrorKind::Overloaded { .. } => ("requests", None, Some("rate_limit_exceeded")),
                    ErrorKind::Internal => ("server_error", None, None),
                };
                json!({"error": {"message": msg, "type": typ, "param": param, "code": code}})
            }
            Flavour::Vllm => {
                let typ = match status.as_u16() {
                    400 => "BadRequestError",
                    401 => "Unauthorized",
                    404 => "NotFoundError",
                    503 => "ServiceUnavailableError",
                    _ => "InternalServerError",
                };
                let param = match &self.kind {
                    ErrorKind::InvalidRequest { param, .. } => param.clone(),
                    _ => None,
                };
                json!({"error": {"message": msg, "type": typ, "param": param, "code": status.as_u16()}})
            }
            Flavour::LlamaCpp => {
                let typ = match &self.kind {
                    ErrorKind::ContextLength { .. } => "exceed_context_size_error",
                    ErrorKind::InvalidRequest { .. } => "invalid_request_error",
                    ErrorKind::Auth { .. } => "authentication_error",
                    ErrorKind::ModelNotFound | ErrorKind::NotFound => "not_found_error",
                    ErrorKind::Overloaded { .. } => "unavailable_error",
                    ErrorKind::Internal => "server_error",
                };
                let mut err = json!({"code": status.as_u16(), "message": msg, "type": typ});
                if let ErrorKind::ContextLength { n_ctx, n_prompt } = &self.kind {
                    err["n_prompt_tokens"] = json!(n_prompt);
                    err["n_ctx"] = json!(n_ctx);
                }
                json!({"error": err})
            }
            Flavour::Ollama => {
                let typ = match status.as_u16() {
                    400 => "invalid_request_error",
                    404 => "not_found_error",
                    _ => "api_error",
                };
                json!({"error": {"message": msg, "type": typ, "param": null, "code": null}})
            }
        }
    }

    /// The response on the OpenAI-compatible API.
    pub fn openai_response(&self, flavour: Flavour) -> Response {
        self.respond(self.status(flavour), &self.openai_body(flavour))
    }

    /// The response on Ollama's native API: `{"error": "…"}`.
    pub fn ollama_response(&self) -> Response {
        self.respond(
            self.status(Flavour::Ollama),
            &json!({"error": self.message}),
        )
    }

    fn respond(&self, status: StatusCode, body: &Value) -> Response {
        let mut resp = (
            status,
            [(http::header::CONTENT_TYPE, "application/json")],
            serde_json::to_string(body).unwrap_or_default(),
        )
            .into_response();
        if let ErrorKind::Overloaded { retry_after_s } = &self.kind {
            if let Ok(v) = HeaderValue::from_str(&retry_after_s.to_string()) {
                resp.headers_mut().insert(http::header::RETRY_AFTER, v);
            }
        }
        resp.extensions_mut()
            .insert(LlmErrorCode(self.history_code().to_string()));
        resp
    }
}

/// The request-head limits of the imitated server, and its answers past them (its web
/// server's, not its JSON error shape):
/// - OpenAI (Cloudflare in front): a 414 page past 32 KB of URI; past what the mock reads, a
///   400 `Request Header Or Cookie Too Large` page.
/// - vLLM (uvicorn on h11, `H11_MAX_INCOMPLETE_EVENT_SIZE_DEFAULT` 4 MiB): a head past it is
///   `400 Invalid HTTP request received.` in plain text.
/// - llama.cpp (cpp-httplib): a request line past 8,192 bytes is an empty 414, a header line
///   past 8,192 bytes an empty 400 (llama.cpp's error handler fills only 404s).
/// - Ollama (Go's net/http, `DefaultMaxHeaderBytes` 1 MiB plus 4,096 bytes of slack): a
///   plain-text `431 Request Header Fields Too Large`, for a long URI too.
pub(crate) fn head_policy(flavour: Flavour) -> HeadPolicy {
    match flavour {
        Flavour::OpenAi => HeadPolicy {
            read_buffer: 128 * 1024,
            judge: |f| (f.target > 32 * 1024).then(|| cloudflare(Unreadable::UriTooLong)),
            unreadable: cloudflare,
        },
        Flavour::Vllm => HeadPolicy {
            read_buffer: VLLM_MAX_HEAD + 64 * 1024,
            judge: |f| (f.head > VLLM_MAX_HEAD).then(uvicorn_bad_request),
            unreadable: |_| uvicorn_bad_request(),
        },
        Flavour::LlamaCpp => HeadPolicy {
            read_buffer: 1024 * 1024,
            judge: |f| {
                if f.request_line > HTTPLIB_MAX_LINE {
                    Some(httplib(Unreadable::UriTooLong))
                } else {
                    (f.longest_line > HTTPLIB_MAX_LINE).then(|| httplib(Unreadable::HeadTooLarge))
                }
            },
            unreadable: httplib,
        },
        Flavour::Ollama => HeadPolicy {
            read_buffer: GO_MAX_HEAD + 64 * 1024,
            judge: |f| (f.head > GO_MAX_HEAD).then(go_too_large),
            unreadable: |_| go_too_large(),
        },
    }
}

/// vLLM's `H11_MAX_INCOMPLETE_EVENT_SIZE_DEFAULT`.
const VLLM_MAX_HEAD: usize = 4 * 1024 * 1024;
/// cpp-httplib's `CPPHTTPLIB_REQUEST_URI_MAX_LENGTH` and `CPPHTTPLIB_HEADER_MAX_LENGTH`.
const HTTPLIB_MAX_LINE: usize = 8192;
/// Go's `DefaultMaxHeaderBytes` plus the 4,096 bytes of bufio slop its server allows.
const GO_MAX_HEAD: usize = (1 << 20) + 4096;

/// nginx's error pages, as Cloudflare serves them.
fn cloudflare(why: Unreadable) -> RawAnswer {
    let (status, title, body) = match why {
        Unreadable::UriTooLong => (
            StatusCode::URI_TOO_LONG,
            "414 Request-URI Too Large",
            "<center><h1>414 Request-URI Too Large</h1></center>",
        ),
        Unreadable::HeadTooLarge => (
            StatusCode::BAD_REQUEST,
            "400 Request Header Or Cookie Too Large",
            "<center><h1>400 Bad Request</h1></center>\r\n<center>Request Header Or Cookie Too Large</center>",
        ),
    };
    RawAnswer::new(
        status,
        Some("text/html"),
        format!("<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n{body}\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"),
    )
}

/// uvicorn's `send_400_response` on an h11 protocol error.
fn uvicorn_bad_request() -> RawAnswer {
    RawAnswer::new(
        StatusCode::BAD_REQUEST,
        Some("text/plain; charset=utf-8"),
        "Invalid HTTP request received.",
    )
}

/// cpp-httplib's answers: no body.
fn httplib(why: Unreadable) -> RawAnswer {
    let status = match why {
        Unreadable::UriTooLong => StatusCode::URI_TOO_LONG,
        Unreadable::HeadTooLarge => StatusCode::BAD_REQUEST,
    };
    RawAnswer::new(status, None, "")
}

/// Go's net/http answer to a head past `MaxHeaderBytes`.
fn go_too_large() -> RawAnswer {
    RawAnswer::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        Some("text/plain; charset=utf-8"),
        "431 Request Header Fields Too Large",
    )
}

/// Show the first and last characters of a key, as OpenAI does.
fn redact(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_overflow_in_each_flavour() {
        let e = LlmError::context_length(8192, 9000, Flavour::OpenAi);
        assert_eq!(e.status(Flavour::OpenAi), 400);
        let b = e.openai_body(Flavour::OpenAi);
        assert_eq!(b["error"]["code"], "context_length_exceeded");
        assert_eq!(b["error"]["type"], "invalid_request_error");
        assert!(b["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens"));
        let l =
            LlmError::context_length(8192, 9000, Flavour::LlamaCpp).openai_body(Flavour::LlamaCpp);
        assert_eq!(l["error"]["type"], "exceed_context_size_error");
        assert_eq!(l["error"]["code"], 400);
        assert_eq!(l["error"]["n_ctx"], 8192);
        let v = e.openai_body(Flavour::Vllm);
        assert_eq!(v["error"]["code"], 400);
        assert_eq!(v["error"]["type"], "BadRequestError");
        let o = e.openai_body(Flavour::Ollama);
        assert_eq!(o["error"]["type"], "invalid_request_error");
        assert!(o["error"]["code"].is_null() && o["error"]["param"].is_null());
    }

    #[test]
    fn overload_status_and_retry_after_follow_the_flavour() {
        let e = LlmError::overloaded(3, Flavour::OpenAi);
        assert_eq!(e.status(Flavour::OpenAi), 429);
        assert_eq!(e.status(Flavour::LlamaCpp), 503);
        let r = e.openai_response(Flavour::OpenAi);
        assert_eq!(r.headers()["retry-after"], "3");
        assert_eq!(
            e.openai_body(Flavour::OpenAi)["error"]["code"],
            "rate_limit_exceeded"
        );
        assert_eq!(
            LlmError::overloaded(1, Flavour::LlamaCpp).openai_body(Flavour::LlamaCpp)["error"]
                ["type"],
            "unavailable_error"
        );
    }

    #[test]
    fn keys_are_redacted() {
        assert_eq!(redact("sk-abcdefghijkl"), "sk-********ijkl");
        assert_eq!(redact("short"), "*****");
        assert!(LlmError::auth(Some("sk-abcdefghijkl"))
            .message
            .contains("sk-********ijkl"));
    }
}
