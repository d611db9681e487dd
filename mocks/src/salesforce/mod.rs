//! The mock Salesforce: OAuth 2.0 and SOAP login, the REST data API with a SOQL subset,
//! composite requests, governor-limit headers, conditional updates, and a request history.
//!
//! Module map:
//! - `config`, `schema`: what the org is (apps, users, quotas, objects, fields).
//! - `store`, `validate`, `ids`: the org's records and the rules writes must pass.
//! - `auth`: sessions and refresh tokens; `oauth`, `soap`: the login endpoints.
//! - `rest`: the data API under `/services/data`; `soql`: the query language; `composite`
//!   (`/composite` and `/composite/batch`), `tree` (`/composite/tree`) and `collections`
//!   (`/composite/sobjects`: create, update, upsert by external id, delete, retrieve).
//! - `streaming`: the Streaming API (CometD long polling) with Change Data Capture events.
//! - `bulk`: Bulk API 2.0 ingest and query jobs (CSV, background processing).
//! - `replication`: `updated`/`deleted` polling windows. `sosl`: search and parameterized search.
//! - `middleware`: history, fault hook, version/auth/quota gates around every request.
//! - `control`: the `/__crashcart/` namespace for tooling.
//! - `errors`: Salesforce-shaped error bodies.

pub mod auth;
mod bulk;
mod collections;
mod composite;
pub mod config;
mod control;
pub mod errors;
pub mod ids;
mod middleware;
mod oauth;
mod replication;
mod rest;
pub mod schema;
mod soap;
pub mod soql;
mod sosl;
pub mod store;
mod streaming;
mod tree;
pub mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use parking_lot::{Mutex, RwLock};
use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::error::MockError;
use crate::fault::{FaultHook, HookSlot};
use crate::history::History;
use crate::server::{self, ListenConfig, RunningServer, StopHandle, StopSignal};
use crate::tls::TlsMaterial;

pub use auth::SessionFilter;
pub use config::{ConnectedApp, OrgUser, SalesforceConfig};
pub use middleware::OPERATIONS;
pub use schema::OrgSchema;
pub use store::{Record, WriteLog};

/// The org: its schema and its data, locked together so drift and writes stay consistent.
#[derive(Debug)]
pub struct Org {
    /// Schema (mutable by drift faults).
    pub schema: OrgSchema,
    /// Records.
    pub data: store::OrgData,
}

/// A user known to the org, with its record id.
#[derive(Clone, Debug)]
pub(crate) struct KnownUser {
    pub(crate) user: OrgUser,
    pub(crate) id: String,
}

/// Shared state behind every handler.
pub(crate) struct SfState {
    pub(crate) config: SalesforceConfig,
    pub(crate) clock: Clock,
    pub(crate) history: Arc<History>,
    pub(crate) hook: HookSlot,
    pub(crate) auth: Mutex<auth::AuthStore>,
    pub(crate) org: RwLock<Org>,
    pub(crate) api_used: AtomicU64,
    pub(crate) api_max: AtomicU64,
    pub(crate) max_version: AtomicU64,
    pub(crate) retired_below: AtomicU64,
    pub(crate) public_url: RwLock<String>,
    pub(crate) org_id: String,
    pub(crate) users: Vec<KnownUser>,
    pub(crate) cursors: Mutex<rest::Cursors>,
    /// Bulk API 2.0 jobs and their controls.
    pub(crate) bulk: Mutex<bulk::BulkJobs>,
    /// Streaming API clients and their controls.
    pub(crate) streaming: Mutex<streaming::Streaming>,
    pub(crate) stop: StopSignal,
}

impl SfState {
    pub(crate) fn public_url(&self) -> String {
        self.public_url.read().clone()
    }
    pub(crate) fn user(&self, username: &str) -> Option<&KnownUser> {
        self.users
            .iter()
            .find(|u| u.user.username.eq_ignore_ascii_case(username))
    }
    pub(crate) fn app(&self, client_id: &str) -> Option<&ConnectedApp> {
        self.config.apps.iter().find(|a| a.client_id == client_id)
    }
    pub(crate) fn identity_url(&self, user_id: &str) -> String {
        format!("{}/id/{}/{}", self.public_url(), self.org_id, user_id)
    }
    pub(crate) fn now_us(&self) -> u64 {
        self.clock.elapsed().as_micros() as u64
    }
}

