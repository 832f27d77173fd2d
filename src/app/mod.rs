//! The application root: configuration → pool → routes → serve → drain.
//!
//! This is the one place that knows every part: it maps the validated
//! [`Config`] onto the pool and the upstream manager ([`wiring`]), builds the
//! routes (the MCP endpoint behind the transport checks, plus the ops
//! endpoints), wires the metrics ([`observe`]), serves, and shuts down.
//!
//! What is served is one [`Served`] per server, built by one path
//! ([`served`]): the single server of `-- CMD` / `--demo` at its path, or a
//! config file's servers at `/servers/<name>/…` behind a [`ServerTable`]
//! that SIGHUP reloads ([`table`]; docs/PROXY.md, "Many servers").
//!
//! Start-up fails loudly: a command that cannot start or exits before its
//! handshake stops the proxy with that reason (docs/PROXY.md); with a server
//! list, that server is kept as failed (503) while the others serve. Shutdown is
//! ordered: on SIGTERM, `/readyz` 503 for `--drain-delay` while still
//! serving ([`drain`]); then stop accepting, end sessions, drain in-flight requests for up to
//! `shutdown_grace`, close the pool, then wait for every child's stop
//! sequence, so the process exits leaving no child, grandchild or zombie.

mod drain;
mod observe;
pub mod operator;
mod served;
mod table;
mod wiring;

