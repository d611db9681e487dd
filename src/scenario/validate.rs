//! From a raw scenario to a checked one: every problem is collected (not only the first),
//! each naming its key path (`faults[2].target.route`); parse errors name line and column.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::fault::engine::check_spec;

use super::domain::{Drain, Slo, Workload};
use super::raw::{Command, OnFailure, RawOperation, RawScenario, RawSlo};
use super::step;
use super::targets::Names;
use super::template;

/// One problem in a scenario file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where: a key path (`workload.operations[0].path`), or `line L column C`.
    pub at: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// A scenario file that cannot be used, with every problem found.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{}", render(.file, .problems))]
pub struct ScenarioError {
    /// The file.
    pub file: PathBuf,
    /// What is wrong with it.
    pub problems: Vec<Problem>,
}

fn render(file: &Path, problems: &[Problem]) -> String {
    let mut s = format!(
        "{}: {} problem{}",
        file.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        s.push_str(&format!("\n  {}: {p}", file.display()));
    }
    s
}

/// How the SUT is reached.
#[derive(Clone, Debug, PartialEq)]
pub enum SutKind {
    /// crashcart starts this command.
    Command {
        /// The command.
        command: Command,
        /// Its working directory.
        cwd: PathBuf,
        /// How it says it is ready.
        ready: Readiness,
    },
    /// An already running system.
    Url(String),
    /// The built-in reference integration.
    Reference,
    /// No long-running process: the workload's `run` steps start the SUT (a batch job).
    Batch {
        /// Where its commands run.
        cwd: PathBuf,
    },
}

/// How a started SUT says it is ready.
#[derive(Clone, Debug, PartialEq)]
pub enum Readiness {
    /// A URL (with `${PORT}`) that answers 2xx.
    Url(String),
    /// A line of its output matching this regular expression.
    Log(step::Pattern),
    /// A command that exits 0.
    Command(Command),
}

/// A checked scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The file it came from.
    pub file: PathBuf,
    /// Its name.
    pub name: String,
    /// The raw form, checked: the file as written (what `explore` writes back). The runner
    /// and the checkers read the domain values below.
    pub raw: RawScenario,
    /// The workload, defaults applied.
    pub workload: Workload,
    /// The SLOs, defaults applied.
    pub slos: Vec<Slo>,
    /// The drain after the workload.
    pub drain: Drain,
    /// How the SUT is reached.
    pub sut: SutKind,
    /// Time to wait for readiness.
    pub ready_timeout: Duration,
    /// Grace between SIGTERM and SIGKILL.
    pub grace: Duration,
}

struct Collector(Vec<Problem>);

impl Collector {
    fn add(&mut self, at: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            at: at.into(),
            message: message.into(),
        });
    }
}

/// Read, parse and check a scenario file.
pub fn load(file: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(file).map_err(|e| ScenarioError {
        file: file.to_path_buf(),
        problems: vec![Problem {
            at: "file".into(),
            message: format!("cannot read: {e}"),
        }],
    })?;
    parse(&text, file)
}

/// Parse and check scenario text; `file` names it in errors and anchors relative paths.
pub fn parse(text: &str, file: &Path) -> Result<Scenario, ScenarioError> {
    let raw: RawScenario = serde_saphyr::from_str(text).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.strip_prefix("error: ").unwrap_or(&msg).to_string();
        let (at, message) = match msg.split_once(": ") {
            Some((at, m)) if at.starts_with("line ") => (at.to_string(), m.to_string()),
            _ => ("document".to_string(), msg.clone()),
        };
        ScenarioError {
            file: file.to_path_buf(),
            problems: vec![Problem { at, message }],
        }
    })?;
    check(raw, file)
}

