//! `crashcart tune --real-time`: the sweep in real time, against the scenario's own SUT (or
//! the reference integration on sockets). Each run starts its own mocks, proxies and SUT on
//! ports of its own, so several run at once; the swept values reach an external SUT through
//! its environment, as the scenario's `tune.sut_env` maps them:
//!
//! ```yaml
//! tune:
//!   strategies: [exponential, full-jitter]
//!   base: [5ms, 50ms]
//!   sut_env: {RETRY_STRATEGY: "{{strategy}}", RETRY_BASE_MS: "{{base_ms}}"}
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use super::{Config, Space};
use crate::error::Error;
use crate::reference::{Defects, Policy};
use crate::run::{Events, RunOptions, RunOutcome};
use crate::scenario::template;
use crate::scenario::{Scenario, SutKind};

/// The variables `tune.sut_env` may use, and what each is.
pub const VARIABLES: [(&str, &str); 12] = [
    (
        "strategy",
        "none | constant | exponential | full-jitter | equal-jitter | decorrelated",
    ),
    ("base", "first backoff step, humantime (`5ms`)"),
    ("base_ms", "first backoff step, whole milliseconds"),
    ("cap", "largest backoff, humantime"),
    ("cap_ms", "largest backoff, milliseconds"),
    ("max_attempts", "attempts per call, the first included"),
    ("budget", "retry budget on: `true` / `false`"),
    (
        "breaker_threshold",
        "consecutive failures that open the breaker",
    ),
    ("breaker_open", "how long the breaker stays open, humantime"),
    (
        "breaker_open_ms",
        "how long the breaker stays open, milliseconds",
    ),
    (
        "clients",
        "the run's client count (the workload's concurrency)",
    ),
    ("seed", "the run's seed (also in CRASHCART_SEED)"),
];

