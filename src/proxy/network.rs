//! Network faults of the engine, applied to a chaos proxy: the embedded one directly, or an
//! external Toxiproxy server through the `toxiproxy_rust` client (a game day across hosts).
//!
//! Proxies are named after the dependency they front: `salesforce` (data and login) and
//! `llm`. A fault without a dependency applies to every proxy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;

use super::ChaosProxy;
use crate::fault::{DependencyName, Direction, FaultKind, NetworkFaults};

/// The proxy name fronting a dependency.
pub fn proxy_name(dep: DependencyName) -> &'static str {
    match dep {
        DependencyName::Salesforce | DependencyName::SalesforceAuth => "salesforce",
        DependencyName::Llm => "llm",
    }
}

/// A toxic to add: type, stream, attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct ToxicPlan {
    /// Toxiproxy type.
    pub kind: &'static str,
    /// `upstream` or `downstream`.
    pub stream: &'static str,
    /// Attributes.
    pub attributes: Vec<(&'static str, u64)>,
}

/// What a network fault becomes: toxics, or a disabled proxy (`None`).
pub fn plan(fault: &FaultKind) -> Option<Vec<ToxicPlan>> {
    let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64).unwrap_or(0);
    let streams = |d: Direction| -> Vec<&'static str> {
        match d {
            Direction::Upstream => vec!["upstream"],
            Direction::Downstream => vec!["downstream"],
            Direction::Both => vec!["upstream", "downstream"],
        }
    };
    let each = |d: Direction,
                kind: &'static str,
                attributes: Vec<(&'static str, u64)>|
     -> Vec<ToxicPlan> {
        streams(d)
            .into_iter()
            .map(|stream| ToxicPlan {
                kind,
                stream,
                attributes: attributes.clone(),
            })
            .collect()
    };
    Some(match fault {
        FaultKind::RefuseConnections => return None,
        FaultKind::Partition { direction } => each(*direction, "timeout", vec![("timeout", 0)]),
        FaultKind::ResetPeer { after } => each(
            Direction::Downstream,
            "reset_peer",
            vec![("timeout", ms(*after))],
        ),
        FaultKind::NetworkLatency {
            latency,
            jitter,
            direction,
        } => each(
            *direction,
            "latency",
            vec![("latency", ms(Some(*latency))), ("jitter", ms(*jitter))],
        ),
        FaultKind::Bandwidth { rate_kb, direction } => {
            each(*direction, "bandwidth", vec![("rate", *rate_kb as u64)])
        }
        FaultKind::Slicer {
            average_size,
            size_variation,
            delay,
            direction,
        } => each(
            *direction,
            "slicer",
            vec![
                ("average_size", *average_size as u64),
                ("size_variation", *size_variation as u64),
                ("delay", delay.map(|d| d.as_micros() as u64).unwrap_or(0)),
            ],
        ),
        FaultKind::SlowClose { delay } => each(
            Direction::Both,
            "slow_close",
            vec![("delay", ms(Some(*delay)))],
        ),
        FaultKind::NetworkTimeout { after, direction } => {
            each(*direction, "timeout", vec![("timeout", ms(*after))])
        }
        FaultKind::LimitData { bytes, direction } => {
            each(*direction, "limit_data", vec![("bytes", *bytes)])
        }
        _ => vec![],
    })
}

/// The embedded chaos proxy as the engine's network backend.
#[derive(Debug)]
pub struct EmbeddedNetwork {
    proxy: ChaosProxy,
    counter: AtomicU64,
}

impl EmbeddedNetwork {
    /// Over this proxy set.
    pub fn new(proxy: ChaosProxy) -> Self {
        Self {
            proxy,
            counter: AtomicU64::new(0),
        }
    }

    fn targets(&self, dep: Option<DependencyName>) -> Vec<String> {
        match dep {
            Some(d) => vec![proxy_name(d).to_string()],
            None => self.proxy.list().into_keys().collect(),
        }
    }
}

impl NetworkFaults for EmbeddedNetwork {
    fn apply(
        &self,
        dependency: Option<DependencyName>,
        fault: &FaultKind,
        label: &str,
    ) -> Result<Vec<String>, String> {
        let targets = self.targets(dependency);
        if targets.is_empty() {
            return Err("no proxy in front of that dependency".into());
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut applied = vec![];
        for proxy in targets {
            match plan(fault) {
                None => {
                    self.proxy
                        .set_enabled(&proxy, false)
                        .map_err(|e| e.to_string())?;
                    applied.push(format!("{proxy}/!disabled"));
                }
                Some(toxics) => {
                    for t in toxics {
                        let name = format!("{label}-{n}-{}", t.stream);
                        let attributes: serde_json::Map<String, serde_json::Value> = t
                            .attributes
                            .iter()
                            .map(|(k, v)| (k.to_string(), json!(v)))
                            .collect();
                        let body = json!({"name": name, "type": t.kind, "stream": t.stream, "toxicity": 1.0, "attributes": attributes});
                        if let Err(e) = self.proxy.add_toxic(&proxy, &body) {
                            self.remove(&applied);
                            return Err(format!("proxy {proxy}: {e}"));
                        }
                        applied.push(format!("{proxy}/{name}"));
                    }
                }
            }
        }
        Ok(applied)
    }

    fn remove(&self, applied: &[String]) {
        for a in applied {
            if let Some((proxy, what)) = a.split_once('/') {
                if what == "!disabled" {
                    let _ = self.proxy.set_enabled(proxy, true);
                } else {
                    let _ = self.proxy.remove_toxic(proxy, what);
                }
            }
        }
    }
}
