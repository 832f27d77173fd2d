//! Upstream child processes: spawn, stderr capture, the stop sequence, reaping.
//!
//! A [`ChildProcess`] is one stdio MCP server started from an argv (never a
//! shell) as the leader of its own process group, with piped stdin, stdout and
//! stderr. Its stderr is read line by line (bounded) into `tracing` events and a
//! small ring buffer; its stdin and stdout are taken by the connection.
//!
//! Invariant: every process spawned here is stopped and reaped exactly once,
//! together with the rest of its process group, whichever way its handle ends:
//! [`ChildProcess::stop`] runs the stop sequence (close stdin, wait, SIGTERM the
//! group, wait, SIGKILL the group, reap the leader, then reap the group with
//! `waitpid(-pgid, WNOHANG)`), and dropping a handle without `stop` hands it to
//! a background stopper that runs the same sequence. Stops in progress are
//! counted so shutdown can wait for them ([`wait_for_stops`]).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::accounting::{Accounting, ExitClass};

/// Longest stderr line kept, in bytes; the rest of a longer line is dropped
/// (and counted) without being buffered.
pub const STDERR_MAX_LINE: usize = 4096;

/// How many of the last stderr lines each process keeps for error reports.
pub const STDERR_TAIL_LINES: usize = 20;

/// How long the stop sequence waits for a process after SIGKILL (it cannot
/// ignore it, but one stuck in uninterruptible sleep may take a moment).
const KILL_WAIT: Duration = Duration::from_secs(5);

/// How long the stop sequence waits for the stderr reader to see EOF once the
/// group is gone (a descendant that left the group may still hold the pipe).
const STDERR_DRAIN: Duration = Duration::from_millis(500);

/// How often the stop sequence looks at a group whose leader is gone.
const GROUP_POLL: Duration = Duration::from_millis(5);

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

    /// Sets the stop sequence's grace periods.
    pub fn stop_timeouts(mut self, stop: StopTimeouts) -> Self {
        self.stop = stop;
        self
    }

    fn program_display(&self) -> String {
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

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCause {
    /// It exited with this status code.
    Code(i32),
    /// It was killed by this signal number.
    Signal(i32),
    /// Its status could not be learned (it was reaped elsewhere, or it never
    /// died after SIGKILL within the bounded wait).
    Unknown,
}

impl ExitCause {
    fn from_status(status: ExitStatus) -> Self {
        match (status.code(), status.signal()) {
            (Some(code), _) => ExitCause::Code(code),
            (None, Some(sig)) => ExitCause::Signal(sig),
            (None, None) => ExitCause::Unknown,
        }
    }

    fn from_wait(res: io::Result<ExitStatus>) -> Self {
        match res {
            Ok(status) => Self::from_status(status),
            Err(e) => {
                tracing::warn!(error = %e, "waiting for an upstream process failed");
                ExitCause::Unknown
            }
        }
    }

    /// Whether the process exited by itself with status 0.
    pub fn is_clean(&self) -> bool {
        *self == ExitCause::Code(0)
    }
}

impl fmt::Display for ExitCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitCause::Code(code) => write!(f, "exited with code {code}"),
            ExitCause::Signal(sig) => match Signal::try_from(sig) {
                Ok(s) => write!(f, "killed by signal {} ({sig})", s.as_str()),
                Err(_) => write!(f, "killed by signal {sig}"),
            },
            ExitCause::Unknown => f.write_str("exit status unknown"),
        }
    }
}

/// How far the stop sequence had to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopStage {
    /// The process had already exited before the stop began.
    AlreadyExited,
    /// It exited after its stdin was closed.
    StdinClosed,
    /// It needed SIGTERM.
    Terminated,
    /// It needed SIGKILL.
    Killed,
}