pub use drain::{Drain, StopSignals};
pub use served::Served;
pub use table::{ReloadReport, ServerTable};
pub use wiring::{DemoServer, RUN_FIXTURE_ENV, process_spec};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accounting::{self, Accounting, AccountingError};
use crate::config::Config;
use crate::listener::{FdBudgetError, ListenerPlan};
use crate::metrics::Metrics;
use crate::pool::{Manager, Pool};
use crate::proxy::mcp::McpState;
use crate::proxy::ops::{OpsState, ops_router};
use crate::proxy::transport::oauth::TokenVerifier;
use crate::proxy::transport::oauth::metadata::metadata_router;
use crate::upstream::manager::{UpstreamConfig, UpstreamError, UpstreamManager};
use observe::{Readiness, metrics_source};
use wiring::pool_config;

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
    /// `--demo` needs the path of this executable, and the OS would not say.
    #[error("--demo: cannot find this executable: {0}")]
    CurrentExe(std::io::Error),
    /// The pool would need more file descriptors than `RLIMIT_NOFILE` allows.
    #[error(transparent)]
    FdBudget(#[from] AccountingError),
    /// `RLIMIT_NOFILE` leaves no room for client connections after the
    /// server processes' reserve.
    #[error(transparent)]
    Listener(#[from] FdBudgetError),
    /// OAuth is on and the issuer's keys could not be loaded.
    #[error("OAuth: cannot load the issuer's signing keys")]
    OAuthKeys(#[from] crate::proxy::transport::oauth::jwks::JwksError),
    /// Serving HTTP failed.
    #[error("HTTP server: {0}")]
    Http(#[from] std::io::Error),
}

/// A built proxy, ready to serve.
#[derive(Debug)]
pub struct Proxy {
    config: Arc<Config>,
    front: Front,
    app: Router,
    accounting: Arc<Accounting>,
    listening: ListenerPlan,
    /// The server's `InitializeResult` (with a server list: the first
    /// serving server's, `null` if none serves).
    info: Value,
    /// Fired on SIGTERM before the drain: every server's `/readyz` and the
    /// overall one answer 503 (each server's own token is a child of it).
    draining: CancellationToken,
}

/// What the proxy serves.
#[derive(Debug, Clone)]
enum Front {
    /// One server at `config.path` (`-- CMD`, `--demo`).
    Single(Arc<McpState>),
    /// A config file's servers, each at `/servers/<name>/…`.
    Many(Arc<ServerTable>),
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

impl Proxy {
    /// Builds the pool (starting its first process, which must come up), the
    /// routes and the metrics; `--demo` runs the fixture server found next to
    /// this executable. Needs a tokio runtime.
    pub async fn start(config: Config) -> Result<Proxy, ServeError> {
        Self::start_with(config, DemoServer::NextToExecutable).await
    }

    /// As [`Proxy::start`], saying where `--demo`'s fixture server comes from.
    pub async fn start_with(config: Config, demo: DemoServer) -> Result<Proxy, ServeError> {
        let config = Arc::new(config);
        if let Some(warning) = operator::exposure_warning(&config) {
            tracing::warn!("{warning}");
        }
        // Before any process: a resource server without its keys refuses to start.
        let oauth = match &config.oauth {
            Some(settings) => Some(Arc::new(TokenVerifier::start(settings.clone()).await?)),
            None => None,
        };
        let accounting = Arc::new(Accounting::new());
        // Raised first, so the check sees the limit the proxy runs with; the
        // check counts processes as the listener's fd budget does.
        crate::listener::fd_budget::raise_limit();
        let total_processes = match &config.servers {
            Some(set) => set.servers.iter().map(|s| s.pool.max_size).sum(),
            None => config.pool.max_size,
        };
        accounting::check_pool_size(
            total_processes,
            crate::listener::fd_budget::pool_check_budget(),
        )?;
        let metrics = Arc::new(Metrics::new());
        let shared = served::Shared {
            accounting: accounting.clone(),
            demo,
            oauth: oauth.clone(),
            metrics: metrics.clone(),
            draining: CancellationToken::new(),
        };
        if config.servers.is_some() {
            return Self::start_many(config, shared, total_processes).await;
        }
        let started = served::StartedPool::start(&config, &shared).await?;
        let listening =
            ListenerPlan::new(config.listener, config.pool.max_size, started.per_process)?;
        metrics.set_listener_source(Arc::new(listening.snapshot_source()));
        let (state, router) = Served::assemble_parts(
            config.clone(),
            config.server.name.as_str().into(),
            None,
            started,
            listening.stream_slots(),
            &shared,
        );
        let name = config.server.name.clone();
        let weak = Arc::downgrade(&state);
        metrics.set_source(Arc::new(metrics_source(
            move || {
                let up = observe::readiness(&weak).is_ok();
                vec![(name.clone(), up, weak.upgrade())]
            },
            accounting.clone(),
        )));
        let readiness = Arc::new(Readiness {
            state: Arc::downgrade(&state),
            warnings: operator::exposure_warning(&config).into_iter().collect(),
        });
        let app = routes(&config, router, metrics, readiness, oauth.as_deref());
        Ok(Proxy {
            info: state.initialize_result.clone(),
            draining: shared.draining,
            config,
            front: Front::Single(state),
            app,
            accounting,
            listening,
        })
    }

    /// A config file's servers: every pool started at once; a server whose
    /// command cannot start is kept as failed (503) while the others serve.
    async fn start_many(
        config: Arc<Config>,
        shared: served::Shared,
        total_processes: usize,
    ) -> Result<Proxy, ServeError> {
        let entries = config
            .servers
            .as_ref()
            .map(|set| set.servers.clone())
            .unwrap_or_default();
        let starts = entries.iter().map(|entry| {
            let server_config = Arc::new(config.for_server(entry));
            let shared = shared.clone();
            async move {
                let started = served::StartedPool::start(&server_config, &shared).await;
                (server_config, started)
            }
        });
        let results = futures_util::future::join_all(starts).await;
        let per_process = results
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok().map(|s| s.per_process))
            .max()
            .unwrap_or(accounting::FDS_PER_PROCESS);
        let listening = ListenerPlan::new(config.listener, total_processes, per_process)?;
        shared
            .metrics
            .set_listener_source(Arc::new(listening.snapshot_source()));
        let mut servers = Vec::new();
        for (entry, (server_config, result)) in entries.into_iter().zip(results) {
            servers.push(match result {
                Ok(started) => Served::assemble(
                    server_config,
                    Some(entry),
                    started,
                    listening.stream_slots(),
                    &shared,
                ),
                Err(e) => {
                    let reason = e.to_string();
                    tracing::error!(server = %entry.name, error = %reason, "server not started; its route answers 503 until a reload starts it");
                    Served::failed(server_config, entry, reason)
                }
            });
        }
        let info = servers
            .iter()
            .find_map(|s| s.state().map(|st| st.initialize_result.clone()))
            .unwrap_or(Value::Null);
        let table = Arc::new(ServerTable::new(
            servers,
            shared.clone(),
            listening.get_stream_limit(),
            listening.stats.clone(),
        ));
        let weak = Arc::downgrade(&table);
        shared.metrics.set_source(Arc::new(metrics_source(
            move || {
                weak.upgrade().map_or_else(Vec::new, |table| {
                    table
                        .snapshot()
                        .values()
                        .map(|s| {
                            (
                                s.name().to_owned(),
                                s.readiness().is_ok(),
                                s.state().cloned(),
                            )
                        })
                        .collect()
                })
            },
            shared.accounting.clone(),
        )));
        let weak = Arc::downgrade(&table);
        let warnings: Vec<String> = operator::exposure_warning(&config).into_iter().collect();
        let readiness = Arc::new(ManyReadiness {
            table: weak,
            warnings,
            draining: shared.draining.clone(),
        });
        let mut app = table::table_router(table.clone());
        if let Some(verifier) = &shared.oauth {
            for served in table.snapshot().values() {
                app = app.merge(metadata_router(verifier.settings(), &served.config().path));
            }
        }
        let ops = ops_router(OpsState {
            metrics: shared.metrics.clone(),
            readiness,
        });
        Ok(Proxy {
            config,
            front: Front::Many(table),
            app: app.merge(ops),
            accounting: shared.accounting,
            listening,
            info,
            draining: shared.draining,
        })
    }

    /// The server list, when the proxy serves a config file's servers
    /// (reload it on SIGHUP with [`ServerTable::reload`]).
    pub fn servers(&self) -> Option<&Arc<ServerTable>> {
        match &self.front {
            Front::Many(table) => Some(table),
            Front::Single(_) => None,
        }
    }

    /// The `InitializeResult` of the server behind the proxy.
    pub fn server_info(&self) -> &Value {
        &self.info
    }

    /// The process accounting (spawned, exited, live children).
    pub fn accounting(&self) -> &Arc<Accounting> {
        &self.accounting
    }

    /// The switch that turns `/readyz` to 503 before the drain
    /// ([`StopSignals::wait`]; `--drain-delay`).
    pub fn drain(&self) -> Drain {
        Drain(self.draining.clone())
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
            front,
            app,
            accounting,
            listening,
            info: _,
            draining: _,
        } = self;
        let started = CancellationToken::new();
        let trigger_front = front.clone();
        let trigger = started.clone();
        // The listener holds the connection limit and the client timeouts
        // (src/listener); TCP_NODELAY is set there on every connection.
        let server = listening.serve(listener, app, async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests");
            match &trigger_front {
                Front::Single(state) => state.begin_shutdown(),
                Front::Many(table) => table.begin_shutdown(),
            }
            trigger.cancel();
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
        match &front {
            Front::Single(state) => {
                state.sessions.end_all();
                state.pool.close();
            }
            Front::Many(table) => {
                table.finish_shutdown();
                // Servers removed by a reload are still draining: bounded by their grace.
                let _ = tokio::time::timeout(config.shutdown_grace, table.drains_done()).await;
            }
        }
        drop(server);
        drop(front);
        // A dropped connection hands its child to a background stop when its
        // tasks wind down, a moment after the pool lets go of it: wait until
        // every child is reaped, not only for the stops already started.
        let deadline =
            tokio::time::Instant::now() + config.server.stop_timeout * 2 + Duration::from_secs(3);
        let stops_left = loop {
            let left = accounting
                .wait_for_stops(deadline.saturating_duration_since(tokio::time::Instant::now()))
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

/// The pool, after the start-up probe: one process must come up and complete
/// the handshake, or the proxy refuses to start. Session mode probes with its
/// own process (its pool keeps processes un-initialized for the clients' own
/// initialize). Returns the server's `InitializeResult` with the pool, and
/// what one server process costs in fds, measured on the first one (the
/// listener's fd budget reserves it per pool slot; `listener::fd_budget`).
pub(super) async fn start_pool(
    config: &Config,
    upstream: UpstreamConfig,
    handshake: bool,
) -> Result<(Pool<UpstreamManager>, Value, u64), ServeError> {
    let ping_timeout = upstream.ping_timeout;
    let fds_before = accounting::open_fd_count().ok();
    let fds_with_one;
    let (pool, result) = if handshake {
        let pool = Pool::new(
            UpstreamManager::new(upstream),
            pool_config(config, ping_timeout),
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
                pool_config(config, ping_timeout),
            ),
            result,
        )
    };
    let per_process = match (fds_before, fds_with_one) {
        (Some(before), Some(after)) => after.saturating_sub(before) as u64,
        _ => accounting::FDS_PER_PROCESS,
    };
    Ok((pool, result, per_process))
}

/// The single server's routes (its MCP endpoint behind the transport checks
/// and the request-counting layer, `Served::assemble`) and the ops
/// endpoints, which need no token.
fn routes(
    config: &Config,
    server: Router,
    metrics: Arc<Metrics>,
    readiness: Arc<dyn crate::proxy::ops::ReadinessProbe>,
    oauth: Option<&TokenVerifier>,
) -> Router {
    let mut metadata = Router::new();
    if let Some(verifier) = oauth {
        metadata = metadata_router(verifier.settings(), &config.path);
    }
    let ops = ops_router(OpsState { metrics, readiness });
    server.merge(ops).merge(metadata)
}

/// `/readyz` with a server list (`ServerTable::readiness`).
struct ManyReadiness {
    table: std::sync::Weak<ServerTable>,
    warnings: Vec<String>,
    draining: CancellationToken,
}

impl crate::proxy::ops::ReadinessProbe for ManyReadiness {
    fn check(&self) -> Result<(), String> {
        if self.draining.is_cancelled() {
            return Err(observe::DRAINING.into());
        }
        match self.table.upgrade() {
            Some(table) => table.readiness(),
            None => Err("shutting down".into()),
        }
    }

    fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

pub(super) fn spawn_session_reaper(state: &Arc<McpState>, idle_timeout: Duration) {
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
