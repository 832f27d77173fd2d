//! Process and file-descriptor accounting for the proxy, built on `/proc` and `nix`.
//!
//! This file holds [`Accounting`], one per proxy, shared (`Arc`) by the
//! spawner, the stop sequence, the pool manager and metrics:
//! - the table of live child processes (spawned and not yet reaped) and the
//!   lifecycle counters (spawned, exited by cause, restarts), updated by
//!   `upstream::process` on every spawn and every completed stop;
//! - the count of stop sequences in progress ([`StopInProgress`]), which
//!   shutdown waits on ([`Accounting::wait_for_stops`]); per proxy, so two
//!   proxies (or two tests) in one process never wait on each other's stops;
//! - per server name, the stderr lines forwarded to the log and suppressed by
//!   the stderr budget ([`StderrCounters`]).
//!
//! Beside it: `procfs.rs`, probes of the proxy's own processes and descriptors
//! ([`open_fd_count`], [`child_processes`], [`zombie_children`],
//! [`process_group_members`]); `fd_budget.rs`, the `RLIMIT_NOFILE` budget
//! ([`nofile_limit`], [`max_pool_size_for_fds`], [`check_pool_size`]).
//!
//! Invariant: a pid is in the live table from the moment its spawn succeeded
//! until its stop sequence has reaped it, so "live table empty" means "no child
//! of ours is running or a zombie", which is what the leak tests check.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

mod fd_budget;
mod procfs;

pub use fd_budget::{
    FDS_PER_PROCESS, FdBudget, FdLimit, check_pool_size, max_pool_size_for_fds, nofile_limit,
    raise_nofile_limit,
};
pub use procfs::{
    ProcStat, all_processes, child_processes, open_fd_count, parse_proc_stat, proc_stat,
    process_group_members, zombie_children,
};

/// Errors from the accounting probes and the fd budget check.
#[derive(Debug, thiserror::Error)]
pub enum AccountingError {
    /// A `/proc` file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Proc {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `getrlimit`/`setrlimit(RLIMIT_NOFILE)` failed.
    #[error("cannot {op} RLIMIT_NOFILE: {source}")]
    Rlimit {
        /// `"read"` or `"raise"`.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: nix::Error,
    },
    /// The requested pool needs more file descriptors than the limit allows.
    #[error(
        "a pool of {requested} processes needs about {needed} file descriptors \
         ({per_process} per process plus {reserve} reserved, {in_use} already open) \
         but RLIMIT_NOFILE is {limit}; the largest pool that fits is {max}. \
         Raise the limit (ulimit -n) or lower the pool size"
    )]
    PoolTooLarge {
        /// Pool size asked for.
        requested: usize,
        /// Descriptors that pool would need in total.
        needed: u64,
        /// Descriptors per process.
        per_process: u64,
        /// Descriptors kept free for sockets, logs and transient stops.
        reserve: u64,
        /// Descriptors open when the check ran.
        in_use: u64,
        /// The soft limit.
        limit: u64,
        /// Largest pool size that fits.
        max: usize,
    },
}

/// How one upstream process ended, as the lifecycle counters classify it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitClass {
    /// Exited by itself with status 0 (including after its stdin was closed).
    Clean,
    /// Exited by itself with a non-zero status.
    Nonzero,
    /// Died from a signal nobody in the stop sequence sent (a crash).
    Signal,
    /// Needed the stop sequence's SIGTERM.
    TerminatedByStop,
    /// Needed the stop sequence's SIGKILL.
    KilledByStop,
    /// Its exit status could not be learned.
    Unknown,
}

/// One entry of the live-children table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveChild {
    /// Process id (and process-group id: each child leads its own group).
    pub pid: u32,
    /// The server name from its spec.
    pub name: String,
    /// When it was spawned.
    pub spawned_at: Instant,
}

/// A point-in-time copy of the lifecycle counters, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LifecycleSnapshot {
    /// Processes spawned successfully.
    pub spawned: u64,
    /// Spawn attempts that failed (command not found, permission, ...).
    pub spawn_failures: u64,
    /// See [`ExitClass::Clean`].
    pub exited_clean: u64,
    /// See [`ExitClass::Nonzero`].
    pub exited_nonzero: u64,
    /// See [`ExitClass::Signal`].
    pub exited_signal: u64,
    /// See [`ExitClass::TerminatedByStop`].
    pub terminated_by_stop: u64,
    /// See [`ExitClass::KilledByStop`].
    pub killed_by_stop: u64,
    /// See [`ExitClass::Unknown`].
    pub exited_unknown: u64,
    /// Processes replaced after a crash or a failed health check.
    pub restarts: u64,
    /// Other members of a stopped process's group (orphaned grandchildren
    /// adopted by the subreaper) reaped after their leader.
    pub group_members_reaped: u64,
    /// Processes spawned and not yet reaped.
    pub live: u64,
}

