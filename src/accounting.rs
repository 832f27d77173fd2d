//! Process and file-descriptor accounting for the proxy, built on `/proc` and `nix`.
//!
//! Holds:
//! - [`Accounting`]: the table of live child processes (spawned and not yet
//!   reaped) and lifecycle counters (spawned, exited by cause, restarts), updated
//!   by `upstream::process` on every spawn and every completed stop; and the
//!   count of stop sequences in progress ([`StopInProgress`]), which shutdown
//!   waits on ([`Accounting::wait_for_stops`]). Both belong to one proxy: two
//!   proxies (or two tests) in one process never see each other's stops;
//! - probes of the proxy's own resources: [`open_fd_count`], [`nofile_limit`],
//!   [`child_processes`], [`zombie_children`], [`process_group_members`];
//! - the file-descriptor budget: [`max_pool_size_for_fds`] and
//!   [`check_pool_size`], which refuse a pool the `RLIMIT_NOFILE` cannot carry.
//!
//! Invariant: a pid is in the live table from the moment its spawn succeeded
//! until its stop sequence has reaped it, so "live table empty" means "no child
//! of ours is running or a zombie", which is what the leak tests check.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};
use tokio::sync::Notify;

/// File descriptors each upstream process costs the proxy: the write end of its
/// stdin pipe, the read ends of its stdout and stderr pipes, and the pidfd tokio
/// opens to learn of its exit.
pub const FDS_PER_PROCESS: u64 = 4;

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

fn proc_error(path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> AccountingError {
    let path = path.as_ref().to_path_buf();
    move |source| AccountingError::Proc { path, source }
}

/// Number of file descriptors the proxy has open (`/proc/self/fd`), not counting
/// the one used to list them.
pub fn open_fd_count() -> Result<usize, AccountingError> {
    let dir = "/proc/self/fd";
    let entries = std::fs::read_dir(dir).map_err(proc_error(dir))?;
    let mut count = 0usize;
    for entry in entries {
        entry.map_err(proc_error(dir))?;
        count += 1;
    }
    // The directory stream itself holds one descriptor while it is listed.
    Ok(count.saturating_sub(1))
}

/// The `RLIMIT_NOFILE` soft and hard limits; `u64::MAX` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The limit enforced now.
    pub soft: u64,
    /// The ceiling the soft limit may be raised to without privilege.
    pub hard: u64,
}

fn from_rlim(v: nix::libc::rlim_t) -> u64 {
    if v == RLIM_INFINITY { u64::MAX } else { v }
}

/// Reads `RLIMIT_NOFILE`.
pub fn nofile_limit() -> Result<FdLimit, AccountingError> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)
        .map_err(|source| AccountingError::Rlimit { op: "read", source })?;
    Ok(FdLimit {
        soft: from_rlim(soft),
        hard: from_rlim(hard),
    })
}

/// Raises the `RLIMIT_NOFILE` soft limit to the hard limit (what Go and many
/// servers do at start: the default soft limit of 1024 is a relic of `select`),
/// and returns the limits now in force. An unlimited hard limit leaves the soft
/// limit as it is, since the kernel refuses an unlimited `NOFILE`.
pub fn raise_nofile_limit() -> Result<FdLimit, AccountingError> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)
        .map_err(|source| AccountingError::Rlimit { op: "read", source })?;
    if hard != RLIM_INFINITY && soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).map_err(|source| {
            AccountingError::Rlimit {
                op: "raise",
                source,
            }
        })?;
    }
    nofile_limit()
}

/// How many descriptors the budget keeps per process and in reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// Descriptors each pooled process costs; [`FDS_PER_PROCESS`] by default.
    pub per_process: u64,
    /// Descriptors kept free for the listener, HTTP connections, log files and
    /// processes still being stopped while their replacement starts.
    pub reserve: u64,
}

impl Default for FdBudget {
    fn default() -> Self {
        FdBudget {
            per_process: FDS_PER_PROCESS,
            reserve: 256,
        }
    }
}

/// Largest pool that fits under `soft_limit` with `in_use` descriptors already
/// open and `budget` kept per process and in reserve. Pure arithmetic.
pub fn max_pool_size_for_fds(soft_limit: u64, in_use: u64, budget: FdBudget) -> usize {
    let free = soft_limit
        .saturating_sub(in_use)
        .saturating_sub(budget.reserve);
    let max = free / budget.per_process.max(1);
    usize::try_from(max).unwrap_or(usize::MAX)
}

/// Refuses a pool of `requested` processes that the current `RLIMIT_NOFILE`
/// cannot carry; returns the largest size that fits when it can.
pub fn check_pool_size(requested: usize, budget: FdBudget) -> Result<usize, AccountingError> {
    let limit = nofile_limit()?.soft;
    let in_use = open_fd_count()? as u64;
    let max = max_pool_size_for_fds(limit, in_use, budget);
    if requested <= max {
        return Ok(max);
    }
    let per_process = budget.per_process.max(1);
    Err(AccountingError::PoolTooLarge {
        requested,
        needed: (requested as u64)
            .saturating_mul(per_process)
            .saturating_add(budget.reserve)
            .saturating_add(in_use),
        per_process,
        reserve: budget.reserve,
        in_use,
        limit,
        max,
    })
}

