//! Upstream child processes: one [`ChildProcess`] handle per stdio MCP
//! server, and the jobs it is built from, one file each:
//!
//! - `spawn.rs`: what to run ([`ProcessSpec`]) and starting it, the leader of
//!   its own process group, with piped stdio;
//! - `group.rs`: the process-group mechanism (signal, emptiness, reap,
//!   subreaper);
//! - `stop.rs`: the stop sequence as a table of `(action, grace)` steps, and
//!   the tickets that count stops in the proxy's [`Accounting`];
//! - `stderr/`: stderr drained into `tracing` events under a budget
//!   (`budget.rs`) and into a tail ring (`tail.rs`);
//! - `outcome.rs`: how a process ended and how far its stop went.
//!
//! Invariant: every process spawned here is stopped and reaped exactly once,
//! together with the rest of its process group, whichever way its handle ends:
//! [`ChildProcess::stop`] runs the stop sequence, and dropping a handle without
//! `stop` hands it to a background stopper that runs the same sequence. Stops
//! in progress are counted in the handle's [`Accounting`] so shutdown can wait
//! for them ([`Accounting::wait_for_stops`]).

mod group;
mod outcome;
mod spawn;
mod stderr;
mod stop;

use std::sync::Arc;
use std::time::Duration;

use nix::unistd::Pid;
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::task::JoinHandle;

pub use group::{SubreaperError, become_subreaper};
pub use outcome::{ExitCause, StopOutcome, StopReason, StopStage};
pub use spawn::{ProcessSpec, SpawnError, StopTimeouts};
pub use stderr::{STDERR_MAX_LINE, STDERR_TAIL_LINES, StderrBudget, StderrTailHandle};
pub use stop::PendingStop;

use crate::accounting::Accounting;
use stderr::{StderrSink, StderrTail};
use stop::StopTicket;

/// Who a process is and where its records go: what the stop sequence needs
/// besides the OS handles. Cheap to clone.
#[derive(Debug, Clone)]
struct Identity {
    pid: u32,
    pgid: Option<Pid>,
    name: String,
    timeouts: StopTimeouts,
    tail: Arc<StderrTail>,
    accounting: Arc<Accounting>,
}

/// The OS handles of a running process, which the stop sequence consumes.
#[derive(Debug)]
struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr_task: Option<JoinHandle<()>>,
    /// How it ended, once learned (so it is never waited for twice).
    exited: Option<ExitCause>,
}

/// A running upstream process, leader of its own process group.
///
/// Dropping it without [`stop`](Self::stop) stops it in the background.
#[derive(Debug)]
pub struct ChildProcess {
    id: Identity,
    /// `None` only once the stop sequence has taken it (in `stop` or `drop`).
    running: Option<Running>,
}

impl ChildProcess {
    /// Starts `spec` and begins reading its stderr. Must run inside a tokio
    /// runtime.
    pub fn spawn(spec: &ProcessSpec, accounting: &Arc<Accounting>) -> Result<Self, SpawnError> {
        let (mut child, pid) = spawn::spawn_child(spec, accounting)?;
        let tail = Arc::new(StderrTail::default());
        let stderr_task = child.stderr.take().map(|stderr| {
            let sink = StderrSink {
                tail: Arc::clone(&tail),
                counters: accounting.stderr_counters(&spec.name),
                budget: spec.stderr,
                name: spec.name.clone(),
                pid,
            };
            tokio::spawn(stderr::pump_stderr(stderr, sink))
        });
        Ok(ChildProcess {
            id: Identity {
                pid,
                pgid: group::group_of(pid),
                name: spec.name.clone(),
                timeouts: spec.stop,
                tail,
                accounting: Arc::clone(accounting),
            },
            running: Some(Running {
                stdin: child.stdin.take(),
                stdout: child.stdout.take(),
                child,
                stderr_task,
                exited: None,
            }),
        })
    }

    /// The process id (also its process-group id).
    pub fn pid(&self) -> u32 {
        self.id.pid
    }

    /// The server name from its spec.
    pub fn name(&self) -> &str {
        &self.id.name
    }

    /// The accounting it was spawned with (where its stops are counted).
    pub fn accounting(&self) -> &Arc<Accounting> {
        &self.id.accounting
    }

    /// Takes the write end of its stdin. The stop sequence starts by closing
    /// stdin, so whoever takes it must drop it before calling [`stop`](Self::stop).
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.running.as_mut()?.stdin.take()
    }

    /// Takes the read end of its stdout.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.running.as_mut()?.stdout.take()
    }

    /// The last lines it wrote to stderr (at most [`STDERR_TAIL_LINES`]).
    pub fn stderr_tail(&self) -> Vec<String> {
        self.id.tail.snapshot()
    }

    /// A handle on the stderr tail that stays readable after this handle
    /// has moved into a task (the connection's monitor owns the process).
    pub fn stderr_tail_handle(&self) -> StderrTailHandle {
        StderrTailHandle(Arc::clone(&self.id.tail))
    }

    /// How it ended, if it has; never blocks.
    pub fn try_exited(&mut self) -> Option<ExitCause> {
        let running = self.running.as_mut()?;
        if running.exited.is_none() {
            match running.child.try_wait() {
                Ok(Some(status)) => running.exited = Some(ExitCause::from_status(status)),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(server = %self.id.name, pid = self.id.pid, error = %e, "try_wait failed");
                    running.exited = Some(ExitCause::Unknown);
                }
            }
        }
        running.exited
    }

    /// Waits until it exits by itself and says how. Cancel-safe.
    pub async fn wait_exit(&mut self) -> ExitCause {
        let Some(running) = self.running.as_mut() else {
            return ExitCause::Unknown;
        };
        if let Some(cause) = running.exited {
            return cause;
        }
        let cause = ExitCause::from_wait(running.child.wait().await);
        running.exited = Some(cause);
        cause
    }

    /// Waits at most `limit` for the stderr reader to reach EOF (every
    /// holder of the pipe gone), so [`ChildProcess::stderr_tail`] holds what
    /// the process wrote last; whether it did. Cancel-safe; once the reader
    /// has ended, the stop sequence does not wait for it again.
    pub async fn wait_stderr_eof(&mut self, limit: Duration) -> bool {
        let Some(running) = self.running.as_mut() else {
            return true;
        };
        let Some(task) = running.stderr_task.as_mut() else {
            return true;
        };
        if tokio::time::timeout(limit, task).await.is_ok() {
            running.stderr_task = None;
            true
        } else {
            false
        }
    }

    /// Runs the stop sequence to its end and reports how the process ended.
    pub async fn stop(mut self, reason: StopReason) -> StopOutcome {
        let id = self.id.clone();
        match self.running.take() {
            Some(running) => {
                let mut ticket = StopTicket::new(&id.accounting, id.pgid);
                stop::stop_on_runtime(id, running, reason, &mut ticket).await
            }
            None => StopOutcome {
                cause: ExitCause::Unknown,
                stage: StopStage::AlreadyExited,
                group_reaped: 0,
                stderr_tail: id.tail.snapshot(),
            },
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            stop::stop_in_background(self.id.clone(), running);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

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
