//! Launch real `updraft` processes on 127.0.0.1 (origin, relays, manager, agents) and stop them:
//! used by `updraft demo` and by the system tests, so both start processes the same way.
//!
//! - [`Launcher`] runs one `updraft` executable with a `RUST_LOG` filter: [`Launcher::run`] for
//!   a command that finishes, [`Launcher::server`] for one that serves (it is ready once it has
//!   printed its `http(s)://ADDR` line, awaited for a bounded time), [`Launcher::daemon`] for one
//!   that only runs (an agent).
//! - A [`Process`] is killed (and reaped) when it is dropped; [`Processes`] holds many, and can
//!   be stopped from another thread (the demo's Ctrl-C).
//! - [`eventually`] polls a condition, bounded in time and attempts, and says what it awaited.
//! - [`agent_config_toml`] writes an agent configuration (the one place that spells it here).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

mod agent_config;

pub use agent_config::{agent_config_toml, AgentSetup, ManagerLink, ModuleSetup, ProductSetup};

/// What can go wrong while starting, running or awaiting processes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write the agent configuration: {0}")]
    Config(String),
    #[error("cannot find the updraft executable: {0}")]
    Executable(#[source] std::io::Error),
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed: {stderr}")]
    Failed { what: String, stderr: String },
    #[error("{what} did not print its address within {secs} s ({detail}){}", log_hint(.log))]
    NotReady {
        what: String,
        secs: u64,
        detail: String,
        log: Option<PathBuf>,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("timed out after {secs} s and {attempts} attempts waiting for {what}; last: {last}")]
    Timeout {
        what: String,
        secs: u64,
        attempts: u64,
        last: String,
    },
}

fn log_hint(log: &Option<PathBuf>) -> String {
    match log {
        Some(p) => format!("; see {}", p.display()),
        None => String::new(),
    }
}

/// Where a started process's standard error goes.
#[derive(Debug, Clone)]
pub enum Logs {
    Discard,
    /// Created (truncated) before the process starts.
    File(PathBuf),
}

impl Logs {
    fn stdio(&self) -> Result<Stdio, Error> {
        match self {
            Logs::Discard => Ok(Stdio::null()),
            Logs::File(p) => {
                std::fs::File::create(p)
                    .map(Stdio::from)
                    .map_err(|source| Error::Io {
                        what: format!("cannot create the log file {}", p.display()),
                        source,
                    })
            }
        }
    }

    fn path(&self) -> Option<PathBuf> {
        match self {
            Logs::Discard => None,
            Logs::File(p) => Some(p.clone()),
        }
    }
}

/// Runs one `updraft` executable with a `RUST_LOG` filter.
#[derive(Debug, Clone)]
pub struct Launcher {
    exe: PathBuf,
    rust_log: String,
    ready_within: Duration,
}

impl Launcher {
    /// `exe` with `RUST_LOG=warn`; servers must be ready within 30 s.
    pub fn new(exe: impl Into<PathBuf>) -> Launcher {
        Launcher {
            exe: exe.into(),
            rust_log: "warn".into(),
            ready_within: Duration::from_secs(30),
        }
    }

    /// The executable of this process (what `updraft demo` runs).
    pub fn current() -> Result<Launcher, Error> {
        std::env::current_exe()
            .map(Launcher::new)
            .map_err(Error::Executable)
    }