/// Why a process is being stopped (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// Retired by the pool: lifetime, idle timeout, use count, session end.
    Retired,
    /// Found broken: crashed, closed stdout, wrote an untrustworthy stream.
    Broken,
    /// Failed during start-up (spawn or handshake).
    StartupFailed,
    /// Its pool was closed.
    PoolClosed,
    /// The proxy is shutting down.
    Shutdown,
    /// Its handle was dropped without an explicit stop.
    Dropped,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Retired => "retired",
            StopReason::Broken => "broken",
            StopReason::StartupFailed => "start-up failed",
            StopReason::PoolClosed => "pool closed",
            StopReason::Shutdown => "shutdown",
            StopReason::Dropped => "handle dropped",
        })
    }
}

/// What a completed stop sequence found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopOutcome {
    /// How the group leader ended.
    pub cause: ExitCause,
    /// How far the sequence had to go.
    pub stage: StopStage,
    /// Other group members (adopted orphans) reaped after the leader.
    pub group_reaped: usize,
    /// The last lines the process wrote to stderr.
    pub stderr_tail: Vec<String>,
}

/// The last [`STDERR_TAIL_LINES`] stderr lines of one process.
#[derive(Debug, Default)]
struct StderrTail {
    lines: Mutex<VecDeque<String>>,
}

impl StderrTail {
    fn lock(&self) -> MutexGuard<'_, VecDeque<String>> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, line: String) {
        let mut lines = self.lock();
        if lines.len() == STDERR_TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn snapshot(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }
}

/// Shared read access to a process's last stderr lines.
#[derive(Debug, Clone)]
pub struct StderrTailHandle(Arc<StderrTail>);

impl StderrTailHandle {
    /// The last lines the process wrote to stderr (at most [`STDERR_TAIL_LINES`]).
    pub fn lines(&self) -> Vec<String> {
        self.0.snapshot()
    }
}

/// A running upstream process, leader of its own process group.
///
/// Dropping it without [`stop`](Self::stop) stops it in the background.
#[derive(Debug)]
pub struct ChildProcess {
    pid: u32,
    pgid: Option<Pid>,
    name: String,
    timeouts: StopTimeouts,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr_task: Option<JoinHandle<()>>,
    tail: Arc<StderrTail>,
    accounting: Arc<Accounting>,
    exited: Option<ExitCause>,
}

/// What the stop sequence owns once it has taken a process from its handle.
#[derive(Debug)]
struct Stopping {
    pid: u32,
    pgid: Option<Pid>,
    name: String,
    timeouts: StopTimeouts,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr_task: Option<JoinHandle<()>>,
    tail: Arc<StderrTail>,
    accounting: Arc<Accounting>,
    exited: Option<ExitCause>,
}

impl ChildProcess {
    /// Starts `spec` and begins reading its stderr. Must run inside a tokio
    /// runtime.
    pub fn spawn(spec: &ProcessSpec, accounting: &Arc<Accounting>) -> Result<Self, SpawnError> {
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
        let mut child = cmd.spawn().map_err(|source| {
            accounting.record_spawn_failure();
            match source.kind() {
                io::ErrorKind::NotFound => SpawnError::NotFound {
                    program: program.clone(),
                    source,
                },
                io::ErrorKind::PermissionDenied => SpawnError::PermissionDenied {
                    program: program.clone(),
                    source,
                },
                _ => SpawnError::Io {
                    program: program.clone(),
                    source,
                },
            }
        })?;
        // `id()` is only `None` once the child has been reaped, which cannot
        // have happened yet; 0 keeps the handle usable (and is never signalled).
        let pid = child.id().unwrap_or(0);
        let pgid = group_of(pid);
        accounting.record_spawn(pid, &spec.name);
        let tail = Arc::new(StderrTail::default());
        let stderr_task = child.stderr.take().map(|stderr| {
            tokio::spawn(pump_stderr(
                stderr,
                Arc::clone(&tail),
                spec.name.clone(),
                pid,
            ))
        });
        tracing::debug!(server = %spec.name, pid, program = %program, "spawned upstream process");
        Ok(ChildProcess {
            pid,
            pgid,
            name: spec.name.clone(),
            timeouts: spec.stop,
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            child: Some(child),
            stderr_task,
            tail,
            accounting: Arc::clone(accounting),
            exited: None,
        })
    }

