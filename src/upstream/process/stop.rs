//! The stop sequence, written once as a table of steps, and the tickets that
//! count stops in progress.
//!
//! A stop walks a ladder of `(action, grace)` steps until the group leader
//! exits: [`graceful`] is what the MCP spec asks of a stdio client (close
//! stdin, wait; SIGTERM the group, wait; SIGKILL the group, wait), and
//! [`TEARDOWN`] is the no-grace ladder for a handle dropped outside any tokio
//! runtime. Then, whatever the ladder, the leader is reaped, the rest of the
//! group is taken down the remaining steps and reaped with
//! `waitpid(-pgid, WNOHANG)`, and the stderr reader is released. The same code
//! runs on a tokio runtime ([`OnRuntime`]) or on a plain thread ([`OnThread`]);
//! only how it waits differs.
//!
//! Invariants: every stop is counted in its proxy's [`Accounting`] from the
//! moment it is decided ([`PendingStop`], [`StopTicket`]) until it is complete,
//! so shutdown can wait for it; a group is signalled only while it is not yet
//! known to be empty (after that its id may be reused); a stop cut short (its
//! future dropped, its runtime gone) SIGKILLs the group from the ticket's drop.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::process::Child;
use tokio::task::JoinHandle;

use super::group::{group_is_empty, kill_group_last_resort, reap_group_nohang, signal_group};
use super::outcome::{ExitCause, StopOutcome, StopReason, StopStage};
use super::spawn::StopTimeouts;
use super::{Identity, Running};
use crate::accounting::{Accounting, StopInProgress};

/// How long the stop sequence waits for a process after SIGKILL (it cannot
/// ignore it, but one stuck in uninterruptible sleep may take a moment).
const KILL_WAIT: Duration = Duration::from_secs(5);

/// How long the stop sequence waits for the stderr reader to see EOF once the
/// group is gone (a descendant that left the group may still hold the pipe).
const STDERR_DRAIN: Duration = Duration::from_millis(500);

/// How often the stop sequence looks at a group whose leader is gone.
const GROUP_POLL: Duration = Duration::from_millis(5);

/// What one step of the ladder does before it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Close the process's stdin: the polite request to exit.
    CloseStdin,
    /// Send this signal to the whole process group.
    Signal(Signal),
}

/// One rung of the stop ladder: do `action`, then wait up to `grace` for the
/// leader; if it exits then, the stop went as far as `stage`.
#[derive(Debug, Clone, Copy)]
struct Step {
    action: Action,
    grace: Duration,
    stage: StopStage,
}

/// The MCP stdio shutdown: close stdin, SIGTERM, SIGKILL, each with its grace.
fn graceful(t: StopTimeouts) -> [Step; 3] {
    [
        Step {
            action: Action::CloseStdin,
            grace: t.stdin_grace,
            stage: StopStage::StdinClosed,
        },
        Step {
            action: Action::Signal(Signal::SIGTERM),
            grace: t.term_grace,
            stage: StopStage::Terminated,
        },
        Step {
            action: Action::Signal(Signal::SIGKILL),
            grace: KILL_WAIT,
            stage: StopStage::Killed,
        },
    ]
}

/// For a handle dropped where nothing can wait politely (no runtime): kill.
const TEARDOWN: [Step; 1] = [Step {
    action: Action::Signal(Signal::SIGKILL),
    grace: KILL_WAIT,
    stage: StopStage::Killed,
}];

/// How the stop sequence waits: the only part that differs between a stop on
/// a tokio runtime and one on a plain thread.
trait Waits {
    /// Waits up to `limit` for the leader to exit; `None` if it did not.
    async fn leader_exit(&mut self, child: &mut Child, limit: Duration) -> Option<ExitCause>;
    /// Sleeps between looks at a group.
    async fn pause(&mut self, period: Duration);
    /// Lets the stderr reader finish (or ends it).
    async fn release_stderr(&mut self, task: JoinHandle<()>);
}

/// Waits on the tokio runtime the process was spawned on.
#[derive(Debug)]
struct OnRuntime;

impl Waits for OnRuntime {
    async fn leader_exit(&mut self, child: &mut Child, limit: Duration) -> Option<ExitCause> {
        let res = tokio::time::timeout(limit, child.wait()).await.ok()?;
        Some(ExitCause::from_wait(res))
    }

