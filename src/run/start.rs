//! Phase 3, start the SUT: a command started with the SUT contract's environment and waited
//! for, a running system reached by URL (its settings told to the operator), or the built-in
//! reference integration configured exactly as the contract configures an external SUT.

use std::sync::Arc;

use super::environment::Environment;
use super::event::RunEvent;
use super::prepare::Prepared;
use super::recorder::Recorder;
use super::step::CommandEnv;
use super::sut::{free_port, wait_ready, wait_ready_command, wait_ready_line, SutProcess};
use super::RunOptions;
use crate::error::Error;
use crate::reference::{Reference, RunningReference, Settings};
use crate::scenario::raw::Command;
use crate::scenario::{Readiness, Scenario, SutKind};
use crate::transport::Transport;

/// The reference integration's host in simulation.
const SIM_REFERENCE: &str = "reference.sim:80";

/// A SUT the workload can reach (or one that never became ready).
pub struct StartedSut {
    /// Base URL of its HTTP API.
    pub base: String,
    /// How the workload reaches it (sockets, or in-process in simulation).
    pub transport: Transport,
    /// Its readiness URL, for the health watch (commands only).
    pub ready_url: Option<String>,
    /// The process crashcart started.
    pub process: Option<SutProcess>,
    /// The reference integration crashcart serves.
    pub reference: Option<RunningReference>,
    /// Why it is not ready (the run is aborted), if it is not.
    pub not_ready: Option<String>,
    /// What the workload's command steps run with: the contract's environment.
    pub command_env: Arc<CommandEnv>,
}

impl StartedSut {
    fn at(base: String) -> Self {
        Self {
            base,
            transport: Transport::sockets(),
            ready_url: None,
            process: None,
            reference: None,
            not_ready: None,
            command_env: Arc::default(),
        }
    }
}

/// The SUT contract's settings for this run, and the secrets among them (scrubbed from the
/// SUT's output).
fn contract(env: &Environment) -> (Vec<(String, String)>, Vec<String>) {
    let settings: Vec<(String, String)> = env
        .env_pairs()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let mut secrets: Vec<String> = settings
        .iter()
        .filter(|(k, _)| k.ends_with("SECRET") || k.ends_with("PASSWORD") || k.ends_with("API_KEY"))
        .map(|(_, v)| v.clone())
        .collect();
    // Longest first, so a password with its security token goes before the password alone.
    secrets.extend(
        env.salesforce_handle()
            .map(|sf| sf.credentials())
            .unwrap_or_default(),
    );
    secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    secrets.dedup();
    (settings, secrets)
}

/// Start (or reach) the SUT and wait until it is ready. Errors when it cannot start at all;
/// a SUT that starts but is not ready is returned with `not_ready`.
pub async fn start_sut(
    s: &Scenario,
    opts: &RunOptions,
    prepared: &Prepared,
    env: &Environment,
    rec: &Recorder,
) -> Result<StartedSut, Error> {
    let (mut settings, secrets) = contract(env);
    let command_env = |cwd: &std::path::Path, settings: &[(String, String)], secrets: &[String]| {
        Arc::new(CommandEnv {
            cwd: cwd.to_path_buf(),
            env: settings.to_vec(),
            secrets: secrets.to_vec(),
        })
    };
    let scenario_dir = s
        .file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .to_path_buf();
    let started = match prepared.sut(s) {
        SutKind::Command {
            command,
            cwd,
            ready,
        } => {
            let port = free_port()?;
            settings.push(("PORT".into(), port.to_string()));
            settings.push(("CRASHCART_SEED".into(), prepared.seed.to_string()));
            settings.extend(s.raw.sut.env.iter().map(|(k, v)| (k.clone(), v.clone())));
            settings.extend(opts.sut_env.iter().cloned());
            let ready = match ready {
                Readiness::Url(u) => Readiness::Url(u.replace("${PORT}", &port.to_string())),
                log => log.clone(),
            };
            let for_steps = command_env(cwd, &settings, &secrets);
            let mut started =
                start_command(s, command, cwd, &ready, &settings, secrets, rec).await?;
            started.base = format!("http://127.0.0.1:{port}");
            started.command_env = for_steps;
            started
        }
        SutKind::Url(u) => {
            let for_steps = command_env(&scenario_dir, &settings, &secrets);
            rec.events().emit(RunEvent::SutSettings { settings });
            StartedSut {
                command_env: for_steps,
                ..StartedSut::at(u.clone())
            }
        }
        SutKind::Reference => {
            settings.push(("CRASHCART_SEED".into(), prepared.seed.to_string()));
            let mut started = start_reference(opts, prepared, env, &settings, rec).await?;
            started.command_env = command_env(&scenario_dir, &settings, &secrets);
            started
        }
        SutKind::Batch { cwd } => {
            // Nothing runs until a `run` step starts it; those get the contract's settings.
            settings.push(("CRASHCART_SEED".into(), prepared.seed.to_string()));
            settings.extend(s.raw.sut.env.iter().map(|(k, v)| (k.clone(), v.clone())));
            settings.extend(opts.sut_env.iter().cloned());
            if !cwd.is_dir() {
                return Err(Error::InvalidInput(format!(
                    "sut.cwd: no such directory: {}",
                    cwd.display()
                )));
            }
            rec.mark("batch SUT: started by the workload's run steps");
            StartedSut {
                command_env: command_env(cwd, &settings, &secrets),
                ..StartedSut::at(String::new())
            }
        }
    };
    Ok(started)
}

