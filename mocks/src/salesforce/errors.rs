//! Salesforce-shaped error responses: a JSON array of `{message, errorCode, fields}`.
//!
//! Every failure inside the mock becomes an [`SfError`]; nothing answers with an empty 500.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::json;

/// One Salesforce REST error, with the HTTP status it travels with.
#[derive(Clone, Debug, PartialEq)]
pub struct SfError {
    /// HTTP status.
    pub status: StatusCode,
    /// `errorCode`.
    pub code: &'static str,
    /// `message`.
    pub message: String,
    /// `fields` (omitted from the body when empty, as Salesforce does for most codes).
    pub fields: Vec<String>,
}

impl SfError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: vec![],
        }
    }
    /// Attach the fields the error is about.
    pub fn with_fields(mut self, fields: Vec<String>) -> Self {
        self.fields = fields;
        self
    }
    /// The error as one element of the REST array.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = json!({"message": self.message, "errorCode": self.code});
        if !self.fields.is_empty() {
            v["fields"] = json!(self.fields);
        }
        v
    }
    /// The error as it appears inside composite/collection results (`statusCode`, not `errorCode`).
    pub fn to_collection_json(&self) -> serde_json::Value {
        json!({"statusCode": self.code, "message": self.message, "fields": self.fields})
    }

    /// 401 INVALID_SESSION_ID.
    pub fn invalid_session() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )
    }
    /// 403 REQUEST_LIMIT_EXCEEDED (daily quota).
    pub fn request_limit() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )
    }
    /// 404 NOT_FOUND.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }
    /// 400 INVALID_TYPE for an unknown sObject type in a query.
    pub fn invalid_type(name: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            format!("sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."),
        )
    }
    /// 400 INVALID_FIELD for a write naming an unknown field.
    pub fn unknown_field(object: &str, field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            format!("No such column '{field}' on sobject of type {object}"),
        )
    }
    /// 400 MALFORMED_ID.
    pub fn malformed_id(object: &str, id: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED_ID",
            format!("{object} ID: id value of incorrect type: {id}"),
        )
    }
    /// 413 for a request body over the mock's limit (`max_body_bytes`).
    pub fn body_too_large(max_bytes: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "REQUEST_ENTITY_TOO_LARGE",
            format!("The request body exceeds the maximum of {max_bytes} bytes"),
        )
    }
    /// 400 JSON_PARSER_ERROR.
    pub fn json_parser(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", message)
    }
    /// 415 for a body that is neither JSON nor XML.
    pub fn unsupported_media_type(ct: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!("Content type '{ct}' is not supported for this resource; use application/json"),
        )
    }
    /// 405 METHOD_NOT_ALLOWED.
    pub fn method_not_allowed(method: &str, allowed: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("HTTP Method '{method}' not allowed. Allowed are {allowed}"),
        )
    }
}

impl IntoResponse for SfError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&json!([self.to_json()])).unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=UTF-8"),
        );
        resp.extensions_mut().insert(ErrorCode(self.code));
        resp
    }
}

/// Marks a response with the error code it carries, so the history can record it.
#[derive(Clone, Copy, Debug)]
pub struct ErrorCode(pub &'static str);

/// A JSON response with Salesforce's content type.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut resp = (status, serde_json::to_vec(body).unwrap_or_default()).into_response();
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    resp
}