/// Builds a mock Salesforce. `MockSalesforce::builder().seed(7).start().await?`.
#[derive(Debug, Default)]
pub struct MockSalesforceBuilder {
    config: SalesforceConfig,
    listen: ListenConfig,
    extra_schemas: Vec<PathBuf>,
    hook: Option<Arc<dyn FaultHook>>,
    clock: Option<Clock>,
    history: Option<Arc<History>>,
}

impl MockSalesforceBuilder {
    /// Seed for ids, tokens and every random choice.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }
    /// Replace the whole configuration.
    pub fn config(mut self, config: SalesforceConfig) -> Self {
        self.config = config;
        self
    }
    /// Access-token lifetime.
    pub fn token_ttl(mut self, ttl: Duration) -> Self {
        self.config.token_ttl = ttl;
        self
    }
    /// Daily API quota.
    pub fn daily_api_limit(mut self, limit: u64) -> Self {
        self.config.daily_api_limit = limit;
        self
    }
    /// Records per query page.
    pub fn query_page_size(mut self, n: usize) -> Self {
        self.config.query_page_size = n.max(1);
        self
    }
    /// Merge a schema file (YAML/JSON) over the default schema at start.
    pub fn schema_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.extra_schemas.push(path.into());
        self
    }
    /// Bind address (default `127.0.0.1:0`).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.listen.bind = addr;
        self
    }
    /// Allow a non-loopback bind address.
    pub fn allow_non_loopback(mut self, allow: bool) -> Self {
        self.listen.allow_non_loopback = allow;
        self
    }
    /// Serve HTTPS.
    pub fn tls(mut self, tls: TlsMaterial) -> Self {
        self.listen.tls = Some(tls);
        self
    }
    /// Install a fault hook from the start.
    pub fn fault_hook(mut self, hook: Arc<dyn FaultHook>) -> Self {
        self.hook = Some(hook);
        self
    }
    /// Share a clock (e.g. with other mocks of the same run).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }
    /// Share a history (e.g. with other mocks of the same run).
    pub fn history(mut self, history: Arc<History>) -> Self {
        self.history = Some(history);
        self
    }

    fn build_state(mut self) -> Result<(Arc<SfState>, ListenConfig, StopHandle), MockError> {
        for path in &self.extra_schemas {
            self.config.schema.merge_file(path)?;
        }
        let config = self.config;
        let clock = self.clock.unwrap_or_default();
        let mut data = store::OrgData::new(config.seed);
        let org_id = ids::make_id(
            "00D",
            &format!("{:02}0", config.seed % 100),
            1 + config.seed % 1000,
        );
        let mut users = vec![];
        let user_obj = config
            .schema
            .object("User")
            .cloned()
            .ok_or_else(|| MockError::Invalid {
                path: "schema".into(),
                message: "objects.User: the org needs a User object".into(),
            })?;
        let integration_id = data.allocate_id(&user_obj);
        let actor = store::Actor {
            user_id: integration_id.clone(),
            username: None,
            now: clock.wall(),
            at_us: 0,
        };
        for (i, u) in config.users.iter().enumerate() {
            let mut fields = Map::new();
            fields.insert("Username".into(), Value::String(u.username.clone()));
            fields.insert("FirstName".into(), Value::String(u.first_name.clone()));
            fields.insert("LastName".into(), Value::String(u.last_name.clone()));
            fields.insert("Email".into(), Value::String(u.username.clone()));
            fields.insert("Title".into(), Value::String(u.title.clone()));
            // The first user's id was allocated above so it can stamp CreatedById on itself.
            let id = if i == 0 {
                data.insert_with_id(&config.schema, &user_obj, &integration_id, fields, &actor)
            } else {
                data.create(&config.schema, &user_obj, fields, &actor)
            }
            .map_err(|e| MockError::Invalid {
                path: "config.users".into(),
                message: format!("user {}: {} {}", u.username, e.code, e.message),
            })?;
            users.push(KnownUser {
                user: u.clone(),
                id,
            });
        }
        let (stop, stop_signal) = StopHandle::new();
        let hook = HookSlot::default();
        if let Some(h) = self.hook {
            hook.set(h);
        }
        let state = Arc::new(SfState {
            auth: Mutex::new(auth::AuthStore::new(
                config.seed,
                org_id.clone(),
                config.token_ttl,
            )),
            org: RwLock::new(Org {
                schema: config.schema.clone(),
                data,
            }),
            api_used: AtomicU64::new(config.initial_api_usage),
            api_max: AtomicU64::new(config.daily_api_limit),
            max_version: AtomicU64::new(config.max_api_version as u64),
            retired_below: AtomicU64::new(config.min_api_version as u64),
            public_url: RwLock::new(String::from("http://127.0.0.1")),
            org_id,
            users,
            cursors: Mutex::new(rest::Cursors::default()),
            bulk: Mutex::new(bulk::BulkJobs::default()),
            streaming: Mutex::new(streaming::Streaming::default()),
            stop: stop_signal,
            history: self.history.unwrap_or_else(History::shared),
            hook,
            clock,
            config,
        });
        Ok((state, self.listen, stop))
    }

    /// Build the mock without a socket: a router to call in-process (simulation, tests).
    pub fn build_in_process(
        self,
        public_url: &str,
    ) -> Result<(Router, SalesforceHandle), MockError> {
        let (state, _listen, stop) = self.build_state()?;
        *state.public_url.write() = public_url.trim_end_matches('/').to_string();
        // Without a server nothing will ever stop; keep the sender alive with the state.
        std::mem::forget(stop);
        Ok((router(state.clone()), SalesforceHandle { state }))
    }

    /// Bind and start serving.
    pub async fn start(self) -> Result<MockSalesforce, MockError> {
        let (state, listen, stop) = self.build_state()?;
        let app = router(state.clone());
        let server = server::serve_with(app, &listen, stop, Some(middleware::HEAD_POLICY)).await?;
        *state.public_url.write() = server.base_url();
        Ok(MockSalesforce {
            server,
            handle: SalesforceHandle { state },
        })
    }
}