    async fn pause(&mut self, period: Duration) {
        tokio::time::sleep(period).await;
    }

    async fn release_stderr(&mut self, mut task: JoinHandle<()>) {
        // The reader ends at EOF, once every holder of the pipe is gone.
        if tokio::time::timeout(STDERR_DRAIN, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// Waits by polling and sleeping on the current thread: no runtime needed,
/// and every wait is ready at its first poll.
#[derive(Debug)]
struct OnThread;

impl Waits for OnThread {
    async fn leader_exit(&mut self, child: &mut Child, limit: Duration) -> Option<ExitCause> {
        let deadline = Instant::now() + limit;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(ExitCause::from_status(status)),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(GROUP_POLL),
                Ok(None) => return None,
                Err(e) => return Some(ExitCause::from_wait(Err(e))),
            }
        }
    }

    async fn pause(&mut self, period: Duration) {
        std::thread::sleep(period);
    }

    async fn release_stderr(&mut self, task: JoinHandle<()>) {
        // No runtime is left to run the reader to EOF.
        task.abort();
    }
}

/// Drives a future whose waits are all synchronous ([`OnThread`]) to its end.
fn run_on_thread<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

/// Runs the graceful stop on the current runtime.
pub(super) async fn stop_on_runtime(
    id: Identity,
    running: Running,
    reason: StopReason,
    ticket: &mut StopTicket,
) -> StopOutcome {
    let ladder = graceful(id.timeouts);
    run_sequence(&id, running, reason, ticket, &ladder, &mut OnRuntime).await
}

/// Stops a process whose handle was dropped without `stop`: on the current
/// runtime if there is one, else on a thread of its own. The ticket is taken
/// now, synchronously, so the stop counts from the moment the handle is gone.
pub(super) fn stop_in_background(id: Identity, running: Running) {
    let mut ticket = StopTicket::new(&id.accounting, id.pgid);
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            // If the runtime is shutting down the task is dropped unrun; the
            // ticket's own Drop then SIGKILLs the group as a last resort.
            handle.spawn(async move {
                stop_on_runtime(id, running, StopReason::Dropped, &mut ticket).await;
            });
        }
        Err(_) => {
            let spawned = std::thread::Builder::new()
                .name("stdiopool-stopper".into())
                .spawn(move || {
                    let mut ticket = ticket;
                    let mut waits = OnThread;
                    let stop = run_sequence(
                        &id,
                        running,
                        StopReason::Dropped,
                        &mut ticket,
                        &TEARDOWN,
                        &mut waits,
                    );
                    run_on_thread(stop);
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a thread to stop a dropped upstream process");
            }
        }
    }
}

/// The stop sequence: walk `ladder` until the leader exits, reap it, take the
/// rest of the group down the remaining steps, release stderr, record.
async fn run_sequence<W: Waits>(
    id: &Identity,
    mut running: Running,
    reason: StopReason,
    ticket: &mut StopTicket,
    ladder: &[Step],
    waits: &mut W,
) -> StopOutcome {
    let started = Instant::now();
    let already = running.exited.or_else(|| match running.child.try_wait() {
        Ok(status) => status.map(ExitCause::from_status),
        Err(e) => {
            tracing::warn!(server = %id.name, pid = id.pid, error = %e, "try_wait failed");
            None
        }
    });
    // When each step's action was taken: the group gets the same deadlines.
    let mut taken: Vec<Option<Instant>> = vec![None; ladder.len()];
    let leader = match already {
        Some(cause) => Some((cause, StopStage::AlreadyExited, 0)),
        None => {
            let mut found = None;
            for (i, step) in ladder.iter().enumerate() {
                match step.action {
                    Action::CloseStdin => drop(running.stdin.take()),
                    Action::Signal(signal) => signal_group(id.pgid, signal, &id.name, id.pid),
                }
                taken[i] = Some(Instant::now());
                if let Some(cause) = waits.leader_exit(&mut running.child, step.grace).await {
                    found = Some((cause, step.stage, i));
                    break;
                }
            }
            found
        }
    };
    drop(running.stdin.take());
    let (cause, stage, group_reaped) = match (leader, id.pgid) {
        (Some((cause, stage, from)), Some(pgid)) => {
            let reaped = clean_group(pgid, ladder, &taken, from, id, waits).await;
            if group_is_empty(pgid) {
                ticket.disarm();
            }
            (cause, stage, reaped)
        }
        (Some((cause, stage, _)), None) => (cause, stage, 0),
        // Reaping the group now could take the leader's status from tokio; the
        // ticket stays armed and SIGKILLs the group when dropped.
        (None, _) => {
            tracing::error!(server = %id.name, pid = id.pid, "still alive after SIGKILL; leaving it to tokio's orphan reaper");
            (ExitCause::Unknown, StopStage::Killed, 0)
        }
    };
    if let Some(task) = running.stderr_task.take() {
        waits.release_stderr(task).await;
    }
    drop(running.stdout.take());
    id.accounting.record_group_reaped(group_reaped);
    id.accounting.record_exit(id.pid, stage.exit_class(cause));
    tracing::info!(
        server = %id.name,
        pid = id.pid,
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
        stderr_tail: id.tail.snapshot(),
    }
}

