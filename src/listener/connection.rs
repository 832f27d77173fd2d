//! One client connection: HTTP/1.1 served by hyper with the proxy's own
//! bounds around it (the request body's deadline, the request-in-flight
//! mark the connection table closes idle connections by), until the client
//! leaves, the table closes it, or shutdown drains it.
//!
//! Invariant: a connection's request is "in flight" from its complete head
//! until its response body is dropped (fully written or abandoned), so an
//! SSE stream is never mistaken for an idle connection.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use pin_project_lite::pin_project;
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::send_timeout::SendTimeout;
use super::tracker::{ConnHandle, RequestGuard};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The request body was not complete within `--body-read-timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not complete within {}", humantime::format_duration(*.0))]
pub struct BodyReadTimeout(pub Duration);

pin_project! {
    /// A request body that fails once its deadline passes: a client
    /// trickling a body byte by byte cannot hold a connection and a handler
    /// longer than the bound.
    #[derive(Debug)]
    pub struct DeadlineBody<B> {
        #[pin]
        inner: B,
        #[pin]
        deadline: Sleep,
        timeout: Duration,
        expired: bool,
    }
}

impl<B> DeadlineBody<B> {
    /// `inner`, failing `timeout` from now.
    pub fn new(inner: B, timeout: Duration) -> DeadlineBody<B> {
        DeadlineBody {
            inner,
            deadline: tokio::time::sleep(timeout),
            timeout,
            expired: false,
        }
    }
}

impl<B> HttpBody for DeadlineBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        if this.deadline.poll(cx).is_ready() {
            *this.expired = true;
            return Poll::Ready(Some(Err(Box::new(BodyReadTimeout(*this.timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// A response body that keeps its request marked in flight until it is
    /// dropped.
    struct InFlight {
        #[pin]
        inner: Body,
        guard: RequestGuard,
    }
}

impl HttpBody for InFlight {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `stream` until the client closes it, the table closes it
/// (`handle`), or `shutdown` fires and the request in flight (if any) is done.
pub(crate) async fn serve_connection(
    stream: TcpStream,
    app: Router,
    body_read_timeout: Duration,
    send_timeout: Duration,
    handle: ConnHandle,
    shutdown: CancellationToken,
) {
    let handle = Arc::new(handle);
    let marks = handle.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let guard = marks.begin_request();
        let request = request.map(|body| Body::new(DeadlineBody::new(body, body_read_timeout)));
        let app = app.clone();
        async move {
            let response = match app.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(response.map(|inner| Body::new(InFlight { inner, guard })))
        }
    });
    let mut builder = http1::Builder::new();
    // The head and keep-alive bounds are the connection table's (hyper's
    // own head timer also runs while a kept-alive connection waits for its
    // next request, so it cannot express two different bounds); the timer
    // is set for hyper's other internal deadlines.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let io = TokioIo::new(SendTimeout::new(stream, send_timeout));
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    if is_send_timeout(&e) {
                        handle.count_send_timeout();
                        tracing::debug!(error = %e, "client stopped reading its response: connection closed");
                    } else {
                        tracing::debug!(error = %e, "client connection ended with an error");
                    }
                }
                break;
            }
            () = handle.close_requested().cancelled() => break,
            () = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Whether hyper's error comes from [`SendTimeout`].
fn is_send_timeout(e: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::TimedOut;
        }
        source = s.source();
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_past_its_deadline_fails_with_the_bound() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
        let body = StreamBody::new(tokio_stream_from(rx));
        let body = DeadlineBody::new(body, Duration::from_secs(30));
        tx.send(Ok(Frame::data(Bytes::from_static(b"{"))))
            .await
            .unwrap();
        let err = body.collect().await.unwrap_err();
        assert!(err.to_string().contains("30s"), "{err}");
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_complete_body_within_its_deadline_passes_unchanged() {
        let body = DeadlineBody::new(
            http_body_util::Full::new(Bytes::from_static(b"{}")),
            Duration::from_secs(1),
        );
        assert_eq!(body.collect().await.unwrap().to_bytes(), "{}");
    }

    fn tokio_stream_from<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
