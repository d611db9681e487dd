//! Request-head limits: how long a URI and how large a request head a service accepts, and
//! the exact answer its front server gives past them (status, content type, body), which is
//! often not the service's JSON error shape but its web server's page.
//!
//! A mock's middleware judges every head it receives ([`HeadPolicy::judge`]); the server loop
//! buffers enough to read any head the policy could accept ([`HeadPolicy::read_buffer`]) and
//! turns hyper's own empty 414 and 431, for heads too large to read at all, into the
//! service's answer ([`HeadPolicy::unreadable`]).

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};

/// The sizes of a request head, in bytes, as an HTTP/1.1 server reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeadFacts {
    /// The request target (path and query).
    pub target: usize,
    /// The request line: method, target, version and its line end.
    pub request_line: usize,
    /// The whole head: request line, header lines and the blank line.
    pub head: usize,
    /// The longest header line (`name: value` and its line end).
    pub longest_line: usize,
}

impl HeadFacts {
    /// The sizes of a request's head.
    pub fn of(method: &Method, uri: &Uri, headers: &HeaderMap) -> Self {
        let target = uri.path_and_query().map_or(1, |pq| pq.as_str().len());
        // `GET /path HTTP/1.1\r\n`
        let request_line = method.as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
        let lines = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2);
        let (sum, longest) = lines.fold((0, 0), |(sum, longest), l| (sum + l, longest.max(l)));
        Self {
            target,
            request_line,
            head: request_line + sum + 2,
            longest_line: longest,
        }
    }
}

/// Why hyper refused a head it could not read (the only two cases it answers itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unreadable {
    /// The request target is longer than hyper reads (65,534 bytes).
    UriTooLong,
    /// The head is larger than the server's read buffer, or has more than 100 headers.
    HeadTooLarge,
}

/// An answer as a front server writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawAnswer {
    /// Status.
    pub status: StatusCode,
    /// `Content-Type`, if the server sends one.
    pub content_type: Option<&'static str>,
    /// Body (may be empty).
    pub body: String,
}

impl RawAnswer {
    /// An answer; the connection closes after it, as every such server does.
    pub fn new(
        status: StatusCode,
        content_type: Option<&'static str>,
        body: impl Into<String>,
    ) -> Self {
        Self {
            status,
            content_type,
            body: body.into(),
        }
    }

    /// The answer as a response of the mock's router.
    pub fn into_response(self) -> Response {
        let mut resp = Response::new(Body::from(self.body));
        *resp.status_mut() = self.status;
        if let Some(ct) = self.content_type {
            resp.headers_mut()
                .insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        resp
    }

    /// The answer as HTTP/1.1 bytes on the wire.
    pub fn to_http1(&self) -> Bytes {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\n",
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or("")
        );
        if let Some(ct) = self.content_type {
            out.push_str(&format!("content-type: {ct}\r\n"));
        }
        out.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n{}",
            self.body.len(),
            self.body
        ));
        Bytes::from(out)
    }
}

/// A service's request-head limits and its answers past them.
#[derive(Clone, Copy, Debug)]
pub struct HeadPolicy {
    /// Bytes the server buffers for a request head (hyper's `max_buf_size`): enough for any
    /// head `judge` could accept, so that `judge` sees it.
    pub read_buffer: usize,
    /// The service's answer to a head it refuses; `None` serves the request.
    pub judge: fn(&HeadFacts) -> Option<RawAnswer>,
    /// The service's answer to a head too large for the server to read.
    pub unreadable: fn(Unreadable) -> RawAnswer,
}

impl HeadPolicy {
    /// The answer to the head of a request, if the service refuses it.
    pub fn refuse(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
        (self.judge)(&HeadFacts::of(method, uri, headers)).map(RawAnswer::into_response)
    }
}

/// hyper's automatic answer to a head it cannot read, exactly as it writes it:
/// `HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n
/// date: <29 characters>\r\n\r\n`. Anything else (a handler's answer) is not matched.
pub(crate) fn hyper_refusal(written: &[u8]) -> Option<Unreadable> {
    let (kind, status_line) = if written.starts_with(b"HTTP/1.1 414 URI Too Long\r\n") {
        (
            Unreadable::UriTooLong,
            "HTTP/1.1 414 URI Too Long\r\n".len(),
        )
    } else if written.starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n") {
        (
            Unreadable::HeadTooLarge,
            "HTTP/1.1 431 Request Header Fields Too Large\r\n".len(),
        )
    } else {
        return None;
    };
    let rest = &written[status_line..];
    let fixed = b"connection: close\r\ncontent-length: 0\r\ndate: ";
    let date_and_end = 29 + 4;
    (rest.starts_with(fixed)
        && rest.len() == fixed.len() + date_and_end
        && rest.ends_with(b"\r\n\r\n"))
    .then_some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_measure_the_head_as_sent() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("x"));
        let f = HeadFacts::of(&Method::GET, &"/a?b=c".parse().unwrap(), &h);
        assert_eq!(f.target, 6);
        assert_eq!(f.request_line, "GET /a?b=c HTTP/1.1\r\n".len());
        assert_eq!(f.longest_line, "host: x\r\n".len());
        assert_eq!(f.head, "GET /a?b=c HTTP/1.1\r\nhost: x\r\n\r\n".len());
    }

    #[test]
    fn only_hypers_own_refusals_are_recognised() {
        let auto = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 20:15:02 GMT\r\n\r\n";
        assert_eq!(hyper_refusal(auto), Some(Unreadable::HeadTooLarge));
        let uri = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 20:15:02 GMT\r\n\r\n";
        assert_eq!(hyper_refusal(uri), Some(Unreadable::UriTooLong));
        let handler = b"HTTP/1.1 414 URI Too Long\r\ncontent-type: text/html\r\ncontent-length: 3\r\ndate: Tue, 01 Dec 2026 20:15:02 GMT\r\n\r\nabc";
        assert_eq!(hyper_refusal(handler), None);
        assert_eq!(hyper_refusal(b"HTTP/1.1 200 OK\r\n\r\n"), None);
    }

    #[test]
    fn raw_answers_are_written_whole() {
        let a = RawAnswer::new(StatusCode::URI_TOO_LONG, Some("text/plain"), "no");
        assert_eq!(
            &a.to_http1()[..],
            b"HTTP/1.1 414 URI Too Long\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno"
        );
    }
}
