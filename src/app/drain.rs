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

use tokio::signal::unix::{Signal, SignalKind, signal};
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

/// SIGTERM and SIGINT, listened for from the moment [`StopSignals::install`]
/// returns: a signal that arrives while the proxy starts its servers, or
/// just after it printed where to connect, is kept for [`StopSignals::wait`]
/// rather than left to the default action, which kills the proxy without
/// its stop sequence (a test that sent SIGTERM right after the banner saw
/// the proxy die of it: `proxy_e2e_shutdown`).
#[derive(Debug)]
pub struct StopSignals {
    terminate: Option<Signal>,
    interrupt: Option<Signal>,
}

impl StopSignals {
    /// Starts listening. Needs a tokio runtime.
    pub fn install() -> StopSignals {
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for {name}");
                None
            }
        };
        StopSignals {
            terminate: listen(SignalKind::terminate(), "SIGTERM"),
            interrupt: listen(SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// Resolves when the proxy should start its drain: at once on SIGINT; on
    /// SIGTERM after marking it draining and waiting `delay` (cut short by
    /// any further SIGTERM or SIGINT).
    pub async fn wait(mut self, drain: Drain, delay: Duration) {
        tokio::select! {
            () = next(&mut self.interrupt) => return,
            () = next(&mut self.terminate) => {}
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
            () = next(&mut self.interrupt) => {}
            () = next(&mut self.terminate) => {}
        }
    }
}

/// The next delivery of `signal`; never, if it could not be listened for.
async fn next(signal: &mut Option<Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