    /// The process id (also its process-group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The server name from its spec.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes the write end of its stdin. The stop sequence starts by closing
    /// stdin, so whoever takes it must drop it before calling [`stop`](Self::stop).
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// Takes the read end of its stdout.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.stdout.take()
    }

    /// The last lines it wrote to stderr (at most [`STDERR_TAIL_LINES`]).
    pub fn stderr_tail(&self) -> Vec<String> {
        self.tail.snapshot()
    }

    /// A handle on the stderr tail that stays readable after this handle
    /// has moved into a task (the connection's monitor owns the process).
    pub fn stderr_tail_handle(&self) -> StderrTailHandle {
        StderrTailHandle(Arc::clone(&self.tail))
    }

    /// How it ended, if it has; never blocks.
    pub fn try_exited(&mut self) -> Option<ExitCause> {
        if self.exited.is_some() {
            return self.exited;
        }
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => self.exited = Some(ExitCause::from_status(status)),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(server = %self.name, pid = self.pid, error = %e, "try_wait failed");
                self.exited = Some(ExitCause::Unknown);
            }
        }
        self.exited
    }

    /// Waits until it exits by itself and says how. Cancel-safe.
    pub async fn wait_exit(&mut self) -> ExitCause {
        if let Some(cause) = self.exited {
            return cause;
        }
        let cause = match self.child.as_mut() {
            Some(child) => ExitCause::from_wait(child.wait().await),
            None => ExitCause::Unknown,
        };
        self.exited = Some(cause);
        cause
    }

    /// Waits at most `limit` for the stderr reader to reach EOF (every
    /// holder of the pipe gone), so [`ChildProcess::stderr_tail`] holds what
    /// the process wrote last; whether it did. Cancel-safe; once the reader
    /// has ended, the stop sequence does not wait for it again.
    pub async fn wait_stderr_eof(&mut self, limit: Duration) -> bool {
        let Some(task) = self.stderr_task.as_mut() else {
            return true;
        };
        if tokio::time::timeout(limit, task).await.is_ok() {
            self.stderr_task = None;
            true
        } else {
            false
        }
    }

    /// Runs the stop sequence to its end and reports how the process ended.
    pub async fn stop(mut self, reason: StopReason) -> StopOutcome {
        match self.take_stopping() {
            Some(stopping) => {
                let mut ticket = StopTicket::new(stopping.pgid);
                stop_sequence(stopping, reason, &mut ticket).await
            }
            None => StopOutcome {
                cause: self.exited.unwrap_or(ExitCause::Unknown),
                stage: StopStage::AlreadyExited,
                group_reaped: 0,
                stderr_tail: self.tail.snapshot(),
            },
        }
    }

    fn take_stopping(&mut self) -> Option<Stopping> {
        let child = self.child.take()?;
        Some(Stopping {
            pid: self.pid,
            pgid: self.pgid,
            name: std::mem::take(&mut self.name),
            timeouts: self.timeouts,
            child,
            stdin: self.stdin.take(),
            stdout: self.stdout.take(),
            stderr_task: self.stderr_task.take(),
            tail: Arc::clone(&self.tail),
            accounting: Arc::clone(&self.accounting),
            exited: self.exited,
        })
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let Some(stopping) = self.take_stopping() else {
            return;
        };
        // The ticket is taken here, synchronously, so `wait_for_stops` counts
        // this stop from the moment the handle is gone.
        let mut ticket = StopTicket::new(stopping.pgid);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                // If the runtime is shutting down the task is dropped unrun; the
                // ticket's own Drop then SIGKILLs the group as a last resort.
                handle.spawn(async move {
                    stop_sequence(stopping, StopReason::Dropped, &mut ticket).await;
                });
            }
            Err(_) => {
                let spawned = std::thread::Builder::new()
                    .name("stdiopool-stopper".into())
                    .spawn(move || blocking_kill_and_reap(stopping, ticket));
                if let Err(e) = spawned {
                    tracing::error!(error = %e, "cannot start a thread to stop a dropped upstream process");
                }
            }
        }
    }
}

