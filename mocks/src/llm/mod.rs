//! The mock local LLM: the OpenAI-compatible API (`/v1`, as vLLM, llama.cpp's server and
//! Ollama serve it) and Ollama's native API (`/api`), with deterministic content, a
//! performance model of a small GPU server, server-flavoured errors, and a request history.
//!
//! Module map:
//! - `persona`: the models served (data file `mocks/data/llm/personas.yaml`, user files merged).
//! - `tokens`: the documented token approximation. `content`: deterministic output.
//! - `perf`: slots, queue, time to first token, contention, cold start (tokio clock).
//! - `request`: request parsing and validation in each API's own words.
//! - `exchange`: one request end to end (fault hook, auth, admission, timing, history, streaming).
//! - `openai`, `ollama`: the two APIs' bodies, SSE chunks and NDJSON lines.
//! - `responses`: the Responses API (`/v1/responses`: typed SSE events, stored responses).
//! - `errors`: error shapes per server flavour.

pub mod content;
pub mod errors;
mod exchange;
mod logprobs;
mod ollama;
mod openai;
pub mod perf;
pub mod persona;
pub mod request;
mod responses;
pub mod tokens;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::error::MockError;
use crate::fault::{FaultHook, HookSlot};
use crate::history::History;
use crate::server::{self, ListenConfig, RunningServer, StopHandle, StopSignal};

pub use errors::{Flavour, LlmError};
pub use exchange::OPERATIONS;
pub use perf::{Load, ModelRuntime};
pub use persona::{Capability, PerfProfile, Persona, PersonaSet, Style};

/// The API key clients use by default (`OPENAI_API_KEY`).
pub const DEFAULT_API_KEY: &str = "sk-crashcart-mock-0123456789abcdef";

/// What the history keeps of prompts (for checks such as "patient data crossed sessions").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CapturePolicy {
    /// The prompt text, whole.
    Full,
    /// A digest of the prompt (`sha256:…`), enough to compare prompts without keeping them.
    #[default]
    Hashed,
    /// Nothing.
    Off,
}

impl std::str::FromStr for CapturePolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Self::Full),
            "hashed" => Ok(Self::Hashed),
            "off" => Ok(Self::Off),
            o => Err(format!(
                "unknown capture policy {o:?} (expected full, hashed or off)"
            )),
        }
    }
}

/// Configuration of a mock LLM.
#[derive(Clone, Debug)]
pub struct LlmConfig {
    /// Seed of every generated content, id and vector.
    pub seed: u64,
    /// Which server the OpenAI-compatible API imitates.
    pub flavour: Flavour,
    /// Accepted bearer keys on `/v1`; empty accepts any request (like a default vLLM).
    pub api_keys: Vec<String>,
    /// What the history keeps of prompts.
    pub capture: CapturePolicy,
    /// The models served.
    pub personas: PersonaSet,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            flavour: Flavour::default(),
            api_keys: vec![DEFAULT_API_KEY.to_string()],
            capture: CapturePolicy::default(),
            personas: PersonaSet::builtin(),
            max_body_bytes: 8 * 1024 * 1024,
        }
    }
}

/// A served model and its live runtime.
#[derive(Debug)]
pub(crate) struct ServedModel {
    pub(crate) persona: Persona,
    pub(crate) runtime: Arc<ModelRuntime>,
    /// `system_fingerprint` of its answers.
    pub(crate) fingerprint: String,
}

/// Shared state behind every handler.
#[derive(Debug)]
pub(crate) struct LlmState {
    pub(crate) config: LlmConfig,
    pub(crate) models: Vec<ServedModel>,
    pub(crate) clock: Clock,
    pub(crate) history: Arc<History>,
    pub(crate) hook: HookSlot,
    pub(crate) stop: StopSignal,
    /// Responses kept for `previous_response_id` and `GET /v1/responses/{id}`.
    pub(crate) responses: responses::ResponseStore,
}

impl LlmState {
    pub(crate) fn model(&self, name: &str) -> Option<&ServedModel> {
        self.models.iter().find(|m| m.persona.answers_to(name))
    }
}

/// Builds a mock LLM. `MockLlm::builder().seed(7).start().await?`.
#[derive(Debug, Default)]
pub struct MockLlmBuilder {
    config: LlmConfig,
    listen: ListenConfig,
    persona_files: Vec<PathBuf>,
    zero_delay: bool,
    hook: Option<Arc<dyn FaultHook>>,
    clock: Option<Clock>,
    history: Option<Arc<History>>,
}

