//! Starting a process: what to run ([`ProcessSpec`]), how its start can fail
//! ([`SpawnError`]), and the `fork`/`exec` itself.
//!
//! Invariant: a process is started from an argv, never through a shell, as
//! the leader of its own process group (so the stop sequence can signal the
//! whole tree, `npx` → `node`), with stdin, stdout and stderr piped, and every
//! attempt is recorded in the [`Accounting`]: a success enters the live table,
//! a failure counts as a spawn failure.

use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::stderr::StderrBudget;
use crate::accounting::Accounting;

/// The two grace periods of the stop sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopTimeouts {
    /// After closing stdin, how long to wait for the process to exit by itself.
    pub stdin_grace: Duration,
    /// After SIGTERM, how long to wait before SIGKILL.
    pub term_grace: Duration,
}

impl Default for StopTimeouts {
    /// 2 s and 2 s, as the MCP TypeScript and Python SDKs do.
    fn default() -> Self {
        StopTimeouts {
            stdin_grace: Duration::from_secs(2),
            term_grace: Duration::from_secs(2),
        }
    }
}

/// What to run and how to stop it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The program: a path, or a name looked up in `PATH`.
    pub program: OsString,
    /// Its arguments (argv[1..]).
    pub args: Vec<OsString>,
    /// Variables set on top of the inherited environment (applied after `env_unset`).
    pub env_set: Vec<(OsString, OsString)>,
    /// Variables removed from the inherited environment.
    pub env_unset: Vec<OsString>,
    /// Working directory; the proxy's own when `None`.
    pub cwd: Option<PathBuf>,
    /// Name used in logs, errors and metrics.
    pub name: String,
    /// Grace periods of the stop sequence.
    pub stop: StopTimeouts,
    /// How much of its stderr reaches the log.
    pub stderr: StderrBudget,
}

impl ProcessSpec {
    /// A spec running `program` with no arguments, named after the program's
    /// file name.
    pub fn new(program: impl Into<OsString>) -> Self {
        let program = program.into();
        let name = std::path::Path::new(&program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.to_string_lossy().into_owned());
        ProcessSpec {
            program,
            args: Vec::new(),
            env_set: Vec::new(),
            env_unset: Vec::new(),
            cwd: None,
            name,
            stop: StopTimeouts::default(),
            stderr: StderrBudget::default(),
        }
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets the name used in logs and errors.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the stderr budget.
    pub fn stderr_budget(mut self, budget: StderrBudget) -> Self {
        self.stderr = budget;
        self
    }

    /// Sets the stop sequence's grace periods.
    pub fn stop_timeouts(mut self, stop: StopTimeouts) -> Self {
        self.stop = stop;
        self
    }

    pub(super) fn program_display(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }
}

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The program does not exist (not a file, or not found in `PATH`).
    #[error("command not found: {program}")]
    NotFound {
        /// The program as given.
        program: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The program exists but may not be executed.
    #[error("permission denied running {program}")]
    PermissionDenied {
        /// The program as given.
        program: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The working directory does not exist or is not a directory.
    #[error("working directory {cwd} for {program} is not a directory")]
    BadCwd {
        /// The program as given.
        program: String,
        /// The directory.
        cwd: PathBuf,
    },
    /// Any other failure of `fork`/`exec` (out of fds, out of processes, ...).
    #[error("cannot start {program}: {source}")]
    Io {
        /// The program as given.
        program: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Starts `spec` as the leader of a new process group with piped stdio, and
/// records the attempt. Returns the child and its pid.
pub(super) fn spawn_child(
    spec: &ProcessSpec,
    accounting: &Accounting,
) -> Result<(Child, u32), SpawnError> {
    let program = spec.program_display();
    if let Some(cwd) = &spec.cwd
        && !cwd.is_dir()
    {
        accounting.record_spawn_failure();
        return Err(SpawnError::BadCwd {
            program,
            cwd: cwd.clone(),
        });
    }
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own group: the stop sequence signals the whole tree (npx → node).
        .process_group(0)
        // Our own stop sequence replaces tokio's bare SIGKILL on drop.
        .kill_on_drop(false);
    for key in &spec.env_unset {
        cmd.env_remove(key);
    }
    for (key, value) in &spec.env_set {
        cmd.env(key, value);
    }
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    let child = cmd.spawn().map_err(|source| {
        accounting.record_spawn_failure();
        match source.kind() {
            io::ErrorKind::NotFound => SpawnError::NotFound { program, source },
            io::ErrorKind::PermissionDenied => SpawnError::PermissionDenied { program, source },
            _ => SpawnError::Io { program, source },
        }
    })?;
    // `id()` is only `None` once the child has been reaped, which cannot
    // have happened yet; 0 keeps the handle usable (and is never signalled).
    let pid = child.id().unwrap_or(0);
    accounting.record_spawn(pid, &spec.name);
    tracing::debug!(server = %spec.name, pid, program = %spec.program_display(), "spawned upstream process");
    Ok((child, pid))
}
