//! The file-descriptor budget: how many client connections the proxy may
//! hold so that server processes always find the fds they need.
//!
//! At start the soft `RLIMIT_NOFILE` is raised to the hard limit (as nginx
//! and Go do). From what is then free, the budget reserves, per pool slot,
//! two processes' worth of descriptors (a broken process's pipes stay open
//! until its stop sequence has reaped it, while its replacement already
//! spawns) plus what a spawn holds only while it runs, and a margin for the
//! operational endpoints (`/metrics` lists `/proc/self/fd`, logs); client
//! connections get at most the rest.
//!
//! Invariant: `connection_limit + reserved_for_processes + ops_margin +
//! in_use <= soft_limit`, so a flood of clients held at the connection limit
//! can never take the fds a replacement process needs. Pure arithmetic in
//! [`plan`], tested without touching the real limit.

use crate::accounting::{self, AccountingError, FDS_PER_PROCESS, FdBudget};

/// Descriptors a spawn holds only while it runs: both ends of the three
/// stdio pipes before the child's ends are closed in the parent, and the
/// close-on-exec pipe the standard library uses to report an `exec` failure.
pub const SPAWN_TRANSIENT_FDS: u64 = 8;

/// Descriptors kept for the operational endpoints and logging.
pub const OPS_MARGIN_FDS: u64 = 32;

/// Fewest client connections the proxy agrees to run with.
pub const MIN_CONNECTIONS: usize = 8;

/// Why the budget leaves no room for clients.
#[derive(Debug, thiserror::Error)]
pub enum FdBudgetError {
    /// Reading or raising the limit, or counting open fds, failed.
    #[error(transparent)]
    Accounting(#[from] AccountingError),
    /// After the reserves, fewer than [`MIN_CONNECTIONS`] fds are left.
    #[error(
        "RLIMIT_NOFILE is {soft_limit}: with {in_use} fds open and {reserved} reserved for \
         {pool_max} server processes plus {margin} for the ops endpoints, fewer than \
         {min} are left for client connections. Raise the limit (ulimit -n) or lower the pool size"
    )]
    NoRoomForClients {
        /// The soft limit after raising it.
        soft_limit: u64,
        /// Descriptors open when the budget was made.
        in_use: u64,
        /// Descriptors reserved for server processes.
        reserved: u64,
        /// Pool size the reserve is for.
        pool_max: usize,
        /// The ops margin.
        margin: u64,
        /// [`MIN_CONNECTIONS`].
        min: usize,
    },
}

/// The budget, as [`plan`] made it; every figure is exposed in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdPlan {
    /// The soft `RLIMIT_NOFILE` in force.
    pub soft_limit: u64,
    /// Descriptors open when the plan was made (the listener, the runtime,
    /// the processes already running).
    pub in_use: u64,
    /// Descriptors one running server process holds in the proxy.
    pub per_process: u64,
    /// Descriptors kept for server processes.
    pub reserved_for_processes: u64,
    /// Descriptors kept for the ops endpoints.
    pub ops_margin: u64,
    /// Most client connections at once.
    pub connection_limit: usize,
}

/// Descriptors reserved for a pool of `pool_max` processes costing
/// `per_process` each (see the module docs for the factor two).
pub fn process_reserve(pool_max: usize, per_process: u64) -> u64 {
    (pool_max as u64).saturating_mul(per_process.saturating_mul(2) + SPAWN_TRANSIENT_FDS)
}