/// The process group to signal for a child, refusing ids that would name our
/// own group or every process (0, 1, or a pid that does not fit).
fn group_of(pid: u32) -> Option<Pid> {
    match i32::try_from(pid) {
        Ok(p) if p > 1 => Some(Pid::from_raw(p)),
        _ => None,
    }
}

fn signal_group(pgid: Option<Pid>, signal: Signal, name: &str, pid: u32) {
    let Some(pgid) = pgid else {
        tracing::error!(server = %name, pid, "refusing to signal process group 0/1");
        return;
    };
    match killpg(pgid, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => {
            tracing::warn!(server = %name, pid, signal = signal.as_str(), error = %e, "killpg failed")
        }
    }
}

/// Whether any process is left in the group (a zombie still counts until reaped).
fn group_is_empty(pgid: Pid) -> bool {
    matches!(killpg(pgid, None), Err(Errno::ESRCH))
}

/// Reaps every exited child of ours in group `pgid` without blocking; returns
/// how many. Only ever `waitpid(-pgid)`: `waitpid(-1)` would steal the exit
/// statuses tokio is waiting for.
fn reap_group_nohang(pgid: Pid) -> usize {
    let mut reaped = 0;
    loop {
        match waitpid(Pid::from_raw(-pgid.as_raw()), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return reaped,
            Ok(_) => reaped += 1,
            Err(Errno::EINTR) => {}
            Err(e) => {
                tracing::warn!(pgid = pgid.as_raw(), error = %e, "waitpid on a process group failed");
                return reaped;
            }
        }
    }
}

/// Counts stops in progress, process-wide, so shutdown can wait for them.
static STOPS_IN_PROGRESS: AtomicUsize = AtomicUsize::new(0);
static STOPS_IDLE: Notify = Notify::const_new();

/// One stop in progress. While armed, dropping it (the stop future was
/// cancelled, or its runtime shut down) SIGKILLs the group as a last resort.
#[derive(Debug)]
struct StopTicket {
    armed_pgid: Option<Pid>,
}

impl StopTicket {
    fn new(pgid: Option<Pid>) -> Self {
        STOPS_IN_PROGRESS.fetch_add(1, Ordering::SeqCst);
        StopTicket { armed_pgid: pgid }
    }

    /// Called once the group is known to be empty: its id may now be reused,
    /// so it must never be signalled again.
    fn disarm(&mut self) {
        self.armed_pgid = None;
    }
}

impl Drop for StopTicket {
    fn drop(&mut self) {
        if let Some(pgid) = self.armed_pgid {
            // The group is not yet known empty, so its id still belongs to it.
            let _ = killpg(pgid, Signal::SIGKILL);
            tracing::warn!(
                pgid = pgid.as_raw(),
                "stop sequence cut short; killed the group"
            );
        }
        if STOPS_IN_PROGRESS.fetch_sub(1, Ordering::SeqCst) == 1 {
            STOPS_IDLE.notify_waiters();
        }
    }
}

/// A stop that is decided but not yet begun: a holder of the process (the
/// connection's monitor task) has been told to stop it and will call
/// [`ChildProcess::stop`] when it next runs. Counted by [`stops_in_progress`]
/// and [`wait_for_stops`] from its creation to its drop, so shutdown cannot
/// see zero in the gap before the real stop starts. Keep it until `stop`
/// returns.
#[derive(Debug)]
pub struct PendingStop {
    _ticket: StopTicket,
}

impl PendingStop {
    /// Starts counting a stop about to begin.
    pub fn new() -> Self {
        // No group: a pending stop never signals anything itself.
        PendingStop {
            _ticket: StopTicket::new(None),
        }
    }
}

impl Default for PendingStop {
    fn default() -> Self {
        Self::new()
    }
}

/// Number of stop sequences running now (including background stops of
/// dropped handles and [`PendingStop`]s).
pub fn stops_in_progress() -> usize {
    STOPS_IN_PROGRESS.load(Ordering::SeqCst)
}

