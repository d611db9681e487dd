//! `crashcart run`: one scenario end to end.
//!
//! Stand up the mocks behind proxies, start (or reach) the SUT with the contract's
//! environment, wait for readiness, play the fault schedule while the workload runs, watch the
//! abort conditions and Ctrl-C/SIGTERM, then always clean up (faults cleared, SUT stopped
//! with its process group, mocks down), merge one timeline, write the journal, and check the
//! SLOs. The runner reports through a callback and never prints.

pub mod environment;
pub mod shutdown;
pub mod sut;
pub mod workload;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::checks::{check_all, FinalState};
use crate::error::Error;
use crate::reference::{Defects, Policy, Reference, Settings};
use crate::report::RunReport;
use crate::run::environment::{EnvOptions, Environment, LlmOptions, SalesforceOptions};
use crate::run::sut::{free_port, wait_ready, SutProcess};
use crate::scenario::{Scenario, SutKind};
use crate::timeline::{Event, Phase, Timeline};
use crate::transport::Transport;

/// The reference integration's host in simulation.
const SIM_REFERENCE: &str = "reference.sim:80";
use crate::run::workload::Driver;

/// What the runner tells its caller while it works.
#[derive(Clone, Debug)]
pub enum Progress {
    /// The seed chosen.
    Seed(u64),
    /// A phase started (`mocks up`, `SUT ready`, `workload`, `checking`).
    Phase(String),
    /// For an external SUT: the settings the operator must give it.
    Settings(Vec<(&'static str, String)>),
}

/// Options of a run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Override the scenario's seed.
    pub seed: Option<u64>,
    /// Where the journal goes (a temp dir when absent).
    pub report_dir: Option<PathBuf>,
    /// Run against the built-in reference integration with these defects, whatever the
    /// scenario's `sut` says (`--defect`).
    pub defects: Option<Defects>,
    /// Simulation mode: everything in-process on the current (paused) clock, no socket.
    /// Needs the reference integration as the SUT.
    pub sim: bool,
    /// The reference integration's resilience settings (default: [`Policy::default`]).
    pub policy: Option<Policy>,
}

/// The sObjects whose final state the checkers see.
const OBJECTS: [&str; 4] = ["Account", "Contact", "Case", "Event"];

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
            flavour: m
                .llm
                .flavour
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(Error::InvalidInput)?
                .unwrap_or_default(),
            personas: m.llm.personas.iter().map(|p| dir.join(p)).collect(),
            models: m.llm.models.clone(),
            api_key: None,
            capture: m
                .llm
                .capture
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(Error::InvalidInput)?
                .unwrap_or_default(),
            zero_delay: m.llm.zero_delay,
        }),
        proxies: m.network.toxiproxy.is_none(),
        external_toxiproxy: match &m.network.toxiproxy {
            None => None,
            Some(a) => {
                use std::net::ToSocketAddrs;
                let addr = a
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut x| x.next())
                    .ok_or_else(|| {
                        Error::InvalidInput(format!("mocks.network.toxiproxy: cannot resolve {a}"))
                    })?;
                let name = |n: &Option<String>, d: &str| n.clone().unwrap_or_else(|| d.to_string());
                Some((
                    addr,
                    name(&m.network.salesforce_proxy, "salesforce"),
                    name(&m.network.llm_proxy, "llm"),
                ))
            }
        },
    })
}

/// A finished run: its report and its timeline (for reporters that draw it).
#[derive(Debug)]
pub struct RunOutcome {
    /// Verdicts and counts.
    pub report: RunReport,
    /// Everything that happened.
    pub timeline: Timeline,
}

