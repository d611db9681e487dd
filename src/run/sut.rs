//! The system under test as a child process, per the SUT contract: started with the
//! connection settings in its environment (plus `PORT` and `CRASHCART_SEED`), in a process
//! group of its own; its output captured line by line into the timeline (secrets scrubbed);
//! readiness polled on an HTTP URL; stopped with SIGTERM to the whole group, then SIGKILL.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::recorder::Recorder;
use crate::error::Error;
use crate::scenario::raw;
use crate::timeline::scrub;

/// A running SUT. Dropping it kills its process group.
pub struct SutProcess {
    child: Child,
    pgid: i32,
    /// Set once a line of its output matched the readiness pattern (when it has one).
    ready_line: Option<tokio::sync::watch::Receiver<bool>>,
}

/// The argv of a command line (a string runs through `sh -c`).
pub(crate) fn argv(command: &raw::Command) -> Vec<String> {
    match command {
        raw::Command::Shell(s) => vec!["sh".into(), "-c".into(), s.clone()],
        raw::Command::Argv(v) => v.clone(),
    }
}

/// A process for `argv` (not empty) in `cwd` with `env` over crashcart's own, in a process
/// group of its own, output piped, killed if dropped; through the guard when crashcart can
/// run one, so it dies with crashcart, even when crashcart is killed with SIGKILL.
pub(crate) fn guarded(argv: &[String], cwd: &std::path::Path, env: &[(String, String)]) -> Command {
    let mut cmd = match super::guard::binary() {
        Some(bin) => {
            let mut c = Command::new(bin);
            c.arg(super::guard::SUBCOMMAND)
                .arg(std::process::id().to_string())
                .arg("--")
                .args(argv);
            c
        }
        None => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    cmd.current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    cmd
}

/// Each line of the child's stdout and stderr, scrubbed of `secrets`, to `on_line` and then
/// the recorder; the reader tasks (they end with the child's output).
pub(crate) fn forward_output(
    child: &mut Child,
    recorder: &Recorder,
    secrets: &[String],
    on_line: impl Fn(&str) + Send + Sync + 'static,
) -> Vec<tokio::task::JoinHandle<()>> {
    let on_line = Arc::new(on_line);
    let streams: [(
        &'static str,
        Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>,
    ); 2] = [
        ("stdout", child.stdout.take().map(|s| Box::new(s) as _)),
        ("stderr", child.stderr.take().map(|s| Box::new(s) as _)),
    ];
    let mut readers = vec![];
    for (name, stream) in streams {
        let Some(stream) = stream else { continue };
        let (recorder, secrets, on_line) = (recorder.clone(), secrets.to_vec(), on_line.clone());
        readers.push(tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let line = scrub(&line, &secrets);
                on_line(&line);
                recorder.sut_log(name, line);
            }
        }));
    }
    readers
}

/// A free TCP port on loopback for the SUT to listen on.
pub fn free_port() -> Result<u16, Error> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| Error::Io {
        context: "picking a port for the SUT".into(),
        source,
    })?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|source| Error::Io {
            context: "picking a port for the SUT".into(),
            source,
        })
}

