//! Stopping behind a load balancer: on SIGTERM the proxy first reports
//! itself not ready (`/readyz` 503) for `--drain-delay` while it keeps
//! serving, so balancers and Kubernetes stop sending it new work, and only
//! then starts the drain of [`super::Proxy::serve`].
//!
//! Invariant: nothing is refused during the delay (a request that arrives
//! is served as before); SIGINT (an operator's Ctrl-C) and a second signal
//! during the delay skip the rest of it, so a stop is never slower than the
//! operator wants.

use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Marks the proxy draining: `/readyz` answers 503 from then on.
#[derive(Debug, Clone)]
pub struct Drain(pub(super) CancellationToken);

impl Drain {
    /// Turns `/readyz` to 503 (requests are still served).
    pub fn start(&self) {
        self.0.cancel();
    }

    /// Whether [`Drain::start`] was called.
    pub fn is_started(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// Resolves when the proxy should start its drain: at once on SIGINT; on
/// SIGTERM after marking it draining and waiting `delay` (cut short by any
/// further SIGTERM or SIGINT).
pub async fn stop_on_signal(drain: Drain, delay: Duration) {
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            None
        }
    };
    let sigterm = async |t: &mut Option<tokio::signal::unix::Signal>| match t {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => return,
        () = sigterm(&mut terminate) => {}
    }
    if delay.is_zero() {
        return;
    }
    drain.start();
    tracing::info!(
        delay = ?delay,
        "SIGTERM: /readyz answers 503 while requests are still served; the drain starts after the delay (another signal starts it now)"
    );
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        _ = tokio::signal::ctrl_c() => {}
        () = sigterm(&mut terminate) => {}
    }
}