/// Live-children table and lifecycle counters of one proxy.
///
/// Shared (`Arc`) between the process spawner, the pool manager and metrics.
#[derive(Debug, Default)]
pub struct Accounting {
    spawned: AtomicU64,
    spawn_failures: AtomicU64,
    exited_clean: AtomicU64,
    exited_nonzero: AtomicU64,
    exited_signal: AtomicU64,
    terminated_by_stop: AtomicU64,
    killed_by_stop: AtomicU64,
    exited_unknown: AtomicU64,
    restarts: AtomicU64,
    group_members_reaped: AtomicU64,
    live: Mutex<BTreeMap<u32, LiveChild>>,
    stops_in_progress: AtomicUsize,
    stops_idle: Notify,
    stderr: Mutex<BTreeMap<String, Arc<StderrCounters>>>,
}

impl Accounting {
    /// An empty table with all counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    fn live(&self) -> MutexGuard<'_, BTreeMap<u32, LiveChild>> {
        // The table is always consistent between statements; a panic elsewhere
        // must not stop accounting.
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a successful spawn.
    pub fn record_spawn(&self, pid: u32, name: &str) {
        self.spawned.fetch_add(1, Ordering::Relaxed);
        self.live().insert(
            pid,
            LiveChild {
                pid,
                name: name.to_owned(),
                spawned_at: Instant::now(),
            },
        );
    }

    /// Records a failed spawn attempt.
    pub fn record_spawn_failure(&self) {
        self.spawn_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Records that `pid` has been reaped, and how it ended.
    pub fn record_exit(&self, pid: u32, class: ExitClass) {
        let counter = match class {
            ExitClass::Clean => &self.exited_clean,
            ExitClass::Nonzero => &self.exited_nonzero,
            ExitClass::Signal => &self.exited_signal,
            ExitClass::TerminatedByStop => &self.terminated_by_stop,
            ExitClass::KilledByStop => &self.killed_by_stop,
            ExitClass::Unknown => &self.exited_unknown,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.live().remove(&pid);
    }

    /// Records that the pool replaced a process that crashed or failed a check.
    pub fn record_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// Records group members reaped after their leader.
    pub fn record_group_reaped(&self, count: usize) {
        self.group_members_reaped
            .fetch_add(count as u64, Ordering::Relaxed);
    }

    /// Pids spawned and not yet reaped, in ascending order.
    pub fn live_pids(&self) -> Vec<u32> {
        self.live().keys().copied().collect()
    }

    /// The live-children table.
    pub fn live_children(&self) -> Vec<LiveChild> {
        self.live().values().cloned().collect()
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> LifecycleSnapshot {
        let live = self.live().len() as u64;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LifecycleSnapshot {
            spawned: get(&self.spawned),
            spawn_failures: get(&self.spawn_failures),
            exited_clean: get(&self.exited_clean),
            exited_nonzero: get(&self.exited_nonzero),
            exited_signal: get(&self.exited_signal),
            terminated_by_stop: get(&self.terminated_by_stop),
            killed_by_stop: get(&self.killed_by_stop),
            exited_unknown: get(&self.exited_unknown),
            restarts: get(&self.restarts),
            group_members_reaped: get(&self.group_members_reaped),
            live,
        }
    }
}

impl Accounting {
    /// Starts counting one stop sequence; it counts until the guard drops.
    pub fn begin_stop(self: &Arc<Self>) -> StopInProgress {
        self.stops_in_progress.fetch_add(1, Ordering::SeqCst);
        StopInProgress {
            accounting: Arc::clone(self),
        }
    }

    /// Number of stop sequences of this proxy's processes running now
    /// (including stops decided but not yet begun).
    pub fn stops_in_progress(&self) -> usize {
        self.stops_in_progress.load(Ordering::SeqCst)
    }

    /// Waits until no stop sequence is running, or `limit` passes; returns how
    /// many were still running (0 on success). Shutdown calls this last.
    pub async fn wait_for_stops(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.stops_idle.notified();
            tokio::pin!(notified);
            // Registered before the count is read, so the last stop's wake-up
            // cannot fall between the two.
            notified.as_mut().enable();
            if self.stops_in_progress() == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.stops_in_progress();
            }
        }
    }
}

impl Accounting {
    /// The stderr counters of server `server`, shared by all its processes;
    /// each process's stderr reader takes them once, at spawn.
    pub fn stderr_counters(&self, server: &str) -> Arc<StderrCounters> {
        let mut map = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(server.to_owned()).or_default())
    }

