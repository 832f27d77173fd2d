//! The table of open client connections: which are serving a request, which
//! are idle and since when, and the handle each connection task holds.
//!
//! Invariants:
//! - a connection is in the table exactly while its task holds its
//!   [`ConnHandle`] (the handle's `Drop` removes it), so `open` in
//!   [`ListenerStats`] is the number of client sockets the proxy holds;
//! - only a connection with no request in flight is ever closed from here
//!   (timeouts, eviction for a waiting newcomer, shutdown): a request that
//!   has started always gets its answer or its own timeout.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// Counters and gauges of the listener, read by the metrics at scrape time.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Client connections open now.
    pub open: AtomicU64,
    /// The connection limit in force.
    pub limit: AtomicU64,
    /// Descriptors reserved for server processes by the fd budget.
    pub reserved_fds: AtomicU64,
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections closed for not sending a request head in time.
    pub header_timeouts: AtomicU64,
    /// Kept-alive connections closed for idling too long.
    pub idle_timeouts: AtomicU64,
    /// Connections closed because the client took none of its response
    /// within the send timeout.
    pub send_timeouts: AtomicU64,
    /// Idle connections closed to make room for a waiting newcomer.
    pub evicted: AtomicU64,
    /// Times the connection limit was reached (episodes, not refusals).
    pub limit_reached: AtomicU64,
    /// `accept` failures (fd exhaustion and others).
    pub accept_errors: AtomicU64,
    /// GET streams open now.
    pub get_streams_open: AtomicU64,
    /// The GET stream limit in force.
    pub get_streams_limit: AtomicU64,
}

/// A condition logged when it starts and when it ends, never in between.
#[derive(Debug, Default)]
pub(crate) struct Episode(AtomicBool);

impl Episode {
    /// Whether this call started the episode (log it then).
    pub(crate) fn start(&self) -> bool {
        !self.0.swap(true, Ordering::Relaxed)
    }

