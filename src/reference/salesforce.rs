//! The reference integration's Salesforce client: OAuth (password grant) with single-flight
//! re-login on INVALID_SESSION_ID, the REST calls the flows need, `Sforce-Limit-Info`
//! headroom, and drift handling (what the org refuses is learnt in [`super::drift`]; a retired
//! API version is replaced by the newest the org offers, and not sent again meanwhile).

use std::time::Duration;

use http::Method;
use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use tokio::time::Instant;

use super::defect::{Defect, Defects};
use super::drift::{creates, object_of, Drift, HoldState};
use super::resilience::{error_code, CallError, Dependency};
use super::Settings;
use crate::transport::{urlencode, HttpRequest, HttpResponse};

/// A live session.
#[derive(Clone, Debug)]
struct Session {
    token: String,
    instance: String,
}

/// Why a Salesforce step failed.
#[derive(Debug, thiserror::Error)]
pub enum SfError {
    /// No answer (breaker open, timeouts, connection errors).
    #[error(transparent)]
    Call(#[from] CallError),
    /// Salesforce answered with an error.
    #[error("Salesforce answered {status} {code}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// `errorCode`.
        code: String,
        /// `message`.
        message: String,
    },
}

impl SfError {
    fn from_response(r: &HttpResponse) -> Self {
        let v = r.json();
        SfError::Status {
            status: r.status,
            code: error_code(r).unwrap_or_else(|| {
                v.get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            }),
            message: v
                .get(0)
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        }
    }
}

/// The client.
#[derive(Debug)]
pub struct Salesforce {
    /// The dependency (breaker, retries).
    pub dep: Dependency,
    settings: Settings,
    defects: Defects,
    session: tokio::sync::Mutex<Option<Session>>,
    /// The newest session, for building each attempt's request without waiting on a login.
    latest: RwLock<Option<Session>>,
    version: RwLock<String>,
    /// The version the org answered UNSUPPORTED_API_VERSION to: not sent again until the
    /// versions list names another.
    retired: Mutex<Option<String>>,
    /// Schema drift learnt from the org's refusals.
    drift: Drift,
    /// User ids by username.
    users: Mutex<std::collections::HashMap<String, String>>,
    /// Logins paused after the token endpoint refused one.
    login_pause: Mutex<Option<LoginPause>>,
}

/// After the token endpoint refuses a login (an answer, such as `invalid_grant`; a call that
/// got no answer is the breaker's business), logins pause: [`FIRST_LOGIN_PAUSE`], doubling up
/// to [`MAX_LOGIN_PAUSE`] while refusals go on. Callers meanwhile fail at once, unsent: an
/// org refusing the credentials is not asked again at the workload's rate (Salesforce locks
/// a user out after repeated failed logins).
#[derive(Debug)]
struct LoginPause {
    until: Instant,
    wait: Duration,
    why: String,
}

/// The first pause after a refused login.
const FIRST_LOGIN_PAUSE: Duration = Duration::from_millis(500);
/// The longest pause between logins while they are refused.
const MAX_LOGIN_PAUSE: Duration = Duration::from_secs(4);

/// The id in a write's success answer. A success whose body cannot be read is no proof the
/// record was written as sent: an unknown outcome, which a booking compensates.
fn record_id(r: &HttpResponse) -> Result<String, SfError> {
    r.json()["id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| SfError::Status {
            status: r.status,
            code: "UNREADABLE_ANSWER".into(),
            message: "a success answer without a readable record id".into(),
        })
}

impl Salesforce {
    /// A client for the org in `settings`.
    pub fn new(dep: Dependency, settings: Settings, defects: Defects) -> Self {
        let version = settings.api_version.clone();
        let drift = Drift::new(!defects.has(Defect::NoDriftHandling));
        Self {
            dep,
            settings,
            defects,
            session: tokio::sync::Mutex::new(None),
            latest: RwLock::new(None),
            version: RwLock::new(version),
            retired: Mutex::default(),
            drift,
            users: Mutex::default(),
            login_pause: Mutex::default(),
        }
    }

