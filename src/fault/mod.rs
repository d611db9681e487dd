//! Faults: what crashcart injects, and the engine that injects it.
//!
//! - [`model`]: the serde fault model scenarios name (kinds, targets, triggers, timing).
//! - [`engine`]: applies faults to the mocks (hook and state) and the network; guards undo.
//! - [`family`]: what each kind does, by family (tokens, latency, HTTP errors, governor,
//!   schema drift, LLM drift, network): checks, state changes, per-request effects, and how
//!   `explore` draws it.
//! - [`schedule`]: activates and removes faults on the run's clock.
//! - [`latency`]: sampling the latency distributions from a seeded RNG.
//! - [`shape`]: error answers in each dependency's own language.

pub mod engine;
pub mod family;
pub mod latency;
pub mod model;
pub mod schedule;
pub mod shape;
#[cfg(feature = "wiremock")]
pub mod wiremock;

pub use engine::{
    ActiveFault, Dependencies, FaultEngine, FaultError, FaultEvent, FaultGuard, NetworkFaults,
    TriggerState,
};
pub use model::{
    DependencyName, Direction, FaultKind, FaultSpec, Latency, OutputDrift, Target, Trigger,
};