impl SutProcess {
    /// Start the command; its stdout and stderr lines go to the recorder, and the first
    /// (scrubbed) line matching `ready_line`, if given, marks it ready.
    pub fn start(
        command: &raw::Command,
        cwd: &std::path::Path,
        env: &[(String, String)],
        secrets: Vec<String>,
        recorder: &Recorder,
        ready_line: Option<regex::Regex>,
    ) -> Result<Self, Error> {
        let argv = argv(command);
        let not_started = |e: &dyn std::fmt::Display| {
            Error::InvalidInput(format!(
                "cannot start the SUT ({command:?}) in {}: {e}",
                cwd.display()
            ))
        };
        if !cwd.is_dir() {
            return Err(not_started(&"no such directory"));
        }
        if !findable(&argv[0], cwd) {
            return Err(not_started(&"no such program"));
        }
        let mut child = guarded(&argv, cwd, env)
            .spawn()
            .map_err(|e| not_started(&e))?;
        let pgid = child.id().map(|p| p as i32).unwrap_or(0);
        let (ready_tx, ready_rx) = tokio::sync::watch::channel(false);
        let pattern = ready_line.map(Arc::new);
        let watch = pattern.clone();
        forward_output(&mut child, recorder, &secrets, move |line| {
            if watch.as_ref().is_some_and(|p| p.is_match(line)) {
                ready_tx.send_replace(true);
            }
        });
        let ready_line = pattern.is_some().then_some(ready_rx);
        Ok(Self {
            child,
            pgid,
            ready_line,
        })
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stop the whole process group: SIGTERM, then SIGKILL after `grace`, or as soon as
    /// `hurry` resolves (another Ctrl-C). True when it was hurried.
    pub async fn stop(
        mut self,
        grace: Duration,
        hurry: impl std::future::Future<Output = ()>,
    ) -> bool {
        if self.pgid > 0 {
            // SAFETY: signalling the process group we created for the child.
            unsafe { libc::killpg(self.pgid, libc::SIGTERM) };
        }
        let waited = tokio::select! {
            r = tokio::time::timeout(grace, self.child.wait()) => Some(r.is_ok()),
            _ = hurry => None,
        };
        if waited != Some(true) {
            self.kill();
            let _ = self.child.wait().await;
        } else if self.pgid > 0 {
            // The leader is gone; make sure no straggler of its group survives.
            // SAFETY: as above.
            unsafe { libc::killpg(self.pgid, libc::SIGKILL) };
        }
        waited.is_none()
    }

    fn kill(&mut self) {
        if self.pgid > 0 {
            // SAFETY: as above.
            unsafe { libc::killpg(self.pgid, libc::SIGKILL) };
        }
    }
}

impl Drop for SutProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// True when `program` can be started from `cwd`: a path that exists, or a name found on
/// `PATH`.
fn findable(program: &str, cwd: &std::path::Path) -> bool {
    if program.contains('/') {
        return cwd.join(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// Wait until the SUT prints a line matching its readiness pattern, for at most `timeout`.
pub async fn wait_ready_line(
    pattern: &str,
    timeout: Duration,
    sut: &mut SutProcess,
) -> Result<(), String> {
    let Some(mut rx) = sut.ready_line.clone() else {
        return Err("no readiness pattern".into());
    };
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if *rx.borrow_and_update() {
            return Ok(());
        }
        if !sut.is_running() {
            return Err("the SUT exited before it was ready".into());
        }
        // Woken by a matching line, or every 100 ms to see whether the SUT still runs.
        let tick = tokio::time::Instant::now() + Duration::from_millis(100);
        tokio::select! {
            r = rx.changed() => if r.is_err() {
                // Its output is closed: no line can come; wait out the tick all the same.
                tokio::time::sleep_until(tick.min(deadline)).await;
            },
            _ = tokio::time::sleep_until(tick.min(deadline)) => {}
        }
        if tokio::time::Instant::now() >= deadline && !*rx.borrow() {
            return Err(format!(
                "no line of its output matched {pattern:?} within {}",
                humantime::format_duration(timeout)
            ));
        }
    }
}

/// Wait until `command` (run in `cwd` with `env`) exits 0, every 200 ms, for at most
/// `timeout`; each try has at most 5 s.
pub async fn wait_ready_command(
    command: &raw::Command,
    cwd: &std::path::Path,
    env: &[(String, String)],
    timeout: Duration,
    sut: &mut SutProcess,
) -> Result<(), String> {
    let argv = argv(command);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("not run yet");
    while tokio::time::Instant::now() < deadline {
        if !sut.is_running() {
            return Err("the SUT exited before it was ready".into());
        }
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..])
            .current_dir(cwd)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        last = match tokio::time::timeout(Duration::from_secs(5), c.status()).await {
            Ok(Ok(s)) if s.success() => return Ok(()),
            Ok(Ok(s)) => format!("it exited {s}"),
            Ok(Err(e)) => format!("it cannot start: {e}"),
            Err(_) => "it ran over 5 s".into(),
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(format!(
        "the readiness command did not succeed within {} ({last})",
        humantime::format_duration(timeout)
    ))
}

/// Wait until `url` answers 2xx, polling every 100 ms, for at most `timeout`.
pub async fn wait_ready(url: &str, timeout: Duration, sut: &mut SutProcess) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::from("no answer yet");
    while tokio::time::Instant::now() < deadline {
        if !sut.is_running() {
            return Err("the SUT exited before it was ready".into());
        }
        match http.get(url).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("answered {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "not ready at {url} within {} ({last})",
        humantime::format_duration(timeout)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Events;
    use crate::timeline::journal::JournalWriter;

    fn recorder(dir: &std::path::Path) -> Recorder {
        Recorder::new(
            crashcart_mocks::Clock::new(),
            Events::none(),
            JournalWriter::create(dir.join("sut.jsonl")),
        )
    }

    fn shell(s: &str) -> raw::Command {
        raw::Command::Shell(s.into())
    }

    #[tokio::test]
    async fn readiness_by_a_log_line_or_a_command_and_why_not() {
        let dir = std::env::temp_dir().join(format!("crashcart-ready-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let rec = recorder(&dir);
        let env = [("MARKER".to_string(), dir.join("up").display().to_string())];
        // A worker that logs its readiness after a while, and leaves a marker file.
        let worker =
            shell("sleep 0.3; touch \"$MARKER\"; echo 'worker: polling for cases'; exec sleep 30");
        let pattern = regex::Regex::new("^worker: polling").unwrap();
        let mut p = SutProcess::start(&worker, &dir, &env, vec![], &rec, Some(pattern)).unwrap();
        wait_ready_line("^worker: polling", Duration::from_secs(10), &mut p)
            .await
            .expect("the line came");
        let probe = shell("test -f \"$MARKER\"");
        wait_ready_command(&probe, &dir, &env, Duration::from_secs(10), &mut p)
            .await
            .expect("the marker is there");
        let never = wait_ready_command(
            &shell("exit 3"),
            &dir,
            &env,
            Duration::from_millis(500),
            &mut p,
        )
        .await
        .unwrap_err();
        assert!(
            never.contains("did not succeed within 500ms") && never.contains("exit status: 3"),
            "{never}"
        );
        p.stop(Duration::from_secs(1), std::future::pending()).await;

        // A SUT that dies before its line is not waited for until the timeout.
        let dies = shell("echo starting; exit 1");
        let pattern = regex::Regex::new("ready").unwrap();
        let mut p = SutProcess::start(&dies, &dir, &env, vec![], &rec, Some(pattern)).unwrap();
        let started = std::time::Instant::now();
        let why = wait_ready_line("ready", Duration::from_secs(30), &mut p)
            .await
            .unwrap_err();
        assert!(why.contains("exited before it was ready"), "{why}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
