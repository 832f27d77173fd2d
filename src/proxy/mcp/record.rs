//! The one path that counts every request in the metrics: method, outcome
//! and latency.
//!
//! [`RecordServerRequests`] is a layer outside the transport checks. It starts a
//! [`Tally`] for each request and, when the response comes back, records it
//! from what the handler put on the response ([`Served`]): the method and
//! outcome of a finished reply, or nothing yet for a forwarded call, whose
//! reply (JSON or an SSE stream) records through the same tally when the call
//! ends. A response with no [`Served`] was refused before any handler ran
//! (transport checks, extractors) and is counted as `method="invalid"`.
//!
//! Invariant: every request is recorded exactly once (the tally's flag), and
//! no handler touches the metrics itself.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use crate::metrics::{METHOD_INVALID, Metrics, Outcome};
use crate::proxy::transport::error::ProxyError;

/// Records one request, once. Cloned into a forwarded call so its end
/// (answer, timeout, cancel, the client going away) can record it.
#[derive(Debug, Clone)]
pub(crate) struct Tally(Option<Arc<TallyInner>>);

#[derive(Debug)]
struct TallyInner {
    metrics: Arc<Metrics>,
    /// The served server, counted under its `server` label too.
    server: Option<Arc<str>>,
    start: Instant,
    recorded: AtomicBool,
}

impl Tally {
    fn start(metrics: Arc<Metrics>, server: Option<Arc<str>>) -> Tally {
        Tally(Some(Arc::new(TallyInner {
            metrics,
            server,
            start: Instant::now(),
            recorded: AtomicBool::new(false),
        })))
    }

    /// The tally the layer put in `extensions` (one that records nothing
    /// without the layer), for code that runs before the extractors.
    pub(crate) fn of(extensions: &axum::http::Extensions) -> Tally {
        extensions.get::<Tally>().cloned().unwrap_or(Tally(None))
    }

    /// Counts the request under its era (once per request: the era layer
    /// calls this on each request's one pass).
    pub(crate) fn count_era(&self, era: crate::metrics::EraLabel) {
        if let Some(inner) = &self.0 {
            inner.metrics.observe_era(era);
        }
    }

    /// Records the request unless it was recorded already.
    pub(crate) fn record(&self, method: &str, outcome: Outcome) {
        if let Some(inner) = &self.0
            && !inner.recorded.swap(true, Ordering::AcqRel)
        {
            match &inner.server {
                Some(server) => inner.metrics.observe_server_request(
                    server,
                    method,
                    outcome,
                    inner.start.elapsed(),
                ),
                None => inner
                    .metrics
                    .observe_request(method, outcome, inner.start.elapsed()),
            }
        }
    }
}

/// The request's tally; a router without [`RecordServerRequests`] gets one that
/// records nothing (the handlers need not care).
impl<S: Send + Sync> FromRequestParts<S> for Tally {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Tally>()
            .cloned()
            .unwrap_or(Tally(None)))
    }
}

/// What a handler's reply tells [`RecordServerRequests`].
#[derive(Debug, Clone)]
enum Served {
    /// Finished: record now.
    Now { method: String, outcome: Outcome },
    /// A forwarded call records itself when it ends.
    WhenCallEnds,
}

/// A handler's successful reply.
pub(crate) enum Reply {
    /// Answered; the outcome is known.
    Done(Response, Outcome),
    /// A forwarded call whose reply records through the [`Tally`] when the
    /// call ends (an SSE reply: when its stream ends).
    Forwarded(Response),
}

/// The response for a handler's result, marked for [`RecordServerRequests`].
pub(crate) fn respond(method: &str, result: Result<Reply, ProxyError>) -> Response {
    let (mut response, served) = match result {
        Ok(Reply::Done(response, outcome)) => (
            response,
            Served::Now {
                method: method.to_owned(),
                outcome,
            },
        ),
        Ok(Reply::Forwarded(response)) => (response, Served::WhenCallEnds),
        Err(e) => {
            let outcome = e.outcome();
            (
                e.into_response(),
                Served::Now {
                    method: method.to_owned(),
                    outcome,
                },
            )
        }
    };
    response.extensions_mut().insert(served);
    response
}

/// Where [`RecordServerRequests`] counts: the registry and the server's name.
#[derive(Debug, Clone)]
pub(crate) struct ServerMetrics {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) server: Arc<str>,
}

/// The layer, one per served server: starts each request's [`Tally`] and
/// records what the handler reports, or counts a refusal that never reached
/// a handler; counted in the totals and under the server's `server` label.
///
/// A tower layer rather than an axum `from_fn` middleware: this one wraps
/// every request, and `from_fn` boxes the request's future and a clone of
/// the inner service on each one; this future is the inner one plus the
/// tally.
#[derive(Debug, Clone)]
pub(crate) struct RecordServerRequests(pub(crate) ServerMetrics);

impl<S> Layer<S> for RecordServerRequests {
    type Service = Recorded<S>;

    fn layer(&self, inner: S) -> Recorded<S> {
        Recorded {
            at: self.0.clone(),
            inner,
        }
    }
}

/// The service of [`RecordServerRequests`].
#[derive(Debug, Clone)]
pub(crate) struct Recorded<S> {
    at: ServerMetrics,
    inner: S,
}

impl<S> Service<Request> for Recorded<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Recording<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let tally = Tally::start(self.at.metrics.clone(), Some(self.at.server.clone()));
        request.extensions_mut().insert(tally.clone());
        Recording {
            inner: self.inner.call(request),
            tally,
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's response on its way out, recorded when it comes (a
    /// request whose future is dropped first records nothing here; a
    /// forwarded call records itself when it ends).
    pub(crate) struct Recording<F> {
        #[pin]
        inner: F,
        tally: Tally,
    }
}

impl<F, E> Future for Recording<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            record(this.tally, response);
        }
        Poll::Ready(result)
    }
}

/// Records a response from what the handler put on it.
fn record(tally: &Tally, response: &Response) {
    match response.extensions().get::<Served>() {
        Some(Served::Now { method, outcome }) => tally.record(method, *outcome),
        Some(Served::WhenCallEnds) => {}
        None => {
            let outcome = if response.status().is_server_error() {
                Outcome::Unavailable
            } else {
                Outcome::Rejected
            };
            tally.record(METHOD_INVALID, outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_tally_records_once_whoever_records_first() {
        let metrics = Arc::new(Metrics::new());
        let tally = Tally::start(metrics.clone(), None);
        tally.clone().record("tools/call", Outcome::Ok);
        tally.record("tools/call", Outcome::Cancelled);
        let text = metrics.encode().unwrap();
        assert!(
            text.contains("stdiopool_requests_total{method=\"tools/call\",outcome=\"ok\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("outcome=\"cancelled\""), "{text}");
    }
}