    async fn login(&self, deadline: Instant) -> Result<Session, SfError> {
        if let Some(p) = &*self.login_pause.lock() {
            if Instant::now() < p.until {
                return Err(SfError::Status {
                    status: 400,
                    code: "LOGIN_PAUSED".into(),
                    message: format!("not sent: the last login was refused ({})", p.why),
                });
            }
        }
        let s = &self.settings;
        let req = HttpRequest::new(
            Method::POST,
            format!(
                "{}/services/oauth2/token",
                s.login_url.trim_end_matches('/')
            ),
        )
        .form(&[
            ("grant_type", "password"),
            ("client_id", &s.client_id),
            ("client_secret", &s.client_secret),
            ("username", &s.username),
            ("password", &s.password),
        ]);
        let r = self.dep.call(&req, deadline).await?;
        if r.status != 200 {
            let e = SfError::from_response(&r);
            let mut pause = self.login_pause.lock();
            let wait = pause
                .as_ref()
                .map_or(FIRST_LOGIN_PAUSE, |p| (p.wait * 2).min(MAX_LOGIN_PAUSE));
            *pause = Some(LoginPause {
                until: Instant::now() + wait,
                wait,
                why: e.to_string(),
            });
            return Err(e);
        }
        *self.login_pause.lock() = None;
        let v = r.json();
        match (v["access_token"].as_str(), v["instance_url"].as_str()) {
            (Some(t), Some(i)) => Ok(Session {
                token: t.to_string(),
                instance: i.trim_end_matches('/').to_string(),
            }),
            _ => Err(SfError::Status {
                status: r.status,
                code: "BAD_TOKEN_RESPONSE".into(),
                message: "no access_token in the token response".into(),
            }),
        }
    }

    /// The current session, logging in if there is none (one login at a time).
    async fn current(&self, deadline: Instant) -> Result<Session, SfError> {
        let mut s = self.session.lock().await;
        if let Some(x) = &*s {
            return Ok(x.clone());
        }
        let fresh = self.login(deadline).await?;
        *s = Some(fresh.clone());
        *self.latest.write() = Some(fresh.clone());
        Ok(fresh)
    }

    /// A new session after `stale` died: single flight (whoever comes second uses the first
    /// caller's new token), unless the `refresh-storm` defect is on.
    async fn renew(&self, stale: &str, deadline: Instant) -> Result<Session, SfError> {
        if self.defects.has(Defect::RefreshStorm) {
            let fresh = self.login(deadline).await?;
            *self.session.lock().await = Some(fresh.clone());
            *self.latest.write() = Some(fresh.clone());
            return Ok(fresh);
        }
        let mut s = self.session.lock().await;
        if let Some(x) = &*s {
            if x.token != stale {
                return Ok(x.clone());
            }
        }
        let fresh = match self.login(deadline).await {
            Ok(f) => f,
            Err(e) => {
                // The session is dead and none replaced it: callers log in (or fail while
                // logins pause) instead of sending requests with the dead token.
                *s = None;
                *self.latest.write() = None;
                return Err(e);
            }
        };
        *s = Some(fresh.clone());
        *self.latest.write() = Some(fresh.clone());
        Ok(fresh)
    }