/// Waits until no stop sequence is running, or `limit` passes; returns how
/// many were still running (0 on success). Shutdown calls this last.
pub async fn wait_for_stops(limit: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let notified = STOPS_IDLE.notified();
        tokio::pin!(notified);
        // Registered before the count is read, so the last stop's wake-up
        // cannot fall between the two.
        notified.as_mut().enable();
        let running = stops_in_progress();
        if running == 0 {
            return 0;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return stops_in_progress();
        }
    }
}

/// Makes the proxy a child subreaper: orphans of its children's trees (a
/// grandchild whose wrapper was killed) are re-parented to it instead of to
/// init, so the group reap of the stop sequence can collect them even where
/// init does not reap (containers, sandboxes). Call once at start.
pub fn become_subreaper() -> Result<(), SubreaperError> {
    nix::sys::prctl::set_child_subreaper(true).map_err(SubreaperError)
}

/// `prctl(PR_SET_CHILD_SUBREAPER)` failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot become a child subreaper: {0}")]
pub struct SubreaperError(#[source] pub nix::Error);

async fn stop_sequence(
    mut s: Stopping,
    reason: StopReason,
    ticket: &mut StopTicket,
) -> StopOutcome {
    let started = Instant::now();
    let already = match s.exited {
        Some(cause) => Some(cause),
        None => match s.child.try_wait() {
            Ok(Some(status)) => Some(ExitCause::from_status(status)),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(server = %s.name, pid = s.pid, error = %e, "try_wait failed");
                None
            }
        },
    };
    // Closing stdin is the polite request to exit (MCP stdio shutdown).
    drop(s.stdin.take());
    let mut term_sent_at = None;
    let (cause, stage, leader_reaped) = match already {
        Some(cause) => (cause, StopStage::AlreadyExited, true),
        None => match tokio::time::timeout(s.timeouts.stdin_grace, s.child.wait()).await {
            Ok(res) => (ExitCause::from_wait(res), StopStage::StdinClosed, true),
            Err(_) => {
                signal_group(s.pgid, Signal::SIGTERM, &s.name, s.pid);
                term_sent_at = Some(Instant::now());
                match tokio::time::timeout(s.timeouts.term_grace, s.child.wait()).await {
                    Ok(res) => (ExitCause::from_wait(res), StopStage::Terminated, true),
                    Err(_) => {
                        signal_group(s.pgid, Signal::SIGKILL, &s.name, s.pid);
                        match tokio::time::timeout(KILL_WAIT, s.child.wait()).await {
                            Ok(res) => (ExitCause::from_wait(res), StopStage::Killed, true),
                            Err(_) => {
                                tracing::error!(server = %s.name, pid = s.pid, "still alive after SIGKILL; leaving it to tokio's orphan reaper");
                                (ExitCause::Unknown, StopStage::Killed, false)
                            }
                        }
                    }
                }
            }
        },
    };
    let group_reaped = match (s.pgid, leader_reaped) {
        (Some(pgid), true) => {
            let reaped = clean_group(pgid, stage, term_sent_at, &s).await;
            if group_is_empty(pgid) {
                ticket.disarm();
            }
            reaped
        }
        // Reaping the group now could take the leader's status from tokio; the
        // ticket stays armed and SIGKILLs the group when dropped.
        _ => 0,
    };
    // The stderr reader ends at EOF, once every holder of the pipe is gone.
    if let Some(mut task) = s.stderr_task.take()
        && tokio::time::timeout(STDERR_DRAIN, &mut task).await.is_err()
    {
        task.abort();
    }
    drop(s.stdout.take());
    let class = match (stage, cause) {
        (StopStage::Killed, _) => ExitClass::KilledByStop,
        (StopStage::Terminated, _) => ExitClass::TerminatedByStop,
        (_, ExitCause::Code(0)) => ExitClass::Clean,
        (_, ExitCause::Code(_)) => ExitClass::Nonzero,
        (_, ExitCause::Signal(_)) => ExitClass::Signal,
        (_, ExitCause::Unknown) => ExitClass::Unknown,
    };
    s.accounting.record_group_reaped(group_reaped);
    s.accounting.record_exit(s.pid, class);
    tracing::info!(
        server = %s.name,
        pid = s.pid,
        %reason,
        cause = %cause,
        stage = ?stage,
        group_reaped,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "stopped upstream process"
    );
    StopOutcome {
        cause,
        stage,
        group_reaped,
        stderr_tail: s.tail.snapshot(),
    }
}

