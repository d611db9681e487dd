//! Phase 1, prepare: everything decided before anything starts. The seed, which SUT runs
//! (the scenario's, or the reference integration when `--defect` asks), whether simulation
//! can run this scenario at all, and the environment's options.

use std::path::Path;
use std::time::Duration;

use super::environment::{EnvOptions, LlmOptions, SalesforceOptions};
use super::RunOptions;
use crate::error::Error;
use crate::reference::Defects;
use crate::scenario::{Scenario, SutKind};

/// What a run will do, decided up front.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The seed of every random choice.
    pub seed: u64,
    /// `Some`: the reference integration runs, with these defects; `None`: the scenario's
    /// own SUT (a command or a URL).
    pub defects: Option<Defects>,
    /// The mocks, proxies and engine to stand up.
    pub env: EnvOptions,
    /// In simulation.
    pub sim: bool,
}

impl Prepared {
    /// The SUT that runs: the reference when `defects` is set, else the scenario's own.
    pub fn sut<'a>(&self, s: &'a Scenario) -> &'a SutKind {
        if self.defects.is_some() {
            &SutKind::Reference
        } else {
            &s.sut
        }
    }

    /// The SUT in words, for the event stream.
    pub fn describe_sut(&self, s: &Scenario) -> String {
        match (self.sut(s), &self.defects) {
            (SutKind::Reference, Some(d)) => {
                format!("reference integration (defects: {})", d.label())
            }
            (SutKind::Command { command, .. }, _) => format!("command {command:?}"),
            (SutKind::Url(u), _) => format!("running system at {u}"),
            (SutKind::Reference, None) => "reference integration".into(),
            (SutKind::Batch { cwd }, _) => format!("batch (its run steps, in {})", cwd.display()),
        }
    }
}

/// Decide the run: seed, SUT, environment. Refuses what simulation cannot run.
pub fn prepare(s: &Scenario, opts: &RunOptions) -> Result<Prepared, Error> {
    let seed = opts.seed.or(s.raw.seed).unwrap_or_else(rand::random);
    // The reference integration runs when the scenario names it or `--defect` asks for it.
    let defects = match (&opts.defects, &s.sut) {
        (Some(d), _) => Some(d.clone()),
        (None, SutKind::Reference) => Some(Defects::none()),
        _ => None,
    };
    if opts.sim && defects.is_none() {
        return Err(Error::InvalidInput(format!(
            "{}: --sim runs the built-in reference integration in-process; give `sut: {{reference: true}}` or --defect",
            s.file.display()
        )));
    }
    if opts.sim && s.raw.mocks.network.toxiproxy.is_some() {
        return Err(Error::InvalidInput(format!(
            "{}: --sim cannot use an external Toxiproxy (mocks.network.toxiproxy)",
            s.file.display()
        )));
    }
    Ok(Prepared {
        seed,
        defects,
        env: env_options(s, seed)?,
        sim: opts.sim,
    })
}

/// The environment a scenario asks for.
fn env_options(s: &Scenario, seed: u64) -> Result<EnvOptions, Error> {
    let dir = s.file.parent().map(Path::to_path_buf).unwrap_or_default();
    let m = &s.raw.mocks;
    Ok(EnvOptions {
        seed,
        bind: std::net::IpAddr::from([127, 0, 0, 1]),
        allow_remote: false,
        salesforce: Some(SalesforceOptions {
            port: 0,
            schemas: m.salesforce.schema.iter().map(|p| dir.join(p)).collect(),
            token_ttl: m.salesforce.token_ttl.unwrap_or(Duration::from_secs(7200)),
            daily_api_limit: m.salesforce.daily_api_limit.unwrap_or(15_000),
            tls: None,
        }),
        llm: Some(LlmOptions {
            port: 0,
            flavour: parse_or_default(&m.llm.flavour)?,
            personas: m.llm.personas.iter().map(|p| dir.join(p)).collect(),
            models: m.llm.models.clone(),
            api_key: None,
            capture: parse_or_default(&m.llm.capture)?,
            zero_delay: m.llm.zero_delay,
        }),
        proxies: m.network.toxiproxy.is_none(),
        external_toxiproxy: external_toxiproxy(s)?,
    })
}

/// A setting written as text (validation has parsed it once already).
fn parse_or_default<T: std::str::FromStr<Err = String> + Default>(
    v: &Option<String>,
) -> Result<T, Error> {
    Ok(v.as_deref()
        .map(str::parse)
        .transpose()
        .map_err(Error::InvalidInput)?
        .unwrap_or_default())
}

/// The external Toxiproxy a scenario names, resolved, with its proxies' names.
fn external_toxiproxy(
    s: &Scenario,
) -> Result<Option<(std::net::SocketAddr, String, String)>, Error> {
    use std::net::ToSocketAddrs;
    let n = &s.raw.mocks.network;
    let Some(a) = &n.toxiproxy else {
        return Ok(None);
    };
    let addr = a
        .to_socket_addrs()
        .ok()
        .and_then(|mut x| x.next())
        .ok_or_else(|| {
            Error::InvalidInput(format!("mocks.network.toxiproxy: cannot resolve {a}"))
        })?;
    let name = |n: &Option<String>, d: &str| n.clone().unwrap_or_else(|| d.to_string());
    Ok(Some((
        addr,
        name(&n.salesforce_proxy, "salesforce"),
        name(&n.llm_proxy, "llm"),
    )))
}
