//! The HTTP listener: how client connections are accepted, bounded and
//! closed, so that hostile or broken clients cannot take the proxy down.
//!
//! - [`fd_budget`]: raise `RLIMIT_NOFILE`, reserve the fds server processes
//!   need, and derive the connection limit from what is left;
//! - `accept`: the accept loop that holds the limit (evicting the connection
//!   idle the longest for a newcomer, never spinning on `EMFILE`) and drains
//!   on shutdown;
//! - `connection`: one connection served by hyper, with the body deadline
//!   and the in-flight mark;
//! - `tracker`: the table of open connections, which closes those idle past
//!   the head or keep-alive bound;
//! - [`send_timeout`]: the bound on a client that stops reading its response;
//! - [`streams`]: the cap on open GET streams and their idle bound;
//! - [`settings`]: the limits and their defaults (`docs/PROXY.md`, "Limits").
//!
//! Invariant: every phase a client controls is bounded in time, client
//! connections can never use the fds reserved for server processes, and
//! reaching a limit is logged once per episode.

mod accept;
mod connection;
pub mod fd_budget;
pub mod send_timeout;
pub mod settings;
pub mod streams;
mod tracker;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use tokio::net::TcpListener;

pub use connection::{BodyReadTimeout, DeadlineBody};
pub use fd_budget::{FdBudgetError, FdPlan};
pub use settings::ListenerSettings;
pub use streams::{StreamSlot, StreamSlots, idle_bounded};
pub use tracker::ListenerStats;

use crate::metrics::ListenerSnapshot;

/// The listener's limits, planned at start-up from the fd budget.
#[derive(Debug)]
pub struct ListenerPlan {
    /// The configured bounds.
    pub settings: ListenerSettings,
    /// The fd budget the connection limit comes from.
    pub fds: FdPlan,
    /// Counters and gauges, shared with the metrics.
    pub stats: Arc<ListenerStats>,
}

impl ListenerPlan {
    /// Raises `RLIMIT_NOFILE` and plans the connection limit for a pool of
    /// `pool_max` processes of `per_process` fds each (see [`fd_budget`]).
    pub fn new(
        settings: ListenerSettings,
        pool_max: usize,
        per_process: u64,
    ) -> Result<ListenerPlan, FdBudgetError> {
        let fds = fd_budget::plan_now(pool_max, per_process, settings.max_connections)?;
        let stats = Arc::new(ListenerStats::default());
        stats
            .limit
            .store(fds.connection_limit as u64, Ordering::Relaxed);
        stats
            .reserved_fds
            .store(fds.reserved_for_processes, Ordering::Relaxed);
        Ok(ListenerPlan {
            settings,
            fds,
            stats,
        })
    }

    /// Most GET streams at once: as configured, at most the connection
    /// limit; by default half of it, so streams cannot hold every connection.
    pub fn get_stream_limit(&self) -> usize {
        let connections = self.fds.connection_limit;
        self.settings
            .max_get_streams
            .map_or(connections / 2, |n| n.min(connections))
            .max(1)
    }

    /// The GET stream slots for this limit.
    pub fn stream_slots(&self) -> StreamSlots {
        StreamSlots::new(self.get_stream_limit(), self.stats.clone())
    }

    /// The state the metrics read at each scrape.
    pub fn snapshot_source(&self) -> impl Fn() -> ListenerSnapshot + Send + Sync + 'static {
        let stats = self.stats.clone();
        move || {
            let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            ListenerSnapshot {
                connections_open: get(&stats.open),
                connection_limit: get(&stats.limit),
                fds_reserved_for_processes: get(&stats.reserved_fds),
                connections_accepted: get(&stats.accepted),
                header_timeouts: get(&stats.header_timeouts),
                keep_alive_timeouts: get(&stats.idle_timeouts),
                connections_evicted: get(&stats.evicted),
                send_timeouts: get(&stats.send_timeouts),
                connection_limit_reached: get(&stats.limit_reached),
                accept_errors: get(&stats.accept_errors),
                get_streams_open: get(&stats.get_streams_open),
                get_stream_limit: get(&stats.get_streams_limit),
            }
        }
    }

    /// Serves `app` on `listener` until `shutdown` resolves; then stops
    /// accepting, closes idle connections and returns once the requests in
    /// flight are done (the caller bounds that wait).
    pub async fn serve(
        &self,
        listener: TcpListener,
        app: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> io::Result<()> {
        accept::run(
            listener,
            app,
            self.settings,
            self.fds.connection_limit,
            self.stats.clone(),
            shutdown,
        )
        .await
    }
}