/// The fields of `/proc/<pid>/stat` the accounting needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Process id.
    pub pid: u32,
    /// State letter: `R`, `S`, `D`, `Z` (zombie), `T`, ...
    pub state: char,
    /// Parent process id.
    pub ppid: u32,
    /// Process-group id.
    pub pgrp: u32,
}

impl ProcStat {
    /// Whether the process has exited and waits to be reaped.
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }
}

/// Parses one `/proc/<pid>/stat` line. The command name sits in parentheses and
/// may itself contain spaces and parentheses, so fields are read after the
/// *last* `)`.
pub fn parse_proc_stat(line: &str) -> Option<ProcStat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let pid = line.get(..open)?.trim().parse().ok()?;
    let mut rest = line.get(close + 1..)?.split_ascii_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    let pgrp = rest.next()?.parse().ok()?;
    Some(ProcStat {
        pid,
        state,
        ppid,
        pgrp,
    })
}

/// Reads `/proc/<pid>/stat`; `None` if the process no longer exists.
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_proc_stat(&text)
}

/// Every process visible in `/proc`. Processes that vanish while the scan runs
/// are skipped.
pub fn all_processes() -> Result<Vec<ProcStat>, AccountingError> {
    let entries = std::fs::read_dir("/proc").map_err(proc_error("/proc"))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(proc_error("/proc"))?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(stat) = proc_stat(pid) {
            out.push(stat);
        }
    }
    Ok(out)
}

/// Processes whose parent is this proxy (running or zombie), including orphans
/// adopted because the proxy is a child subreaper.
pub fn child_processes() -> Result<Vec<ProcStat>, AccountingError> {
    let me = std::process::id();
    Ok(all_processes()?
        .into_iter()
        .filter(|p| p.ppid == me)
        .collect())
}

/// Pids of this proxy's children that have exited and were not reaped.
pub fn zombie_children() -> Result<Vec<u32>, AccountingError> {
    Ok(child_processes()?
        .into_iter()
        .filter(ProcStat::is_zombie)
        .map(|p| p.pid)
        .collect())
}

/// Processes in process group `pgid`, whoever their parent is.
pub fn process_group_members(pgid: u32) -> Result<Vec<ProcStat>, AccountingError> {
    Ok(all_processes()?
        .into_iter()
        .filter(|p| p.pgrp == pgid)
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn proc_stat_parser_reads_fields_after_a_command_name_with_parens_and_spaces() {
        let line = "4242 (we ird) (name) Z 17 4242 4242 0 -1 4194304";
        let stat = parse_proc_stat(line).unwrap();
        assert_eq!(
            stat,
            ProcStat {
                pid: 4242,
                state: 'Z',
                ppid: 17,
                pgrp: 4242
            }
        );
        assert!(stat.is_zombie());
        assert_eq!(parse_proc_stat("garbage"), None);
    }

    #[test]
    fn own_stat_names_this_process() {
        let me = std::process::id();
        let stat = proc_stat(me).unwrap();
        assert_eq!(stat.pid, me);
        assert!(!stat.is_zombie());
    }

    #[test]
    fn fd_budget_counts_per_process_cost_and_reserve() {
        let budget = FdBudget {
            per_process: 4,
            reserve: 100,
        };
        assert_eq!(max_pool_size_for_fds(1024, 24, budget), 225);
        assert_eq!(max_pool_size_for_fds(100, 24, budget), 0);
        assert_eq!(
            max_pool_size_for_fds(u64::MAX, 0, budget) as u64,
            (u64::MAX - 100) / 4
        );
    }

    #[test]
    fn pool_larger_than_the_fd_limit_is_refused_with_the_numbers() {
        let limit = nofile_limit().unwrap();
        let budget = FdBudget::default();
        let in_use = open_fd_count().unwrap() as u64;
        let max = max_pool_size_for_fds(limit.soft, in_use, budget);
        if max == usize::MAX {
            return; // unlimited: nothing can be refused
        }
        let err = check_pool_size(max + 1000, budget).unwrap_err();
        assert!(matches!(err, AccountingError::PoolTooLarge { .. }), "{err}");
        assert!(err.to_string().contains("RLIMIT_NOFILE"));
        assert!(check_pool_size(0, budget).is_ok());
    }

    #[test]
    fn open_fd_count_sees_a_new_descriptor() {
        let before = open_fd_count().unwrap();
        let files: Vec<_> = (0..16)
            .map(|_| std::fs::File::open("/proc/self/stat").unwrap())
            .collect();
        let during = open_fd_count().unwrap();
        drop(files);
        // Other tests may close a few descriptors meanwhile; 16 new ones stand out.
        assert!(during >= before + 8, "{during} >= {before} + 8");
    }

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