    /// The same executable with another `RUST_LOG` filter.
    pub fn rust_log(&self, filter: &str) -> Launcher {
        Launcher {
            rust_log: filter.into(),
            ..self.clone()
        }
    }

    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// `updraft ARGS` with this launcher's `RUST_LOG`, not started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(args).env("RUST_LOG", &self.rust_log);
        c
    }

    /// Run `updraft ARGS` to completion; its standard output, trimmed, or what it said on error.
    pub fn run(&self, args: &[&str]) -> Result<String, Error> {
        let what = describe(args);
        let out = self.command(args).output().map_err(|source| Error::Spawn {
            what: what.clone(),
            source,
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(Error::Failed { what, stderr });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Start `updraft ARGS` that serves and prints `… http(s)://ADDR…` on its first line of
    /// standard output; returns once it has (bounded), or kills it and says why.
    pub fn server(&self, args: &[&str], env: &[(&str, &str)], logs: Logs) -> Result<Server, Error> {
        let mut process = self.start(args, env, &logs, Stdio::piped())?;
        let stdout = process.child.as_mut().and_then(|c| c.stdout.take());
        let line = first_line(stdout, self.ready_within);
        let not_ready = |detail: String| Error::NotReady {
            what: describe(args),
            secs: self.ready_within.as_secs(),
            detail,
            log: logs.path(),
        };
        let line = line.map_err(not_ready)?;
        let base = base_url(&line).ok_or_else(|| not_ready(format!("it printed {line:?}")))?;
        Ok(Server { base, process })
    }

    /// Start `updraft ARGS` that runs until stopped (an agent); its standard output is discarded.
    pub fn daemon(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        logs: Logs,
    ) -> Result<Process, Error> {
        self.start(args, env, &logs, Stdio::null())
    }

    fn start(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        logs: &Logs,
        stdout: Stdio,
    ) -> Result<Process, Error> {
        let what = describe(args);
        let child = self
            .command(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(logs.stdio()?)
            .spawn()
            .map_err(|source| Error::Spawn {
                what: what.clone(),
                source,
            })?;
        Ok(Process {
            child: Some(child),
            what,
        })
    }
}

fn describe(args: &[&str]) -> String {
    format!("updraft {}", args.join(" "))
}

/// The first line of `stdout`, read on a helper thread so that the wait is bounded.
fn first_line(stdout: Option<ChildStdout>, within: Duration) -> Result<String, String> {
    let stdout = stdout.ok_or("no standard output")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(read.map(|_| line));
    });
    match rx.recv_timeout(within) {
        Ok(Ok(line)) if !line.is_empty() => Ok(line),
        Ok(Ok(_)) => Err("it exited without printing anything".into()),
        Ok(Err(e)) => Err(format!("reading its output: {e}")),
        Err(_) => Err("it printed nothing".into()),
    }
}

/// `scheme://host:port` of the first `http://` or `https://` word of `line`.
pub fn base_url(line: &str) -> Option<String> {
    line.split_whitespace().find_map(|word| {
        let (scheme, rest) = word
            .strip_prefix("https://")
            .map(|r| ("https", r))
            .or_else(|| word.strip_prefix("http://").map(|r| ("http", r)))?;
        let authority = rest.split('/').next().filter(|a| !a.is_empty())?;
        Some(format!("{scheme}://{authority}"))
    })
}

/// A started `updraft` process; killed and reaped when dropped.
#[derive(Debug)]
pub struct Process {
    child: Option<Child>,
    what: String,
}

impl Process {
    /// The command line it was started with.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// Its process id, while it has not been killed.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kill it (SIGKILL) and wait for it.
    pub fn kill(mut self) {
        self.stop();
    }

    /// Wait at most `within` for it to exit by itself (after a signal sent from outside): its
    /// exit status, or `None` if it still runs (it is then killed when dropped).
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + within;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return Some(status);
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => return None,
            }
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A started process that serves at `base` (`http(s)://127.0.0.1:PORT`).
#[derive(Debug)]
pub struct Server {
    pub base: String,
    pub process: Process,
}

impl Server {
    /// Kill it (SIGKILL) and wait for it.
    pub fn kill(self) {
        self.process.kill();
    }
}

/// Processes stopped together: when dropped, or by [`Processes::kill_all`] from any clone.
#[derive(Debug, Default, Clone)]
pub struct Processes(Arc<Mutex<Vec<Process>>>);

impl Processes {
    pub fn push(&self, p: Process) {
        match self.0.lock() {
            Ok(mut v) => v.push(p),
            Err(poisoned) => poisoned.into_inner().push(p),
        }
    }

    /// Kill and reap every process held so far.
    pub fn kill_all(&self) {
        let procs = match self.0.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        drop(procs);
    }
}

/// A port on 127.0.0.1 that was free a moment ago (for a process that must be given its port
/// before the others that point at it are configured).
pub fn free_port() -> Result<u16, Error> {
    let io = |source| Error::Io {
        what: "cannot find a free port on 127.0.0.1".into(),
        source,
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io)?;
    Ok(listener.local_addr().map_err(io)?.port())
}

/// Call `check` every `every` until it returns `Ok`, for at most `within` (so at most
/// `within / every + 1` attempts); its value, or [`Error::Timeout`] naming `what` and the last
/// `Err` it returned.
pub fn eventually<T, E: std::fmt::Display>(
    what: &str,
    within: Duration,
    every: Duration,
    mut check: impl FnMut() -> Result<T, E>,
) -> Result<T, Error> {
    let started = Instant::now();
    let max_attempts = within.as_millis() / every.as_millis().max(1) + 1;
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        let last = match check() {
            Ok(v) => return Ok(v),
            Err(e) => e.to_string(),
        };
        if started.elapsed() >= within || u128::from(attempts) >= max_attempts {
            return Err(Error::Timeout {
                what: what.into(),
                secs: within.as_secs(),
                attempts,
                last,
            });
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_is_the_scheme_and_authority_of_the_first_url() {
        let origin = "serving /tmp/x at http://127.0.0.1:4100/metadata/ and http://127.0.0.1:4100/targets/ (Ctrl-C stops)";
        assert_eq!(base_url(origin).as_deref(), Some("http://127.0.0.1:4100"));
        let relay = "relay listening on https://127.0.0.1:4200\n";
        assert_eq!(base_url(relay).as_deref(), Some("https://127.0.0.1:4200"));
        assert_eq!(base_url("listening on 127.0.0.1:80"), None);
        assert_eq!(base_url("at http:// nothing"), None);
    }

    #[test]
    fn eventually_returns_the_value_or_says_what_it_awaited() {
        let mut n = 0;
        let v = eventually(
            "n to reach 3",
            Duration::from_secs(5),
            Duration::ZERO,
            || {
                n += 1;
                if n == 3 {
                    Ok(n)
                } else {
                    Err(format!("n = {n}"))
                }
            },
        );
        assert_eq!(v.unwrap(), 3);
        let err = eventually(
            "never",
            Duration::from_millis(30),
            Duration::from_millis(10),
            || Err::<(), _>("still no"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("waiting for never") && err.contains("last: still no"),
            "{err}"
        );
        // How many attempts fit in 30 ms depends on the machine's load: only that it says.
        assert!(err.contains(" attempts"), "{err}");
    }

    #[test]
    fn a_server_that_never_prints_its_address_is_killed_and_reported() {
        let sh = Launcher {
            exe: "/bin/sh".into(),
            rust_log: "warn".into(),
            ready_within: Duration::from_millis(300),
        };
        let err = sh
            .server(&["-c", "sleep 30"], &[], Logs::Discard)
            .unwrap_err();
        assert!(matches!(err, Error::NotReady { .. }), "{err}");
        assert!(err.to_string().contains("printed nothing"), "{err}");
        let err = sh
            .server(&["-c", "echo no address"], &[], Logs::Discard)
            .unwrap_err();
        assert!(err.to_string().contains("no address"), "{err}");
        let ok = sh.server(
            &["-c", "echo at http://127.0.0.1:9/x; sleep 30"],
            &[],
            Logs::Discard,
        );
        assert_eq!(ok.unwrap().base, "http://127.0.0.1:9");
    }
}