/// Run a scenario. Returns the report whatever happens after the mocks are up (an abort is a
/// report marked `aborted`); errors only when nothing could start.
pub async fn run(
    s: &Scenario,
    opts: &RunOptions,
    mut progress: impl FnMut(Progress),
) -> Result<RunOutcome, Error> {
    let seed = opts.seed.or(s.raw.seed).unwrap_or_else(rand::random);
    progress(Progress::Seed(seed));
    let started = std::time::Instant::now();
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
    let env = if opts.sim {
        Environment::start_in_process(&env_options(s, seed)?)?
    } else {
        Environment::start(&env_options(s, seed)?).await?
    };
    for f in &s.raw.faults {
        if let Err(e) = env.engine.check(f) {
            env.shutdown().await;
            return Err(Error::InvalidInput(e.to_string()));
        }
    }
    progress(Progress::Phase("mocks up".into()));
    let log: Arc<Mutex<Vec<Event>>> = Arc::default();
    let clock = env.clock.clone();
    let mark = |what: &str| {
        log.lock().push(Event::Run {
            at_us: clock.elapsed().as_micros() as u64,
            what: what.to_string(),
        })
    };
    let mut listening = vec![];
    if env.sim.is_some() {
        listening.push("simulation (in-process, no socket)".to_string());
    }
    if let Some(sf) = &env.salesforce {
        listening.push(format!("salesforce={}", sf.url()));
    }
    if let Some(llm) = &env.llm {
        listening.push(format!("llm={}", llm.url()));
    }
    if let Some(p) = &env.proxy {
        listening.extend(
            p.list()
                .into_values()
                .map(|i| format!("proxy {}=http://{}", i.name, i.listen)),
        );
    }
    mark(&format!("start; listening: {}", listening.join(" ")));
    let mut settings: Vec<(String, String)> = env
        .env_pairs()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let secrets: Vec<String> = settings
        .iter()
        .filter(|(k, _)| k.ends_with("SECRET") || k.ends_with("PASSWORD") || k.ends_with("API_KEY"))
        .map(|(_, v)| v.clone())
        .collect();
    let mut sut = None;
    let mut reference = None;
    let mut workload_transport = Transport::sockets();
    let mut aborted: Option<String> = None;
    let mut ready_url: Option<String> = None;
    let sut_kind = if defects.is_some() {
        &SutKind::Reference
    } else {
        &s.sut
    };
    let base = match sut_kind {
        SutKind::Command {
            command,
            cwd,
            ready,
        } => {
            let port = free_port()?;
            settings.push(("PORT".into(), port.to_string()));
            settings.push(("CRASHCART_SEED".into(), seed.to_string()));
            settings.extend(s.raw.sut.env.iter().map(|(k, v)| (k.clone(), v.clone())));
            let mut p = match SutProcess::start(
                command,
                cwd,
                &settings,
                clock.clone(),
                secrets.clone(),
                log.clone(),
            ) {
                Ok(p) => p,
                Err(e) => {
                    env.shutdown().await;
                    return Err(e);
                }
            };
            let url = ready.replace("${PORT}", &port.to_string());
            ready_url = Some(url.clone());
            tokio::select! {
                r = wait_ready(&url, s.ready_timeout, &mut p) => if let Err(e) = r { aborted = Some(format!("SUT not ready: {e}")) },
                _ = crate::run::shutdown::signal() => aborted = Some("interrupted".into()),
            }
            sut = Some(p);
            format!("http://127.0.0.1:{port}")
        }
        SutKind::Url(u) => {
            progress(Progress::Settings(env.env_pairs()));
            u.clone()
        }
        SutKind::Reference => {
            // In-process, on real sockets through the proxies, configured exactly as the SUT
            // contract configures an external SUT.
            settings.push(("CRASHCART_SEED".into(), seed.to_string()));
            let lookup = |k: &str| {
                settings
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
            };
            let parsed = Settings::from_lookup(lookup);
            let settings = match parsed {
                Ok(x) => x,
                Err(e) => {
                    env.shutdown().await;
                    return Err(e.into());
                }
            };
            let sink_log = log.clone();
            let sink_clock = clock.clone();
            let sink: crate::reference::LogSink = Arc::new(move |line: String| {
                sink_log.lock().push(Event::SutLog {
                    at_us: sink_clock.elapsed().as_micros() as u64,
                    stream: "reference".into(),
                    line,
                })
            });
            let defects = defects.clone().unwrap_or_default();
            mark(&format!(
                "reference integration, defects: {}",
                defects.label()
            ));
            let deps = match &env.sim {
                Some(w) => w.transport.clone(),
                None => Transport::sockets(),
            };
            let policy = opts.policy.clone().unwrap_or_default();
            let r = Reference::new(settings, deps, policy, defects, sink);
            if env.sim.is_some() {
                let (running, router) = crate::reference::RunningReference::in_process(r);
                reference = Some(running);
                workload_transport = Transport::in_process([(SIM_REFERENCE.to_string(), router)]);
                format!("http://{SIM_REFERENCE}")
            } else {
                match crate::reference::spawn(r, 0).await {
                    Ok(running) => {
                        let base = format!("http://{}", running.addr);
                        reference = Some(running);
                        base
                    }
                    Err(e) => {
                        env.shutdown().await;
                        return Err(e.into());
                    }
                }
            }
        }
    };
    let mut active_at_end = 0;
    if aborted.is_none() {
        mark("ready");
        progress(Progress::Phase("workload".into()));
        let origin = Instant::now();
        let until = origin + s.raw.duration;
        // Checked before the SUT started, so this cannot refuse now.
        let schedule = env
            .engine
            .schedule(s.raw.faults.clone(), origin)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let driver = Driver::new(&base, seed, clock.clone(), log.clone(), workload_transport);
        let workload = driver.run(&s.workload, until);
        tokio::pin!(workload);
        let health = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| Error::Aborted(e.to_string()))?;
        let mut unhealthy_since: Option<Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = &mut workload => break,
                _ = crate::run::shutdown::signal() => { aborted = Some("interrupted (Ctrl-C or SIGTERM)".into()); break; }
                _ = tick.tick() => {
                    if let (Some(limit), Some(url)) = (s.raw.abort.unhealthy_for, &ready_url) {
                        let ok = matches!(health.get(url).send().await, Ok(r) if r.status().is_success());
                        match (ok, unhealthy_since) {
                            (true, _) => unhealthy_since = None,
                            (false, None) => unhealthy_since = Some(Instant::now()),
                            (false, Some(t)) if t.elapsed() > limit => { aborted = Some(format!("SUT unhealthy for more than {}", humantime::format_duration(limit))); break; }
                            _ => {}
                        }
                    }
                    if let (Some(max), Some(r)) = (s.raw.abort.error_ratio_above, driver.recent_error_ratio(Duration::from_secs(10))) {
                        if r > max {
                            aborted = Some(format!("error ratio {:.0}% over the last 10 s passed {:.0}%", r * 100.0, max * 100.0));
                            break;
                        }
                    }
                }
            }
        }
        // Counted before the schedule goes: dropping it aborts the tasks that hold the fault
        // guards, and an aborted task drops its guards whenever the runtime gets to it.
        active_at_end = env.engine.active().len();
        drop(schedule);
        mark("workload-end");
    }
    if let Some(a) = &aborted {
        mark(&format!("aborted: {a}"));
    }
    // Cleanup, always: faults off, SUT stopped, state read, mocks down.
    progress(Progress::Phase("checking".into()));
    let active = active_at_end.max(env.engine.active().len());
    env.engine.clear_all();
    mark(&format!(
        "faults cleared ({active} were active, {} now)",
        env.engine.active().len()
    ));
    if let Some(p) = sut {
        p.stop(s.grace).await;
        mark("SUT stopped");
    }
    if let Some(r) = reference.take() {
        let left = r.stop(s.grace).await;
        mark(&format!(
            "reference integration stopped ({left} compensations still running)"
        ));
    }
    let mut state = FinalState::default();
    let mut events = std::mem::take(&mut *log.lock());
    if let Some(sf) = env.salesforce_handle() {
        state.sut_user = sf.connection_settings().username.clone().into();
        for o in OBJECTS {
            state.records.insert(o.to_string(), sf.records(o));
        }
        for w in sf.writes() {
            use crashcart_mocks::salesforce::store::{Precondition, WriteKind};
            if w.kind == WriteKind::Delete {
                state.deleted_at.insert(w.id.clone(), w.at_us);
            }
            state.writes.push(crate::checks::RecordWrite {
                at_us: w.at_us,
                object: w.object,
                id: w.id,
                kind: match w.kind {
                    WriteKind::Create => "create",
                    WriteKind::Update => "update",
                    WriteKind::Delete => "delete",
                }
                .into(),
                fields: w.fields,
                user: w.user,
                conditional: w.precondition != Precondition::None,
            });
        }
        events.extend(
            sf.history()
                .snapshot()
                .into_iter()
                .map(|r| Event::Request(Box::new(r))),
        );
    }
    if let Some(llm) = env.llm_handle() {
        events.extend(
            llm.history()
                .snapshot()
                .into_iter()
                .map(|r| Event::Request(Box::new(r))),
        );
    }
    events.extend(env.engine.events().into_iter().map(Event::Fault));
    env.shutdown().await;
    events.push(Event::Run {
        at_us: clock.elapsed().as_micros() as u64,
        what: "end".into(),
    });
    let timeline = Timeline::merge(events);
    let dir = opts
        .report_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("crashcart-{}", std::process::id())));
    let journal = dir.join(format!("{}-{seed}.jsonl", s.name));
    let mut bytes = vec![];
    let _ = timeline.write_jsonl(&mut bytes);
    let digest = {
        use sha2::Digest;
        let h = sha2::Sha256::digest(&bytes);
        h.iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let written = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&journal, &bytes));
    let slos = check_all(&s.slos, &s.workload.operations, seed, &timeline, &state);
    let mut counts = [0u64; 4];
    for o in timeline.ops() {
        counts[match o.phase {
            Phase::Invoke => 0,
            Phase::Ok => 1,
            Phase::Fail => 2,
            Phase::Info => 3,
        }] += 1;
    }
    let sut_output: Vec<String> = timeline
        .events
        .iter()
        .filter_map(|e| match e {
            Event::SutLog { stream, line, .. } => Some(format!("[{stream}] {line}")),
            _ => None,
        })
        .collect();
    let tail = sut_output.len().saturating_sub(200);
    let report = RunReport {
        scenario: s.name.clone(),
        file: s.file.display().to_string(),
        seed,
        replay: format!(
            "crashcart run {} --seed {seed}{}{}",
            s.file.display(),
            if opts.sim { " --sim" } else { "" },
            opts.defects
                .iter()
                .flat_map(|d| d.iter())
                .map(|d| format!(" --defect {d}"))
                .collect::<String>()
        ),
        aborted,
        duration_s: started.elapsed().as_secs_f64(),
        operations: counts,
        requests: timeline.requests().count() as u64,
        journal: written.ok().map(|_| journal.display().to_string()),
        slos,
        sut_output: sut_output[tail..].to_vec(),
        digest: Some(digest),
    };
    Ok(RunOutcome { report, timeline })
}

