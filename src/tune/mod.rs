//! `crashcart tune SCENARIO`: compare retry/backoff settings under a scenario's fault schedule
//! in simulation (paused clock, in-process), deterministically and in seconds.
//!
//! A [`Space`] (from the command line or the scenario's `tune:` section) names strategies,
//! base, cap, attempts, the retry budget on or off, the breaker's threshold and open time,
//! client counts and seeds. Every combination runs the scenario's workload against the
//! reference integration with those settings; each run gives a [`Sample`] (completion time,
//! calls and amplification, Salesforce quota burned, LLM slot-seconds, success ratio, SLOs
//! met). Samples are folded over seeds into [`Row`]s, ranked, and the Pareto front over
//! (time, calls, quota) is marked; [`recommend`] picks from the front.
//!
//! [`real_time`]: the same sweep in real time against any SUT, each run on mocks and ports of
//! its own, several at once; the swept values reach the SUT through its environment
//! (`tune.sut_env`).

pub mod real_time;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::checks::Verdict;
use crate::error::Error;
use crate::reference::resilience::Strategy;
use crate::reference::{Defects, Policy};
use crate::run::{RunOptions, RunOutcome};
use crate::scenario::domain::Pace;
use crate::scenario::Scenario;

/// The sweep space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Space {
    /// Backoff strategies.
    #[serde(default = "all_strategies")]
    #[schemars(with = "Vec<String>")]
    pub strategies: Vec<Strategy>,
    /// First backoff steps.
    #[serde(default = "default_base", with = "durations")]
    #[schemars(with = "Vec<String>")]
    pub base: Vec<Duration>,
    /// Largest backoffs.
    #[serde(default = "default_cap", with = "durations")]
    #[schemars(with = "Vec<String>")]
    pub cap: Vec<Duration>,
    /// Attempts per call.
    #[serde(default = "default_attempts")]
    pub max_attempts: Vec<u32>,
    /// Retry budget on, off.
    #[serde(default = "default_budget")]
    pub budget: Vec<bool>,
    /// Consecutive failures that open the breaker.
    #[serde(default = "default_threshold")]
    pub breaker_threshold: Vec<u32>,
    /// How long the breaker stays open.
    #[serde(default = "default_open", with = "durations")]
    #[schemars(with = "Vec<String>")]
    pub breaker_open: Vec<Duration>,
    /// Client counts (the workload's concurrency).
    #[serde(default = "default_clients")]
    pub clients: Vec<u32>,
    /// Seeds.
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    /// For `--real-time` against your own SUT: each setting as the SUT's environment reads
    /// it, templated from the swept values (`{RETRY_BASE_MS: "{{base_ms}}"}`; see
    /// [`real_time::VARIABLES`]).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub sut_env: std::collections::BTreeMap<String, String>,
}

fn all_strategies() -> Vec<Strategy> {
    Strategy::ALL.to_vec()
}
fn default_base() -> Vec<Duration> {
    vec![Policy::default().base]
}
fn default_cap() -> Vec<Duration> {
    vec![Policy::default().cap]
}
fn default_attempts() -> Vec<u32> {
    vec![Policy::default().max_attempts]
}
fn default_budget() -> Vec<bool> {
    vec![true]
}
fn default_threshold() -> Vec<u32> {
    vec![Policy::default().breaker_threshold]
}
fn default_open() -> Vec<Duration> {
    vec![Policy::default().breaker_open_for]
}
fn default_clients() -> Vec<u32> {
    vec![4]
}
fn default_seeds() -> Vec<u64> {
    vec![1, 2, 3]
}

mod durations {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(|d| humantime::format_duration(*d).to_string())
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|t| humantime::parse_duration(t).map_err(serde::de::Error::custom))
            .collect()
    }
}

