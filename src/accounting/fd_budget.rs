//! The file-descriptor budget: how large a pool `RLIMIT_NOFILE` can carry
//! ([`max_pool_size_for_fds`], [`check_pool_size`]), and reading or raising
//! the limit.
//!
//! Invariant: a pool is refused, with every number, when its processes plus
//! the reserve would not fit under the soft limit.

use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};

use super::AccountingError;
use super::procfs::open_fd_count;

/// File descriptors each upstream process costs the proxy: the write end of its
/// stdin pipe, the read ends of its stdout and stderr pipes, and the pidfd tokio
/// opens to learn of its exit.
pub const FDS_PER_PROCESS: u64 = 4;

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

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
}
