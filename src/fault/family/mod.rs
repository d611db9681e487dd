//! Fault kinds by family: what each kind checks, changes in a mock's state, does to a request
//! it hits, and how `crashcart explore` draws it. The engine is generic; it asks a kind's
//! [`Family`] for all of that, so a new kind is its variant in [`super::model`] and its
//! behaviour in one family file.
//!
//! - [`tokens`]: expiry, TTL, revocation, refused logins.
//! - [`latency`]: slow answers and slow generation.
//! - [`http_errors`]: error answers and broken exchanges.
//! - [`governor`]: quota, concurrent long requests, row locks, concurrent edits, LLM slots and
//!   overload.
//! - [`change_events`]: Streaming API subscribers dropped, change events lost, replay ids
//!   past retention.
//! - [`schema_drift`]: fields renamed, removed, retyped, required; picklist values; API
//!   versions.
//! - [`llm_drift`]: the model's answers drift, are truncated, cut or broken.
//! - [`network`]: toxics on the chaos proxy (or the simulated network).

pub mod change_events;
pub mod governor;
pub mod http_errors;
pub mod latency;
pub mod llm_drift;
pub mod network;
pub mod schema_drift;
pub mod tokens;

use std::time::Duration;

use crashcart_mocks::fault::LlmShaping;
use crashcart_mocks::llm::Flavour;
use crashcart_mocks::{Action, RequestInfo, Verdict};

use super::engine::{Dependencies, FaultError, Rule};
use super::model::{DependencyName, FaultKind, FaultSpec, Target, Trigger};

/// What a fault acts on besides requests: a mock's state, or the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The mock Salesforce's state.
    Salesforce,
    /// The mock LLM's state.
    Llm,
    /// The chaos proxy (or the simulated network).
    Network,
    /// Nothing: it acts per request, in the mocks' fault hook.
    Any,
}

/// How to restore what a state fault changed, and which piece of state that is (two faults
/// on one piece end together; see the engine).
pub struct Undo {
    /// The piece of mock state restored (`None`: network entries, removed by name).
    pub slot: Option<String>,
    run: Box<dyn FnOnce(&Dependencies) + Send>,
}

impl Undo {
    /// Restore `slot` by running `f` over the dependencies.
    pub fn new(slot: Option<&str>, f: impl FnOnce(&Dependencies) + Send + 'static) -> Self {
        Self {
            slot: slot.map(str::to_string),
            run: Box::new(f),
        }
    }

    /// This undo, then `second`: a later fault on the same state took over the undo of an
    /// earlier one that ended first.
    pub fn then(self, second: Undo) -> Undo {
        Undo {
            slot: self.slot.clone(),
            run: Box::new(move |deps| {
                (self.run)(deps);
                (second.run)(deps);
            }),
        }
    }

    /// Restore.
    pub fn run(self, deps: &Dependencies) {
        (self.run)(deps)
    }
}

/// What a family's state change sees: the run's dependencies, and the fault's label for
/// errors.
pub struct StateCtx<'a> {
    /// The mocks and the network.
    pub deps: &'a Dependencies,
    /// The fault's label.
    pub label: &'a str,
}

impl StateCtx<'_> {
    /// A refusal naming the fault.
    pub fn invalid(&self, message: impl Into<String>) -> FaultError {
        FaultError::Invalid {
            label: self.label.to_string(),
            message: message.into(),
        }
    }

    /// The mock Salesforce, or the refusal that the run has none.
    pub fn salesforce(&self) -> Result<&crashcart_mocks::SalesforceHandle, FaultError> {
        self.deps
            .salesforce
            .as_ref()
            .ok_or(self.unavailable("the mock Salesforce"))
    }

    /// The refusal that the run lacks `needs`.
    pub fn unavailable(&self, needs: &'static str) -> FaultError {
        FaultError::Unavailable {
            label: self.label.to_string(),
            needs,
        }
    }
}