/// After the leader is reaped: reap the rest of the group, and if members
/// outlived the leader (a wrapper that died, its child still running), take
/// them through SIGTERM and SIGKILL too. Bounded in time.
async fn clean_group(
    pgid: Pid,
    stage: StopStage,
    term_sent_at: Option<Instant>,
    s: &Stopping,
) -> usize {
    let mut reaped = reap_group_nohang(pgid);
    if group_is_empty(pgid) {
        return reaped;
    }
    tracing::debug!(server = %s.name, pid = s.pid, "process group outlived its leader");
    if stage < StopStage::Killed {
        let term_at = match term_sent_at {
            Some(t) => t,
            None => {
                signal_group(Some(pgid), Signal::SIGTERM, &s.name, s.pid);
                Instant::now()
            }
        };
        let (more, empty) = poll_group(pgid, term_at + s.timeouts.term_grace).await;
        reaped += more;
        if empty {
            return reaped;
        }
        signal_group(Some(pgid), Signal::SIGKILL, &s.name, s.pid);
    }
    let (more, empty) = poll_group(pgid, Instant::now() + KILL_WAIT).await;
    reaped += more;
    if !empty {
        tracing::error!(server = %s.name, pid = s.pid, "process group not empty after SIGKILL");
    }
    reaped
}

/// Reaps the group until it is empty or `deadline` passes; returns how many
/// were reaped and whether it emptied.
async fn poll_group(pgid: Pid, deadline: Instant) -> (usize, bool) {
    let mut reaped = 0;
    loop {
        reaped += reap_group_nohang(pgid);
        if group_is_empty(pgid) {
            return (reaped, true);
        }
        if Instant::now() >= deadline {
            return (reaped, false);
        }
        tokio::time::sleep(GROUP_POLL).await;
    }
}