/// The budget for `soft_limit` with `in_use` fds open and a pool of
/// `pool_max` processes of `per_process` fds each; `requested` caps the
/// connection limit further.
pub fn plan(
    soft_limit: u64,
    in_use: u64,
    pool_max: usize,
    per_process: u64,
    requested: Option<usize>,
) -> Result<FdPlan, FdBudgetError> {
    let per_process = per_process.max(FDS_PER_PROCESS);
    let reserved = process_reserve(pool_max, per_process);
    let free = soft_limit
        .saturating_sub(in_use)
        .saturating_sub(reserved)
        .saturating_sub(OPS_MARGIN_FDS);
    let budget = usize::try_from(free).unwrap_or(usize::MAX);
    if budget < MIN_CONNECTIONS {
        return Err(FdBudgetError::NoRoomForClients {
            soft_limit,
            in_use,
            reserved,
            pool_max,
            margin: OPS_MARGIN_FDS,
            min: MIN_CONNECTIONS,
        });
    }
    let connection_limit = match requested {
        Some(n) if n > budget => {
            tracing::warn!(
                requested = n,
                allowed = budget,
                "--max-connections is above what RLIMIT_NOFILE leaves after the server processes' reserve; using the lower figure"
            );
            budget
        }
        Some(n) => n.max(1),
        None => budget,
    };
    Ok(FdPlan {
        soft_limit,
        in_use,
        per_process,
        reserved_for_processes: reserved,
        ops_margin: OPS_MARGIN_FDS,
        connection_limit,
    })
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; a limit that cannot
/// be raised is logged and kept.
pub fn raise_limit() {
    if let Err(e) = accounting::raise_nofile_limit() {
        tracing::warn!(error = %e, "could not raise RLIMIT_NOFILE; using the current limit");
    }
}

/// The budget the start-up check of the pool size uses, before any process
/// is measured: the known per-process cost, counted as [`process_reserve`]
/// counts it, and room for the ops margin and [`MIN_CONNECTIONS`] clients.
pub fn pool_check_budget() -> FdBudget {
    FdBudget {
        per_process: FDS_PER_PROCESS * 2 + SPAWN_TRANSIENT_FDS,
        reserve: OPS_MARGIN_FDS + MIN_CONNECTIONS as u64,
    }
}

/// Raises the soft limit to the hard one and plans from the fds open now.
/// A limit that cannot be raised is logged and used as it is.
pub fn plan_now(
    pool_max: usize,
    per_process: u64,
    requested: Option<usize>,
) -> Result<FdPlan, FdBudgetError> {
    let limit = match accounting::raise_nofile_limit() {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "could not raise RLIMIT_NOFILE; using the current limit");
            accounting::nofile_limit()?
        }
    };
    let in_use = accounting::open_fd_count()? as u64;
    let plan = plan(limit.soft, in_use, pool_max, per_process, requested)?;
    tracing::info!(
        fd_limit = plan.soft_limit,
        fds_in_use = plan.in_use,
        fds_per_process = plan.per_process,
        reserved_for_processes = plan.reserved_for_processes,
        connection_limit = plan.connection_limit,
        "file-descriptor budget"
    );
    Ok(plan)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_reserve_and_the_margin_come_off_the_limit_before_clients() {
        let p = plan(256, 30, 2, 4, None).unwrap();
        assert_eq!(p.reserved_for_processes, 2 * (2 * 4 + SPAWN_TRANSIENT_FDS));
        assert_eq!(
            p.connection_limit as u64,
            256 - 30 - p.reserved_for_processes - OPS_MARGIN_FDS
        );
        assert!(
            p.connection_limit as u64 + p.reserved_for_processes + p.ops_margin + p.in_use
                <= p.soft_limit
        );
    }

    #[test]
    fn a_measured_cost_below_the_known_pipes_is_not_believed() {
        let p = plan(1024, 10, 4, 1, None).unwrap();
        assert_eq!(p.per_process, FDS_PER_PROCESS);
    }

    #[test]
    fn a_requested_limit_is_kept_only_below_the_budget() {
        assert_eq!(
            plan(4096, 10, 1, 4, Some(100)).unwrap().connection_limit,
            100
        );
        let budget = plan(256, 10, 1, 4, None).unwrap().connection_limit;
        assert_eq!(
            plan(256, 10, 1, 4, Some(10_000)).unwrap().connection_limit,
            budget
        );
    }

    #[test]
    fn a_limit_with_no_room_for_clients_is_refused_with_the_numbers() {
        let e = plan(64, 20, 4, 4, None).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("RLIMIT_NOFILE is 64"), "{text}");
        assert!(text.contains("4 server processes"), "{text}");
    }
}