/// Check a parsed scenario.
pub fn check(raw: RawScenario, file: &Path) -> Result<Scenario, ScenarioError> {
    let mut c = Collector(vec![]);
    // A bare relative file name (`run x.yaml`) has an empty parent: the current directory.
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    if raw.duration.is_zero() {
        c.add("duration", "must be above zero");
    }
    for (at, m) in super::bounds::check(&raw) {
        c.add(at, m);
    }
    let names = check_mocks(&raw, &dir, &mut c);
    let sut = check_sut(&raw, &dir, &mut c);
    check_workload(&raw, names.as_ref(), &mut c);
    check_drain_covers_effects(&raw, &mut c);
    check_faults(&raw, names.as_ref(), &mut c);
    check_slos(&raw, names.as_ref(), &mut c);
    if let Some(r) = raw.abort.error_ratio_above {
        if !(0.0..=1.0).contains(&r) {
            c.add("abort.error_ratio_above", "must be within 0 and 1");
        }
    }
    if !c.0.is_empty() {
        return Err(ScenarioError {
            file: file.to_path_buf(),
            problems: c.0,
        });
    }
    let name = raw.name.clone().unwrap_or_else(|| {
        file.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into())
    });
    Ok(Scenario {
        file: file.to_path_buf(),
        name,
        ready_timeout: raw.sut.ready_timeout.unwrap_or(Duration::from_secs(30)),
        grace: raw.sut.grace.unwrap_or(Duration::from_secs(5)),
        sut,
        workload: Workload::from_raw(&raw.workload),
        slos: raw.slos.iter().map(Slo::from_raw).collect(),
        drain: Drain::from_raw(raw.drain.as_ref()).at_least(longest_within(&raw)),
        raw,
    })
}

/// The longest time any eventual effect is given (`within`); zero when none is.
fn longest_within(raw: &RawScenario) -> Duration {
    raw.workload
        .operations
        .iter()
        .flat_map(|o| o.effects.iter().filter_map(|e| e.within))
        .max()
        .unwrap_or_default()
}

/// An explicit drain must give the eventual effects their time.
fn check_drain_covers_effects(raw: &RawScenario, c: &mut Collector) {
    let longest = longest_within(raw);
    if let Some(max) = raw.drain.as_ref().and_then(|d| d.max) {
        if max < longest {
            c.add(
                "drain.max",
                format!(
                    "{} is shorter than an eventual effect's `within` ({}): the last operations' effects would be judged before their time is up",
                    humantime::format_duration(max),
                    humantime::format_duration(longest)
                ),
            );
        }
    }
}

/// The mocks' files and settings; what the mocks answer to, when their files can be read.
fn check_mocks(raw: &RawScenario, dir: &Path, c: &mut Collector) -> Option<Names> {
    let before = c.0.len();
    for (i, p) in raw.mocks.salesforce.schema.iter().enumerate() {
        if !dir.join(p).is_file() {
            c.add(
                format!("mocks.salesforce.schema[{i}]"),
                format!("no such file: {}", dir.join(p).display()),
            );
        }
    }
    for (i, p) in raw.mocks.llm.personas.iter().enumerate() {
        if !dir.join(p).is_file() {
            c.add(
                format!("mocks.llm.personas[{i}]"),
                format!("no such file: {}", dir.join(p).display()),
            );
        }
    }
    if let Some(f) = &raw.mocks.llm.flavour {
        if let Err(e) = f.parse::<crashcart_mocks::llm::Flavour>() {
            c.add("mocks.llm.flavour", e);
        }
    }
    if let Some(cp) = &raw.mocks.llm.capture {
        if let Err(e) = cp.parse::<crashcart_mocks::llm::CapturePolicy>() {
            c.add("mocks.llm.capture", e);
        }
    }
    if let Some(addr) = &raw.mocks.network.toxiproxy {
        use std::net::ToSocketAddrs;
        match addr.to_socket_addrs().map(|a| a.collect::<Vec<_>>()) {
            Err(e) => c.add(
                "mocks.network.toxiproxy",
                format!("not a host:port address ({e})"),
            ),
            Ok(a) if !raw.mocks.network.allow_remote && a.iter().any(|x| !x.ip().is_loopback()) => {
                c.add(
                    "mocks.network.toxiproxy",
                    format!(
                        "{addr} is not a loopback address; set `allow_remote: true` to permit it"
                    ),
                )
            }
            _ => {}
        }
    }
    if c.0.len() > before {
        return None;
    }
    match Names::load(raw, dir) {
        Ok(n) => Some(n),
        Err(problems) => {
            for p in problems {
                c.add(p.at, p.message);
            }
            None
        }
    }
}