/// A running mock Salesforce.
#[derive(Debug)]
pub struct MockSalesforce {
    server: RunningServer,
    handle: SalesforceHandle,
}

impl MockSalesforce {
    /// Start building a mock.
    pub fn builder() -> MockSalesforceBuilder {
        MockSalesforceBuilder::default()
    }
    /// The address the mock listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
    /// The mock's own base URL (`http://127.0.0.1:PORT`), without trailing slash.
    pub fn url(&self) -> String {
        self.server.base_url()
    }
    /// The control handle: org state, sessions, history, faults.
    pub fn handle(&self) -> &SalesforceHandle {
        &self.handle
    }
    /// Stop the server gracefully (held requests are released) and wait for it.
    pub async fn shutdown(self) {
        self.handle.state.hook.clear();
        self.server.shutdown().await;
    }
}

/// Control of a mock org from the harness: state, sessions, quota, faults, history.
#[derive(Clone)]
pub struct SalesforceHandle {
    state: Arc<SfState>,
}

impl std::fmt::Debug for SalesforceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceHandle")
            .field("org_id", &self.state.org_id)
            .finish_non_exhaustive()
    }
}

/// Connection settings for a client of the mock, named as the SUT contract names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// `SALESFORCE_LOGIN_URL`.
    pub login_url: String,
    /// `SALESFORCE_INSTANCE_URL`.
    pub instance_url: String,
    /// `SALESFORCE_CLIENT_ID`.
    pub client_id: String,
    /// `SALESFORCE_CLIENT_SECRET`.
    pub client_secret: String,
    /// `SALESFORCE_USERNAME`.
    pub username: String,
    /// `SALESFORCE_PASSWORD`.
    pub password: String,
    /// `SALESFORCE_API_VERSION`.
    pub api_version: String,
}

impl ConnectionSettings {
    /// The settings as `(NAME, value)` pairs, in contract order.
    pub fn env_pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SALESFORCE_LOGIN_URL", self.login_url.clone()),
            ("SALESFORCE_INSTANCE_URL", self.instance_url.clone()),
            ("SALESFORCE_CLIENT_ID", self.client_id.clone()),
            ("SALESFORCE_CLIENT_SECRET", self.client_secret.clone()),
            ("SALESFORCE_USERNAME", self.username.clone()),
            ("SALESFORCE_PASSWORD", self.password.clone()),
            ("SALESFORCE_API_VERSION", self.api_version.clone()),
        ]
    }
}

