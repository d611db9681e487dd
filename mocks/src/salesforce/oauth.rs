//! OAuth 2.0 endpoints: `/services/oauth2/token` (password, refresh_token, client_credentials,
//! jwt-bearer), `/services/oauth2/revoke`, `/services/oauth2/introspect`, and the identity URL.
//! Bodies and statuses follow Salesforce's (errors are `{"error","error_description"}`, 400).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::errors::{json_response, ErrorCode};
use super::middleware::{bearer_token, form_value};
use super::SfState;

pub(crate) fn routes() -> Router<Arc<SfState>> {
    Router::new()
        .route("/services/oauth2/token", post(token))
        .route("/services/oauth2/revoke", post(revoke).get(revoke_get))
        .route("/services/oauth2/introspect", post(introspect))
        .route("/services/oauth2/userinfo", get(userinfo))
        .route("/id/{org}/{user}", get(identity))
}

/// An OAuth error body, as Salesforce sends it.
pub(crate) fn oauth_error(status: StatusCode, error: &'static str, description: &str) -> Response {
    let mut resp = json_response(
        status,
        &json!({"error": error, "error_description": description}),
    );
    resp.extensions_mut().insert(ErrorCode(error));
    resp
}

fn invalid_grant(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn signature(secret: &str, id: &str, issued_at: &str) -> String {
    let mut h = Sha256::new();
    h.update(secret.as_bytes());
    h.update(id.as_bytes());
    h.update(issued_at.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Client credentials from the body or an `Authorization: Basic` header.
fn client_credentials(headers: &HeaderMap, body: &[u8]) -> (Option<String>, Option<String>) {
    if let Some(basic) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
    {
        if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) {
            if let Ok(s) = String::from_utf8(decoded) {
                if let Some((id, secret)) = s.split_once(':') {
                    return (Some(id.to_string()), Some(secret.to_string()));
                }
            }
        }
    }
    (
        form_value(body, "client_id"),
        form_value(body, "client_secret"),
    )
}

struct Issue<'a> {
    client_id: &'a str,
    username: &'a str,
    user_id: &'a str,
    scopes: &'a [String],
    refresh: Option<String>,
    from_refresh: Option<String>,
    client_credentials: bool,
}

fn issue(st: &SfState, i: Issue<'_>) -> Response {
    let now = st.clock.elapsed();
    let epoch_ms = st.clock.wall().timestamp_millis();
    let (token, _) = st.auth.lock().issue(
        Some(i.client_id),
        i.username,
        i.user_id,
        i.scopes,
        now,
        epoch_ms,
        i.from_refresh.or_else(|| i.refresh.clone()),
    );
    let id = st.identity_url(i.user_id);
    let issued_at = epoch_ms.to_string();
    let secret = st
        .app(i.client_id)
        .map(|a| a.client_secret.clone())
        .unwrap_or_default();
    let url = st.public_url();
    let mut body = json!({
        "access_token": token,
        "instance_url": url,
        "id": id,
        "token_type": "Bearer",
        "issued_at": issued_at,
        "signature": signature(&secret, &id, &issued_at),
        "scope": i.scopes.join(" "),
    });
    if let Some(r) = i.refresh {
        body["refresh_token"] = Value::String(r);
    }
    if i.client_credentials {
        body["api_instance_url"] = Value::String(url);
    }
    json_response(StatusCode::OK, &body)
}

async fn token(State(st): State<Arc<SfState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(grant) = form_value(&body, "grant_type") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant type not supported",
        );
    };
    match grant.as_str() {
        "password" => password_grant(&st, &headers, &body),
        "refresh_token" => refresh_grant(&st, &headers, &body),
        "client_credentials" => client_credentials_grant(&st, &headers, &body),
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => jwt_grant(&st, &body),
        "authorization_code" => invalid_grant("invalid authorization code"),
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant type not supported",
        ),
    }
}

/// Check client id and secret; `Err` is the response to send.
fn check_client<'a>(
    st: &'a SfState,
    id: Option<&str>,
    secret: Option<&str>,
    secret_required: bool,
) -> Result<&'a super::ConnectedApp, Response> {
    let Some(app) = id.and_then(|id| st.app(id)) else {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_id",
            "client identifier invalid",
        ));
    };
    match secret {
        Some(s) if s == app.client_secret => Ok(app),
        None if !secret_required => Ok(app),
        _ => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client",
            "invalid client credentials",
        )),
    }
}