/// A command, in its own process group, with the contract's environment; waited for on its
/// readiness URL (or until Ctrl-C/SIGTERM).
async fn start_command(
    s: &Scenario,
    command: &Command,
    cwd: &std::path::Path,
    ready: &Readiness,
    settings: &[(String, String)],
    secrets: Vec<String>,
    rec: &Recorder,
) -> Result<StartedSut, Error> {
    let pattern = match ready {
        Readiness::Log(l) => Some(l.0.clone()),
        Readiness::Url(_) | Readiness::Command(_) => None,
    };
    let mut p = SutProcess::start(command, cwd, settings, secrets, rec, pattern)?;
    let waited = async {
        match ready {
            Readiness::Url(u) => wait_ready(u, s.ready_timeout, &mut p).await,
            Readiness::Log(l) => wait_ready_line(l.0.as_str(), s.ready_timeout, &mut p).await,
            Readiness::Command(c) => {
                wait_ready_command(c, cwd, settings, s.ready_timeout, &mut p).await
            }
        }
    };
    let not_ready = tokio::select! {
        r = waited => r.err().map(|e| format!("SUT not ready: {e}")),
        _ = super::shutdown::signal() => Some("interrupted".into()),
    };
    let ready_url = match ready {
        Readiness::Url(u) => Some(u.clone()),
        Readiness::Log(_) | Readiness::Command(_) => None,
    };
    Ok(StartedSut {
        ready_url,
        process: Some(p),
        not_ready,
        ..StartedSut::at(String::new())
    })
}

/// The reference integration, in-process: on a loopback port through the proxies, or as a
/// router in simulation.
async fn start_reference(
    opts: &RunOptions,
    prepared: &Prepared,
    env: &Environment,
    settings: &[(String, String)],
    rec: &Recorder,
) -> Result<StartedSut, Error> {
    let lookup = |k: &str| {
        settings
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let parsed = Settings::from_lookup(lookup)?;
    let (sink_rec, secrets) = (rec.clone(), contract(env).1);
    let sink: crate::reference::LogSink = Arc::new(move |line: String| {
        sink_rec.sut_log("reference", crate::timeline::scrub(&line, &secrets))
    });
    let defects = prepared.defects.clone().unwrap_or_default();
    rec.mark(format!(
        "reference integration, defects: {}",
        defects.label()
    ));
    let deps = match &env.sim {
        Some(w) => w.transport.clone(),
        None => Transport::sockets(),
    };
    let policy = opts.policy.clone().unwrap_or_default();
    let r = Reference::new(parsed, deps, policy, defects, sink);
    if env.sim.is_some() {
        let (running, router) = RunningReference::in_process(r);
        return Ok(StartedSut {
            transport: Transport::in_process([(SIM_REFERENCE.to_string(), router)]),
            reference: Some(running),
            ..StartedSut::at(format!("http://{SIM_REFERENCE}"))
        });
    }
    let running = crate::reference::spawn(r, 0).await?;
    Ok(StartedSut {
        base: format!("http://{}", running.addr),
        reference: Some(running),
        ..StartedSut::at(String::new())
    })
}