/// After the leader is reaped: reap the rest of the group, and if members
/// outlived the leader (a wrapper that died, its child still running), take
/// them down the signal steps from the one the leader exited at (`from`),
/// each with the deadline it had for the leader. Bounded in time.
async fn clean_group<W: Waits>(
    pgid: Pid,
    ladder: &[Step],
    taken: &[Option<Instant>],
    from: usize,
    id: &Identity,
    waits: &mut W,
) -> usize {
    let mut reaped = reap_group_nohang(pgid);
    if group_is_empty(pgid) {
        return reaped;
    }
    tracing::debug!(server = %id.name, pid = id.pid, "process group outlived its leader");
    for (step, taken_at) in ladder.iter().zip(taken).skip(from) {
        let Action::Signal(signal) = step.action else {
            continue;
        };
        let at = taken_at.unwrap_or_else(|| {
            signal_group(Some(pgid), signal, &id.name, id.pid);
            Instant::now()
        });
        let (more, empty) = poll_group(pgid, at + step.grace, waits).await;
        reaped += more;
        if empty {
            return reaped;
        }
    }
    tracing::error!(server = %id.name, pid = id.pid, "process group not empty after SIGKILL");
    reaped
}

/// Reaps the group until it is empty or `deadline` passes; returns how many
/// were reaped and whether it emptied.
async fn poll_group<W: Waits>(pgid: Pid, deadline: Instant, waits: &mut W) -> (usize, bool) {
    let mut reaped = 0;
    loop {
        reaped += reap_group_nohang(pgid);
        if group_is_empty(pgid) {
            return (reaped, true);
        }
        if Instant::now() >= deadline {
            return (reaped, false);
        }
        waits.pause(GROUP_POLL).await;
    }
}

/// One stop in progress. While armed, dropping it (the stop future was
/// cancelled, or its runtime shut down) SIGKILLs the group as a last resort.
#[derive(Debug)]
pub(super) struct StopTicket {
    armed_pgid: Option<Pid>,
    _counted: StopInProgress,
}

impl StopTicket {
    pub(super) fn new(accounting: &Arc<Accounting>, pgid: Option<Pid>) -> Self {
        StopTicket {
            armed_pgid: pgid,
            _counted: accounting.begin_stop(),
        }
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
            kill_group_last_resort(pgid);
            tracing::warn!(
                pgid = pgid.as_raw(),
                "stop sequence cut short; killed the group"
            );
        }
    }
}

/// A stop that is decided but not yet begun: a holder of the process (the
/// connection's monitor task) has been told to stop it and will call
/// `ChildProcess::stop` when it next runs. Counted by
/// [`Accounting::wait_for_stops`] from its creation to its drop, so shutdown
/// cannot see zero in the gap before the real stop starts. Keep it until
/// `stop` returns.
#[derive(Debug)]
pub struct PendingStop {
    _counted: StopInProgress,
}

impl PendingStop {
    /// Starts counting a stop about to begin, in `accounting` (the one the
    /// process was spawned with: see `ChildProcess::accounting`).
    pub fn new(accounting: &Arc<Accounting>) -> Self {
        // No group: a pending stop never signals anything itself.
        PendingStop {
            _counted: accounting.begin_stop(),
        }
    }
}