/// The stopper for a handle dropped outside any tokio runtime (teardown):
/// no graces, SIGKILL the group, then reap the leader and the group on this
/// thread, bounded in time.
fn blocking_kill_and_reap(mut s: Stopping, mut ticket: StopTicket) {
    drop(s.stdin.take());
    drop(s.stdout.take());
    if let Some(task) = s.stderr_task.take() {
        task.abort();
    }
    let exited_before = s.exited.is_some() || matches!(s.child.try_wait(), Ok(Some(_)));
    if !exited_before {
        signal_group(s.pgid, Signal::SIGKILL, &s.name, s.pid);
    }
    let deadline = Instant::now() + KILL_WAIT;
    let mut cause = s.exited.unwrap_or(ExitCause::Unknown);
    let mut leader_reaped = false;
    loop {
        match s.child.try_wait() {
            Ok(Some(status)) => {
                cause = ExitCause::from_status(status);
                leader_reaped = true;
                break;
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(GROUP_POLL),
            _ => break,
        }
    }
    // As in the async sequence: the group is reaped only once the leader's
    // status has gone to tokio, and signalled only while it still exists.
    if let (Some(pgid), true) = (s.pgid, leader_reaped) {
        while Instant::now() < deadline {
            s.accounting.record_group_reaped(reap_group_nohang(pgid));
            if group_is_empty(pgid) {
                ticket.disarm();
                break;
            }
            signal_group(Some(pgid), Signal::SIGKILL, &s.name, s.pid);
            std::thread::sleep(GROUP_POLL);
        }
    }
    let class = match (exited_before, cause) {
        (false, _) => ExitClass::KilledByStop,
        (true, ExitCause::Code(0)) => ExitClass::Clean,
        (true, ExitCause::Code(_)) => ExitClass::Nonzero,
        (true, ExitCause::Signal(_)) => ExitClass::Signal,
        (true, ExitCause::Unknown) => ExitClass::Unknown,
    };
    s.accounting.record_exit(s.pid, class);
    tracing::info!(server = %s.name, pid = s.pid, cause = %cause, "stopped upstream process dropped outside a runtime");
    drop(ticket);
}

/// Reads stderr line by line into `tracing` events and the tail ring. A line
/// longer than [`STDERR_MAX_LINE`] keeps its first bytes and a marker; the rest
/// is skipped straight from the reader's buffer, so memory stays bounded.
async fn pump_stderr(stderr: ChildStderr, tail: Arc<StderrTail>, name: String, pid: u32) {
    let mut reader = BufReader::with_capacity(8 * 1024, stderr);
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut dropped: usize = 0;
    loop {
        let buf = match reader.fill_buf().await {
            Ok(buf) => buf,
            Err(e) => {
                tracing::debug!(server = %name, pid, error = %e, "reading upstream stderr failed");
                break;
            }
        };
        if buf.is_empty() {
            if !line.is_empty() || dropped > 0 {
                emit_stderr_line(&line, dropped, &tail, &name, pid);
            }
            break;
        }
        let (chunk, consumed, complete) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = STDERR_MAX_LINE.saturating_sub(line.len());
        let keep = chunk.len().min(room);
        line.extend_from_slice(&chunk[..keep]);
        dropped += chunk.len() - keep;
        reader.consume(consumed);
        if complete {
            emit_stderr_line(&line, dropped, &tail, &name, pid);
            line.clear();
            dropped = 0;
        }
    }
}

fn emit_stderr_line(line: &[u8], dropped: usize, tail: &StderrTail, name: &str, pid: u32) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut text = String::from_utf8_lossy(line).into_owned();
    if dropped > 0 {
        text.push_str(&format!(" [... {dropped} more bytes dropped]"));
    }
    tracing::info!(target: "stdiopool::upstream::stderr", server = %name, pid, "{text}");
    tail.push(text);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn group_of_refuses_ids_that_would_signal_everyone() {
        assert_eq!(group_of(0), None);
        assert_eq!(group_of(1), None);
        assert_eq!(group_of(u32::MAX), None);
        assert_eq!(group_of(4242), Some(Pid::from_raw(4242)));
    }

    #[test]
    fn stderr_tail_keeps_only_the_last_lines() {
        let tail = StderrTail::default();
        for i in 0..(STDERR_TAIL_LINES + 5) {
            tail.push(format!("line {i}"));
        }
        let lines = tail.snapshot();
        assert_eq!(lines.len(), STDERR_TAIL_LINES);
        assert_eq!(lines[0], "line 5");
        assert_eq!(
            lines.last().unwrap(),
            &format!("line {}", STDERR_TAIL_LINES + 4)
        );
    }

    #[test]
    fn exit_cause_names_the_signal() {
        assert_eq!(
            ExitCause::Signal(9).to_string(),
            "killed by signal SIGKILL (9)"
        );
        assert_eq!(ExitCause::Code(3).to_string(), "exited with code 3");
    }

    #[tokio::test]
    async fn stderr_lines_longer_than_the_cap_are_truncated_with_a_marker() {
        let acc = Arc::new(Accounting::new());
        let spec = ProcessSpec::new("sh").args([
            "-c",
            "head -c 10000 /dev/zero | tr '\\0' a >&2; echo >&2; echo short >&2; printf tail-no-newline >&2",
        ]);
        let child = ChildProcess::spawn(&spec, &acc).unwrap();
        let out = child.stop(StopReason::Retired).await;
        assert_eq!(out.cause, ExitCause::Code(0));
        assert_eq!(out.stderr_tail.len(), 3, "{:?}", out.stderr_tail);
        let long = &out.stderr_tail[0];
        assert!(long.starts_with(&"a".repeat(STDERR_MAX_LINE)));
        assert!(long.ends_with(&format!(
            "[... {} more bytes dropped]",
            10000 - STDERR_MAX_LINE
        )));
        assert_eq!(out.stderr_tail[1], "short");
        assert_eq!(out.stderr_tail[2], "tail-no-newline");
        assert!(acc.live_pids().is_empty());
    }
}