fn password_grant(st: &SfState, headers: &HeaderMap, body: &[u8]) -> Response {
    let (id, secret) = client_credentials(headers, body);
    let app = match check_client(st, id.as_deref(), secret.as_deref(), true) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let username = form_value(body, "username").unwrap_or_default();
    let password = form_value(body, "password").unwrap_or_default();
    let Some(user) = st.user(&username) else {
        return invalid_grant("authentication failure");
    };
    let ok = password == user.user.password
        || password == format!("{}{}", user.user.password, user.user.security_token);
    if !ok {
        return invalid_grant("authentication failure");
    }
    let refresh = app.password_grant_refresh_token.then(|| {
        st.auth
            .lock()
            .issue_refresh(&app.client_id, &user.user.username, &user.id, &app.scopes)
    });
    issue(
        st,
        Issue {
            client_id: &app.client_id,
            username: &user.user.username,
            user_id: &user.id,
            scopes: &app.scopes,
            refresh,
            from_refresh: None,
            client_credentials: false,
        },
    )
}

fn refresh_grant(st: &SfState, headers: &HeaderMap, body: &[u8]) -> Response {
    let (id, secret) = client_credentials(headers, body);
    let app = match check_client(st, id.as_deref(), secret.as_deref(), false) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(rt) = form_value(body, "refresh_token") else {
        return invalid_grant("expired access/refresh token");
    };
    let grant = st.auth.lock().refresh_grant(&rt).cloned();
    let Some(grant) = grant.filter(|g| g.client_id == app.client_id) else {
        return invalid_grant("expired access/refresh token");
    };
    issue(
        st,
        Issue {
            client_id: &app.client_id,
            username: &grant.username,
            user_id: &grant.user_id,
            scopes: &grant.scopes,
            refresh: None,
            from_refresh: Some(rt),
            client_credentials: false,
        },
    )
}

fn client_credentials_grant(st: &SfState, headers: &HeaderMap, body: &[u8]) -> Response {
    let (id, secret) = client_credentials(headers, body);
    let app = match check_client(st, id.as_deref(), secret.as_deref(), true) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(user) = app.run_as.as_deref().and_then(|u| st.user(u)) else {
        return invalid_grant("no client credentials user enabled");
    };
    issue(
        st,
        Issue {
            client_id: &app.client_id,
            username: &user.user.username,
            user_id: &user.id,
            scopes: &app.scopes,
            refresh: None,
            from_refresh: None,
            client_credentials: true,
        },
    )
}

#[derive(serde::Deserialize)]
struct JwtClaims {
    iss: String,
    sub: String,
    aud: Value,
    exp: i64,
}

fn jwt_grant(st: &SfState, body: &[u8]) -> Response {
    use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
    let Some(assertion) = form_value(body, "assertion") else {
        return invalid_grant("invalid assertion");
    };
    // Read the issuer first (unverified) to find the app and its key.
    let Ok(header) = decode_header(&assertion) else {
        return invalid_grant("invalid assertion");
    };
    if header.alg != Algorithm::RS256 {
        return invalid_grant("invalid assertion");
    }
    let Ok(unverified) = jsonwebtoken::dangerous::insecure_decode::<JwtClaims>(&assertion) else {
        return invalid_grant("invalid assertion");
    };
    let Some(app) = st.app(&unverified.claims.iss) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_id",
            "client identifier invalid",
        );
    };
    let Some(pem) = app.jwt_public_key_pem.as_deref() else {
        return invalid_grant("invalid assertion");
    };
    let Ok(key) = DecodingKey::from_rsa_pem(pem.as_bytes()) else {
        return invalid_grant("invalid assertion");
    };
    let mut v = Validation::new(Algorithm::RS256);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let Ok(verified) = decode::<JwtClaims>(&assertion, &key, &v) else {
        return invalid_grant("invalid assertion");
    };
    let claims = verified.claims;
    if claims.exp <= st.clock.wall().timestamp() {
        return invalid_grant("invalid assertion");
    }
    let own = st.public_url();
    let aud_ok = |a: &str| {
        let a = a.trim_end_matches('/');
        a == "https://login.salesforce.com" || a == "https://test.salesforce.com" || a == own
    };
    let audience_ok = match &claims.aud {
        Value::String(a) => aud_ok(a),
        Value::Array(list) => list.iter().filter_map(Value::as_str).any(aud_ok),
        _ => false,
    };
    if !audience_ok {
        return invalid_grant("audience is invalid");
    }
    let Some(user) = st.user(&claims.sub) else {
        return invalid_grant("user hasn't approved this consumer");
    };
    issue(
        st,
        Issue {
            client_id: &app.client_id,
            username: &user.user.username,
            user_id: &user.id,
            scopes: &app.scopes,
            refresh: None,
            from_refresh: None,
            client_credentials: false,
        },
    )
}