/// Run a scenario in simulation on a runtime of its own: one thread, clock paused (blocking;
/// callers on an async runtime use `spawn_blocking`). `opts.sim` is forced on.
pub fn run_simulated(s: &Scenario, opts: &RunOptions) -> Result<RunOutcome, Error> {
    let opts = RunOptions {
        sim: true,
        ..opts.clone()
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| Error::Aborted(format!("cannot start a simulation runtime: {e}")))?
        .block_on(run(s, &opts, |_| {}))
}

/// Re-check a journal against a scenario's SLOs without re-running (the final mock state is
/// not in the journal, so the consistency SLO is skipped).
pub fn recheck(s: &Scenario, journal: &Path, seed: u64) -> Result<RunReport, Error> {
    let timeline = Timeline::read_jsonl(journal).map_err(Error::InvalidInput)?;
    let slos: Vec<_> = s
        .slos
        .iter()
        .filter(|slo| !slo.needs_final_state())
        .cloned()
        .collect();
    let results = check_all(
        &slos,
        &s.workload.operations,
        seed,
        &timeline,
        &FinalState::default(),
    );
    Ok(RunReport {
        scenario: s.name.clone(),
        file: s.file.display().to_string(),
        seed,
        replay: format!(
            "crashcart check {} --scenario {}",
            journal.display(),
            s.file.display()
        ),
        aborted: None,
        duration_s: 0.0,
        operations: [0; 4],
        requests: timeline.requests().count() as u64,
        journal: Some(journal.display().to_string()),
        slos: results,
        sut_output: vec![],
        digest: None,
    })
}