    /// One REST call on the data API (`path` after `/services/data/vXX.X`), authenticated,
    /// with one re-login on INVALID_SESSION_ID and one version upgrade on
    /// UNSUPPORTED_API_VERSION. The body goes without the fields learnt to be refused.
    pub async fn rest(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<HttpResponse, SfError> {
        let mut session = self.current(deadline).await?;
        let mut renewed = false;
        let mut upgraded = false;
        loop {
            if self.retired.lock().as_deref() == Some(self.version.read().as_str()) {
                // Known retired (another call learnt it): the new version first, or nothing.
                upgraded = true;
                self.upgrade_version(&session, deadline).await?;
            }
            // Each attempt carries the newest session (another caller may have renewed it
            // while this one waited), unless the client never refreshes.
            // What the last attempt carried: (token, API version).
            let sent = std::sync::Mutex::new((session.token.clone(), String::new()));
            let build = |retry: u32| {
                // A retry of a write that could create a record, once the org requires a field
                // the integration cannot fill, would only be refused.
                // Checked on retries only: first attempts were let through by `may_create`.
                if retry > 0 {
                    if let Some(object) = creates(&method, path).filter(|o| self.drift.is_held(o)) {
                        return Err(format!(
                            "{object} requires a field this integration cannot fill"
                        ));
                    }
                }
                let s = match &*self.latest.read() {
                    Some(l) if !self.defects.has(Defect::NoRefresh) => l.clone(),
                    _ => session.clone(),
                };
                let version = self.version.read().clone();
                if let Ok(mut carried) = sent.lock() {
                    *carried = (s.token.clone(), version.clone());
                }
                let mut req = HttpRequest::new(
                    method.clone(),
                    format!("{}/services/data/v{version}{path}", s.instance),
                )
                .header("authorization", &format!("Bearer {}", s.token));
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                if let Some(b) = body {
                    // Built per attempt: a retry leaves out what another caller has meanwhile
                    // learnt the org refuses (schema drift).
                    req = req.json(&self.drift.without_dropped(b));
                }
                Ok(req)
            };
            let r = self.dep.call_with(build, deadline).await?;
            let (token, version) = sent.into_inner().unwrap_or_default();
            session.token = token;
            self.watch_headroom(&r);
            if r.status == 401 && !renewed && !self.defects.has(Defect::NoRefresh) {
                renewed = true;
                session = self.renew(&session.token, deadline).await?;
                continue;
            }
            if r.status == 410
                && !self.defects.has(Defect::NoDriftHandling)
                && error_code(&r).as_deref() == Some("UNSUPPORTED_API_VERSION")
            {
                *self.retired.lock() = Some(version);
                if !upgraded {
                    upgraded = true;
                    self.upgrade_version(&session, deadline).await?;
                    continue;
                }
            }
            return Ok(r);
        }
    }

    /// `Sforce-Limit-Info: api-usage=N/M`: with under 2% of the daily quota left, pause.
    fn watch_headroom(&self, r: &HttpResponse) {
        if self.defects.has(Defect::NoBreaker) {
            return;
        }
        let Some(info) = r.header("sforce-limit-info") else {
            return;
        };
        let usage = info
            .split(',')
            .find_map(|p| p.trim().strip_prefix("api-usage="))
            .and_then(|u| u.split_once('/'))
            .and_then(|(a, b)| Some((a.parse::<f64>().ok()?, b.parse::<f64>().ok()?)));
        if let Some((used, max)) = usage {
            if max > 0.0 && used >= max * 0.98 {
                self.dep.breaker.trip(Duration::from_secs(2));
            }
        }
    }

    /// The newest version of the org's versions list replaces a retired one. An unreadable
    /// list (or one naming only the retired version) is an error: sending the retired version
    /// again would only be refused again.
    async fn upgrade_version(&self, s: &Session, deadline: Instant) -> Result<(), SfError> {
        let req = HttpRequest::new(Method::GET, format!("{}/services/data", s.instance));
        let r = self.dep.call(&req, deadline).await?;
        let newest = r
            .json()
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["version"].as_str()?.parse::<f64>().ok())
            .fold(0.0f64, f64::max);
        let newest = format!("{newest:.1}");
        let mut retired = self.retired.lock();
        if newest == "0.0" || retired.as_deref() == Some(newest.as_str()) {
            return Err(SfError::Status {
                status: 410,
                code: "UNSUPPORTED_API_VERSION".into(),
                message: format!(
                    "not sent: API version {} is retired and the org's versions list (status \
                     {}) names no other",
                    retired.as_deref().unwrap_or("?"),
                    r.status
                ),
            });
        }
        *self.version.write() = newest;
        *retired = None;
        Ok(())
    }