    /// The stderr counts of every server, by name.
    pub fn stderr_snapshot(&self) -> Vec<(String, StderrCounts)> {
        let map = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .map(|(name, c)| (name.clone(), c.counts()))
            .collect()
    }
}

/// What happened to one server's stderr lines: forwarded to the log, or
/// suppressed by the stderr budget.
#[derive(Debug, Default)]
pub struct StderrCounters {
    forwarded_lines: AtomicU64,
    suppressed_lines: AtomicU64,
    suppressed_bytes: AtomicU64,
}

/// A copy of [`StderrCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StderrCounts {
    /// Lines forwarded to the log.
    pub forwarded_lines: u64,
    /// Lines suppressed (over budget).
    pub suppressed_lines: u64,
    /// Bytes of the suppressed lines, newlines included.
    pub suppressed_bytes: u64,
}

impl StderrCounters {
    /// Counts lines forwarded to the log.
    pub fn record_forwarded(&self, lines: u64) {
        self.forwarded_lines.fetch_add(lines, Ordering::Relaxed);
    }

    /// Counts lines (and their bytes) suppressed by the budget.
    pub fn record_suppressed(&self, lines: u64, bytes: u64) {
        self.suppressed_lines.fetch_add(lines, Ordering::Relaxed);
        self.suppressed_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A copy of the counts.
    pub fn counts(&self) -> StderrCounts {
        StderrCounts {
            forwarded_lines: self.forwarded_lines.load(Ordering::Relaxed),
            suppressed_lines: self.suppressed_lines.load(Ordering::Relaxed),
            suppressed_bytes: self.suppressed_bytes.load(Ordering::Relaxed),
        }
    }
}

/// One stop sequence in progress, counted by [`Accounting::stops_in_progress`]
/// from [`Accounting::begin_stop`] until this guard drops.
#[derive(Debug)]
pub struct StopInProgress {
    accounting: Arc<Accounting>,
}

impl Drop for StopInProgress {
    fn drop(&mut self) {
        if self
            .accounting
            .stops_in_progress
            .fetch_sub(1, Ordering::SeqCst)
            == 1
        {
            self.accounting.stops_idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn live_table_tracks_spawn_and_exit_and_counters_classify_exits() {
        let acc = Accounting::new();
        acc.record_spawn(10, "a");
        acc.record_spawn(11, "b");
        assert_eq!(acc.live_pids(), vec![10, 11]);
        acc.record_exit(10, ExitClass::KilledByStop);
        acc.record_exit(11, ExitClass::Clean);
        acc.record_restart();
        let s = acc.snapshot();
        assert_eq!(s.spawned, 2);
        assert_eq!(s.killed_by_stop, 1);
        assert_eq!(s.exited_clean, 1);
        assert_eq!(s.restarts, 1);
        assert_eq!(s.live, 0);
        assert!(acc.live_children().is_empty());
    }

    #[tokio::test]
    async fn stop_count_is_per_accounting_and_wakes_the_waiter_when_it_reaches_zero() {
        let acc = Arc::new(Accounting::new());
        let other = Arc::new(Accounting::new());
        let first = acc.begin_stop();
        let second = acc.begin_stop();
        assert_eq!(acc.stops_in_progress(), 2);
        // Another proxy's stops are not this one's.
        assert_eq!(other.wait_for_stops(Duration::ZERO).await, 0);
        assert_eq!(acc.wait_for_stops(Duration::from_millis(10)).await, 2);
        let waiter = tokio::spawn({
            let acc = Arc::clone(&acc);
            async move { acc.wait_for_stops(Duration::from_secs(30)).await }
        });
        drop(first);
        drop(second);
        assert_eq!(waiter.await.unwrap(), 0);
        assert_eq!(acc.stops_in_progress(), 0);
    }
}
