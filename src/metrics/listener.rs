//! The listener's families: client connections, their limits and GET
//! streams, read at scrape time from the listener's own counters.

use std::fmt;
use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::{counter, gauge};

/// Client connections and GET streams (the listener's limits), read at
/// scrape time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerSnapshot {
    /// Client connections open now.
    pub connections_open: u64,
    /// Most client connections at once.
    pub connection_limit: u64,
    /// File descriptors reserved for server processes.
    pub fds_reserved_for_processes: u64,
    /// Client connections accepted.
    pub connections_accepted: u64,
    /// Connections closed for not sending a request head in time.
    pub header_timeouts: u64,
    /// Kept-alive connections closed for idling too long.
    pub keep_alive_timeouts: u64,
    /// Idle connections closed to make room at the connection limit.
    pub connections_evicted: u64,
    /// Connections closed because the client stopped reading its response.
    pub send_timeouts: u64,
    /// Episodes of the connection limit being reached.
    pub connection_limit_reached: u64,
    /// `accept` failures.
    pub accept_errors: u64,
    /// GET streams open now.
    pub get_streams_open: u64,
    /// Most GET streams at once.
    pub get_stream_limit: u64,
}

pub(super) type ListenerSource =
    Arc<RwLock<Option<Arc<dyn Fn() -> ListenerSnapshot + Send + Sync>>>>;

/// The scrape-time collector of the listener's state.
pub(super) struct ListenerCollector {
    pub(super) source: ListenerSource,
}

impl fmt::Debug for ListenerCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerCollector").finish_non_exhaustive()
    }
}

impl Collector for ListenerCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let source = match self.source.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let Some(source) = source else {
            return Ok(());
        };
        let s = source();
        let e = &mut enc;
        gauge(
            e,
            "stdiopool_connections_open",
            "Client connections open",
            s.connections_open,
        )?;
        gauge(
            e,
            "stdiopool_connection_limit",
            "Most client connections at once (from the fd budget or --max-connections)",
            s.connection_limit,
        )?;
        gauge(
            e,
            "stdiopool_fds_reserved_for_processes",
            "File descriptors the budget keeps for server processes",
            s.fds_reserved_for_processes,
        )?;
        counter(
            e,
            "stdiopool_connections_accepted",
            "Client connections accepted",
            s.connections_accepted,
        )?;
        counter(
            e,
            "stdiopool_connections_header_timeouts",
            "Client connections closed for not sending a request head in time",
            s.header_timeouts,
        )?;
        counter(
            e,
            "stdiopool_connections_keep_alive_timeouts",
            "Kept-alive client connections closed for idling too long",
            s.keep_alive_timeouts,
        )?;
        counter(
            e,
            "stdiopool_connections_send_timeouts",
            "Client connections closed because the client took none of its response within the send timeout",
            s.send_timeouts,
        )?;
        counter(
            e,
            "stdiopool_connections_evicted",
            "Idle client connections closed to make room at the connection limit",
            s.connections_evicted,
        )?;
        counter(
            e,
            "stdiopool_connection_limit_reached",
            "Episodes of the connection limit being reached",
            s.connection_limit_reached,
        )?;
        counter(
            e,
            "stdiopool_accept_errors",
            "Failed accepts",
            s.accept_errors,
        )?;
        gauge(
            e,
            "stdiopool_get_streams_open",
            "GET streams open",
            s.get_streams_open,
        )?;
        gauge(
            e,
            "stdiopool_get_stream_limit",
            "Most GET streams open at once",
            s.get_stream_limit,
        )?;
        Ok(())
    }
}