impl Default for Space {
    fn default() -> Self {
        Self {
            strategies: all_strategies(),
            base: default_base(),
            cap: default_cap(),
            max_attempts: default_attempts(),
            budget: default_budget(),
            breaker_threshold: default_threshold(),
            breaker_open: default_open(),
            clients: default_clients(),
            seeds: default_seeds(),
            sut_env: Default::default(),
        }
    }
}

/// One point of the space (everything but clients and seed).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    /// Strategy.
    pub strategy: Strategy,
    /// Base.
    pub base: Duration,
    /// Cap.
    pub cap: Duration,
    /// Attempts.
    pub max_attempts: u32,
    /// Budget on.
    pub budget: bool,
    /// Breaker threshold.
    pub breaker_threshold: u32,
    /// Breaker open time.
    pub breaker_open: Duration,
}

impl Config {
    /// A short label: `full-jitter base=5ms cap=2s attempts=100 budget=off breaker=5/1s`.
    pub fn label(&self) -> String {
        format!(
            "{} base={} cap={} attempts={} budget={} breaker={}/{}",
            self.strategy.name(),
            humantime::format_duration(self.base),
            humantime::format_duration(self.cap),
            self.max_attempts,
            if self.budget { "on" } else { "off" },
            self.breaker_threshold,
            humantime::format_duration(self.breaker_open)
        )
    }

    /// The reference integration's policy for this point.
    pub fn policy(&self) -> Policy {
        Policy {
            strategy: self.strategy,
            base: self.base,
            cap: self.cap,
            max_attempts: self.max_attempts,
            budget: self.budget,
            breaker_threshold: self.breaker_threshold,
            breaker_open_for: self.breaker_open,
            ..Policy::default()
        }
    }
}

