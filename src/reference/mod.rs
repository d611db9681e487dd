//! The built-in reference integration: a healthcare booking service that does things right,
//! and the example users copy. It follows the SUT contract exactly as an external SUT would
//! (settings from the environment, `PORT`, `GET /health`), and each of its resilience
//! mechanisms can be switched off by a named [`Defect`] so the defect matrix can prove
//! crashcart catches it.
//!
//! - [`defect`]: the defects.
//! - [`resilience`]: policy, backoff with full jitter, retry budget, circuit breaker, the
//!   retrying call.
//! - [`salesforce`]: OAuth with single-flight re-login, REST calls, quota headroom, API
//!   version upgrade; [`drift`]: what it learns of schema drift (fields and values the org
//!   refuses, objects held while the org requires a field it cannot fill).
//! - [`llm`]: visit-preparation JSON and streamed case summaries, with JSON drift handling.
//! - [`flows`]: the HTTP endpoints (`POST /appointments`, `POST /patients/{id}/sync`,
//!   `POST /cases/{id}/summarize`) and the booking saga.
//!
//! Its HTTP client sits behind [`crate::transport::Transport`], so the same code runs on real
//! sockets or in-process on a paused clock.

pub mod defect;
pub mod drift;
pub mod error;
pub mod flows;
pub mod llm;
pub mod resilience;
pub mod salesforce;

use std::net::SocketAddr;
use std::sync::Arc;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use defect::{Defect, Defects};
pub use error::ReferenceError;
pub use resilience::Policy;

use crate::transport::Transport;

/// The connection settings of the SUT contract.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `SALESFORCE_LOGIN_URL`.
    pub login_url: String,
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
    /// `OPENAI_BASE_URL` (ends in `/v1`).
    pub openai_base_url: String,
    /// `OPENAI_API_KEY`.
    pub openai_api_key: String,
    /// `LLM_MODEL`.
    pub model: String,
    /// `PORT`.
    pub port: u16,
    /// `CRASHCART_SEED` (jitter draws).
    pub seed: u64,
}

impl Settings {
    /// Read the settings through `get` (the process environment, or a run's settings).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ReferenceError> {
        let need = |k: &str| get(k).ok_or_else(|| ReferenceError::MissingSetting(k.to_string()));
        Ok(Self {
            login_url: need("SALESFORCE_LOGIN_URL")?,
            client_id: need("SALESFORCE_CLIENT_ID")?,
            client_secret: need("SALESFORCE_CLIENT_SECRET")?,
            username: need("SALESFORCE_USERNAME")?,
            password: need("SALESFORCE_PASSWORD")?,
            api_version: need("SALESFORCE_API_VERSION")?,
            openai_base_url: need("OPENAI_BASE_URL")?,
            openai_api_key: get("OPENAI_API_KEY").unwrap_or_default(),
            model: need("LLM_MODEL")?,
            port: match get("PORT") {
                Some(p) => p.parse().map_err(|_| ReferenceError::BadPort(p))?,
                None => 0,
            },
            seed: get("CRASHCART_SEED")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
        })
    }
}

/// Where the integration's log lines go.
pub type LogSink = Arc<dyn Fn(String) + Send + Sync>;

/// The integration's state: its two clients and the slots being booked.
pub struct Reference {
    /// The Salesforce client.
    pub sf: salesforce::Salesforce,
    /// The LLM client.
    pub llm: llm::Llm,
    /// The policy.
    pub policy: Policy,
    /// Defects switched on.
    pub defects: Defects,
    /// Practitioner slots being booked right now (owner + start), so two bookings of one slot
    /// cannot both pass the availability check.
    pub booking: tokio::sync::Mutex<std::collections::HashSet<String>>,
    /// Log lines.
    pub log: LogSink,
    /// Compensations still running in the background.
    pub compensating: Arc<Inflight>,
}

/// A count of background tasks, and a way to wait until there are none.
#[derive(Debug, Default)]
pub struct Inflight {
    n: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

/// Held by a background task while it runs.
pub struct InflightGuard(Arc<Inflight>);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        if self.0.n.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Inflight {
    /// Count one more task until the guard drops.
    pub fn enter(self: &Arc<Self>) -> InflightGuard {
        self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InflightGuard(self.clone())
    }

    /// Tasks running now.
    pub fn count(&self) -> usize {
        self.n.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Wait until no task runs, for at most `limit`; true when idle.
    pub async fn wait_idle(&self, limit: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.idle.notified();
            if self.count() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.count() == 0;
            }
        }
    }
}

impl Reference {
    /// The integration for `settings`, over `transport`.
    pub fn new(
        settings: Settings,
        transport: Transport,
        policy: Policy,
        defects: Defects,
        log: LogSink,
    ) -> Arc<Self> {
        let rng = |stream: u64| ChaCha8Rng::seed_from_u64(settings.seed ^ stream);
        let sf_dep = resilience::Dependency::new(
            "salesforce",
            transport.clone(),
            policy.salesforce_timeout,
            policy.clone(),
            defects.clone(),
            rng(0x5f),
        );
        let llm_dep = resilience::Dependency::new(
            "llm",
            transport,
            policy.llm_timeout,
            policy.clone(),
            defects.clone(),
            rng(0x11),
        );
        let llm = llm::Llm::new(
            llm_dep,
            &settings.openai_base_url,
            &settings.openai_api_key,
            &settings.model,
            defects.clone(),
        );
        Arc::new(Self {
            sf: salesforce::Salesforce::new(sf_dep, settings, defects.clone()),
            llm,
            policy,
            defects,
            booking: Default::default(),
            log,
            compensating: Arc::default(),
        })
    }
}

/// A reference integration serving on a socket; stops when dropped.
pub struct RunningReference {
    /// Where it listens (unspecified in-process).
    pub addr: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
    reference: Arc<Reference>,
}

impl RunningReference {
    /// The integration without a socket (simulation): its router, to be reached through an
    /// in-process transport.
    pub fn in_process(reference: Arc<Reference>) -> (Self, axum::Router) {
        let router = flows::router(reference.clone());
        (
            Self {
                addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                task: None,
                reference,
            },
            router,
        )
    }

    /// Stop accepting work, then give background compensations up to `grace` to finish (a
    /// SIGTERM's grace period). Returns how many were still running.
    pub async fn stop(mut self, grace: std::time::Duration) -> usize {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        self.reference.compensating.wait_idle(grace).await;
        self.reference.compensating.count()
    }
}

impl Drop for RunningReference {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// Serve the integration on `127.0.0.1:port` (0: any free port).
pub async fn spawn(
    reference: Arc<Reference>,
    port: u16,
) -> Result<RunningReference, ReferenceError> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|source| ReferenceError::Io {
            context: format!("binding the reference integration to 127.0.0.1:{port}"),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ReferenceError::Io {
        context: "reading the reference integration's address".into(),
        source,
    })?;
    let app = flows::router(reference.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(RunningReference {
        addr,
        task: Some(task),
        reference,
    })
}