impl SalesforceHandle {
    /// The request history.
    pub fn history(&self) -> Arc<History> {
        self.state.history.clone()
    }
    /// The org id (`00D…`).
    pub fn org_id(&self) -> &str {
        &self.state.org_id
    }
    /// The URL clients are told to use (`instance_url`). Defaults to the mock's own URL.
    pub fn public_url(&self) -> String {
        self.state.public_url()
    }
    /// Advertise a different URL as `instance_url` (e.g. a chaos proxy in front of the mock).
    pub fn set_public_url(&self, url: &str) {
        *self.state.public_url.write() = url.trim_end_matches('/').to_string();
    }
    /// Connection settings for the default app and the integration user.
    pub fn connection_settings(&self) -> ConnectionSettings {
        let app = &self.state.config.apps[0];
        let user = &self.state.users[0].user;
        let url = self.public_url();
        ConnectionSettings {
            login_url: url.clone(),
            instance_url: url,
            client_id: app.client_id.clone(),
            client_secret: app.client_secret.clone(),
            username: user.username.clone(),
            password: user.password.clone(),
            api_version: SalesforceConfig::version_string(self.state.config.default_api_version),
        }
    }
    /// Every credential of the org a log must never show: the connected apps' secrets, each
    /// user's password, security token, and password with its token appended.
    pub fn credentials(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .state
            .config
            .apps
            .iter()
            .map(|a| a.client_secret.clone())
            .collect();
        for u in &self.state.config.users {
            out.push(format!("{}{}", u.password, u.security_token));
            out.push(u.password.clone());
            out.push(u.security_token.clone());
        }
        out
    }

