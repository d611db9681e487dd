//! The reference integration's Salesforce client: OAuth (password grant) with single-flight
//! re-login on INVALID_SESSION_ID, the REST calls the flows need, `Sforce-Limit-Info`
//! headroom, and drift handling (fields the org rejects are dropped; a retired API version is
//! replaced by the newest the org offers).

use std::collections::BTreeSet;
use std::time::Duration;

use http::Method;
use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use tokio::time::Instant;

use super::defect::{Defect, Defects};
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
    /// Optional fields the org rejected (drift): not sent again.
    dropped: Mutex<BTreeSet<String>>,
    /// Values a restricted picklist withdrew, by field: the field is left out when it would
    /// carry one.
    withdrawn: Mutex<BTreeSet<(String, String)>>,
    /// User ids by username.
    users: Mutex<std::collections::HashMap<String, String>>,
}

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

/// Fields a booking cannot do without (never dropped on drift).
const REQUIRED: [&str; 4] = ["LastName", "StartDateTime", "EndDateTime", "Booking_Key__c"];

impl Salesforce {
    /// A client for the org in `settings`.
    pub fn new(dep: Dependency, settings: Settings, defects: Defects) -> Self {
        let version = settings.api_version.clone();
        Self {
            dep,
            settings,
            defects,
            session: tokio::sync::Mutex::new(None),
            latest: RwLock::new(None),
            version: RwLock::new(version),
            dropped: Mutex::default(),
            withdrawn: Mutex::default(),
            users: Mutex::default(),
        }
    }

    async fn login(&self, deadline: Instant) -> Result<Session, SfError> {
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
            return Err(SfError::from_response(&r));
        }
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
        let fresh = self.login(deadline).await?;
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
            // Each attempt carries the newest session (another caller may have renewed it
            // while this one waited), unless the client never refreshes.
            let sent = std::sync::Mutex::new(session.token.clone());
            let build = || {
                let s = match &*self.latest.read() {
                    Some(l) if !self.defects.has(Defect::NoRefresh) => l.clone(),
                    _ => session.clone(),
                };
                if let Ok(mut t) = sent.lock() {
                    *t = s.token.clone();
                }
                let version = self.version.read().clone();
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
                    req = req.json(&self.without_dropped(b));
                }
                req
            };
            let r = self.dep.call_with(build, deadline).await?;
            session.token = sent.into_inner().unwrap_or_default();
            self.watch_headroom(&r);
            if r.status == 401 && !renewed && !self.defects.has(Defect::NoRefresh) {
                renewed = true;
                session = self.renew(&session.token, deadline).await?;
                continue;
            }
            if r.status == 410
                && !upgraded
                && !self.defects.has(Defect::NoDriftHandling)
                && error_code(&r).as_deref() == Some("UNSUPPORTED_API_VERSION")
            {
                upgraded = true;
                self.upgrade_version(&session, deadline).await?;
                continue;
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
        if newest > 0.0 {
            *self.version.write() = format!("{newest:.1}");
        }
        Ok(())
    }

    /// Drop the fields the org dropped (drift), unless `no-drift-handling`.
    fn without_dropped(&self, fields: &Value) -> Value {
        if self.defects.has(Defect::NoDriftHandling) {
            return fields.clone();
        }
        let dropped = self.dropped.lock();
        let withdrawn = self.withdrawn.lock();
        let mut out = fields.clone();
        if let Some(m) = out.as_object_mut() {
            m.retain(|k, v| {
                !dropped.contains(k)
                    && !v
                        .as_str()
                        .is_some_and(|v| withdrawn.contains(&(k.clone(), v.to_string())))
            });
        }
        out
    }

    /// A write the org refused with INVALID_FIELD for an optional field, or with a value a
    /// restricted picklist withdrew: remember to leave that field (or that value) out, and say
    /// whether a retry without it makes sense.
    fn learn_drift(&self, r: &HttpResponse, sent: &Value) -> bool {
        let code = error_code(r);
        let picklist = code.as_deref() == Some("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
        if self.defects.has(Defect::NoDriftHandling)
            || r.status != 400
            || !(picklist || code.as_deref() == Some("INVALID_FIELD"))
        {
            return false;
        }
        let v = r.json();
        let mut fields: Vec<String> = v[0]["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect();
        if fields.is_empty() {
            // "No such column 'X' on sobject of type Y"
            let msg = v[0]["message"].as_str().unwrap_or_default();
            if let Some(name) = msg.split('\'').nth(1) {
                fields.push(name.to_string());
            }
        }
        let optional: Vec<String> = fields
            .into_iter()
            .filter(|f| !REQUIRED.contains(&f.as_str()) && sent.get(f).is_some())
            .collect();
        if optional.is_empty() {
            return false;
        }
        if picklist {
            // Only that value is gone: the field stays for the others.
            self.withdrawn.lock().extend(
                optional
                    .into_iter()
                    .filter_map(|f| Some((f.clone(), sent.get(&f)?.as_str()?.to_string()))),
            );
        } else {
            self.dropped.lock().extend(optional);
        }
        true
    }

    /// A write with drift handling: on INVALID_FIELD for an optional field, once more without it.
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
        if self.learn_drift(&r, fields) {
            return self
                .rest(method, path, Some(fields), headers, deadline)
                .await;
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

    /// Upsert by external id: `(id, created)`.
    pub async fn upsert(
        &self,
        object: &str,
        field: &str,
        value: &str,
        fields: &Value,
        deadline: Instant,
    ) -> Result<(String, bool), SfError> {
        let path = format!("/sobjects/{object}/{field}/{}", urlencode(value));
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