/// The values of [`VARIABLES`] for one run.
pub fn variables(c: &Config, clients: u32, seed: u64) -> BTreeMap<String, String> {
    let human = |d| humantime::format_duration(d).to_string();
    [
        ("strategy", c.strategy.name().to_string()),
        ("base", human(c.base)),
        ("base_ms", c.base.as_millis().to_string()),
        ("cap", human(c.cap)),
        ("cap_ms", c.cap.as_millis().to_string()),
        ("max_attempts", c.max_attempts.to_string()),
        ("budget", c.budget.to_string()),
        ("breaker_threshold", c.breaker_threshold.to_string()),
        ("breaker_open", human(c.breaker_open)),
        ("breaker_open_ms", c.breaker_open.as_millis().to_string()),
        ("clients", clients.to_string()),
        ("seed", seed.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The SUT's environment for one run.
pub fn sut_env(
    map: &BTreeMap<String, String>,
    c: &Config,
    clients: u32,
    seed: u64,
) -> Vec<(String, String)> {
    let vars = variables(c, clients, seed);
    map.iter()
        .map(|(k, v)| (k.clone(), template::render(v, &vars)))
        .collect()
}

/// The swept dimensions with more than one value, and the variables that carry each.
fn swept(space: &Space) -> Vec<(&'static str, &'static [&'static str])> {
    [
        ("strategies", space.strategies.len(), &["strategy"][..]),
        ("base", space.base.len(), &["base", "base_ms"][..]),
        ("cap", space.cap.len(), &["cap", "cap_ms"][..]),
        (
            "max_attempts",
            space.max_attempts.len(),
            &["max_attempts"][..],
        ),
        ("budget", space.budget.len(), &["budget"][..]),
        (
            "breaker_threshold",
            space.breaker_threshold.len(),
            &["breaker_threshold"][..],
        ),
        (
            "breaker_open",
            space.breaker_open.len(),
            &["breaker_open", "breaker_open_ms"][..],
        ),
    ]
    .into_iter()
    .filter(|(_, n, _)| *n > 1)
    .map(|(k, _, vars)| (k, vars))
    .collect()
}

/// An external SUT's sweep must reach it: `tune.sut_env` uses only known variables, and each
/// setting swept over more than one value is in it (else every row would run the same
/// integration, and the table would rank noise).
pub fn check(s: &Scenario, space: &Space) -> Result<(), Error> {
    if matches!(s.sut, SutKind::Reference) {
        return Ok(());
    }
    let mut problems = vec![];
    if matches!(s.sut, SutKind::Url(_)) {
        problems.push(
            "sut.url: a running system cannot be restarted with each configuration's settings; tune needs `sut.command`".to_string(),
        );
    }
    if space.sut_env.is_empty() {
        problems.push(format!(
            "tune.sut_env: map the swept settings to your SUT's environment, e.g. {{RETRY_BASE_MS: \"{{{{base_ms}}}}\"}} (variables: {})",
            names().join(", ")
        ));
    }
    let mut used = std::collections::BTreeSet::new();
    for (k, v) in &space.sut_env {
        for p in template::placeholders(v) {
            if names().contains(&p) {
                used.insert(p);
            } else {
                problems.push(format!(
                    "tune.sut_env.{k}: unknown variable {{{{{p}}}}} (known: {})",
                    names().join(", ")
                ));
            }
        }
    }
    for (dimension, vars) in swept(space) {
        if !vars.iter().any(|v| used.contains(v)) && !space.sut_env.is_empty() {
            problems.push(format!(
                "tune.{dimension}: swept over several values, but no tune.sut_env entry uses {}: the SUT would never see them",
                vars.iter().map(|v| format!("{{{{{v}}}}}")).collect::<Vec<_>>().join(" or ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidInput(problems.join("; ")))
    }
}

fn names() -> Vec<&'static str> {
    VARIABLES.iter().map(|(n, _)| *n).collect()
}

/// One run of the sweep in real time: the scenario's workload at `clients`, the SUT given the
/// configuration through its environment (the reference integration through its policy).
pub async fn run_one(
    s: &Scenario,
    env_map: &BTreeMap<String, String>,
    config: &Config,
    clients: u32,
    seed: u64,
    dir: &Path,
) -> Result<RunOutcome, Error> {
    let s = super::at_clients(s, clients);
    let reference = matches!(s.sut, SutKind::Reference);
    let opts = RunOptions {
        seed: Some(seed),
        report_dir: Some(dir.to_path_buf()),
        defects: reference.then(Defects::none),
        policy: reference.then(|| Policy {
            operation_deadline: s.workload.timeout,
            ..config.policy()
        }),
        sut_env: sut_env(env_map, config, clients, seed),
        ..RunOptions::default()
    };
    crate::run::run(&s, &opts, &Events::none()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::resilience::Strategy;
    use std::time::Duration;

    fn external(space_yaml: &str) -> (Scenario, Space) {
        let text = format!(
            "duration: 2s\nsut: {{command: ./sut, ready: \"http://127.0.0.1:${{PORT}}/health\"}}\nworkload: {{concurrency: 1, operations: [{{name: a, path: /a}}]}}\nfaults: [{{fault: {{kind: expire_tokens}}}}]\nslos: [{{check: availability}}]\ntune: {space_yaml}\n"
        );
        let s = crate::scenario::validate::parse(&text, Path::new("t.yaml")).unwrap();
        let space = s.raw.tune.clone().unwrap();
        (s, space)
    }

    #[test]
    fn each_configuration_reaches_the_sut_through_its_environment() {
        let (s, space) = external(
            "{strategies: [full-jitter], base: [5ms, 250ms], sut_env: {RETRY_BASE_MS: \"{{base_ms}}\", RETRY: \"{{strategy}}/{{max_attempts}}\"}}",
        );
        check(&s, &space).unwrap();
        let c = &space.configs()[1];
        assert_eq!(c.base, Duration::from_millis(250));
        assert_eq!(c.strategy, Strategy::FullJitter);
        let env = sut_env(&space.sut_env, c, 4, 9);
        assert!(
            env.contains(&("RETRY_BASE_MS".into(), "250".into())),
            "{env:?}"
        );
        assert!(
            env.iter()
                .any(|(k, v)| k == "RETRY" && v.starts_with("full-jitter/")),
            "{env:?}"
        );
    }

    #[test]
    fn a_sweep_the_sut_would_never_see_is_refused() {
        let (s, space) = external("{base: [5ms, 50ms]}");
        let e = check(&s, &space).unwrap_err().to_string();
        assert!(e.contains("tune.sut_env: map the swept settings"), "{e}");
        let (s, space) = external(
            "{base: [5ms, 50ms], cap: [1s, 2s], sut_env: {RETRY_BASE_MS: \"{{base_ms}}\", X: \"{{bass}}\"}}",
        );
        let e = check(&s, &space).unwrap_err().to_string();
        assert!(e.contains("tune.cap: swept over several values"), "{e}");
        assert!(e.contains("unknown variable {{bass}}"), "{e}");
        assert!(!e.contains("tune.base:"), "{e}");
    }
}