    /// Install a fault hook.
    pub fn set_fault_hook(&self, hook: Arc<dyn FaultHook>) {
        self.state.hook.set(hook);
    }
    /// Remove the fault hook.
    pub fn clear_fault_hook(&self) {
        self.state.hook.clear();
    }
    /// Expire matching sessions now; returns how many.
    pub fn expire_sessions(&self, filter: &SessionFilter) -> usize {
        let now = self.state.clock.elapsed();
        self.state.auth.lock().expire(filter, now)
    }
    /// Revoke matching refresh tokens (and their sessions); returns how many.
    pub fn revoke_refresh_tokens(&self, filter: &SessionFilter) -> usize {
        self.state.auth.lock().revoke_refresh(filter)
    }
    /// Set the lifetime of tokens issued from now on.
    pub fn set_token_ttl(&self, ttl: Duration) {
        self.state.auth.lock().ttl = ttl;
    }
    /// The lifetime of tokens issued now.
    pub fn token_ttl(&self) -> Duration {
        self.state.auth.lock().ttl
    }
    /// The lowest API version still served (versions below answer 410).
    pub fn retired_below(&self) -> u32 {
        self.state.retired_below.load(Ordering::Relaxed) as u32
    }
    /// Mint a refresh token for a user of an app, as if the user had consented in a web flow.
    pub fn mint_refresh_token(&self, client_id: &str, username: &str) -> Option<String> {
        let app = self.state.app(client_id)?;
        let user = self.state.user(username)?;
        Some(self.state.auth.lock().issue_refresh(
            client_id,
            &user.user.username,
            &user.id,
            &app.scopes,
        ))
    }
    /// Number of live sessions.
    pub fn live_sessions(&self) -> usize {
        self.state
            .auth
            .lock()
            .live_sessions(self.state.clock.elapsed())
    }
    /// API requests used and the daily maximum.
    pub fn api_usage(&self) -> (u64, u64) {
        (
            self.state.api_used.load(Ordering::Relaxed),
            self.state.api_max.load(Ordering::Relaxed),
        )
    }
    /// Set API requests used (e.g. to the maximum, to exhaust the quota).
    pub fn set_api_usage(&self, used: u64) {
        self.state.api_used.store(used, Ordering::Relaxed);
    }
    /// Set the daily API maximum.
    pub fn set_api_limit(&self, max: u64) {
        self.state.api_max.store(max, Ordering::Relaxed);
    }
    /// Retire every API version below `version` (they answer 410 from now on).
    pub fn retire_versions_below(&self, version: u32) {
        self.state
            .retired_below
            .store(version as u64, Ordering::Relaxed);
    }
    /// Bulk API 2.0 jobs stay `InProgress` while `stalled` (a stuck job), and go on when it
    /// is cleared.
    pub fn set_bulk_stalled(&self, stalled: bool) {
        self.state.bulk.lock().stalled = stalled;
    }
    /// Every `n`-th record of an ingest job fails with `UNABLE_TO_LOCK_ROW` (`None`: none).
    pub fn set_bulk_fail_every(&self, n: Option<u64>) {
        self.state.bulk.lock().fail_every = n;
    }
    /// The daily allowance of records Bulk API jobs may process (`None`: Salesforce's
    /// default of 150,000,000).
    pub fn set_bulk_record_limit(&self, limit: Option<u64>) {
        self.state.bulk.lock().record_limit = limit;
    }
    /// Forget every Streaming API client (a subscriber disconnect): each must handshake
    /// and subscribe again.
    pub fn streaming_disconnect_all(&self) {
        self.state.streaming.lock().disconnect_all();
    }
    /// Lose the change events written while `dropping` (subscribers see a gap in replay
    /// ids).
    pub fn set_streaming_dropping(&self, dropping: bool) {
        let newest = self.newest_write();
        self.state.streaming.lock().set_dropping(dropping, newest);
    }
    /// The replay id of the newest write (its sequence number plus one; 0 for none).
    fn newest_write(&self) -> u64 {
        self.state
            .org
            .read()
            .data
            .writes()
            .last()
            .map_or(0, |w| w.seq + 1)
    }
    /// Put every change event so far past retention (a subscriber replaying from one of
    /// them is refused and must resync); returns the mark before, for
    /// [`Self::set_streaming_expired_through`].
    pub fn streaming_expire_replays(&self) -> u64 {
        let newest = self.newest_write();
        std::mem::replace(&mut self.state.streaming.lock().expired_through, newest)
    }
    /// Events up to `replay_id` are past retention (0: only the write log's capacity).
    pub fn set_streaming_expired_through(&self, replay_id: u64) {
        self.state.streaming.lock().expired_through = replay_id;
    }
    /// The hourly allowance of published platform events, and those published this hour.
    pub fn event_publish_usage(&self) -> (u64, u64) {
        self.state.org.read().data.publish_usage()
    }
    /// Set the hourly allowance of published platform events (past it, a publish fails
    /// with `LIMIT_EXCEEDED`).
    pub fn set_event_publish_limit(&self, limit: u64) {
        self.state.org.write().data.set_publish_limit(limit);
    }
    /// Replay ids of the events lost so far (that a subscriber skipped; at most 100,000).
    pub fn streaming_lost(&self) -> Vec<u64> {
        self.state.streaming.lock().lost.iter().copied().collect()
    }
    /// Records Bulk API jobs have processed today.
    pub fn bulk_records_today(&self) -> u64 {
        self.state.bulk.lock().records_today
    }
    /// Read the org (schema and data) under a lock.
    pub fn with_org<R>(&self, f: impl FnOnce(&Org) -> R) -> R {
        f(&self.state.org.read())
    }
    /// Change the org (schema drift, seeding records) under a lock.
    pub fn with_org_mut<R>(&self, f: impl FnOnce(&mut Org) -> R) -> R {
        f(&mut self.state.org.write())
    }
    /// The id of a user by username.
    pub fn user_id(&self, username: &str) -> Option<String> {
        self.state.user(username).map(|u| u.id.clone())
    }
    /// A write straight into the org as `user` (default: the integration user), with the
    /// body validated like a REST write of that mode.
    fn write_as<R>(
        &self,
        object: &str,
        body: &Value,
        mode: validate::WriteMode,
        user: Option<&str>,
        write: impl FnOnce(
            &mut store::OrgData,
            &schema::OrgSchema,
            &schema::ObjectDef,
            serde_json::Map<String, Value>,
            &store::Actor,
        ) -> Result<R, errors::SfError>,
    ) -> Result<R, errors::SfError> {
        let who = match user {
            Some(u) => self.state.user(u).ok_or_else(errors::SfError::not_found)?,
            None => &self.state.users[0],
        };
        let actor = store::Actor {
            user_id: who.id.clone(),
            username: Some(who.user.username.clone()),
            now: self.state.clock.wall(),
            at_us: self.state.now_us(),
        };
        let mut org = self.state.org.write();
        let Org { schema, data } = &mut *org;
        let obj = schema
            .object(object)
            .ok_or_else(errors::SfError::not_found)?
            .clone();
        let map = body.as_object().cloned().unwrap_or_default();
        let values = validate::validate_body(&obj, &map, mode)?;
        write(data, schema, &obj, values, &actor)
    }
    /// Insert a record directly (test fixtures, seeded data). The body is validated like a REST create.
    pub fn insert(&self, object: &str, body: Value) -> Result<String, errors::SfError> {
        self.write_as(
            object,
            &body,
            validate::WriteMode::Create,
            None,
            |data, schema, obj, values, actor| data.create(schema, obj, values, actor),
        )
    }
    /// Update a record as another user of the org (a clinician editing between the
    /// integration's read and its write). The body is validated like a REST update.
    pub fn update_as(
        &self,
        object: &str,
        id: &str,
        body: Value,
        username: &str,
    ) -> Result<(), errors::SfError> {
        self.write_as(
            object,
            &body,
            validate::WriteMode::Update,
            Some(username),
            |data, schema, obj, values, actor| {
                data.update(schema, obj, id, values, actor, store::Precondition::None)
            },
        )
    }
    /// Create a record as a user of the org (a clinician opening a Case), validated like a
    /// REST create; its id.
    pub fn create_as(
        &self,
        object: &str,
        body: Value,
        username: &str,
    ) -> Result<String, errors::SfError> {
        self.write_as(
            object,
            &body,
            validate::WriteMode::Create,
            Some(username),
            |data, schema, obj, values, actor| data.create(schema, obj, values, actor),
        )
    }
    /// Delete a record as a user of the org.
    pub fn delete_as(&self, object: &str, id: &str, username: &str) -> Result<(), errors::SfError> {
        self.write_as(
            object,
            &Value::Object(Default::default()),
            validate::WriteMode::Update,
            Some(username),
            |data, _, obj, _, actor| data.delete(obj, id, actor),
        )
    }
    /// Every record of an object, live and deleted, rendered as the REST API would.
    pub fn records(&self, object: &str) -> Vec<Value> {
        let org = self.state.org.read();
        let Some(obj) = org.schema.object(object) else {
            return vec![];
        };
        let v = SalesforceConfig::version_string(self.state.config.default_api_version);
        org.data
            .records(&obj.name)
            .map(|r| {
                let mut j = org.data.render(obj, r, &v, None);
                j["IsDeleted"] = Value::Bool(r.deleted);
                j
            })
            .collect()
    }
    /// Keep only about the most recent `writes` entries of the write log (see
    /// [`store::OrgData::set_write_capacity`]); by default every write is kept.
    pub fn set_write_capacity(&self, writes: usize) {
        self.state.org.write().data.set_write_capacity(writes);
    }

