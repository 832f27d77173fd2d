//! What the proxy reports about itself: the readiness probe of `/readyz` and
//! the snapshot behind `/metrics`.
//!
//! Invariant: both hold only a `Weak` to the MCP state, so a scrape or probe
//! never keeps a shut-down proxy (its pool and processes) alive.

use std::sync::{Arc, Weak};

use crate::accounting::{self, Accounting};
use crate::metrics::{PoolSnapshot, ProcessSnapshot, Snapshot};
use crate::proxy::mcp::McpState;

/// The `/readyz` probe: the verdict from the MCP state, plus the standing
/// warnings about the set-up.
pub(super) struct Readiness {
    pub(super) state: Weak<McpState>,
    pub(super) warnings: Vec<String>,
}

impl crate::proxy::ops::ReadinessProbe for Readiness {
    fn check(&self) -> Result<(), String> {
        readiness(&self.state)
    }

    fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

pub(super) fn readiness(state: &Weak<McpState>) -> Result<(), String> {
    let Some(state) = state.upgrade() else {
        return Err("shutting down".into());
    };
    if state.shutdown.is_cancelled() {
        return Err("shutting down".into());
    }
    if state.draining.is_cancelled() {
        return Err("draining: stopping soon (SIGTERM); requests are still served".into());
    }
    let status = state.pool.status();
    if status.closed {
        return Err("the pool is closed".into());
    }
    if status.create_failing && status.size == 0 {
        return Err("no server process is running and the last attempt to start one failed".into());
    }
    Ok(())
}

pub(super) fn metrics_source(
    state: Weak<McpState>,
    accounting: Arc<Accounting>,
) -> impl Fn() -> Snapshot + Send + Sync + 'static {
    move || {
        let mut snapshot = Snapshot::default();
        if let Some(state) = state.upgrade() {
            let status = state.pool.status();
            let counters = state.pool.counters();
            snapshot.pool = PoolSnapshot {
                size: status.size as u64,
                idle: status.idle as u64,
                in_use: status.in_use as u64,
                waiting: status.waiting as u64,
                max: status.max as u64,
                created: counters.created,
                destroyed: counters.destroyed,
                recycled: counters.recycled,
                broken: counters.broken,
                retired: counters.retired,
                create_failures: counters.create_failures,
                wait_timeouts: counters.timeouts,
            };
            snapshot.sessions = state.session_count() as u64;
            snapshot.sessions_ended = state
                .sessions
                .ended_counts()
                .into_iter()
                .map(|(reason, n)| (reason.label().into(), n))
                .collect();
        }
        let life = accounting.snapshot();
        snapshot.processes = ProcessSnapshot {
            spawned: life.spawned,
            exited: vec![
                ("clean".into(), life.exited_clean),
                ("nonzero".into(), life.exited_nonzero),
                ("signal".into(), life.exited_signal),
                ("terminated_by_stop".into(), life.terminated_by_stop),
                ("killed_by_stop".into(), life.killed_by_stop),
                ("unknown".into(), life.exited_unknown),
                ("spawn_failed".into(), life.spawn_failures),
            ],
            restarts: life.restarts,
            live: life.live,
        };
        snapshot.open_fds = accounting::open_fd_count().ok().map(|n| n as u64);
        snapshot.fd_limit = accounting::nofile_limit().ok().map(|l| l.soft);
        snapshot.zombies = accounting::zombie_children().map_or(0, |z| z.len() as u64);
        snapshot.stderr = accounting
            .stderr_snapshot()
            .into_iter()
            .map(|(server, c)| crate::metrics::StderrSnapshot {
                server,
                forwarded_lines: c.forwarded_lines,
                suppressed_lines: c.suppressed_lines,
                suppressed_bytes: c.suppressed_bytes,
            })
            .collect();
        snapshot
    }
}
