//! One served server: its pool, its MCP state, its settings and its routes
//! (the MCP router behind the transport checks, nested under
//! `/servers/<name>` for a listed server, and the request metrics under its
//! `server` label). The single server of
//! `-- CMD` and each server of a config file are built by this one path.
//!
//! Invariant: every request that reaches a server's routes holds an
//! [`InFlight`] guard (until its response body ends), so draining a removed
//! or replaced server can wait for exactly the requests it still owes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::wiring::{process_spec, upstream_config};
use super::{DemoServer, ServeError, start_pool};
use crate::accounting::Accounting;
use crate::config::{Config, Mode, NamedServer, server_path};
use crate::listener::StreamSlots;
use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::proxy::mcp::record::{RecordServerRequests, ServerMetrics};
use crate::proxy::mcp::{McpState, SessionSigner, Sessions, mcp_router};
use crate::proxy::transport::oauth::TokenVerifier;
use crate::proxy::transport::request::TransportChecks;
use crate::upstream::manager::UpstreamManager;

/// What every served server is built with, whichever it is.
#[derive(Debug, Clone)]
pub(super) struct Shared {
    pub(super) accounting: Arc<Accounting>,
    pub(super) demo: DemoServer,
    pub(super) oauth: Option<Arc<TokenVerifier>>,
    pub(super) metrics: Arc<Metrics>,
    /// The proxy's drain switch (SIGTERM, `--drain-delay`).
    pub(super) draining: CancellationToken,
}

/// A pool whose first process came up: the first half of building a server
/// (the listener's fd plan needs what one process costs before the routes
/// are built).
#[derive(Debug)]
pub(super) struct StartedPool {
    pub(super) pool: Pool<UpstreamManager>,
    pub(super) initialize_result: Value,
    /// File descriptors one server process costs, measured.
    pub(super) per_process: u64,
}

impl StartedPool {
    /// Starts `config`'s pool: its first process must come up and finish
    /// the handshake, else the reason is returned.
    pub(super) async fn start(config: &Config, shared: &Shared) -> Result<StartedPool, ServeError> {
        let spec = process_spec(config, shared.demo)?;
        let handshake = config.mode == Mode::Pooled;
        let upstream = upstream_config(config, spec, &shared.accounting, handshake);
        let (pool, initialize_result, per_process) =
            start_pool(config, upstream, handshake).await?;
        if let Err(e) = pool.spawn_maintenance() {
            tracing::warn!(server = %config.server.name, error = %e, "pool maintenance not started");
        }
        Ok(StartedPool {
            pool,
            initialize_result,
            per_process,
        })
    }
}

/// One server, served at its routes.
#[derive(Debug)]
pub struct Served {
    name: Arc<str>,
    config: Arc<Config>,
    /// The config file's entry it was built from (`None`: the single server),
    /// compared on reload to tell an untouched server from a changed one.
    entry: Option<NamedServer>,
    run: Run,
    in_flight: Arc<AtomicUsize>,
}

#[derive(Debug)]
enum Run {
    Serving {
        state: Arc<McpState>,
        router: Router,
    },
    /// Its command could not start; requests get 503 with this reason.
    Failed { reason: String },
}