/// The verdict for one request, as the rules that hit it build it: delays add up, the first
/// answer wins, LLM shaping merges.
#[derive(Default)]
pub struct Shaper {
    /// The verdict so far.
    pub verdict: Verdict,
    /// How the LLM generation is shaped so far.
    pub shaping: LlmShaping,
    answered: bool,
}

impl Shaper {
    /// Wait this much longer first.
    pub fn delay(&mut self, d: Duration) {
        self.verdict.delay = Some(self.verdict.delay.unwrap_or_default() + d);
    }

    /// Answer this way, unless an earlier rule already answered.
    pub fn answer(&mut self, a: Action) {
        if !self.answered {
            self.verdict.action = a;
            self.answered = true;
        }
    }

    /// The finished verdict.
    pub fn finish(mut self, labels: Vec<&str>) -> Verdict {
        if !self.shaping.is_noop() {
            self.verdict.llm = Some(self.shaping);
        }
        if !labels.is_empty() {
            self.verdict.label = Some(labels.join("+"));
        }
        self.verdict
    }
}

/// What a family's per-request effect sees.
pub struct HitCtx<'a> {
    /// The mocks (a concurrent edit writes to the org).
    pub deps: &'a Dependencies,
    /// The LLM's server flavour (error shapes).
    pub flavour: Flavour,
    /// The rule that hit.
    pub rule: &'a Rule,
}

impl HitCtx<'_> {
    /// The dependency the answer speaks for: the target's, else the request's.
    pub fn dependency(&self, req: &RequestInfo<'_>) -> DependencyName {
        self.rule
            .spec
            .target
            .dependency
            .unwrap_or(match req.dependency {
                crashcart_mocks::Dependency::Llm => DependencyName::Llm,
                crashcart_mocks::Dependency::SalesforceAuth => DependencyName::SalesforceAuth,
                _ => DependencyName::Salesforce,
            })
    }
}

/// How strong `crashcart explore` draws a fault: its intensity in percent, and whether a kind
/// that applies to either dependency hits the LLM.
pub struct Draw {
    /// Intensity, 0–100.
    pub intensity: u32,
    /// On the LLM rather than Salesforce.
    pub on_llm: bool,
    /// The strongest latency of the budget.
    pub max_latency: Duration,
}

/// A drawn fault's what, where and how often.
pub type Drawn = (FaultKind, Target, Trigger);

impl Draw {
    /// The intensity as a share, at least 5%.
    pub fn share(&self) -> f64 {
        (self.intensity.max(5) as f64) / 100.0
    }

    /// A count from `mild` down (or up) to `strong` as intensity grows.
    pub fn fewer(&self, mild: f64, strong: f64) -> f64 {
        (mild + (strong - mild) * self.share()).round().max(1.0)
    }

    /// The budget's strongest latency scaled by intensity.
    pub fn latency(&self) -> Duration {
        self.max_latency.mul_f64(self.share())
    }

    /// Aimed at one dependency.
    pub fn on(dep: DependencyName) -> Target {
        Target {
            dependency: Some(dep),
            ..Target::default()
        }
    }

    /// Salesforce or the LLM, as drawn.
    pub fn either(&self) -> Target {
        Self::on(if self.on_llm {
            DependencyName::Llm
        } else {
            DependencyName::Salesforce
        })
    }

    /// Salesforce's writes of one sObject.
    pub fn sobject(object: &str) -> Target {
        Target {
            sobject: Some(object.into()),
            ..Self::on(DependencyName::Salesforce)
        }
    }

    /// Each matching request with the intensity's probability.
    pub fn sometimes(&self) -> Trigger {
        Trigger::Probability(self.share())
    }
}

/// `name` must lie within `lo..=hi` (the message says the range).
pub fn within(name: &str, d: Duration, lo: Duration, hi: Duration) -> Result<(), String> {
    if d < lo || d > hi {
        let h = |d: Duration| humantime::format_duration(d).to_string();
        return Err(format!(
            "{name} {} is out of range: between {} and {}",
            h(d),
            h(lo),
            h(hi)
        ));
    }
    Ok(())
}