fn do_revoke(st: &SfState, token: Option<String>) -> Response {
    match token {
        Some(t) if st.auth.lock().revoke(&t) => StatusCode::OK.into_response(),
        Some(_) => oauth_error(StatusCode::BAD_REQUEST, "invalid_token", "invalid token"),
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_token_type",
            "this token type is not supported",
        ),
    }
}

async fn revoke(State(st): State<Arc<SfState>>, body: Bytes) -> Response {
    do_revoke(&st, form_value(&body, "token"))
}

async fn revoke_get(State(st): State<Arc<SfState>>, RawQuery(q): RawQuery) -> Response {
    do_revoke(&st, q.and_then(|q| form_value(q.as_bytes(), "token")))
}

async fn introspect(State(st): State<Arc<SfState>>, headers: HeaderMap, body: Bytes) -> Response {
    let (id, secret) = client_credentials(&headers, &body);
    if let Err(r) = check_client(&st, id.as_deref(), secret.as_deref(), true) {
        return r;
    }
    let Some(token) = form_value(&body, "token") else {
        return json_response(StatusCode::OK, &json!({"active": false}));
    };
    let now = st.clock.elapsed();
    let auth = st.auth.lock();
    if let Ok(s) = auth.check(&token, now) {
        let iat = s.issued_epoch_ms / 1000;
        let exp = iat + (s.expires.saturating_sub(s.issued)).as_secs() as i64;
        return json_response(
            StatusCode::OK,
            &json!({
                "active": true,
                "scope": s.scopes.join(" "),
                "client_id": s.client_id,
                "username": s.username,
                "sub": st.identity_url(&s.user_id),
                "token_type": "access_token",
                "exp": exp,
                "iat": iat,
                "nbf": iat,
            }),
        );
    }
    if let Some(g) = auth.refresh_grant(&token) {
        return json_response(
            StatusCode::OK,
            &json!({
                "active": true,
                "scope": g.scopes.join(" "),
                "client_id": g.client_id,
                "username": g.username,
                "sub": st.identity_url(&g.user_id),
                "token_type": "refresh_token",
            }),
        );
    }
    json_response(StatusCode::OK, &json!({"active": false}))
}

fn identity_body(st: &SfState, user_id: &str) -> Option<Value> {
    let user = st.users.iter().find(|u| u.id == user_id)?;
    let url = st.public_url();
    Some(json!({
        "id": st.identity_url(&user.id),
        "user_id": user.id,
        "organization_id": st.org_id,
        "username": user.user.username,
        "display_name": format!("{} {}", user.user.first_name, user.user.last_name),
        "email": user.user.username,
        "active": true,
        "urls": {
            "rest": format!("{url}/services/data/v{{version}}/"),
            "sobjects": format!("{url}/services/data/v{{version}}/sobjects/"),
            "query": format!("{url}/services/data/v{{version}}/query/"),
        },
    }))
}

fn caller(st: &SfState, headers: &HeaderMap) -> Option<String> {
    let token = bearer_token(headers)?;
    let now = st.clock.elapsed();
    st.auth
        .lock()
        .check(token, now)
        .ok()
        .map(|s| s.user_id.clone())
}

async fn identity(State(st): State<Arc<SfState>>, headers: HeaderMap) -> Response {
    match caller(&st, &headers).and_then(|id| identity_body(&st, &id)) {
        Some(body) => json_response(StatusCode::OK, &body),
        None => super::errors::SfError::invalid_session().into_response(),
    }
}

async fn userinfo(State(st): State<Arc<SfState>>, headers: HeaderMap) -> Response {
    match caller(&st, &headers).and_then(|id| identity_body(&st, &id)) {
        Some(body) => json_response(
            StatusCode::OK,
            &json!({
                "sub": body["id"],
                "user_id": body["user_id"],
                "organization_id": body["organization_id"],
                "preferred_username": body["username"],
                "name": body["display_name"],
                "email": body["email"],
            }),
        ),
        None => oauth_error(StatusCode::FORBIDDEN, "Bad_OAuth_Token", "Bad_OAuth_Token"),
    }
}
