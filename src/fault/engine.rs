//! The fault engine: turns [`FaultSpec`]s into effects at the layer where each is real.
//!
//! - Request faults (latency, errors, resets, governor answers, LLM shaping and drift) become
//!   rules; the engine is the mocks' [`FaultHook`] and returns a verdict per request.
//! - State faults (expire tokens, TTL, quota, schema drift, version retirement, LLM slots) are
//!   applied to the mocks' handles at once and undone when the fault ends.
//! - Network faults go to a [`NetworkFaults`] backend (the embedded chaos proxy, or an
//!   external Toxiproxy through `toxiproxy_rust`).
//!
//! [`FaultEngine::apply`] returns a [`FaultGuard`]: dropping it removes the fault and undoes
//! its state. [`FaultEngine::clear_all`] removes everything; dropping the engine does too.
//! Randomness comes from the engine's seed, one stream per fault.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use crashcart_mocks::llm::{Flavour, LlmHandle};
use crashcart_mocks::salesforce::SalesforceHandle;
use crashcart_mocks::{Clock, FaultHook, RequestInfo, Verdict};
use parking_lot::{Mutex, RwLock};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::family::{self, HitCtx, Need, Shaper, StateCtx, Undo};
use super::model::{DependencyName, FaultKind, FaultSpec, Trigger};

/// Where network faults are applied.
pub trait NetworkFaults: Send + Sync + 'static {
    /// Apply a network fault in front of `dependency` (every proxied dependency when `None`);
    /// returns a token that [`NetworkFaults::remove`] takes back.
    fn apply(
        &self,
        dependency: Option<DependencyName>,
        fault: &FaultKind,
        label: &str,
    ) -> Result<Vec<String>, String>;
    /// Undo what [`NetworkFaults::apply`] did.
    fn remove(&self, applied: &[String]);
}

/// A fault the engine refused.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// A parameter is out of range or inconsistent.
    #[error("fault {label}: {message}")]
    Invalid {
        /// The fault's label.
        label: String,
        /// What is wrong.
        message: String,
    },
    /// The fault needs a dependency the run does not have.
    #[error("fault {label}: needs {needs}, which this run does not start")]
    Unavailable {
        /// The fault's label.
        label: String,
        /// What is missing.
        needs: &'static str,
    },
}

/// One event of the fault timeline.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct FaultEvent {
    /// Monotonic time on the run's clock, microseconds.
    pub at_us: u64,
    /// The fault's id in the engine.
    pub id: u64,
    /// Its label.
    pub fault: String,
    /// Its kind (`partition`, `expire_tokens`, …).
    #[serde(default)]
    pub kind: String,
    /// The dependency it targets, if one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency: Option<DependencyName>,
    /// `activated`, `removed`, `flap-on`, `flap-off`.
    pub event: String,
}

/// A fault in force, as listed by [`FaultEngine::active`].
#[derive(Clone, Debug, Serialize)]
pub struct ActiveFault {
    /// Engine id.
    pub id: u64,
    /// Label.
    pub label: String,
    /// The spec.
    pub spec: FaultSpec,
    /// Requests it hit so far.
    pub hits: u64,
}

/// How often a fault hits: counts matching requests and draws from its own seeded stream.
#[derive(Debug)]
pub struct TriggerState {
    trigger: Trigger,
    seen: AtomicU64,
    /// The fault's random stream (also used to sample its latencies).
    pub rng: Mutex<ChaCha8Rng>,
}

impl TriggerState {
    /// A fresh state with its own stream.
    pub fn new(trigger: Trigger, seed: u64) -> Self {
        Self {
            trigger,
            seen: AtomicU64::new(0),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    /// Count one matching request; true when the fault hits it.
    pub fn fires(&self) -> bool {
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        match self.trigger {
            Trigger::Always => true,
            Trigger::Probability(p) => self.rng.lock().random_bool(p.clamp(0.0, 1.0)),
            Trigger::EveryNth(k) => n.is_multiple_of(k.max(1)),
            Trigger::FirstN(k) => n <= k,
        }
    }
}

/// One fault in force: its spec, how often it fires, what undoes it.
pub struct Rule {
    id: u64,
    /// The fault's label.
    pub label: String,
    /// The fault.
    pub spec: FaultSpec,
    route: Option<glob::Pattern>,
    /// Its trigger (and random stream).
    pub trigger: TriggerState,
    hits: AtomicU64,
    enabled: AtomicBool,
    undo: Mutex<Option<Undo>>,
    /// Records a `concurrent_edit` has already edited.
    pub edited: Mutex<std::collections::HashSet<String>>,
    /// Where its counts add up when it is removed.
    tag: Option<u64>,
}

impl Rule {
    /// Requests hit, and requests the target matched.
    fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.trigger.seen.load(Ordering::Relaxed),
        )
    }

