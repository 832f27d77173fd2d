//! The application root: configuration → pool → routes → serve → drain.
//!
//! This is the one place that knows every part: it maps the validated
//! [`Config`] onto the pool and the upstream manager ([`wiring`]), builds the
//! routes (the MCP endpoint behind the transport checks, plus the ops
//! endpoints), wires the metrics ([`observe`]), serves, and shuts down.
//!
//! Start-up fails loudly: a command that cannot start or exits before its
//! handshake stops the proxy with that reason (docs/PROXY.md). Shutdown is
//! ordered: on SIGTERM, `/readyz` 503 for `--drain-delay` while still
//! serving ([`drain`]); then stop accepting, end sessions, drain in-flight requests for up to
//! `shutdown_grace`, close the pool, then wait for every child's stop
//! sequence, so the process exits leaving no child, grandchild or zombie.

mod drain;
mod observe;
pub mod operator;
mod wiring;

pub use drain::{Drain, stop_on_signal};
pub use wiring::{DemoServer, RUN_FIXTURE_ENV, process_spec};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accounting::{self, Accounting, AccountingError};
use crate::config::{Config, Mode};
use crate::listener::{FdBudgetError, ListenerPlan};
use crate::metrics::Metrics;
use crate::pool::{Manager, Pool};
use crate::proxy::mcp::record::record_requests;
use crate::proxy::mcp::{McpState, SessionSigner, Sessions, mcp_router};
use crate::proxy::ops::{OpsState, ops_router};
use crate::proxy::transport::oauth::TokenVerifier;
use crate::proxy::transport::oauth::metadata::metadata_router;
use crate::proxy::transport::request::TransportChecks;
use crate::upstream::manager::{UpstreamConfig, UpstreamError, UpstreamManager};
use observe::{Readiness, metrics_source};
use wiring::{pool_config, upstream_config};

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
        accounting::check_pool_size(
            config.pool.max_size,
            crate::listener::fd_budget::pool_check_budget(),
        )?;
        let spec = process_spec(&config, demo)?;
        let handshake = config.mode == Mode::Pooled;
        let upstream = upstream_config(&config, spec, &accounting, handshake);
        let (pool, initialize_result, per_process) =
            start_pool(&config, upstream, handshake).await?;
        if let Err(e) = pool.spawn_maintenance() {
            tracing::warn!(error = %e, "pool maintenance not started");
        }

        let listening = ListenerPlan::new(config.listener, config.pool.max_size, per_process)?;

        let metrics = Arc::new(Metrics::new());
        metrics.set_listener_source(Arc::new(listening.snapshot_source()));
        let state = Arc::new(McpState {
            config: config.clone(),
            pool: pool.clone(),
            sessions: Sessions::with_stream_slots(listening.stream_slots()),
            shutdown: CancellationToken::new(),
            initialize_result,
            parked: Arc::default(),
            tool_catalog: Arc::default(),
            signer: config
                .session_key
                .as_ref()
                .map(|key| SessionSigner::new(key, config.instance_id.clone())),
            draining: CancellationToken::new(),
        });
        metrics.set_source(Arc::new(metrics_source(
            Arc::downgrade(&state),
            accounting.clone(),
        )));
        spawn_session_reaper(&state, config.session_idle_timeout);

        let app = routes(&config, &state, metrics, oauth);
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

    /// The switch that turns `/readyz` to 503 before the drain
    /// ([`stop_on_signal`]; `--drain-delay`).
    pub fn drain(&self) -> Drain {
        Drain(self.state.draining.clone())
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
async fn start_pool(
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

/// The MCP endpoint behind the transport checks, the request-counting layer
/// outside both (so refusals are counted too), and the ops endpoints, which
/// need no token.
fn routes(
    config: &Config,
    state: &Arc<McpState>,
    metrics: Arc<Metrics>,
    oauth: Option<Arc<TokenVerifier>>,
) -> Router {
    let mut checks = TransportChecks::from_config(config);
    let mut metadata = Router::new();
    if let Some(verifier) = oauth {
        metadata = metadata_router(verifier.settings(), &config.path);
        checks = checks.with_oauth(verifier);
    }
    let ops = ops_router(OpsState {
        metrics: metrics.clone(),
        readiness: Arc::new(Readiness {
            state: Arc::downgrade(state),
            warnings: operator::exposure_warning(config).into_iter().collect(),
        }),
    });
    checks
        .apply(mcp_router(&config.path, state.clone()))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            record_requests,
        ))
        .merge(ops)
        .merge(metadata)
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