impl Space {
    /// Refuse an empty or contradictory space, naming the key.
    pub fn check(&self) -> Result<(), Error> {
        let mut problems = vec![];
        for (key, empty) in [
            ("strategies", self.strategies.is_empty()),
            ("base", self.base.is_empty()),
            ("cap", self.cap.is_empty()),
            ("max_attempts", self.max_attempts.is_empty()),
            ("budget", self.budget.is_empty()),
            ("breaker_threshold", self.breaker_threshold.is_empty()),
            ("breaker_open", self.breaker_open.is_empty()),
            ("clients", self.clients.is_empty()),
            ("seeds", self.seeds.is_empty()),
        ] {
            if empty {
                problems.push(format!("tune.{key}: the sweep space is empty"));
            }
        }
        if let (Some(b), Some(c)) = (self.base.iter().max(), self.cap.iter().min()) {
            if b > c {
                problems.push(format!(
                    "tune.base/cap: base {} is above cap {}",
                    humantime::format_duration(*b),
                    humantime::format_duration(*c)
                ));
            }
        }
        if self.clients.contains(&0) {
            problems.push("tune.clients: 0 clients cannot run anything".into());
        }
        if self.max_attempts.contains(&0) {
            problems.push("tune.max_attempts: at least 1".into());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidInput(problems.join("; ")))
        }
    }

    /// Every configuration, in a stable order. A strategy that ignores a setting is run
    /// once for it, not once per value (`none` waits nothing: one base and cap; `constant`
    /// always waits the base: one cap), so the table holds no rows that differ only by noise.
    pub fn configs(&self) -> Vec<Config> {
        let mut out = vec![];
        for &strategy in &self.strategies {
            let (bases, caps) = match strategy {
                Strategy::None => (
                    &self.base[..self.base.len().min(1)],
                    &self.cap[..self.cap.len().min(1)],
                ),
                Strategy::Constant => (&self.base[..], &self.cap[..self.cap.len().min(1)]),
                _ => (&self.base[..], &self.cap[..]),
            };
            for &base in bases {
                for &cap in caps {
                    for &max_attempts in &self.max_attempts {
                        for &budget in &self.budget {
                            for &breaker_threshold in &self.breaker_threshold {
                                for &breaker_open in &self.breaker_open {
                                    out.push(Config {
                                        strategy,
                                        base,
                                        cap,
                                        max_attempts,
                                        budget,
                                        breaker_threshold,
                                        breaker_open,
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// What one run gave.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Index into the configurations.
    pub config: usize,
    /// Clients.
    pub clients: u32,
    /// Seed.
    pub seed: u64,
    /// From the first operation started to the last one finished, seconds (virtual time).
    pub completion_s: f64,
    /// Workload operations finished.
    pub operations: u64,
    /// Calls to the dependencies.
    pub calls: u64,
    /// Salesforce API requests (they count against the daily quota).
    pub quota: u64,
    /// LLM generation time, slot-seconds.
    pub llm_slot_s: f64,
    /// Share of operations that succeeded.
    pub success: f64,
    /// True when every SLO was met.
    pub slos_met: bool,
}

/// Measure a finished run.
pub fn measure(config: usize, clients: u32, seed: u64, o: &RunOutcome) -> Sample {
    let ops: Vec<_> = o.timeline.ops().collect();
    let first = ops.iter().map(|e| e.at_us).min().unwrap_or(0);
    let last = ops.iter().map(|e| e.at_us).max().unwrap_or(0);
    let done: Vec<_> = ops
        .iter()
        .filter(|e| e.phase != crate::timeline::Phase::Invoke)
        .collect();
    let ok = done
        .iter()
        .filter(|e| e.phase == crate::timeline::Phase::Ok)
        .count();
    let mut calls = 0;
    let mut quota = 0;
    let mut slot_us = 0u64;
    for r in o.timeline.requests() {
        calls += 1;
        match r.dependency.as_str() {
            "salesforce" => quota += 1,
            "llm" => {
                if let Some(x) = &r.llm {
                    let end = x.last_byte_us.unwrap_or(r.at_us + r.latency_us);
                    slot_us += end.saturating_sub(r.at_us + x.queue_wait_us);
                }
            }
            _ => {}
        }
    }
    Sample {
        config,
        clients,
        seed,
        completion_s: (last - first) as f64 / 1e6,
        operations: done.len() as u64,
        calls,
        quota,
        llm_slot_s: slot_us as f64 / 1e6,
        success: if done.is_empty() {
            0.0
        } else {
            ok as f64 / done.len() as f64
        },
        slos_met: o.report.aborted.is_none()
            && o.report.slos.iter().all(|s| s.verdict != Verdict::Fail),
    }
}

/// The scenario with its workload at `clients` (closed loop); a tuned scenario's `total` is
/// per client.
pub(crate) fn at_clients(s: &Scenario, clients: u32) -> Scenario {
    let mut s = s.clone();
    let w = &mut s.workload;
    w.pace = Pace::Closed {
        concurrency: clients,
    };
    w.total = w.total.map(|t| t * clients as u64);
    s
}

/// One run of the sweep, in simulation on a paused clock of its own thread.
fn run_one(
    s: &Scenario,
    config: &Config,
    clients: u32,
    seed: u64,
    dir: &Path,
) -> Result<RunOutcome, Error> {
    let s = at_clients(s, clients);
    // An operation may retry for as long as the workload waits for it.
    let policy = Policy {
        operation_deadline: s.workload.timeout,
        ..config.policy()
    };
    let opts = RunOptions {
        seed: Some(seed),
        report_dir: Some(dir.to_path_buf()),
        defects: Some(Defects::none()),
        sim: true,
        policy: Some(policy),
        ..RunOptions::default()
    };
    crate::run::run_simulated(&s, &opts)
}

/// Run the whole sweep, `jobs` runs at once; `tick` is called after each run.
pub async fn sweep(
    s: &Scenario,
    space: &Space,
    jobs: usize,
    dir: &Path,
    tick: impl Fn() + Send + Sync + 'static,
) -> Result<(Vec<Config>, Vec<Sample>), Error> {
    sweep_in(s, space, jobs, dir, false, tick).await
}

/// [`sweep`], in simulation or (`real_time`) in real time against the scenario's own SUT.
pub async fn sweep_in(
    s: &Scenario,
    space: &Space,
    jobs: usize,
    dir: &Path,
    real_time: bool,
    tick: impl Fn() + Send + Sync + 'static,
) -> Result<(Vec<Config>, Vec<Sample>), Error> {
    space.check()?;
    if real_time {
        real_time::check(s, space)?;
    }
    let configs = space.configs();
    let permits = Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let tick = Arc::new(tick);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, c) in configs.iter().enumerate() {
        for &clients in &space.clients {
            for &seed in &space.seeds {
                let (s, c, dir) = (s.clone(), c.clone(), dir.to_path_buf());
                let space_env = space.sut_env.clone();
                let (permits, tick) = (permits.clone(), tick.clone());
                tasks.spawn(async move {
                    let _p = permits.acquire_owned().await;
                    if crate::run::shutdown::requested() {
                        return Err(Error::Aborted("interrupted (Ctrl-C or SIGTERM)".into()));
                    }
                    let r = if real_time {
                        real_time::run_one(&s, &space_env, &c, clients, seed, &dir)
                            .await
                            .map(|o| measure(i, clients, seed, &o))
                    } else {
                        tokio::task::spawn_blocking(move || {
                            run_one(&s, &c, clients, seed, &dir)
                                .map(|o| measure(i, clients, seed, &o))
                        })
                        .await
                        .unwrap_or_else(|e| Err(Error::Aborted(e.to_string())))
                    };
                    tick();
                    r
                });
            }
        }
    }
    let mut samples = vec![];
    while let Some(r) = tasks.join_next().await {
        samples.push(r.map_err(|e| Error::Aborted(e.to_string()))??);
    }
    samples.sort_by_key(|x| (x.config, x.clients, x.seed));
    Ok((configs, samples))
}

/// Samples of one configuration and client count, folded over seeds.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The configuration's label.
    pub config: String,
    /// Its strategy.
    pub strategy: &'static str,
    /// Clients.
    pub clients: u32,
    /// Runs folded.
    pub runs: usize,
    /// Completion time: mean, and the worst seed, seconds.
    pub completion_mean_s: f64,
    /// See `completion_mean_s`.
    pub completion_max_s: f64,
    /// Mean calls.
    pub calls: f64,
    /// Calls per operation.
    pub amplification: f64,
    /// Mean Salesforce requests.
    pub quota: f64,
    /// Mean LLM slot-seconds.
    pub llm_slot_s: f64,
    /// Mean success ratio.
    pub success: f64,
    /// Share of runs with every SLO met.
    pub slos_met: f64,
    /// On the Pareto front (time, calls, quota) among rows with the same clients.
    pub pareto: bool,
}

/// Fold samples into rows, mark the Pareto front per client count, rank (SLOs met, success,
/// then fewer calls, then shorter completion).
pub fn rows(configs: &[Config], samples: &[Sample]) -> Vec<Row> {
    let mut out: Vec<Row> = vec![];
    for (i, c) in configs.iter().enumerate() {
        let mut clients: Vec<u32> = samples
            .iter()
            .filter(|s| s.config == i)
            .map(|s| s.clients)
            .collect();
        clients.sort_unstable();
        clients.dedup();
        for n in clients {
            let group: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.config == i && s.clients == n)
                .collect();
            let k = group.len() as f64;
            let mean = |f: &dyn Fn(&Sample) -> f64| group.iter().map(|s| f(s)).sum::<f64>() / k;
            let ops = mean(&|s| s.operations as f64).max(1.0);
            out.push(Row {
                config: c.label(),
                strategy: c.strategy.name(),
                clients: n,
                runs: group.len(),
                completion_mean_s: mean(&|s| s.completion_s),
                completion_max_s: group.iter().map(|s| s.completion_s).fold(0.0, f64::max),
                calls: mean(&|s| s.calls as f64),
                amplification: mean(&|s| s.calls as f64) / ops,
                quota: mean(&|s| s.quota as f64),
                llm_slot_s: mean(&|s| s.llm_slot_s),
                success: mean(&|s| s.success),
                slos_met: mean(&|s| if s.slos_met { 1.0 } else { 0.0 }),
                pareto: false,
            });
        }
    }
    let dominated = |a: &Row, b: &Row| {
        b.clients == a.clients
            && b.completion_mean_s <= a.completion_mean_s
            && b.calls <= a.calls
            && b.quota <= a.quota
            && (b.completion_mean_s < a.completion_mean_s || b.calls < a.calls || b.quota < a.quota)
    };
    let flags: Vec<bool> = out
        .iter()
        .map(|a| !out.iter().any(|b| dominated(a, b)))
        .collect();
    for (r, f) in out.iter_mut().zip(flags) {
        r.pareto = f;
    }
    out.sort_by(|a, b| {
        a.clients
            .cmp(&b.clients)
            .then(b.slos_met.total_cmp(&a.slos_met))
            .then(b.success.total_cmp(&a.success))
            .then(a.calls.total_cmp(&b.calls))
            .then(a.completion_mean_s.total_cmp(&b.completion_mean_s))
    });
    out
}

/// The recommendation: at the largest client count, the best-ranked row on the Pareto front
/// that met every SLO in every run (else the best-ranked row).
pub fn recommend(rows: &[Row]) -> Option<&Row> {
    let most = rows.iter().map(|r| r.clients).max()?;
    let at = || rows.iter().filter(move |r| r.clients == most);
    at().find(|r| r.pareto && r.slos_met >= 1.0)
        .or_else(|| at().next())
}

/// The ranked table.
pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<7} {:<62} {:>9} {:>9} {:>8} {:>6} {:>8} {:>8} {:>7} {:>5}\n",
        "clients",
        "configuration",
        "time(s)",
        "worst(s)",
        "calls",
        "ampl",
        "quota",
        "llm s",
        "success",
        "slos"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<7} {:<62} {:>9.3} {:>9.3} {:>8.1} {:>6.2} {:>8.1} {:>8.2} {:>6.1}% {:>4.0}%{}\n",
            r.clients,
            r.config,
            r.completion_mean_s,
            r.completion_max_s,
            r.calls,
            r.amplification,
            r.quota,
            r.llm_slot_s,
            r.success * 100.0,
            r.slos_met * 100.0,
            if r.pareto { "  ◆ pareto" } else { "" }
        ));
    }
    out
}