    /// A rule for a family's tests: id 1, no route, a stream of seed 0.
    #[cfg(test)]
    pub(crate) fn for_test(spec: FaultSpec) -> Self {
        Self {
            id: 1,
            label: spec.label(),
            trigger: TriggerState::new(spec.trigger, 0),
            spec,
            route: None,
            hits: AtomicU64::new(0),
            enabled: AtomicBool::new(true),
            undo: Mutex::new(None),
            edited: Mutex::default(),
            tag: None,
        }
    }
}

/// The dependencies a run has.
#[derive(Clone, Default)]
pub struct Dependencies {
    /// The mock Salesforce.
    pub salesforce: Option<SalesforceHandle>,
    /// The mock LLM.
    pub llm: Option<LlmHandle>,
    /// Where network faults go.
    pub network: Option<Arc<dyn NetworkFaults>>,
}

struct Inner {
    seed: u64,
    deps: Dependencies,
    clock: Clock,
    rules: RwLock<Vec<Arc<Rule>>>,
    next_id: AtomicU64,
    events: Mutex<Vec<FaultEvent>>,
    listeners: RwLock<Vec<FaultListener>>,
    /// Requests the removed faults of each tag hit, and those their targets matched.
    hits_by_tag: Mutex<std::collections::HashMap<u64, (u64, u64)>>,
    next_tag: AtomicU64,
}

/// Hears each fault event as it happens (see [`FaultEngine::subscribe`]).
pub type FaultListener = Arc<dyn Fn(&FaultEvent) + Send + Sync>;

/// The fault engine of a run. Cloning shares it.
#[derive(Clone)]
pub struct FaultEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FaultEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultEngine")
            .field("seed", &self.inner.seed)
            .field("active", &self.inner.rules.read().len())
            .finish()
    }
}

/// Removes its fault when dropped.
#[must_use = "the fault is removed when the guard drops"]
pub struct FaultGuard {
    engine: Weak<Inner>,
    id: u64,
}

impl FaultGuard {
    /// The fault's id in the engine.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// Keep the fault until the engine clears it (`clear_all`, shutdown).
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for FaultGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.engine.upgrade() {
            remove(&inner, self.id);
        }
    }
}

/// The hook installed in the mocks; holds the engine weakly so the engine's drop clears.
struct Hook(Weak<Inner>);

impl FaultHook for Hook {
    fn verdict(&self, req: &RequestInfo<'_>) -> Verdict {
        match self.0.upgrade() {
            Some(inner) => verdict(&inner, req),
            None => Verdict::pass(),
        }
    }
}

/// A fault's own random stream: from the run's seed, its label and its id.
pub fn stream_seed(seed: u64, label: &str, id: u64) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325 ^ seed;
    for b in label.bytes().chain(id.to_le_bytes()) {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    h
}

impl FaultEngine {
    /// An engine over these dependencies, installed as their fault hook.
    pub fn new(seed: u64, deps: Dependencies) -> Self {
        let clock = deps
            .salesforce
            .as_ref()
            .map(|s| s.clock())
            .or_else(|| deps.llm.as_ref().map(|l| l.clock()))
            .unwrap_or_default();
        let inner = Arc::new(Inner {
            seed,
            deps,
            clock,
            rules: RwLock::new(vec![]),
            next_id: AtomicU64::new(1),
            events: Mutex::new(vec![]),
            listeners: RwLock::new(vec![]),
            hits_by_tag: Mutex::default(),
            next_tag: AtomicU64::new(1),
        });
        let hook = Arc::new(Hook(Arc::downgrade(&inner)));
        if let Some(sf) = &inner.deps.salesforce {
            sf.set_fault_hook(hook.clone());
        }
        if let Some(llm) = &inner.deps.llm {
            llm.set_fault_hook(hook);
        }
        Self { inner }
    }