    /// The write log (server-side truth for consistency checks).
    pub fn writes(&self) -> Vec<WriteLog> {
        self.with_writes(<[WriteLog]>::to_vec)
    }
    /// Read the write log in place (no copy of the values each write left), under the org's
    /// read lock: `f` should not call back into the mock.
    pub fn with_writes<R>(&self, f: impl FnOnce(&[WriteLog]) -> R) -> R {
        f(self.state.org.read().data.writes())
    }
    /// The mock's clock.
    pub fn clock(&self) -> Clock {
        self.state.clock.clone()
    }
}

/// Build the router (routes plus middleware) for a state.
fn router(state: Arc<SfState>) -> Router {
    use tower::Layer;
    let inner = Router::new()
        .merge(oauth::routes())
        .merge(soap::routes())
        .merge(rest::routes())
        .merge(streaming::routes())
        .merge(control::routes())
        .fallback(|| async { errors::SfError::not_found() })
        // The middleware reads every body under the service's own limits (and answers past
        // them as Salesforce does); axum's default 2 MB cap would cut in first with its own.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state.clone());
    let normalized =
        tower_http::normalize_path::NormalizePathLayer::trim_trailing_slash().layer(inner);
    let tracked = axum::middleware::from_fn_with_state(state, middleware::track).layer(normalized);
    Router::new().fallback_service(tracked)
}
