//! `crashcart run`: one scenario end to end, in phases.
//!
//! 1. [`prepare`]: seed, which SUT, the environment's options (nothing starts yet).
//! 2. environment: the mocks on one clock, chaos proxies in front, the fault engine; every
//!    fault checked against it.
//! 3. [`start`]: the SUT started (or reached) with the contract's environment, waited for.
//! 4. [`drive`]: the workload ([`workload`]; each operation's steps run by [`step`]) while
//!    the fault schedule plays; aborts and signals watched.
//! 5. [`drain`]: the SUT still running, faults cleared, no new operations, until it is quiet.
//! 6. [`cleanup`]: whatever happened before, faults cleared, SUT stopped, state read, mocks
//!    down.
//! 7. [`judge`]: the journal written, the SLOs checked, the report put together.
//!
//! The runner never prints: it emits [`event::RunEvent`]s to the [`event::Events`] it is
//! given, and returns the report; console, progress bar, JSON, JUnit and HTML are consumers.
//! The [`recorder`] stamps what the runner, the workload and the SUT add to the timeline.

pub mod cleanup;
pub mod drain;
pub mod drive;
pub mod environment;
pub mod event;
pub mod guard;
pub mod judge;
pub mod prepare;
pub mod recorder;
pub mod shutdown;
pub mod start;
pub mod step;
pub mod sut;
pub mod workload;

use std::path::{Path, PathBuf};

use crate::checks::{check_all, FinalState};
use crate::error::Error;
use crate::reference::{Defects, Policy};
use crate::report::RunReport;
use crate::scenario::Scenario;
use crate::timeline::journal::JournalWriter;
use crate::timeline::Timeline;

pub use event::{EventSink, Events, RunEvent, RunPhase};

use environment::Environment;
use prepare::Prepared;
use recorder::Recorder;

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
    /// Environment variables for a started SUT over the scenario's `sut.env` (`--sut-env`).
    pub sut_env: Vec<(String, String)>,
}

/// A finished run: its report and its timeline (for reporters that draw it).
#[derive(Debug)]
pub struct RunOutcome {
    /// Verdicts and counts.
    pub report: RunReport,
    /// Everything that happened.
    pub timeline: Timeline,
}

/// Phase 2: the mocks, proxies and engine, with every fault of the scenario checked against
/// them; on a refusal what started is stopped again.
async fn stand_up(s: &Scenario, prepared: &Prepared) -> Result<Environment, Error> {
    let env = if prepared.sim {
        Environment::start_in_process(&prepared.env)?
    } else {
        Environment::start(&prepared.env).await?
    };
    for f in &s.raw.faults {
        if let Err(e) = env.engine.check(f) {
            env.shutdown().await;
            return Err(Error::InvalidInput(e.to_string()));
        }
    }
    Ok(env)
}

/// Run a scenario, telling `events` as it goes. Returns the report whatever happens after
/// the mocks are up (an abort is a report marked `aborted`); errors only when nothing could
/// start.
pub async fn run(s: &Scenario, opts: &RunOptions, events: &Events) -> Result<RunOutcome, Error> {
    let started = std::time::Instant::now();
    let prepared = prepare::prepare(s, opts)?;
    events.emit(RunEvent::RunStarted {
        scenario: s.name.clone(),
        file: s.file.display().to_string(),
        seed: prepared.seed,
        sim: prepared.sim,
        duration: s.raw.duration,
        sut: prepared.describe_sut(s),
    });
    let phase = |phase| events.emit(RunEvent::PhaseStarted { phase });
    phase(RunPhase::Environment);
    let env = stand_up(s, &prepared).await?;
    let journal = JournalWriter::create(judge::journal_path(s, prepared.seed, opts));
    let rec = Recorder::new(env.clock.clone(), events.clone(), journal);
    env.listen(&rec);
    let (faults, fault_rec) = (events.clone(), rec.clone());
    env.engine.subscribe(std::sync::Arc::new(move |f| {
        fault_rec.fault(f);
        faults.emit(RunEvent::Fault(f.clone()))
    }));
    let listening = env.listening();
    rec.mark(format!("start; listening: {}", listening.join(" ")));
    events.emit(RunEvent::EnvironmentReady { listening });
    phase(RunPhase::StartSut);
    let sut = match start::start_sut(s, opts, &prepared, &env, &rec).await {
        Ok(sut) => sut,
        Err(e) => {
            env.shutdown().await;
            return Err(e);
        }
    };
    let mut aborted = sut.not_ready.clone();
    let mut driven = None;
    if aborted.is_none() {
        phase(RunPhase::Drive);
        let d = drive::drive(s, prepared.seed, &env, &sut, &rec).await;
        aborted = d.aborted.clone();
        driven = Some(d);
    }
    cleanup::clear_faults(&env, &rec, driven.as_ref().map_or(0, |d| d.active_at_end));
    if aborted.is_none() {
        phase(RunPhase::Drain);
        aborted = drain::drain(&env, &rec, s.drain).await;
    }
    if let Some(a) = &aborted {
        rec.mark(format!("aborted: {a}"));
        events.emit(RunEvent::Aborted { reason: a.clone() });
    }
    // Signals from here on (beyond those that caused an abort) hurry the cleanup; counted
    // before the phase is announced, so a Ctrl-C sent on seeing it always counts.
    let signals_seen = shutdown::count();
    phase(RunPhase::Cleanup);
    // Which faults proved nothing is judged only on a run that went its course.
    let played = driven.and_then(|d| d.played).filter(|_| aborted.is_none());
    let gathered = cleanup::clean_up(s, env, Some(sut), &rec, played, signals_seen).await;
    if gathered.hurried && aborted.is_none() {
        aborted = Some("interrupted during cleanup (Ctrl-C or SIGTERM)".into());
    }
    phase(RunPhase::Judge);
    let timeline = Timeline::merge(gathered.events);
    let journal = gathered.journal;
    let slos = judge::judge(s, prepared.seed, &timeline, &gathered.state, events);
    let verdicts = judge::Verdicts {
        aborted,
        slos,
        unfired: gathered.unfired,
        journal,
        duration_s: started.elapsed().as_secs_f64(),
    };
    let report = judge::report(s, &prepared, opts, &timeline, verdicts);
    events.emit(RunEvent::RunFinished(Box::new(report.clone())));
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
        .block_on(run(s, &opts, &Events::none()))
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
        unfired_faults: vec![],
        sut_output: vec![],
        digest: None,
    })
}