    /// The run's clock (the mocks').
    pub fn clock(&self) -> Clock {
        self.inner.clock.clone()
    }

    /// Check a fault without applying it: parameters, route glob, and that the run has the
    /// dependency it needs.
    pub fn check(&self, spec: &FaultSpec) -> Result<(), FaultError> {
        check_spec(spec)?;
        let label = spec.label();
        let deps = &self.inner.deps;
        let missing = match family::of(&spec.fault).needs(&spec.fault) {
            Need::Salesforce if deps.salesforce.is_none() => Some("the mock Salesforce"),
            Need::Llm if deps.llm.is_none() => Some("the mock LLM"),
            Need::Network if deps.network.is_none() => Some("a chaos proxy"),
            _ => None,
        };
        match missing {
            Some(needs) => Err(FaultError::Unavailable { label, needs }),
            None => Ok(()),
        }
    }

    /// Activate a fault now. Drop the guard to remove it.
    pub fn apply(&self, spec: FaultSpec) -> Result<FaultGuard, FaultError> {
        self.apply_tagged(spec, None)
    }

    /// [`Self::apply`], counting the requests the fault hits under `tag` (a schedule's spec:
    /// every instance of a repeating fault adds to one count, so memory does not grow with
    /// the repeats).
    pub fn apply_tagged(
        &self,
        spec: FaultSpec,
        tag: Option<u64>,
    ) -> Result<FaultGuard, FaultError> {
        let inner = &self.inner;
        let id = inner.next_id.fetch_add(1, Ordering::SeqCst);
        let label = spec.label();
        validate(&spec, &label)?;
        let route = match &spec.target.route {
            Some(r) => Some(glob::Pattern::new(r).map_err(|e| FaultError::Invalid {
                label: label.clone(),
                message: format!("target.route {r:?}: {e}"),
            })?),
            None => None,
        };
        let undo = apply_state(inner, &spec, &label)?;
        let rule = Arc::new(Rule {
            id,
            trigger: TriggerState::new(spec.trigger, stream_seed(inner.seed, &label, id)),
            label: label.clone(),
            spec,
            route,
            hits: AtomicU64::new(0),
            enabled: AtomicBool::new(true),
            undo: Mutex::new(undo),
            edited: Mutex::default(),
            tag,
        });
        event(inner, &rule, "activated");
        inner.rules.write().push(rule);
        Ok(FaultGuard {
            engine: Arc::downgrade(inner),
            id,
        })
    }

    /// Turn an active fault on or off without removing it (flapping).
    pub fn set_enabled(&self, id: u64, on: bool) {
        let rule = self.inner.rules.read().iter().find(|r| r.id == id).cloned();
        if let Some(rule) = rule {
            if rule.enabled.swap(on, Ordering::SeqCst) != on {
                if rule.spec.fault.is_network() {
                    // Network faults live outside the engine: take them out and put them back.
                    let mut undo = rule.undo.lock();
                    if on {
                        *undo = apply_state(&self.inner, &rule.spec, &rule.label)
                            .ok()
                            .flatten();
                    } else if let Some(u) = undo.take() {
                        u.run(&self.inner.deps);
                    }
                }
                event(&self.inner, &rule, if on { "flap-on" } else { "flap-off" });
            }
        }
    }

    /// Remove one fault by id (what a guard's drop does).
    pub fn remove(&self, id: u64) -> bool {
        remove(&self.inner, id)
    }

    /// Remove every fault and undo every state change.
    pub fn clear_all(&self) {
        let rules: Vec<Arc<Rule>> = self.inner.rules.read().clone();
        for r in rules {
            remove(&self.inner, r.id);
        }
    }

