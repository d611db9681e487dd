//! The SUT's guard: a small process between crashcart and the SUT, so the SUT never outlives
//! crashcart, even when crashcart is killed with SIGKILL and can clean nothing up.
//!
//! crashcart starts `crashcart __guard PARENT -- COMMAND…` as the leader of a new process
//! group; the guard starts the SUT in that group and waits for it. The kernel tells the guard
//! when crashcart dies (`PR_SET_PDEATHSIG`, Linux); the guard then kills the whole group,
//! grandchildren included. A normal stop is crashcart's SIGTERM to the group: the SUT gets it,
//! the guard waits on for the SUT to finish and exits with its status.

/// The hidden subcommand that runs the guard.
pub const SUBCOMMAND: &str = "__guard";

/// Exit status of a guard that could not start its SUT (as a shell says "not found").
const NOT_STARTED: i32 = 127;

#[cfg(target_os = "linux")]
extern "C" fn orphaned(_: libc::c_int) {
    // SAFETY: killpg is async-signal-safe; 0 is our own process group.
    unsafe { libc::killpg(0, libc::SIGKILL) };
}

#[cfg(unix)]
extern "C" fn ignored(_: libc::c_int) {}

/// Run as the guard: `args` are `PARENT -- COMMAND…`. Returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    let (Some(parent), Some(cmd)) = (
        args.first().and_then(|p| p.parse::<u32>().ok()),
        args.iter()
            .position(|a| a == "--")
            .map(|i| &args[i + 1..])
            .filter(|c| !c.is_empty()),
    ) else {
        eprintln!("crashcart {SUBCOMMAND}: usage: PARENT_PID -- COMMAND [ARGS...]");
        return 2;
    };
    watch_parent(parent);
    let child = std::process::Command::new(&cmd[0]).args(&cmd[1..]).spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot start {:?}: {e}", cmd[0]);
            return NOT_STARTED;
        }
    };
    match child.wait() {
        Ok(status) => exit_code(status),
        Err(_) => 1,
    }
}

/// Die with the whole group when crashcart dies; let SIGTERM and Ctrl-C reach the SUT while
/// the guard waits on (a caught signal's handler is reset in the SUT at exec, unlike an
/// ignored one, so the SUT still gets the default action).
fn watch_parent(parent: u32) {
    #[cfg(unix)]
    // SAFETY: installing handlers that only call async-signal-safe functions.
    unsafe {
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::signal(s, ignored as *const () as libc::sighandler_t);
        }
    }
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_PDEATHSIG and a signal number; getppid and killpg are safe to
    // call at any time.
    unsafe {
        libc::signal(libc::SIGUSR1, orphaned as *const () as libc::sighandler_t);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGUSR1);
        // crashcart may have died before the line above: then nobody would tell us.
        if libc::getppid() as u32 != parent {
            libc::killpg(0, libc::SIGKILL);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = parent;
}

#[cfg(unix)]
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

#[cfg(not(unix))]
fn exit_code(status: std::process::ExitStatus) -> i32 {
    status.code().unwrap_or(1)
}

/// The crashcart binary that can run a guard: `CRASHCART_BIN`, else this process when it is
/// crashcart itself (a test binary using the library is not).
pub fn binary() -> Option<std::path::PathBuf> {
    if let Some(b) = std::env::var_os("CRASHCART_BIN") {
        return Some(b.into());
    }
    let me = std::env::current_exe().ok()?;
    let name = me.file_name()?.to_string_lossy().into_owned();
    (name == "crashcart" || name.starts_with("crashcart.")).then_some(me)
}
