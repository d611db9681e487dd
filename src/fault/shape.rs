//! Error answers in each dependency's own language, for the HTTP faults.

use std::time::Duration;

use crashcart_mocks::llm::{Flavour, LlmError};
use crashcart_mocks::CannedResponse;
use http::StatusCode;
use serde_json::json;

use super::model::DependencyName;

/// Salesforce's usual error code for a status.
fn salesforce_code(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("BAD_REQUEST", "The request could not be processed."),
        401 => ("INVALID_SESSION_ID", "Session expired or invalid"),
        403 => ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
        404 => ("NOT_FOUND", "The requested resource does not exist"),
        409 => ("CONFLICT", "The request conflicts with the current state of the resource."),
        429 => ("REQUEST_LIMIT_EXCEEDED", "Too many requests."),
        500 => ("UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-123456789)"),
        502 | 504 => ("SERVER_UNAVAILABLE", "The server is temporarily unable to service your request."),
        503 => ("SERVER_UNAVAILABLE", "Server unavailable due to scheduled maintenance or high load. Please try again later."),
        _ => ("UNKNOWN_EXCEPTION", "An unexpected error occurred."),
    }
}

/// An HTTP error from `dependency` with `status`, shaped as that service shapes it.
pub fn http_error(
    dependency: Option<DependencyName>,
    llm_flavour: Flavour,
    status: u16,
    error_code: Option<&str>,
    message: Option<&str>,
) -> CannedResponse {
    let st = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match dependency {
        Some(DependencyName::Llm) => {
            let mut e = match status {
                429 | 503 => LlmError::overloaded(1, llm_flavour),
                401 => LlmError::auth(Some("sk-unknown-key")),
                _ => LlmError::internal(
                    "The server had an error while processing your request. Sorry about that!",
                ),
            };
            if let Some(m) = message {
                e.message = m.to_string();
            }
            let mut body = e.openai_body(llm_flavour);
            if let Some(c) = error_code {
                body["error"]["code"] = json!(c);
            }
            CannedResponse::json(st, &body)
        }
        Some(DependencyName::SalesforceAuth) => {
            let (code, desc) = match status {
                400 => ("invalid_grant", "authentication failure"),
                401 => ("invalid_client", "invalid client credentials"),
                _ => ("unknown_error", "retry your request"),
            };
            CannedResponse::json(
                st,
                &json!({"error": error_code.unwrap_or(code), "error_description": message.unwrap_or(desc)}),
            )
        }
        _ => {
            let (code, msg) = salesforce_code(status);
            CannedResponse::json(
                st,
                &json!([{"message": message.unwrap_or(msg), "errorCode": error_code.unwrap_or(code)}]),
            )
        }
    }
}

/// `Retry-After` (whole seconds, rounded up) and `Retry-After-Ms` headers.
pub fn with_retry_after(
    mut r: CannedResponse,
    after: Option<Duration>,
    after_ms: Option<u64>,
) -> CannedResponse {
    if let Some(d) = after {
        let secs = d.as_millis().div_ceil(1000);
        r = r.with_header("retry-after", &secs.to_string());
    }
    if let Some(ms) = after_ms {
        r = r.with_header("retry-after-ms", &ms.to_string());
    }
    r
}

/// Salesforce's answer when a record is locked by another transaction.
pub fn unable_to_lock_row(record: &str) -> CannedResponse {
    CannedResponse::json(
        StatusCode::BAD_REQUEST,
        &json!([{"message": format!("unable to obtain exclusive access to this record or 1 records: {record}"), "errorCode": "UNABLE_TO_LOCK_ROW", "fields": []}]),
    )
}

/// Salesforce's answer when too many long-running requests are in flight.
pub fn concurrent_long_requests() -> CannedResponse {
    CannedResponse::json(
        StatusCode::FORBIDDEN,
        &json!([{"message": "ConcurrentPerOrgLongTxn Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]),
    )
}

/// The token endpoint's `invalid_grant`.
pub fn invalid_grant() -> CannedResponse {
    CannedResponse::json(
        StatusCode::BAD_REQUEST,
        &json!({"error": "invalid_grant", "error_description": "authentication failure"}),
    )
}

/// A 200 whose JSON body is cut off.
pub fn malformed_body() -> CannedResponse {
    let mut r = CannedResponse::json(StatusCode::OK, &json!({}));
    r.body = bytes::Bytes::from_static(br#"{"id":"003000000000001AAA","success":tr"#);
    r
}

/// A status with an empty body (no Content-Type).
pub fn empty(status: u16) -> CannedResponse {
    CannedResponse {
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        headers: http::HeaderMap::new(),
        body: bytes::Bytes::new(),
        reset_after_body: false,
    }
}

/// Half a JSON body, then a reset.
pub fn reset_mid_body() -> CannedResponse {
    let mut r = malformed_body();
    r.reset_after_body = true;
    r
}
