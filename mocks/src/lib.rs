//! crashcart-mocks: faithful in-memory mocks of the dependencies crashcart puts under chaos.
//!
//! Module map:
//! - [`salesforce`]: the mock Salesforce (OAuth, SOAP login, REST data API, SOQL, composite).
//! - [`llm`]: the mock local LLM (OpenAI-compatible and Ollama APIs, performance model).
//! - [`fault`]: the fault hook a harness installs to steer a mock (pass, delay, respond, drop, reset).
//! - [`history`]: the request history every mock records (no secrets in clear).
//! - [`server`]: the HTTP/TLS server loop with per-connection reset and graceful shutdown.
//! - [`head`]: request-head limits (URI, headers) and each service's exact answer past them.
//! - [`tls`]: self-signed or user-supplied certificates.
//! - [`wire`]: helpers every mock shares (canned responses, aborted connections, bearer tokens).
//! - [`clock`]: monotonic time on tokio's clock, with a derived wall clock.
//! - [`error`]: errors raised while configuring or starting a mock.
//!
//! The mocks know nothing of scenarios: they expose state handles, a fault hook and a history.

#![warn(missing_docs)]
// Handlers return `Result<_, Response>` as axum does; a Response is 128 bytes and lives on
// the error path only, so boxing it would buy nothing.
#![allow(clippy::result_large_err)]

pub mod clock;
pub mod error;
pub mod fault;
pub mod head;
pub mod history;
pub mod llm;
pub mod salesforce;
pub mod server;
pub mod tls;
pub mod wire;

pub use clock::Clock;
pub use error::MockError;
pub use fault::{
    Action, CannedResponse, FaultHook, LlmShaping, NoFaults, RequestInfo, TextDrift, Verdict,
};
pub use history::{Dependency, History, LlmExchange, RequestRecord};
pub use llm::{LlmHandle, MockLlm};
pub use salesforce::{MockSalesforce, SalesforceHandle};
pub use tls::TlsMaterial;