/// A count `name` must lie within `lo..=hi`.
pub fn count_within(name: &str, n: u64, lo: u64, hi: u64) -> Result<(), String> {
    if n < lo || n > hi {
        return Err(format!("{name} {n} is out of range: between {lo} and {hi}"));
    }
    Ok(())
}

/// The longest delay a fault may add (a sample of a latency distribution is capped there too).
pub const MAX_DELAY: Duration = crate::fault::latency::MAX_SAMPLE;
/// The longest a fault's own waits may last (Retry-After, a TTL, a network timeout).
pub const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// One family's behaviour. Every method has a default that does nothing, so a family
/// implements only what its kinds do.
pub trait Family: Sync {
    /// Check a kind's parameters (the message names the parameter).
    fn validate(&self, _kind: &FaultKind) -> Result<(), String> {
        Ok(())
    }

    /// What the kind acts on besides requests.
    fn needs(&self, _kind: &FaultKind) -> Need {
        Need::Any
    }

    /// Apply the kind's state change now; how to undo it.
    fn apply_state(
        &self,
        _ctx: &StateCtx<'_>,
        _spec: &FaultSpec,
    ) -> Result<Option<Undo>, FaultError> {
        Ok(None)
    }

    /// Whether a request the target matches is one the kind applies to (checked before the
    /// trigger counts it).
    fn applies(&self, _rule: &Rule, _req: &RequestInfo<'_>) -> bool {
        true
    }

    /// What the kind does to a request it hits.
    fn hit(&self, _ctx: &HitCtx<'_>, _req: &RequestInfo<'_>, _out: &mut Shaper) {}

    /// The kind named `name` as `crashcart explore` draws it, if it is one of this family's.
    fn explore(&self, _name: &str, _draw: &Draw) -> Option<Drawn> {
        None
    }
}

/// Every family, for lookups by kind name.
pub const FAMILIES: [&dyn Family; 8] = [
    &tokens::Tokens,
    &latency::Latencies,
    &http_errors::HttpErrors,
    &governor::Governor,
    &change_events::ChangeEvents,
    &schema_drift::SchemaDrift,
    &llm_drift::LlmDrift,
    &network::Network,
];

/// The family of a kind.
pub fn of(kind: &FaultKind) -> &'static dyn Family {
    use super::model::FamilyName as F;
    match kind.family() {
        F::Tokens => &tokens::Tokens,
        F::Latency => &latency::Latencies,
        F::HttpErrors => &http_errors::HttpErrors,
        F::Governor => &governor::Governor,
        F::ChangeEvents => &change_events::ChangeEvents,
        F::SchemaDrift => &schema_drift::SchemaDrift,
        F::LlmDrift => &llm_drift::LlmDrift,
        F::Network => &network::Network,
    }
}

/// The kind named `name` as `crashcart explore` draws it.
pub fn explore(name: &str, draw: &Draw) -> Option<Drawn> {
    FAMILIES.iter().find_map(|f| f.explore(name, draw))
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A request as the mocks describe it, for the families' tests.
    use crashcart_mocks::{Dependency, RequestInfo};

    /// Static parts of a request.
    pub struct Req {
        pub method: http::Method,
        pub headers: http::HeaderMap,
    }

    impl Req {
        pub fn new(method: http::Method) -> Self {
            Self {
                method,
                headers: http::HeaderMap::new(),
            }
        }

        /// A request to `dependency` for `operation` on `sobject`/`record`.
        pub fn info<'a>(
            &'a self,
            dependency: Dependency,
            operation: &'a str,
            sobject: Option<&'a str>,
            record: Option<&'a str>,
        ) -> RequestInfo<'a> {
            RequestInfo {
                seq: 1,
                dependency,
                method: &self.method,
                path: "/x",
                headers: &self.headers,
                operation,
                sobject,
                record,
                client_id: None,
                user: None,
                model: None,
            }
        }
    }
}