/// Exactly one way to reach the SUT, and what that way needs.
fn check_sut(raw: &RawScenario, dir: &Path, c: &mut Collector) -> SutKind {
    let s = &raw.sut;
    let given = [s.command.is_some(), s.url.is_some(), s.reference, s.batch]
        .iter()
        .filter(|b| **b)
        .count();
    if given != 1 {
        c.add(
            "sut",
            "give exactly one of `command`, `url`, `reference: true` or `batch: true`",
        );
    }
    let readiness = [
        s.ready.is_some(),
        s.ready_log.is_some(),
        s.ready_command.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if readiness > 1 {
        c.add(
            "sut",
            "give one of `ready` (a URL), `ready_log` or `ready_command`",
        );
    }
    if s.command.is_none() && (s.ready_log.is_some() || s.ready_command.is_some()) {
        c.add(
            if s.ready_log.is_some() {
                "sut.ready_log"
            } else {
                "sut.ready_command"
            },
            "only a started SUT (`command`) has output or a readiness command",
        );
    }
    let sut = if let Some(cmd) = &s.command {
        if matches!(cmd, Command::Argv(v) if v.is_empty())
            || matches!(cmd, Command::Shell(t) if t.trim().is_empty())
        {
            c.add("sut.command", "must not be empty");
        }
        let ready = match (&s.ready, &s.ready_log, &s.ready_command) {
            (Some(u), _, _) => Readiness::Url(u.clone()),
            (None, Some(l), _) => match regex::Regex::new(l) {
                Ok(p) => Readiness::Log(step::Pattern(p)),
                Err(e) => {
                    c.add("sut.ready_log", format!("not a regular expression: {e}"));
                    Readiness::Url(String::new())
                }
            },
            (None, None, Some(cmd)) => {
                if matches!(cmd, Command::Argv(v) if v.is_empty()) {
                    c.add("sut.ready_command", "must not be empty");
                }
                Readiness::Command(cmd.clone())
            }
            (None, None, None) => {
                c.add(
                    "sut.ready",
                    "a started SUT needs a readiness URL (e.g. http://127.0.0.1:${PORT}/health), a `ready_log` line or a `ready_command`",
                );
                Readiness::Url(String::new())
            }
        };
        SutKind::Command {
            command: cmd.clone(),
            cwd: dir.join(s.cwd.clone().unwrap_or_default()),
            ready,
        }
    } else if let Some(u) = &s.url {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            c.add("sut.url", format!("must be an http(s) URL, got {u:?}"));
        }
        SutKind::Url(u.clone())
    } else if s.batch {
        SutKind::Batch {
            cwd: dir.join(s.cwd.clone().unwrap_or_default()),
        }
    } else {
        SutKind::Reference
    };
    if let Some(r) = &s.ready {
        if !(r.starts_with("http://") || r.starts_with("https://")) {
            c.add("sut.ready", format!("must be an http(s) URL, got {r:?}"));
        }
    }
    for (key, url) in [("sut.url", &s.url), ("sut.ready", &s.ready)] {
        if let Some(u) = url.as_deref().filter(|_| !s.allow_remote) {
            if let Some(host) = remote_host(u) {
                c.add(
                    key,
                    format!(
                        "{host} is not this machine; set `sut.allow_remote: true` to permit it"
                    ),
                );
            }
        }
    }
    sut
}

/// The pace and every operation.
fn check_workload(raw: &RawScenario, names: Option<&Names>, c: &mut Collector) {
    let w = &raw.workload;
    match (w.rate, w.concurrency) {
        (Some(_), Some(_)) | (None, None) => c.add(
            "workload",
            "give exactly one of `rate` (open loop) or `concurrency` (closed loop)",
        ),
        (Some(r), None) if !(r.is_finite() && r > 0.0) => c.add(
            "workload.rate",
            format!("must be a number above zero, got {r}"),
        ),
        (None, Some(0)) => c.add("workload.concurrency", "must be at least 1"),
        _ if w.total == Some(0) => c.add("workload.total", "must be at least 1"),
        _ => {}
    }
    if w.operations.is_empty() {
        c.add("workload.operations", "at least one operation");
    }
    // The users an org action may act as: the mock org's.
    let users: Vec<String> = crashcart_mocks::salesforce::SalesforceConfig::default()
        .users
        .iter()
        .map(|u| u.username.clone())
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for (i, op) in w.operations.iter().enumerate() {
        let at = format!("workload.operations[{i}]");
        if !seen.insert(op.name.clone()) {
            c.add(format!("{at}.name"), format!("{:?} is used twice", op.name));
        }
        check_operation(op, &at, names, &users, c);
        if raw.sut.batch {
            let requests = op.path.iter().map(|_| format!("{at}.path")).chain(
                op.steps
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.path.is_some())
                    .map(|(j, _)| format!("{at}.steps[{j}].path")),
            );
            for key in requests {
                c.add(
                    key,
                    "a `sut: {batch: true}` has no HTTP API: drive it with `run` and `org` steps",
                );
            }
        }
    }
}