/// A request at a server, counted until its response body is dropped.
#[derive(Debug)]
pub(super) struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Served {
    /// The server, its pool started: state, session reaper and routes.
    pub(super) fn assemble(
        config: Arc<Config>,
        entry: Option<NamedServer>,
        started: StartedPool,
        stream_slots: StreamSlots,
        shared: &Shared,
    ) -> Served {
        let name: Arc<str> = entry.as_ref().map_or_else(
            || config.server.name.as_str().into(),
            |e| e.name.as_str().into(),
        );
        // A listed server's routes are nested under `/servers/<name>`.
        let nest_at = entry.as_ref().map(|e| server_path(&e.name, ""));
        let (state, router) = Served::assemble_parts(
            config.clone(),
            name.clone(),
            nest_at.as_deref().map(|p| p.trim_end_matches('/')),
            started,
            stream_slots,
            shared,
        );
        Served {
            name,
            config,
            entry,
            run: Run::Serving { state, router },
            in_flight: Arc::default(),
        }
    }

    /// What [`Served::assemble`] builds, for the single server, whose routes
    /// are mounted once and never swapped: its MCP state and its routes.
    /// With `nest_at` (a listed server's `/servers/<name>`), the endpoint is
    /// `/mcp` under it, and whatever the MCP router serves beside the
    /// endpoint (the legacy HTTP+SSE transport's `/sse` and `/messages`)
    /// lands under the same prefix.
    pub(super) fn assemble_parts(
        config: Arc<Config>,
        name: Arc<str>,
        nest_at: Option<&str>,
        started: StartedPool,
        stream_slots: StreamSlots,
        shared: &Shared,
    ) -> (Arc<McpState>, Router) {
        let state = Arc::new(McpState {
            config: config.clone(),
            pool: started.pool,
            sessions: Sessions::with_stream_slots(stream_slots),
            shutdown: CancellationToken::new(),
            initialize_result: started.initialize_result,
            parked: Arc::default(),
            tool_catalog: Arc::default(),
            // Pooled servers only (a session-mode server's session is its
            // process, on one instance), scoped by route: a listed server's
            // signed ids are refused by the others (each has its own
            // handshake and capabilities).
            signer: config
                .session_key
                .as_ref()
                .filter(|_| config.mode == Mode::Pooled)
                .map(|key| {
                    SessionSigner::new(key, config.instance_id.clone())
                        .scoped(nest_at.unwrap_or(""))
                }),
            // A child: a removed server's shutdown must not drain the proxy.
            draining: shared.draining.child_token(),
        });
        super::spawn_session_reaper(&state, config.session_idle_timeout);
        let mut checks = TransportChecks::from_config(&config);
        if let Some(verifier) = &shared.oauth {
            checks = checks.with_oauth(verifier.clone());
        }
        let router = match nest_at {
            None => checks.apply(mcp_router(&config.path, state.clone())),
            Some(prefix) => {
                Router::new().nest(prefix, checks.apply(mcp_router("/mcp", state.clone())))
            }
        };
        let router = router.layer(RecordServerRequests(ServerMetrics {
            metrics: shared.metrics.clone(),
            server: name,
        }));
        (state, router)
    }

    /// A server whose command could not start: reported, answered 503.
    pub(super) fn failed(config: Arc<Config>, entry: NamedServer, reason: String) -> Served {
        Served {
            name: entry.name.as_str().into(),
            config,
            entry: Some(entry),
            run: Run::Failed { reason },
            in_flight: Arc::default(),
        }
    }

    /// Builds a listed server, or its failed stand-in when its command cannot start.
    pub(super) async fn start_listed(
        base: &Config,
        entry: NamedServer,
        stream_slots: StreamSlots,
        shared: &Shared,
    ) -> Served {
        let config = Arc::new(base.for_server(&entry));
        match StartedPool::start(&config, shared).await {
            Ok(started) => Served::assemble(config, Some(entry), started, stream_slots, shared),
            Err(e) => {
                let reason = e.to_string();
                tracing::error!(server = %entry.name, error = %reason, "server not started; its route answers 503 until a reload starts it");
                Served::failed(config, entry, reason)
            }
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its settings (its route is `config().path`).
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    pub(super) fn entry(&self) -> Option<&NamedServer> {
        self.entry.as_ref()
    }

    /// Its MCP state, unless its command could not start.
    pub fn state(&self) -> Option<&Arc<McpState>> {
        match &self.run {
            Run::Serving { state, .. } => Some(state),
            Run::Failed { .. } => None,
        }
    }

    pub(super) fn router(&self) -> Option<&Router> {
        match &self.run {
            Run::Serving { router, .. } => Some(router),
            Run::Failed { .. } => None,
        }
    }

    /// `Ok` when it can serve now; else why not.
    pub fn readiness(&self) -> Result<(), String> {
        match &self.run {
            Run::Serving { state, .. } => super::observe::readiness(&Arc::downgrade(state)),
            Run::Failed { reason } => Err(reason.clone()),
        }
    }

    /// Counts a request until the guard drops.
    pub(super) fn enter(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.in_flight.clone())
    }

    /// Requests at it now.
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Stops a server taken out of service (removed or replaced on reload):
    /// its GET streams close, the requests it still owes get up to `grace`
    /// to finish, then its sessions end and its pool closes, which stops
    /// every process it holds.
    pub(super) async fn drain(&self, grace: Duration) {
        let Run::Serving { state, .. } = &self.run else {
            return;
        };
        state.sessions.close_streams();
        let deadline = tokio::time::Instant::now() + grace;
        while self.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let abandoned = self.in_flight();
        state.begin_shutdown();
        state.sessions.end_all();
        state.pool.close();
        if abandoned > 0 {
            tracing::warn!(server = %self.name, abandoned, "grace period over: requests still in flight were abandoned");
        }
        tracing::info!(server = %self.name, "server drained and stopped");
    }
}