impl MockLlmBuilder {
    /// Seed of all content.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }
    /// Replace the whole configuration.
    pub fn config(mut self, config: LlmConfig) -> Self {
        self.config = config;
        self
    }
    /// Server flavour of the OpenAI-compatible API.
    pub fn flavour(mut self, flavour: Flavour) -> Self {
        self.config.flavour = flavour;
        self
    }
    /// Accepted API keys (empty: no authentication).
    pub fn api_keys(mut self, keys: Vec<String>) -> Self {
        self.config.api_keys = keys;
        self
    }
    /// Prompt capture policy.
    pub fn capture(mut self, capture: CapturePolicy) -> Self {
        self.config.capture = capture;
        self
    }
    /// Merge a personas file over the built-in models at start.
    pub fn personas_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.persona_files.push(path.into());
        self
    }
    /// Set every model's delays to zero (benchmarks, fast functional tests).
    pub fn zero_delay(mut self) -> Self {
        self.zero_delay = true;
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
    /// Install a fault hook from the start.
    pub fn fault_hook(mut self, hook: Arc<dyn FaultHook>) -> Self {
        self.hook = Some(hook);
        self
    }
    /// Share a clock with other mocks of the same run.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }
    /// Share a history with other mocks of the same run.
    pub fn history(mut self, history: Arc<History>) -> Self {
        self.history = Some(history);
        self
    }

    fn build_state(mut self) -> Result<(Arc<LlmState>, ListenConfig, StopHandle), MockError> {
        for path in &self.persona_files {
            self.config.personas.merge_file(path)?;
        }
        if self.zero_delay {
            self.config.personas.zero_delay();
        }
        let models = self
            .config
            .personas
            .models()
            .iter()
            .map(|p| ServedModel {
                persona: p.clone(),
                runtime: ModelRuntime::new(p.perf.clone()),
                fingerprint: format!("fp_{}", &crate::history::digest(p.name.as_bytes())[..10]),
            })
            .collect();
        let (stop, stop_signal) = StopHandle::new();
        let hook = HookSlot::default();
        if let Some(h) = self.hook {
            hook.set(h);
        }
        let state = Arc::new(LlmState {
            config: self.config,
            models,
            clock: self.clock.unwrap_or_default(),
            history: self.history.unwrap_or_else(History::shared),
            hook,
            stop: stop_signal,
            responses: Default::default(),
        });
        Ok((state, self.listen, stop))
    }

    /// Build the mock without a socket: a router to call in-process (simulation, tests).
    /// `public_url` is the base URL its connection settings advertise.
    pub fn build_in_process(self, public_url: &str) -> Result<(Router, LlmHandle), MockError> {
        let (state, _listen, stop) = self.build_state()?;
        // Without a server nothing will ever stop; keep the sender alive with the state.
        std::mem::forget(stop);
        let url = Arc::new(RwLock::new(public_url.trim_end_matches('/').to_string()));
        Ok((exchange::router(state.clone()), LlmHandle { state, url }))
    }

    /// Bind and start serving.
    pub async fn start(self) -> Result<MockLlm, MockError> {
        let (state, listen, stop) = self.build_state()?;
        let head = errors::head_policy(state.config.flavour);
        let server =
            server::serve_with(exchange::router(state.clone()), &listen, stop, Some(head)).await?;
        let url = Arc::new(RwLock::new(server.base_url()));
        Ok(MockLlm {
            server,
            handle: LlmHandle { state, url },
        })
    }
}

/// A running mock LLM.
#[derive(Debug)]
pub struct MockLlm {
    server: RunningServer,
    handle: LlmHandle,
}

impl MockLlm {
    /// Start building a mock.
    pub fn builder() -> MockLlmBuilder {
        MockLlmBuilder::default()
    }
    /// The address the mock listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
    /// The mock's base URL (`http://127.0.0.1:PORT`), without `/v1`.
    pub fn url(&self) -> String {
        self.server.base_url()
    }
    /// The control handle: history, models, load, faults.
    pub fn handle(&self) -> &LlmHandle {
        &self.handle
    }
    /// Stop the server gracefully (held requests are released) and wait for it.
    pub async fn shutdown(self) {
        self.handle.state.hook.clear();
        self.server.shutdown().await;
    }
}

/// Connection settings for clients of the mock LLM, named as the SUT contract names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LlmConnectionSettings {
    /// `OPENAI_BASE_URL`, ending in `/v1`.
    pub openai_base_url: String,
    /// `OPENAI_API_KEY`.
    pub api_key: String,
    /// `LLM_MODEL`.
    pub model: String,
    /// `OLLAMA_HOST`.
    pub ollama_host: String,
}

impl LlmConnectionSettings {
    /// The settings as `(NAME, value)` pairs, in contract order.
    pub fn env_pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("OPENAI_BASE_URL", self.openai_base_url.clone()),
            ("OPENAI_API_KEY", self.api_key.clone()),
            ("LLM_MODEL", self.model.clone()),
            ("OLLAMA_HOST", self.ollama_host.clone()),
        ]
    }
}

/// Control of a mock LLM from the harness.
#[derive(Clone, Debug)]
pub struct LlmHandle {
    state: Arc<LlmState>,
    url: Arc<RwLock<String>>,
}

impl LlmHandle {
    /// The request history.
    pub fn history(&self) -> Arc<History> {
        self.state.history.clone()
    }
    /// The configuration the mock was started with.
    pub fn config(&self) -> &LlmConfig {
        &self.state.config
    }
    /// The models served.
    pub fn models(&self) -> Vec<Persona> {
        self.state
            .models
            .iter()
            .map(|m| m.persona.clone())
            .collect()
    }
    /// The live runtime of a model (load, slots, queue), by name or alias.
    pub fn runtime(&self, model: &str) -> Option<Arc<ModelRuntime>> {
        self.state.model(model).map(|m| m.runtime.clone())
    }
    /// Install a fault hook.
    pub fn set_fault_hook(&self, hook: Arc<dyn FaultHook>) {
        self.state.hook.set(hook);
    }
    /// Remove the fault hook.
    pub fn clear_fault_hook(&self) {
        self.state.hook.clear();
    }
    /// Advertise another base URL (a chaos proxy in front of the mock) in the settings.
    pub fn set_public_url(&self, url: &str) {
        *self.url.write() = url.trim_end_matches('/').to_string();
    }
    /// The mock's clock.
    pub fn clock(&self) -> Clock {
        self.state.clock.clone()
    }
    /// Connection settings: base URLs, the first API key and the default model.
    pub fn connection_settings(&self) -> LlmConnectionSettings {
        let base = self.url.read().clone();
        LlmConnectionSettings {
            openai_base_url: format!("{base}/v1"),
            api_key: self
                .state
                .config
                .api_keys
                .first()
                .cloned()
                .unwrap_or_else(|| DEFAULT_API_KEY.to_string()),
            model: self.state.config.personas.default_model().name.clone(),
            ollama_host: base,
        }
    }
}