    /// A write with drift handling: on INVALID_FIELD for an optional field, once more without
    /// it; on REQUIRED_FIELD_MISSING for a field it does not have, the object's creating writes
    /// are held (see [`super::drift`]).
    pub async fn write(
        &self,
        method: Method,
        path: &str,
        fields: &Value,
        headers: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<HttpResponse, SfError> {
        // `rest` leaves out the fields learnt to be refused on every attempt.
        let r = self
            .rest(method.clone(), path, Some(fields), headers, deadline)
            .await?;
        if self.drift.learn_refused_field(&r, fields) {
            return self
                .rest(method, path, Some(fields), headers, deadline)
                .await;
        }
        if let Some(object) = object_of(path) {
            self.drift.learn_required(object, &r, fields);
        }
        Ok(r)
    }

    /// A SOQL query's records.
    pub async fn query(&self, soql: &str, deadline: Instant) -> Result<Vec<Value>, SfError> {
        let r = self
            .rest(
                Method::GET,
                &format!("/query?q={}", urlencode(soql)),
                None,
                &[],
                deadline,
            )
            .await?;
        if r.status != 200 {
            return Err(SfError::from_response(&r));
        }
        Ok(r.json()["records"].as_array().cloned().unwrap_or_default())
    }

    /// The id of an org user by username (cached).
    pub async fn user_id(&self, username: &str, deadline: Instant) -> Result<String, SfError> {
        if let Some(id) = self.users.lock().get(username) {
            return Ok(id.clone());
        }
        let rows = self
            .query(
                &format!(
                    "SELECT Id FROM User WHERE Username = '{}'",
                    username.replace('\'', "\\'")
                ),
                deadline,
            )
            .await?;
        let id = rows
            .first()
            .and_then(|r| r["Id"].as_str())
            .ok_or_else(|| SfError::Status {
                status: 404,
                code: "NOT_FOUND".into(),
                message: format!("no user {username}"),
            })?
            .to_string();
        self.users.lock().insert(username.to_string(), id.clone());
        Ok(id)
    }

    /// Whether a write that could create a record of `object` may go out: `Err` while the
    /// org requires a field the integration cannot fill. One caller per period reads the
    /// object's describe to see whether the requirement is gone.
    async fn may_create(&self, object: &str, deadline: Instant) -> Result<(), SfError> {
        match self.drift.hold(object) {
            HoldState::Clear => Ok(()),
            HoldState::Held(e) => Err(e),
            HoldState::Probe => {
                let path = format!("/sobjects/{object}/describe");
                let describe = match self.rest(Method::GET, &path, None, &[], deadline).await {
                    Ok(r) if r.status == 200 => Some(r.json()),
                    _ => None,
                };
                self.drift.probed(object, describe.as_ref())
            }
        }
    }

    /// Upsert by external id: `(id, created)`. While creating `object`s is held (a field the
    /// org now requires), only an existing record is written.
    pub async fn upsert(
        &self,
        object: &str,
        field: &str,
        value: &str,
        fields: &Value,
        deadline: Instant,
    ) -> Result<(String, bool), SfError> {
        let path = format!("/sobjects/{object}/{field}/{}", urlencode(value));
        if let Err(held) = self.may_create(object, deadline).await {
            if self.get(&path, deadline).await?.is_none() {
                return Err(held);
            }
        }
        let r = self
            .write(Method::PATCH, &path, fields, &[], deadline)
            .await?;
        match r.status {
            200 | 201 => Ok((record_id(&r)?, r.status == 201)),
            _ => Err(SfError::from_response(&r)),
        }
    }

    /// Create with POST: the new id.
    pub async fn create(
        &self,
        object: &str,
        fields: &Value,
        deadline: Instant,
    ) -> Result<String, SfError> {
        self.may_create(object, deadline).await?;
        let r = self
            .write(
                Method::POST,
                &format!("/sobjects/{object}"),
                fields,
                &[],
                deadline,
            )
            .await?;
        match r.status {
            201 => record_id(&r),
            _ => Err(SfError::from_response(&r)),
        }
    }

    /// A record by id or by external id, with its ETag; `None` when it does not exist.
    pub async fn get(
        &self,
        path: &str,
        deadline: Instant,
    ) -> Result<Option<(Value, String)>, SfError> {
        let r = self.rest(Method::GET, path, None, &[], deadline).await?;
        match r.status {
            // A record without a readable Id is no answer (a garbled body).
            200 if r.json()["Id"].is_string() => Ok(Some((
                r.json(),
                r.header("etag").unwrap_or_default().to_string(),
            ))),
            200 => Err(SfError::Status {
                status: 200,
                code: "UNREADABLE_ANSWER".into(),
                message: "a record without a readable Id".into(),
            }),
            404 => Ok(None),
            _ => Err(SfError::from_response(&r)),
        }
    }

    /// Update by id, conditionally on `etag` when given (unless `blind-overwrite` is on).
    /// `Ok(false)`: the precondition failed (412: someone changed the record).
    pub async fn update(
        &self,
        object: &str,
        id: &str,
        fields: &Value,
        etag: Option<&str>,
        deadline: Instant,
    ) -> Result<bool, SfError> {
        let etag = etag.filter(|_| !self.defects.has(Defect::BlindOverwrite));
        let headers: Vec<(&str, &str)> = etag.map(|e| ("if-match", e)).into_iter().collect();
        let r = self
            .write(
                Method::PATCH,
                &format!("/sobjects/{object}/{id}"),
                fields,
                &headers,
                deadline,
            )
            .await?;
        match r.status {
            200 | 204 => Ok(true),
            412 => Ok(false),
            _ => Err(SfError::from_response(&r)),
        }
    }

    /// Delete by id (a record already gone counts as deleted).
    pub async fn delete(&self, object: &str, id: &str, deadline: Instant) -> Result<(), SfError> {
        let r = self
            .rest(
                Method::DELETE,
                &format!("/sobjects/{object}/{id}"),
                None,
                &[],
                deadline,
            )
            .await?;
        match r.status {
            204 | 404 => Ok(()),
            _ => Err(SfError::from_response(&r)),
        }
    }

    /// A JSON value for a write, in one place so flows read well.
    pub fn fields(pairs: &[(&str, Value)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_leave_out_nulls() {
        let v = Salesforce::fields(&[("A", json!(1)), ("B", Value::Null)]);
        assert_eq!(v, json!({"A": 1}));
    }
}