    /// The faults in force.
    pub fn active(&self) -> Vec<ActiveFault> {
        self.inner
            .rules
            .read()
            .iter()
            .map(|r| ActiveFault {
                id: r.id,
                label: r.label.clone(),
                spec: r.spec.clone(),
                hits: r.hits.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// A tag no fault has yet, for [`Self::apply_tagged`].
    pub fn new_tag(&self) -> u64 {
        self.inner.next_tag.fetch_add(1, Ordering::SeqCst)
    }

    /// Requests the faults applied with `tag` hit, and those their targets matched (their
    /// triggers then drew which to hit), in force or removed.
    pub fn hits(&self, tag: u64) -> (u64, u64) {
        let (mut h, mut m) = self
            .inner
            .hits_by_tag
            .lock()
            .get(&tag)
            .copied()
            .unwrap_or((0, 0));
        for r in self
            .inner
            .rules
            .read()
            .iter()
            .filter(|r| r.tag == Some(tag))
        {
            let (a, b) = r.counts();
            (h, m) = (h + a, m + b);
        }
        (h, m)
    }

    /// Hear every fault event from now on, as it happens (on the task that caused it).
    pub fn subscribe(&self, listener: FaultListener) {
        self.inner.listeners.write().push(listener);
    }

    /// The fault timeline so far.
    pub fn events(&self) -> Vec<FaultEvent> {
        self.inner.events.lock().clone()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Last owner gone: clear state faults and uninstall the hooks.
        let rules: Vec<Arc<Rule>> = std::mem::take(&mut *self.rules.write());
        // Newest first: each restores the state the one before it saw.
        for r in rules.into_iter().rev() {
            if let Some(u) = r.undo.lock().take() {
                u.run(&self.deps);
            }
        }
        if let Some(sf) = &self.deps.salesforce {
            sf.clear_fault_hook();
        }
        if let Some(llm) = &self.deps.llm {
            llm.clear_fault_hook();
        }
    }
}

fn event(inner: &Inner, rule: &Rule, what: &str) {
    let e = FaultEvent {
        at_us: inner.clock.elapsed().as_micros() as u64,
        id: rule.id,
        fault: rule.label.clone(),
        kind: rule.spec.fault.name(),
        dependency: rule.spec.target.dependency,
        event: what.to_string(),
    };
    for l in inner.listeners.read().iter() {
        l(&e);
    }
    inner.events.lock().push(e);
}

fn remove(inner: &Inner, id: u64) -> bool {
    let rule = {
        let mut rules = inner.rules.write();
        let Some(pos) = rules.iter().position(|r| r.id == id) else {
            return false;
        };
        rules.remove(pos)
    };
    if let Some(u) = rule.undo.lock().take() {
        undo_or_hand_over(inner, id, u);
    }
    if let Some(tag) = rule.tag {
        let (a, b) = rule.counts();
        let mut totals = inner.hits_by_tag.lock();
        let t = totals.entry(tag).or_default();
        (t.0, t.1) = (t.0 + a, t.1 + b);
    }
    event(inner, &rule, "removed");
    true
}

/// Undo a fault that ended, unless a fault applied later to the same state is still in force:
/// that one saved the state with this fault in it, so restoring now would leave it wrong, and
/// restoring its saved state at its end would bring this fault back for good (two quota faults
/// ending in the order they began left the quota spent forever). The later fault takes over
/// this undo and runs it after its own: overlapping faults on one piece of state end together
/// with the last of them, and the state is always the one from before the first.
fn undo_or_hand_over(inner: &Inner, id: u64, u: Undo) {
    let later = u.slot.clone().and_then(|slot| {
        inner
            .rules
            .read()
            .iter()
            .filter(|r| r.id > id)
            .find(|r| r.undo.lock().as_ref().and_then(|u| u.slot.as_ref()) == Some(&slot))
            .cloned()
    });
    match later {
        Some(l) => {
            let mut own = l.undo.lock();
            *own = match own.take() {
                Some(theirs) => Some(theirs.then(u)),
                None => Some(u),
            };
        }
        None => u.run(&inner.deps),
    }
}

/// Check a fault's parameters and route glob, without an engine (scenario validation).
pub fn check_spec(spec: &FaultSpec) -> Result<(), FaultError> {
    let label = spec.label();
    validate(spec, &label)?;
    if let Some(r) = &spec.target.route {
        glob::Pattern::new(r).map_err(|e| invalid(&label, format!("target.route {r:?}: {e}")))?;
    }
    Ok(())
}

fn invalid(label: &str, message: impl Into<String>) -> FaultError {
    FaultError::Invalid {
        label: label.to_string(),
        message: message.into(),
    }
}

fn validate(spec: &FaultSpec, label: &str) -> Result<(), FaultError> {
    match spec.trigger {
        Trigger::Probability(p) if !(0.0..=1.0).contains(&p) => {
            return Err(invalid(
                label,
                format!("trigger.probability must be within 0..1, got {p}"),
            ))
        }
        Trigger::EveryNth(0) => return Err(invalid(label, "trigger.every_nth must be at least 1")),
        _ => {}
    }
    timing(spec).map_err(|m| invalid(label, m))?;
    family::of(&spec.fault)
        .validate(&spec.fault)
        .map_err(|m| invalid(label, m))
}

/// When a fault plays must keep to a game day's scale: a start and length within a day,
/// repeats and flaps at least a millisecond apart (`every: 1ns` would schedule billions).
fn timing(spec: &FaultSpec) -> Result<(), String> {
    use family::{count_within, within, MAX_WAIT};
    let ms = std::time::Duration::from_millis(1);
    let zero = std::time::Duration::ZERO;
    within("at", spec.at.unwrap_or_default(), zero, MAX_WAIT)?;
    within("for", spec.duration.unwrap_or_default(), zero, MAX_WAIT)?;
    if let Some(r) = spec.repeat {
        within("repeat.every", r.every, ms, MAX_WAIT)?;
        count_within(
            "repeat.times",
            u64::from(r.times.unwrap_or(1)),
            1,
            1_000_000,
        )?;
    }
    if let Some(f) = spec.flap {
        within("flap.on", f.on, ms, MAX_WAIT)?;
        within("flap.off", f.off, ms, MAX_WAIT)?;
    }
    Ok(())
}

/// Apply the state part of a fault (if any); returns how to undo it.
fn apply_state(inner: &Inner, spec: &FaultSpec, label: &str) -> Result<Option<Undo>, FaultError> {
    let ctx = StateCtx {
        deps: &inner.deps,
        label,
    };
    family::of(&spec.fault).apply_state(&ctx, spec)
}

fn matches(rule: &Rule, req: &RequestInfo<'_>) -> bool {
    let t = &rule.spec.target;
    t.dependency.is_none_or(|d| d.as_mock() == req.dependency)
        && rule.route.as_ref().is_none_or(|p| p.matches(req.path))
        && t.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(req.method.as_str()))
        && t.operation.as_deref().is_none_or(|o| o == req.operation)
        && t.sobject
            .as_deref()
            .is_none_or(|s| req.sobject.is_some_and(|r| r.eq_ignore_ascii_case(s)))
        && t.client_id
            .as_deref()
            .is_none_or(|c| req.client_id == Some(c))
        && t.model.as_deref().is_none_or(|m| req.model == Some(m))
}

fn llm_flavour(inner: &Inner) -> Flavour {
    inner
        .deps
        .llm
        .as_ref()
        .map(|l| l.config().flavour)
        .unwrap_or_default()
}

/// The verdict for one request: every matching, firing rule adds its effect; delays add up,
/// the first answer wins, LLM shaping merges.
fn verdict(inner: &Inner, req: &RequestInfo<'_>) -> Verdict {
    let rules: Vec<Arc<Rule>> = inner.rules.read().clone();
    let mut out = Shaper::default();
    let mut labels: Vec<&str> = vec![];
    let flavour = llm_flavour(inner);
    for rule in &rules {
        if !rule.enabled.load(Ordering::SeqCst)
            || rule.spec.fault.is_network()
            || !matches(rule, req)
        {
            continue;
        }
        let fam = family::of(&rule.spec.fault);
        // State faults act on the mock, not per request; kinds tied to one kind of request
        // skip the others before the trigger counts them.
        if fam.needs(&rule.spec.fault) != Need::Any
            || !fam.applies(rule, req)
            || !rule.trigger.fires()
        {
            continue;
        }
        rule.hits.fetch_add(1, Ordering::Relaxed);
        labels.push(&rule.label);
        let ctx = HitCtx {
            deps: &inner.deps,
            flavour,
            rule,
        };
        fam.hit(&ctx, req, &mut out);
    }
    out.finish(labels)
}
