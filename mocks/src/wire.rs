//! Wire helpers shared by every mock: canned (fault) responses, aborted connections, bearer
//! tokens and `Retry-After` parsing. Nothing here knows a service's error language.

use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use crate::fault::{Action, CannedResponse};
use crate::server::{ConnControl, StopSignal};

/// The bearer token of a request (`Authorization: Bearer X`, or Salesforce's legacy `OAuth X`).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("oauth"))
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A response whose body fails at once: the server aborts the connection without answering.
pub fn aborting_response() -> Response {
    let stream = futures_util::stream::once(async {
        Err::<Bytes, _>(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
    });
    Response::new(Body::from_stream(stream))
}

/// Turn a fault hook's canned response into a real one; with `reset_after_body` the body is
/// sent and then the connection is reset instead of ending cleanly.
pub fn canned_response(c: CannedResponse, conn: Option<Arc<ConnControl>>) -> Response {
    use futures_util::StreamExt;
    let mut builder = Response::builder().status(c.status);
    if let Some(h) = builder.headers_mut() {
        *h = c.headers;
    }
    let body = if c.reset_after_body {
        let head = futures_util::stream::iter([Ok::<Bytes, std::io::Error>(c.body)]);
        let fail = futures_util::stream::once(async move {
            // Let the server flush the head and the partial body first (it flushes when the
            // body is pending), and give the client a moment to read them: otherwise the RST
            // overtakes the data and the client sees no answer at all.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            if let Some(conn) = conn {
                conn.reset();
            }
            Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset))
        });
        Body::from_stream(head.chain(fail))
    } else {
        Body::from(c.body)
    };
    builder
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Carry out a fault verdict's action: the response to send instead of serving the request
/// (a canned answer, a connection held until the server stops, or a reset), or `None` for
/// [`Action::Pass`].
pub async fn intervene(
    action: Action,
    conn: Option<Arc<ConnControl>>,
    stop: &StopSignal,
) -> Option<Response> {
    match action {
        Action::Pass | Action::Lose => None,
        Action::Respond(c) => Some(canned_response(c, conn)),
        Action::Drop => {
            stop.stopped().await;
            Some(aborting_response())
        }
        Action::Reset => {
            if let Some(conn) = conn {
                conn.reset();
            }
            Some(aborting_response())
        }
    }
}

/// `Retry-After-Ms`, else `Retry-After` in seconds, as milliseconds.
pub fn retry_after_ms(headers: &HeaderMap) -> Option<u64> {
    let num = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    num("retry-after-ms")
        .map(|ms| ms as u64)
        .or_else(|| num("retry-after").map(|s| (s * 1000.0) as u64))
}

/// The `Idempotency-Key` header (IETF draft): one key per logical operation, the same on
/// each of its retries (at most 64 characters kept).
pub fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| k.chars().take(64).collect())
}

/// The trace id of a valid W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`, ids not
/// all zero; a later version may append fields, as the specification allows).
pub fn trace_id(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("traceparent")?.to_str().ok()?.trim();
    let mut parts = v.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    let valid = hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && !zero(trace)
        && !zero(parent);
    valid.then(|| trace.to_string())
}

/// openai-python's `x-stainless-retry-count` (0 on the first attempt).
pub fn retry_count(headers: &HeaderMap) -> Option<u32> {
    headers
        .get("x-stainless-retry-count")
        .and_then(|v| v.to_str().ok()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_come_from_valid_traceparents_only() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("traceparent", v.parse().unwrap());
            trace_id(&h)
        };
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            with(&format!("00-{id}-00f067aa0ba902b7-01")).as_deref(),
            Some(id)
        );
        assert_eq!(
            with(&format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32))),
            None
        );
        assert_eq!(with(&format!("00-{id}-0000000000000000-01")), None);
        assert_eq!(
            with(&format!("00-{}-00f067aa0ba902b7-01", id.to_uppercase())),
            None
        );
        assert_eq!(with(&format!("ff-{id}-00f067aa0ba902b7-01")), None);
        assert_eq!(with(&format!("00-{id}-00f067aa0ba902b7-01-extra")), None);
        assert!(with(&format!("01-{id}-00f067aa0ba902b7-01-extra")).is_some());
        assert_eq!(with("garbage"), None);
        assert_eq!(trace_id(&HeaderMap::new()), None);
    }

    #[test]
    fn retry_after_prefers_milliseconds() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after_ms(&h), Some(2000));
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after_ms(&h), Some(250));
    }

    #[test]
    fn bearer_accepts_oauth_scheme_and_rejects_empty() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "OAuth abc".parse().unwrap());
        assert_eq!(bearer_token(&h), Some("abc"));
        h.insert("authorization", "Bearer ".parse().unwrap());
        assert_eq!(bearer_token(&h), None);
    }
}
