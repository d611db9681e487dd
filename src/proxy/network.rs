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

/// Run a blocking `toxiproxy_rust` call on a thread of its own: its blocking HTTP client
/// must not run (or be dropped) on an async runtime's thread, and it panics on HTTP failures.
fn off_runtime<T: Send>(f: impl FnOnce() -> Result<T, String> + Send) -> Result<T, String> {
    std::thread::scope(|s| s.spawn(f).join()).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "toxiproxy_rust failed".into());
        Err(msg)
    })
}

/// An applied network fault on an external Toxiproxy.
#[derive(Clone, Debug)]
struct Applied {
    token: String,
    proxy: String,
    plans: Option<Vec<ToxicPlan>>,
}

/// An external Toxiproxy server (another host's, on a game day) as the engine's network
/// backend, driven through the `toxiproxy_rust` client. Proxies must exist there, named
/// `salesforce` and `llm` (or as mapped with [`ToxiproxyNetwork::with_proxy_names`]).
///
/// `toxiproxy_rust` names toxics `{type}_{stream}` and cannot delete a single toxic, so
/// removing one fault deletes the proxy's toxics and re-adds those of the faults still in
/// force; two faults of the same type and stream on one proxy cannot coexist, and it cannot
/// create `reset_peer` toxics.
#[derive(Debug)]
pub struct ToxiproxyNetwork {
    addr: std::net::SocketAddr,
    salesforce: String,
    llm: String,
    applied: parking_lot::Mutex<Vec<Applied>>,
    counter: AtomicU64,
}

impl ToxiproxyNetwork {
    /// A Toxiproxy API at `addr` (Toxiproxy's default is 127.0.0.1:8474).
    pub fn new(addr: std::net::SocketAddr) -> Self {
        Self {
            addr,
            salesforce: "salesforce".into(),
            llm: "llm".into(),
            applied: parking_lot::Mutex::new(vec![]),
            counter: AtomicU64::new(0),
        }
    }

    /// Use other proxy names on that server.
    pub fn with_proxy_names(mut self, salesforce: &str, llm: &str) -> Self {
        self.salesforce = salesforce.into();
        self.llm = llm.into();
        self
    }

    fn targets(&self, dep: Option<DependencyName>) -> Vec<String> {
        match dep {
            Some(DependencyName::Llm) => vec![self.llm.clone()],
            Some(_) => vec![self.salesforce.clone()],
            None => vec![self.salesforce.clone(), self.llm.clone()],
        }
    }

    fn add(&self, proxy: &str, plans: &[ToxicPlan]) -> Result<(), String> {
        let addr = self.addr;
        off_runtime(move || {
            let client = toxiproxy_rust::client::Client::new(addr);
            let p = client.find_proxy(proxy)?;
            for t in plans {
                let a = |k: &str| {
                    t.attributes
                        .iter()
                        .find(|(n, _)| *n == k)
                        .map(|(_, v)| *v as u32)
                        .unwrap_or(0)
                };
                let s = t.stream.to_string();
                match t.kind {
                    "latency" => p.with_latency(s, a("latency"), a("jitter"), 1.0),
                    "bandwidth" => p.with_bandwidth(s, a("rate"), 1.0),
                    "slicer" => {
                        p.with_slicer(s, a("average_size"), a("size_variation"), a("delay"), 1.0)
                    }
                    "slow_close" => p.with_slow_close(s, a("delay"), 1.0),
                    "timeout" => p.with_timeout(s, a("timeout"), 1.0),
                    "limit_data" => p.with_limit_data(s, a("bytes"), 1.0),
                    other => return Err(format!("toxiproxy_rust cannot create {other} toxics")),
                };
            }
            Ok(())
        })
    }

    fn set_enabled(&self, proxy: &str, enabled: bool) -> Result<(), String> {
        let addr = self.addr;
        off_runtime(move || {
            let p = toxiproxy_rust::client::Client::new(addr).find_proxy(proxy)?;
            if enabled {
                p.enable()
            } else {
                p.disable()
            }
        })
    }
}

impl NetworkFaults for ToxiproxyNetwork {
    fn apply(
        &self,
        dependency: Option<DependencyName>,
        fault: &FaultKind,
        label: &str,
    ) -> Result<Vec<String>, String> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let plans = plan(fault);
        let mut tokens = vec![];
        for proxy in self.targets(dependency) {
            match &plans {
                None => self.set_enabled(&proxy, false)?,
                Some(p) => self.add(&proxy, p)?,
            }
            let token = format!("{proxy}/{label}-{n}");
            self.applied.lock().push(Applied {
                token: token.clone(),
                proxy,
                plans: plans.clone(),
            });
            tokens.push(token);
        }
        Ok(tokens)
    }

    fn remove(&self, applied: &[String]) {
        let removed: Vec<Applied> = {
            let mut all = self.applied.lock();
            let (gone, kept): (Vec<Applied>, Vec<Applied>) =
                all.drain(..).partition(|a| applied.contains(&a.token));
            *all = kept;
            gone
        };
        for a in removed {
            match a.plans {
                None => {
                    let _ = self.set_enabled(&a.proxy, true);
                }
                Some(_) => {
                    let addr = self.addr;
                    let proxy = a.proxy.clone();
                    let _ = off_runtime(move || {
                        toxiproxy_rust::client::Client::new(addr)
                            .find_proxy(&proxy)?
                            .delete_all_toxics()
                    });
                    let still: Vec<ToxicPlan> = self
                        .applied
                        .lock()
                        .iter()
                        .filter(|x| x.proxy == a.proxy)
                        .flat_map(|x| x.plans.clone().unwrap_or_default())
                        .collect();
                    let _ = self.add(&a.proxy, &still);
                }
            }
        }
    }
}