/// One operation: weight, its steps (requests, org actions, commands; their templates,
/// expectations and captures), effects.
fn check_operation(
    op: &RawOperation,
    at: &str,
    names: Option<&Names>,
    users: &[String],
    c: &mut Collector,
) {
    if op.weight == 0 {
        c.add(format!("{at}.weight"), "must be at least 1");
    }
    let known = |object: &str, field: Option<&str>| match names {
        Some(n) => n.known(object, field),
        None => Ok(()),
    };
    for (key, m) in step::check_steps(op, users, &known) {
        c.add(format!("{at}.{key}"), m);
    }
    let captured = step::captured_vars(op);
    let extra: Vec<&str> = captured.iter().map(String::as_str).collect();
    for (j, eff) in op.effects.iter().enumerate() {
        let at = format!("{at}.effects[{j}]");
        if eff.matches.is_empty() {
            c.add(
                format!("{at}.match"),
                "at least one field identifies the record",
            );
        }
        for (k, v) in &eff.matches {
            for e in template::check_with(v, &extra) {
                c.add(format!("{at}.match.{k}"), e);
            }
        }
        for (key, m) in names.map(|n| n.effect_problems(eff)).unwrap_or_default() {
            c.add(format!("{at}.{key}"), m);
        }
        if !eff.written.is_empty() && eff.within.is_none() {
            c.add(
                format!("{at}.written"),
                "names what an eventual effect writes: give `within` too",
            );
        }
        for f in &eff.written {
            if let Err(m) = known(&eff.object, Some(f)) {
                c.add(format!("{at}.written"), m);
            }
        }
        if eff.within.is_some() && eff.on_failure != OnFailure::Absent {
            c.add(
                format!("{at}.on_failure"),
                "an eventual effect is judged after a success only",
            );
        }
    }
}

/// The host of an http(s) URL when it is not loopback: an IP literal outside 127.0.0.0/8 and
/// ::1, or any name but `localhost` (a name may resolve elsewhere by the time it is used).
fn remote_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| host.to_string())
}

/// Each fault's parameters, and that it starts within the run.
fn check_faults(raw: &RawScenario, names: Option<&Names>, c: &mut Collector) {
    for (i, f) in raw.faults.iter().enumerate() {
        let at = format!("faults[{i}]");
        if let Some(n) = names {
            for (key, m) in n.target_problems(&f.target) {
                c.add(format!("{at}.target.{key}"), m);
            }
            for m in n.kind_problems(&f.fault) {
                c.add(format!("{at}.fault"), m);
            }
        }
        if let Err(e) = check_spec(f) {
            c.add(at.clone(), e.to_string());
        }
        if let Some(start) = f.at {
            if start >= raw.duration {
                c.add(
                    format!("{at}.at"),
                    format!(
                        "starts at {} but the run lasts {}",
                        humantime::format_duration(start),
                        humantime::format_duration(raw.duration)
                    ),
                );
            }
        }
    }
}

/// Each SLO's thresholds.
fn check_slos(raw: &RawScenario, names: Option<&Names>, c: &mut Collector) {
    for (i, slo) in raw.slos.iter().enumerate() {
        let at = format!("slos[{i}]");
        if let (
            RawSlo::Consistency {
                double_booking: Some(d),
                ..
            },
            Some(n),
        ) = (slo, names)
        {
            for (key, m) in n.double_booking_problems(d) {
                c.add(format!("{at}.double_booking.{key}"), m);
            }
        }
        match slo {
            RawSlo::Retry {
                max_amplification: Some(a),
                ..
            } if *a < 1.0 => c.add(
                format!("{at}.max_amplification"),
                "must be at least 1 (every call counts once)",
            ),
            RawSlo::Retry {
                dependency: Some(d),
                ..
            }
            | RawSlo::CircuitBreaker { dependency: d, .. }
                if !["salesforce", "salesforce-auth", "llm"].contains(&d.as_str()) =>
            {
                c.add(
                    format!("{at}.dependency"),
                    format!("unknown dependency {d:?} (salesforce, salesforce-auth, llm)"),
                )
            }
            RawSlo::Availability {
                min_success_ratio: Some(r),
                ..
            } if !(0.0..=1.0).contains(r) => {
                c.add(format!("{at}.min_success_ratio"), "must be within 0 and 1")
            }
            RawSlo::RateLimit {
                max_rate_while_limited,
            } if *max_rate_while_limited <= 0.0 => {
                c.add(format!("{at}.max_rate_while_limited"), "must be above zero")
            }
            RawSlo::Consistency { .. }
                if raw.workload.operations.iter().all(|o| o.effects.is_empty()) =>
            {
                c.add(
                    at.clone(),
                    "the consistency check needs `effects` on at least one operation",
                )
            }
            _ => {}
        }
    }
}
