//! What the proxy reports about itself: the readiness probe of `/readyz` and
//! the snapshot behind `/metrics`.
//!
//! Invariant: both hold only a `Weak` to the MCP state, so a scrape or probe
//! never keeps a shut-down proxy (its pool and processes) alive.

use std::sync::{Arc, Weak};

use crate::accounting::{self, Accounting};
use crate::metrics::{PoolSnapshot, ProcessSnapshot, ServerSnapshot, Snapshot};
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

/// `/readyz`'s reason while the drain delay runs.
pub(super) const DRAINING: &str = "draining: stopping soon (SIGTERM); requests are still served";

pub(super) fn readiness(state: &Weak<McpState>) -> Result<(), String> {
    let Some(state) = state.upgrade() else {
        return Err("shutting down".into());
    };
    if state.shutdown.is_cancelled() {
        return Err("shutting down".into());
    }
    if state.draining.is_cancelled() {
        return Err(DRAINING.into());
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

/// The servers a scrape reads: name, whether it serves, its state (`None`:
/// its command could not start, or the proxy is gone).
pub(super) type ServedStates = Vec<(String, bool, Option<Arc<McpState>>)>;

fn pool_snapshot(state: &McpState) -> PoolSnapshot {
    let status = state.pool.status();
    let counters = state.pool.counters();
    PoolSnapshot {
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
    }
}

fn add_pool(total: &mut PoolSnapshot, p: &PoolSnapshot) {
    total.size += p.size;
    total.idle += p.idle;
    total.in_use += p.in_use;
    total.waiting += p.waiting;
    total.max += p.max;
    total.created += p.created;
    total.destroyed += p.destroyed;
    total.recycled += p.recycled;
    total.broken += p.broken;
    total.retired += p.retired;
    total.create_failures += p.create_failures;
    total.wait_timeouts += p.wait_timeouts;
}

/// The scrape: the unlabelled pool and session families sum every server
/// (one server: its own), the `server`-labelled ones show each.
pub(super) fn metrics_source(
    servers: impl Fn() -> ServedStates + Send + Sync + 'static,
    accounting: Arc<Accounting>,
) -> impl Fn() -> Snapshot + Send + Sync + 'static {
    move || {
        let mut snapshot = Snapshot::default();
        let mut ended: std::collections::BTreeMap<&'static str, u64> = Default::default();
        for (name, up, state) in servers() {
            let mut server = ServerSnapshot {
                server: name,
                up,
                ..ServerSnapshot::default()
            };
            if let Some(state) = state {
                server.pool = pool_snapshot(&state);
                server.sessions = state.session_count() as u64;
                add_pool(&mut snapshot.pool, &server.pool);
                snapshot.sessions += server.sessions;
                for (reason, n) in state.sessions.ended_counts() {
                    *ended.entry(reason.label()).or_default() += n;
                }
            }
            snapshot.servers.push(server);
        }
        snapshot.sessions_ended = ended
            .into_iter()
            .map(|(reason, n)| (reason.into(), n))
            .collect();
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
