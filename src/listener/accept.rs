//! The accept loop: at most `connection_limit` client connections; at the
//! limit it takes one newcomer, closes the connection idle the longest to
//! make room (or, when every connection has a request in flight, waits for
//! one to finish) and accepts nothing else meanwhile, so further newcomers
//! wait in the kernel's backlog. `accept` failing for lack of fds pauses
//! accepting with a back-off instead of spinning. Shutdown stops accepting,
//! closes idle connections, lets the others finish their request, and
//! returns when none is left.
//!
//! Invariant: client sockets held never exceed `connection_limit + 1` (the
//! newcomer waiting for a slot), which the fd budget leaves room for; the
//! limit and fd exhaustion are each logged once per episode.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::connection::serve_connection;
use super::settings::ListenerSettings;
use super::tracker::{Episode, ListenerStats, Tracker};

/// How often idle connections are checked against their bounds, at most.
const SWEEP_MAX: Duration = Duration::from_millis(500);
/// Longest pause after an `accept` failure.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How long an eviction may take to free its slot before another is tried.
const EVICTION_WAIT: Duration = Duration::from_millis(100);

fn out_of_fds(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::EMFILE | nix::libc::ENFILE | nix::libc::ENOBUFS | nix::libc::ENOMEM)
    )
}

/// Aborts the sweeper when the loop ends or is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn spawn_sweeper(tracker: &Arc<Tracker>, settings: &ListenerSettings) -> AbortOnDrop {
    let period = (settings
        .header_read_timeout
        .min(settings.keep_alive_timeout)
        / 10)
        .clamp(Duration::from_millis(20), SWEEP_MAX);
    let tracker = Arc::downgrade(tracker);
    AbortOnDrop(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(tracker) = tracker.upgrade() else {
                break;
            };
            let closed = tracker.sweep(Instant::now());
            if closed > 0 {
                tracing::debug!(closed, "closed idle client connections past their bound");
            }
        }
    }))
}

/// Serves `listener` until `shutdown` resolves, then drains (module docs).
pub(crate) async fn run(
    listener: TcpListener,
    app: Router,
    settings: ListenerSettings,
    connection_limit: usize,
    stats: Arc<ListenerStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    stats
        .limit
        .store(connection_limit as u64, Ordering::Relaxed);
    let tracker = Tracker::new(
        stats.clone(),
        settings.header_read_timeout,
        settings.keep_alive_timeout,
    );
    let _sweeper = spawn_sweeper(&tracker, &settings);
    let slots = Arc::new(Semaphore::new(connection_limit));
    let draining = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let at_limit = Episode::default();
    let out_of_fds_episode = Episode::default();
    let mut backoff = Duration::from_millis(10);
    let mut shutdown = std::pin::pin!(shutdown);

    'accepting: loop {
        while tasks.try_join_next().is_some() {}
        let stream = tokio::select! {
            () = &mut shutdown => break 'accepting,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                    if out_of_fds(&e) {
                        if out_of_fds_episode.start() {
                            tracing::warn!(error = %e, open = stats.open.load(Ordering::Relaxed), "accept failed: out of file descriptors; pausing accepts until some are free");
                        }
                        tracker.evict_longest_idle();
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    } else {
                        tracing::debug!(error = %e, "accept failed");
                    }
                    continue;
                }
            },
        };
        backoff = Duration::from_millis(10);
        if out_of_fds_episode.end() {
            tracing::info!("accepting connections again");
        }
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                if at_limit.end() {
                    tracing::info!(limit = connection_limit, "back under the connection limit");
                }
                permit
            }
            Err(_) => {
                if at_limit.start() {
                    stats.limit_reached.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        limit = connection_limit,
                        "connection limit reached: closing the connections idle the longest to make room; new connections wait in the kernel's backlog"
                    );
                }
                match make_room(&slots, &tracker, &mut shutdown).await {
                    Some(permit) => permit,
                    None => break 'accepting,
                }
            }
        };
        tasks.spawn(serve(
            stream,
            app.clone(),
            &settings,
            &tracker,
            permit,
            draining.clone(),
        ));
    }

    drop(listener);
    draining.cancel();
    tracker.close_idle();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// A slot for a newcomer at the limit: closes idle connections until one
/// frees. `None` when shutdown comes first.
async fn make_room(
    slots: &Arc<Semaphore>,
    tracker: &Tracker,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Option<OwnedSemaphorePermit> {
    loop {
        tracker.evict_longest_idle();
        tokio::select! {
            () = &mut *shutdown => return None,
            permit = slots.clone().acquire_owned() => return permit.ok(),
            () = tokio::time::sleep(EVICTION_WAIT) => {}
        }
    }
}

fn serve(
    stream: TcpStream,
    app: Router,
    settings: &ListenerSettings,
    tracker: &Arc<Tracker>,
    permit: OwnedSemaphorePermit,
    draining: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    // TCP_NODELAY: an SSE reply is written as several small pieces (head,
    // events, end); with Nagle's algorithm each waits for the client's
    // delayed ACK (~40 ms on Linux), which made every SSE reply take 40 ms+.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
    }
    let handle = tracker.register();
    let (body_read_timeout, send_timeout) = (settings.body_read_timeout, settings.send_timeout);
    async move {
        serve_connection(
            stream,
            app,
            body_read_timeout,
            send_timeout,
            handle,
            draining,
        )
        .await;
        drop(permit);
    }
}
