//! Building the proxy from a [`Config`] and running it until shutdown.
//!
//! Start-up fails loudly: a command that cannot start or exits before its
//! handshake stops the proxy with that reason (DESIGN §7). Shutdown is
//! ordered: stop accepting, end sessions, drain in-flight requests for up to
//! `shutdown_grace`, close the pool, then wait for every child's stop
//! sequence, so the process exits leaving no child, grandchild or zombie.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Router;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::mcp::{McpState, mcp_router};
use super::ops::{OpsState, ops_router};
use super::origin::OriginRuleError;
use super::request::TransportChecks;
use super::sessions::Sessions;
use crate::accounting::{self, Accounting, AccountingError};
use crate::config::{Config, Mode, ServerCommand};
use crate::listener::{FdBudgetError, ListenerPlan};
use crate::metrics::{Metrics, PoolSnapshot, ProcessSnapshot, Snapshot};
use crate::pool::{Manager, Pool, PoolConfig};
use crate::upstream::manager::{UpstreamConfig, UpstreamError, UpstreamManager};
use crate::upstream::process::{ProcessSpec, StopTimeouts, wait_for_stops};

/// Why the proxy could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The first server process could not be started or initialized.
    #[error("the MCP server could not be started: {0}")]
    Startup(UpstreamError),
    /// `--demo` but the bundled fixture server is not next to this binary.
    #[error(
        "--demo: the bundled fixture server was not found at {0} (build it with `cargo build --bins`)"
    )]
    FixtureMissing(String),
    /// The pool would need more file descriptors than `RLIMIT_NOFILE` allows.
    #[error(transparent)]
    FdBudget(#[from] AccountingError),
    /// An `--allowed-origin` / `--allowed-host` rule is invalid.
    #[error(transparent)]
    Origin(#[from] OriginRuleError),
    /// `RLIMIT_NOFILE` leaves no room for client connections after the
    /// server processes' reserve.
    #[error(transparent)]
    Listener(#[from] FdBudgetError),
    /// Serving HTTP failed.
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
}

/// A built proxy, ready to serve.
#[derive(Debug)]
pub struct Proxy {
    config: Arc<Config>,
    state: Arc<McpState>,
    app: Router,
    accounting: Arc<Accounting>,
    listening: ListenerPlan,
}

/// What shutdown found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Whether in-flight requests finished within the grace period.
    pub drained: bool,
    /// Child stop sequences still running when the proxy gave up waiting (0
    /// unless a child ignores even SIGKILL's reaping window).
    pub stops_left: usize,
}

/// The process spec for the configured server command.
pub fn process_spec(config: &Config) -> Result<ProcessSpec, ServeError> {
    let server = &config.server;
    let (program, args) = match &server.command {
        ServerCommand::Exec { program, args } => (program.clone(), args.clone()),
        ServerCommand::Demo => {
            let fixture = std::env::current_exe()
                .map(|exe| exe.with_file_name("stdiopool-fixture"))
                .map_err(ServeError::Http)?;
            if !fixture.is_file() {
                return Err(ServeError::FixtureMissing(fixture.display().to_string()));
            }
            (
                fixture.into_os_string(),
                vec!["--name".into(), "demo".into()],
            )
        }
    };
    Ok(ProcessSpec {
        program,
        args,
        env_set: server.env.clone(),
        env_unset: server.unset_env.clone(),
        cwd: server.cwd.clone(),
        name: server.name.clone(),
        stop: StopTimeouts {
            stdin_grace: server.stop_timeout,
            term_grace: server.stop_timeout,
        },
    })
}

fn upstream_config(
    config: &Config,
    spec: ProcessSpec,
    accounting: &Arc<Accounting>,
    handshake: bool,
) -> UpstreamConfig {
    let mut upstream = UpstreamConfig::new(spec, accounting.clone());
    upstream.protocol_version = config.protocol_version.as_str().to_owned();
    upstream.handshake = handshake;
    upstream.handshake_timeout = config.pool.create_timeout;
    upstream.max_frame = config.max_frame;
    upstream
}

fn pool_config(config: &Config, ping_timeout: Duration) -> PoolConfig {
    let p = &config.pool;
    let mut pool = PoolConfig::new(p.max_size);
    pool.min_idle = p.min_idle;
    pool.wait_timeout = Some(p.wait_timeout);
    // The pool's own deadline is a backstop; the handshake has its own.
    pool.create_timeout = Some(p.create_timeout + Duration::from_secs(5));
    pool.recycle_timeout = Some(ping_timeout + Duration::from_secs(1));
    pool.max_lifetime = p.max_lifetime;
    pool.idle_timeout = p.idle_timeout;
    // A session's process serves that session only and is destroyed with it.
    pool.max_uses = match config.mode {
        Mode::Pooled => p.max_uses,
        Mode::Session => None,
    };
    pool
}

impl Proxy {
    /// Builds the pool (starting its first process, which must come up), the
    /// routes and the metrics. Needs a tokio runtime.
    pub async fn start(config: Config) -> Result<Proxy, ServeError> {
        let config = Arc::new(config);
        let accounting = Arc::new(Accounting::new());
        // Raised first, so the check sees the limit the proxy runs with; the
        // check counts processes as the listener's fd budget does.
        crate::listener::fd_budget::raise_limit();
        accounting::check_pool_size(
            config.pool.max_size,
            crate::listener::fd_budget::pool_check_budget(),
        )?;
        let spec = process_spec(&config)?;
        let handshake = config.mode == Mode::Pooled;
        let upstream = upstream_config(&config, spec, &accounting, handshake);
        let ping_timeout = upstream.ping_timeout;
        // What one server process costs in fds, measured on the first one
        // (the fd budget reserves it per pool slot; listener::fd_budget).
        let fds_before = accounting::open_fd_count().ok();
        let fds_with_one;

        // The start-up probe: one process must come up and complete the
        // handshake, or the proxy refuses to start. Session mode probes with
        // its own process (its pool keeps processes un-initialized for the
        // clients' own initialize).
        let (pool, initialize_result) = if handshake {
            let pool = Pool::new(
                UpstreamManager::new(upstream),
                pool_config(&config, ping_timeout),
            );
            let first = pool.get().await.map_err(|e| match e {
                crate::pool::PoolError::Create(e) | crate::pool::PoolError::Backoff(e) => {
                    ServeError::Startup(e)
                }
                other => ServeError::Startup(UpstreamError::Broken {
                    pid: 0,
                    reason: other.to_string(),
                }),
            })?;
            let result = first.initialize_result().clone();
            fds_with_one = accounting::open_fd_count().ok();
            drop(first);
            (pool, result)
        } else {
            let mut probe_config = upstream.clone();
            probe_config.handshake = true;
            let probe = UpstreamManager::new(probe_config);
            let conn = probe.create().await.map_err(ServeError::Startup)?;
            fds_with_one = accounting::open_fd_count().ok();
            let result = conn.initialize_result().clone();
            drop(conn);
            (
                Pool::new(
                    UpstreamManager::new(upstream),
                    pool_config(&config, ping_timeout),
                ),
                result,
            )
        };
        if let Err(e) = pool.spawn_maintenance() {
            tracing::warn!(error = %e, "pool maintenance not started");
        }

        let per_process = match (fds_before, fds_with_one) {
            (Some(before), Some(after)) => after.saturating_sub(before) as u64,
            _ => accounting::FDS_PER_PROCESS,
        };
        let listening = ListenerPlan::new(config.listener, config.pool.max_size, per_process)?;

        let metrics = Arc::new(Metrics::new());
        metrics.set_listener_source(Arc::new(listening.snapshot_source()));
        let state = Arc::new(McpState {
            config: config.clone(),
            pool: pool.clone(),
            sessions: Sessions::with_stream_slots(listening.stream_slots()),
            metrics: metrics.clone(),
            shutdown: CancellationToken::new(),
            initialize_result,
        });
        metrics.set_source(Arc::new(metrics_source(
            Arc::downgrade(&state),
            accounting.clone(),
        )));
        spawn_session_reaper(&state, config.session_idle_timeout);

        let checks = TransportChecks::from_config(&config)?;
        let readiness_state = Arc::downgrade(&state);
        let ops = ops_router(OpsState {
            metrics,
            readiness: Arc::new(move || readiness(&readiness_state)),
        });
        let app = checks
            .apply(mcp_router(&config.path, state.clone()))
            .layer(axum::middleware::from_fn_with_state(
                state.metrics.clone(),
                super::mcp::count_refusals,
            ))
            .merge(ops);
        Ok(Proxy {
            config,
            state,
            app,
            accounting,
            listening,
        })
    }

    /// The `InitializeResult` of the server behind the proxy.
    pub fn server_info(&self) -> &Value {
        &self.state.initialize_result
    }

    /// The process accounting (spawned, exited, live children).
    pub fn accounting(&self) -> &Arc<Accounting> {
        &self.accounting
    }

    /// The routes, for tests that drive the proxy without a socket.
    pub fn router(&self) -> Router {
        self.app.clone()
    }

    /// Serves on `listener` until `shutdown` resolves, then shuts down in
    /// order (module docs).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<ShutdownReport, ServeError> {
        let Proxy {
            config,
            state,
            app,
            accounting,
            listening,
        } = self;
        let started = state.shutdown.clone();
        let trigger = state.clone();
        // The listener holds the connection limit and the client timeouts
        // (src/listener); TCP_NODELAY is set there on every connection.
        let server = listening.serve(listener, app, async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests");
            trigger.begin_shutdown();
        });
        let mut server = Box::pin(server);
        let mut drained = true;
        tokio::select! {
            result = &mut server => result?,
            () = started.cancelled() => {
                match tokio::time::timeout(config.shutdown_grace, &mut server).await {
                    Ok(result) => result?,
                    Err(_) => {
                        drained = false;
                        tracing::warn!(grace = ?config.shutdown_grace, "grace period over: abandoning the requests still in flight");
                    }
                }
            }
        }
        state.sessions.end_all();
        state.pool.close();
        drop(server);
        drop(state);
        // A dropped connection hands its child to a background stop when its
        // tasks wind down, a moment after the pool lets go of it: wait until
        // every child is reaped, not only for the stops already started.
        let deadline =
            tokio::time::Instant::now() + config.server.stop_timeout * 2 + Duration::from_secs(3);
        let stops_left = loop {
            let left =
                wait_for_stops(deadline.saturating_duration_since(tokio::time::Instant::now()))
                    .await;
            let live = accounting.snapshot().live;
            if (left == 0 && live == 0) || tokio::time::Instant::now() >= deadline {
                break left.max(usize::try_from(live).unwrap_or(usize::MAX));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        tracing::info!(drained, stops_left, "shutdown complete");
        Ok(ShutdownReport {
            drained,
            stops_left,
        })
    }
}

fn readiness(state: &Weak<McpState>) -> Result<(), String> {
    let Some(state) = state.upgrade() else {
        return Err("shutting down".into());
    };
    if state.shutdown.is_cancelled() {
        return Err("shutting down".into());
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

fn metrics_source(
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
        snapshot
    }
}

fn spawn_session_reaper(state: &Arc<McpState>, idle_timeout: Duration) {
    let weak = Arc::downgrade(state);
    // At most a second: the same pass ends sessions whose process broke
    // (an oversize frame leaves it running), which must not linger.
    let period = (idle_timeout / 10).clamp(Duration::from_millis(200), Duration::from_secs(1));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else { break };
            if state.shutdown.is_cancelled() {
                break;
            }
            state.sessions.reap_idle(idle_timeout);
        }
    });
}