/// The rows as CSV.
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from("clients,configuration,strategy,runs,completion_mean_s,completion_max_s,calls,amplification,quota,llm_slot_s,success,slos_met,pareto\n");
    for r in rows {
        out.push_str(&format!(
            "{},\"{}\",{},{},{:.6},{:.6},{:.2},{:.4},{:.2},{:.4},{:.4},{:.4},{}\n",
            r.clients,
            r.config,
            r.strategy,
            r.runs,
            r.completion_mean_s,
            r.completion_max_s,
            r.calls,
            r.amplification,
            r.quota,
            r.llm_slot_s,
            r.success,
            r.slos_met,
            r.pareto
        ));
    }
    out
}

/// An SVG chart: calls and completion time against clients, one line per configuration.
pub fn svg(rows: &[Row]) -> String {
    let mut configs: Vec<&str> = rows.iter().map(|r| r.config.as_str()).collect();
    configs.sort_unstable();
    configs.dedup();
    let max_clients = rows.iter().map(|r| r.clients).max().unwrap_or(1).max(1) as f64;
    let colours = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    ];
    let (w, h, pad) = (460.0, 300.0, 50.0);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n",
        2.0 * w + 40.0,
        h + 30.0 + 16.0 * configs.len() as f64
    );
    for (panel, (title, value)) in [
        ("calls", (|r: &Row| r.calls) as fn(&Row) -> f64),
        ("completion time (s)", |r: &Row| r.completion_mean_s),
    ]
    .into_iter()
    .enumerate()
    {
        let x0 = panel as f64 * (w + 40.0);
        let top = rows.iter().map(value).fold(0.0, f64::max).max(1e-9);
        out.push_str(&format!(
            "<text x=\"{}\" y=\"16\" font-weight=\"bold\">{title} vs clients</text>\n<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>\n<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#333\"/>\n<text x=\"{}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\">{top:.3}</text>\n",
            x0 + pad,
            x0 + pad, h - pad + 20.0, x0 + w, h - pad + 20.0,
            x0 + pad, 24.0, x0 + pad, h - pad + 20.0,
            x0 + w - 30.0, h - pad + 34.0, max_clients,
            x0 + 2.0, 30.0
        ));
        for (k, c) in configs.iter().enumerate() {
            let mut pts: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.config == *c)
                .map(|r| {
                    (
                        x0 + pad + (r.clients as f64 / max_clients) * (w - pad),
                        (h - pad + 20.0) - (value(r) / top) * (h - pad - 4.0),
                    )
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
            out.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>\n",
                colours[k % colours.len()],
                path.join(" ")
            ));
        }
    }
    for (k, c) in configs.iter().enumerate() {
        out.push_str(&format!(
            "<rect x=\"10\" y=\"{}\" width=\"12\" height=\"4\" fill=\"{}\"/><text x=\"28\" y=\"{}\">{c}</text>\n",
            h + 14.0 + 16.0 * k as f64,
            colours[k % colours.len()],
            h + 20.0 + 16.0 * k as f64
        ));
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_spaces_are_refused_with_the_key() {
        let empty = Space {
            strategies: vec![],
            ..Space::default()
        };
        let e = empty.check().unwrap_err().to_string();
        assert!(e.contains("tune.strategies"), "{e}");
        let crossed = Space {
            base: vec![Duration::from_secs(3)],
            cap: vec![Duration::from_secs(2)],
            ..Space::default()
        };
        assert!(crossed
            .check()
            .unwrap_err()
            .to_string()
            .contains("above cap"));
        let zero = Space {
            clients: vec![0, 4],
            ..Space::default()
        };
        assert!(zero.check().unwrap_err().to_string().contains("0 clients"));
        assert!(Space::default().check().is_ok());
        assert_eq!(Space::default().configs().len(), 6);
        let wide = Space {
            strategies: vec![Strategy::None, Strategy::Constant, Strategy::FullJitter],
            base: vec![Duration::from_millis(5), Duration::from_millis(50)],
            cap: vec![Duration::from_secs(1), Duration::from_secs(2)],
            ..Space::default()
        };
        // none: 1; constant: 2 bases; full jitter: 2 bases × 2 caps.
        let c = wide.configs();
        assert_eq!(c.len(), 1 + 2 + 4, "{c:?}");
        assert_eq!(c.iter().filter(|c| c.strategy == Strategy::None).count(), 1);
    }

    #[test]
    fn the_pareto_front_keeps_rows_nothing_beats_on_every_axis() {
        let sample = |config, calls, t| Sample {
            config,
            clients: 2,
            seed: 1,
            completion_s: t,
            operations: 2,
            calls,
            quota: calls,
            llm_slot_s: 0.0,
            success: 1.0,
            slos_met: true,
        };
        let space = Space {
            strategies: vec![
                Strategy::Exponential,
                Strategy::FullJitter,
                Strategy::Constant,
            ],
            ..Space::default()
        };
        let configs = space.configs();
        let rows = rows(
            &configs,
            &[sample(0, 10, 1.0), sample(1, 5, 2.0), sample(2, 12, 3.0)],
        );
        let front: Vec<&str> = rows
            .iter()
            .filter(|r| r.pareto)
            .map(|r| r.strategy)
            .collect();
        assert_eq!(front, vec!["full-jitter", "exponential"]);
        assert_eq!(recommend(&rows).unwrap().strategy, "full-jitter");
        assert!(csv(&rows).lines().count() == 4 && svg(&rows).contains("<polyline"));
    }
}