    /// Whether this call ended an episode in progress.
    pub(crate) fn end(&self) -> bool {
        self.0.swap(false, Ordering::Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One connection's state. Requests starting and ending touch only its
/// atomics, so the request path never takes the table's lock.
#[derive(Debug)]
struct Entry {
    close: CancellationToken,
    active: AtomicUsize,
    /// Since the tracker's epoch.
    idle_since_ms: AtomicU64,
    served: AtomicBool,
}

impl Entry {
    fn idle(&self) -> bool {
        self.active.load(Ordering::Acquire) == 0 && !self.close.is_cancelled()
    }
}

/// Why a connection was closed from the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CloseReason {
    HeaderTimeout,
    IdleTimeout,
}

/// The open connections of one listener.
#[derive(Debug)]
pub(crate) struct Tracker {
    conns: Mutex<HashMap<u64, Arc<Entry>>>,
    epoch: Instant,
    next_id: AtomicU64,
    stats: Arc<ListenerStats>,
    header_read_timeout: Duration,
    keep_alive_timeout: Duration,
}

impl Tracker {
    pub(crate) fn new(
        stats: Arc<ListenerStats>,
        header_read_timeout: Duration,
        keep_alive_timeout: Duration,
    ) -> Arc<Tracker> {
        Arc::new(Tracker {
            conns: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            stats,
            header_read_timeout,
            keep_alive_timeout,
        })
    }

    #[cfg(test)]
    fn stats(&self) -> &Arc<ListenerStats> {
        &self.stats
    }

    /// Registers a newly accepted connection.
    pub(crate) fn register(self: &Arc<Self>) -> ConnHandle {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            close: CancellationToken::new(),
            active: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(self.millis(Instant::now())),
            served: AtomicBool::new(false),
        });
        lock(&self.conns).insert(id, entry.clone());
        self.stats.open.fetch_add(1, Ordering::Relaxed);
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        ConnHandle {
            id,
            tracker: self.clone(),
            entry,
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// Closes every idle connection past its bound: the head bound before a
    /// first request, the keep-alive bound after one. Returns how many.
    pub(crate) fn sweep(&self, now: Instant) -> usize {
        let now = self.millis(now);
        let mut closed = Vec::new();
        for entry in lock(&self.conns).values() {
            if !entry.idle() {
                continue;
            }
            let (bound, reason) = if entry.served.load(Ordering::Acquire) {
                (self.keep_alive_timeout, CloseReason::IdleTimeout)
            } else {
                (self.header_read_timeout, CloseReason::HeaderTimeout)
            };
            let idle_ms = now.saturating_sub(entry.idle_since_ms.load(Ordering::Acquire));
            if u128::from(idle_ms) >= bound.as_millis() {
                entry.close.cancel();
                closed.push(reason);
            }
        }
        for reason in &closed {
            let counter = match reason {
                CloseReason::HeaderTimeout => &self.stats.header_timeouts,
                CloseReason::IdleTimeout => &self.stats.idle_timeouts,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        closed.len()
    }

    /// Closes the connection idle the longest, to make room for a newcomer
    /// at the limit. Whether there was one.
    pub(crate) fn evict_longest_idle(&self) -> bool {
        let conns = lock(&self.conns);
        let victim = conns
            .values()
            .filter(|e| e.idle())
            .min_by_key(|e| e.idle_since_ms.load(Ordering::Acquire));
        match victim {
            Some(entry) => {
                entry.close.cancel();
                drop(conns);
                self.stats.evicted.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Closes every connection with no request in flight (shutdown).
    pub(crate) fn close_idle(&self) {
        for entry in lock(&self.conns).values() {
            if entry.idle() {
                entry.close.cancel();
            }
        }
    }
}

/// A connection's place in the table; dropping it removes the connection.
#[derive(Debug)]
pub(crate) struct ConnHandle {
    id: u64,
    tracker: Arc<Tracker>,
    entry: Arc<Entry>,
}

impl ConnHandle {
    /// Fires when the table closes this connection.
    pub(crate) fn close_requested(&self) -> &CancellationToken {
        &self.entry.close
    }

    /// Counts this connection as closed by the send timeout.
    pub(crate) fn count_send_timeout(&self) {
        self.tracker
            .stats
            .send_timeouts
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Marks a request in flight until the guard (held by the response
    /// body) is dropped.
    pub(crate) fn begin_request(&self) -> RequestGuard {
        self.entry.active.fetch_add(1, Ordering::AcqRel);
        self.entry.served.store(true, Ordering::Release);
        RequestGuard {
            entry: self.entry.clone(),
            tracker: self.tracker.clone(),
        }
    }
}

impl Drop for ConnHandle {
    fn drop(&mut self) {
        lock(&self.tracker.conns).remove(&self.id);
        self.tracker.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request in flight on a connection.
#[derive(Debug)]
pub(crate) struct RequestGuard {
    entry: Arc<Entry>,
    tracker: Arc<Tracker>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        // Idle time is counted from the end of the last request.
        self.entry
            .idle_since_ms
            .store(self.tracker.millis(Instant::now()), Ordering::Release);
        self.entry.active.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn tracker() -> Arc<Tracker> {
        Tracker::new(
            Arc::default(),
            Duration::from_secs(10),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn a_connection_without_a_head_is_closed_at_the_head_bound_not_before() {
        let t = tracker();
        let conn = t.register();
        let now = Instant::now();
        assert_eq!(t.sweep(now + Duration::from_secs(9)), 0);
        assert!(!conn.close_requested().is_cancelled());
        assert_eq!(t.sweep(now + Duration::from_secs(11)), 1);
        assert!(conn.close_requested().is_cancelled());
        assert_eq!(t.stats().header_timeouts.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_request_in_flight_is_never_closed_and_keep_alive_bounds_the_idle_time_after_it() {
        let t = tracker();
        let conn = t.register();
        let request = conn.begin_request();
        let later = Instant::now() + Duration::from_secs(3600);
        assert_eq!(t.sweep(later), 0);
        assert!(!t.evict_longest_idle());
        t.close_idle();
        assert!(!conn.close_requested().is_cancelled());
        drop(request);
        let now = Instant::now();
        assert_eq!(
            t.sweep(now + Duration::from_secs(30)),
            0,
            "served: the keep-alive bound applies"
        );
        assert_eq!(t.sweep(now + Duration::from_secs(61)), 1);
        assert_eq!(t.stats().idle_timeouts.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn eviction_picks_the_connection_idle_the_longest() {
        let t = tracker();
        let old = t.register();
        std::thread::sleep(Duration::from_millis(5));
        let young = t.register();
        assert!(t.evict_longest_idle());
        assert!(old.close_requested().is_cancelled());
        assert!(!young.close_requested().is_cancelled());
    }

    #[test]
    fn dropping_the_handle_removes_the_connection() {
        let t = tracker();
        let conn = t.register();
        assert_eq!(t.stats().open.load(Ordering::Relaxed), 1);
        drop(conn);
        assert_eq!(t.stats().open.load(Ordering::Relaxed), 0);
        assert!(!t.evict_longest_idle());
    }

    #[test]
    fn an_episode_is_reported_once_at_its_start_and_once_at_its_end() {
        let e = Episode::default();
        assert!(e.start());
        assert!(!e.start());
        assert!(e.end());
        assert!(!e.end());
    }
}
