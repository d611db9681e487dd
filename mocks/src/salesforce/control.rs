//! The control namespace `/__crashcart/…`, outside Salesforce's paths: history, state, records,
//! the write log, and live session/quota controls for tooling and game days.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::SessionFilter;
use super::errors::json_response;
use super::SfState;

pub(crate) fn routes() -> Router<Arc<SfState>> {
    Router::new()
        .route("/__crashcart/history", get(history))
        .route("/__crashcart/state", get(state))
        .route("/__crashcart/records/{object}", get(records))
        .route("/__crashcart/writes", get(writes))
        .route("/__crashcart/sessions/expire", post(expire))
        .route("/__crashcart/refresh-tokens", post(mint))
        .route("/__crashcart/refresh-tokens/revoke", post(revoke))
        .route("/__crashcart/limits", put(set_limits))
}

fn bad(message: impl Into<String>) -> Response {
    json_response(StatusCode::BAD_REQUEST, &json!({"error": message.into()}))
}

fn parse<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> Result<T, Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

async fn history(State(st): State<Arc<SfState>>, RawQuery(q): RawQuery) -> Response {
    json_response(
        StatusCode::OK,
        &json!(st.history.page_for_query(q.as_deref())),
    )
}

async fn state(State(st): State<Arc<SfState>>) -> Response {
    let org = st.org.read();
    let counts: serde_json::Map<String, Value> = org
        .schema
        .objects()
        .map(|o| (o.name.clone(), json!(org.data.live_count(&o.name))))
        .collect();
    let body = json!({
        "org_id": st.org_id,
        "instance_url": st.public_url(),
        "api_usage": {"used": st.api_used.load(Ordering::Relaxed), "max": st.api_max.load(Ordering::Relaxed)},
        "live_sessions": st.auth.lock().live_sessions(st.clock.elapsed()),
        "records": counts,
        "writes": org.data.writes_logged(),
        "requests": st.history.completed(),
    });
    json_response(StatusCode::OK, &body)
}

async fn records(State(st): State<Arc<SfState>>, Path(object): Path<String>) -> Response {
    let handle = super::SalesforceHandle { state: st };
    if handle.with_org(|o| o.schema.object(&object).is_none()) {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": format!("unknown object {object}")}),
        );
    }
    json_response(StatusCode::OK, &json!(handle.records(&object)))
}

async fn writes(State(st): State<Arc<SfState>>) -> Response {
    json_response(StatusCode::OK, &json!(st.org.read().data.writes()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterBody {
    client_id: Option<String>,
    username: Option<String>,
    share: Option<f64>,
}

impl FilterBody {
    fn into_filter(self) -> Result<SessionFilter, Response> {
        if let Some(s) = self.share {
            if !(0.0..=1.0).contains(&s) {
                return Err(bad("share must be between 0 and 1"));
            }
        }
        Ok(SessionFilter {
            client_id: self.client_id,
            username: self.username,
            share: self.share,
        })
    }
}

async fn expire(State(st): State<Arc<SfState>>, body: Bytes) -> Response {
    let filter = match parse::<FilterBody>(&body).and_then(FilterBody::into_filter) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let n = st.auth.lock().expire(&filter, st.clock.elapsed());
    json_response(StatusCode::OK, &json!({"expired": n}))
}

async fn revoke(State(st): State<Arc<SfState>>, body: Bytes) -> Response {
    let filter = match parse::<FilterBody>(&body).and_then(FilterBody::into_filter) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let n = st.auth.lock().revoke_refresh(&filter);
    json_response(StatusCode::OK, &json!({"revoked": n}))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MintBody {
    client_id: Option<String>,
    username: Option<String>,
}

async fn mint(State(st): State<Arc<SfState>>, body: Bytes) -> Response {
    let b: MintBody = match parse(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let client_id = b
        .client_id
        .unwrap_or_else(|| st.config.apps[0].client_id.clone());
    let username = b
        .username
        .unwrap_or_else(|| st.users[0].user.username.clone());
    let handle = super::SalesforceHandle { state: st };
    match handle.mint_refresh_token(&client_id, &username) {
        Some(t) => json_response(StatusCode::OK, &json!({"refresh_token": t})),
        None => bad(format!(
            "unknown client_id {client_id} or username {username}"
        )),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsBody {
    used: Option<u64>,
    max: Option<u64>,
}

async fn set_limits(State(st): State<Arc<SfState>>, body: Bytes) -> Response {
    let b: LimitsBody = match parse(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(m) = b.max {
        st.api_max.store(m, Ordering::Relaxed);
    }
    if let Some(u) = b.used {
        st.api_used.store(u, Ordering::Relaxed);
    }
    (
        StatusCode::OK,
        axum::Json(json!({"used": st.api_used.load(Ordering::Relaxed), "max": st.api_max.load(Ordering::Relaxed)})),
    )
        .into_response()
}
