//! Scenarios: the YAML files a game day or a CI gate runs.
//!
//! - [`raw`]: the file's serde types, and the JSON Schema editors use (`crashcart schema`).
//! - [`validate`]: every problem of a file at once, by key path or line and column; the
//!   checked [`Scenario`].
//! - [`bounds`]: the ranges a scenario's numbers must keep to (a file from someone else
//!   must not exhaust the machine).
//! - [`domain`]: the checked scenario's values (workload, operations, SLOs), defaults applied:
//!   what the runner and the checkers read.
//! - [`targets`]: what the scenario's mocks answer to (sObjects, fields, models, operations),
//!   so a fault target or an effect that cannot match is refused, with the closest name.
//! - [`step`]: an operation's steps (a request to the SUT, an org action as a clinician, a
//!   command), their expectations and captures, and their validation.
//! - [`template`]: `{{…}}` placeholders and the seeded synthetic patient data they draw on.
//! - [`plan`]: the resolved timeline of a scenario (`crashcart plan`).

pub mod bounds;
pub mod domain;
pub mod plan;
pub mod raw;
pub mod step;
pub mod targets;
pub mod template;
pub mod validate;

pub use validate::{load, Problem, Readiness, Scenario, ScenarioError, SutKind};

/// The JSON Schema of scenario files.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(raw::RawScenario)).unwrap_or_default()
}
