//! A bound on how long a client may leave the proxy's writes stalled: a
//! client that stops reading its response (while the proxy still has bytes
//! for it) is disconnected after `--send-timeout`, so it cannot hold a
//! connection slot and the unsent reply's memory (up to `--max-frame` per
//! connection) for ever.
//!
//! Invariant: the bound runs only while a write is pending and is reset by
//! every byte the client takes; reads and idle time are not its concern
//! (the connection table bounds those).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

pin_project! {
    /// `inner`, whose writes fail with `TimedOut` once one has made no
    /// progress for `timeout`.
    #[derive(Debug)]
    pub struct SendTimeout<T> {
        #[pin]
        inner: T,
        timeout: Duration,
        stalled: Option<Pin<Box<Sleep>>>,
    }
}

impl<T> SendTimeout<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, timeout: Duration) -> SendTimeout<T> {
        SendTimeout {
            inner,
            timeout,
            stalled: None,
        }
    }
}

fn check_stall(
    stalled: &mut Option<Pin<Box<Sleep>>>,
    timeout: Duration,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let sleep = stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
    if sleep.as_mut().poll(cx).is_ready() {
        return Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the client took nothing of its response for {}",
                humantime::format_duration(timeout)
            ),
        )));
    }
    Poll::Pending
}

impl<T: AsyncWrite> AsyncWrite for SendTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        match this.inner.poll_write(cx, buf) {
            Poll::Pending => check_stall(this.stalled, *this.timeout, cx),
            done => {
                *this.stalled = None;
                done
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        match this.inner.poll_write_vectored(cx, bufs) {
            Poll::Pending => check_stall(this.stalled, *this.timeout, cx),
            done => {
                *this.stalled = None;
                done
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

impl<T: AsyncRead> AsyncRead for SendTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_write_the_peer_never_takes_fails_after_the_bound() {
        let (near, _far) = tokio::io::duplex(16);
        let mut io = SendTimeout::new(near, Duration::from_secs(60));
        let started = tokio::time::Instant::now();
        let err = io.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_reader_is_never_cut_off() {
        let (near, mut far) = tokio::io::duplex(16);
        let mut io = SendTimeout::new(near, Duration::from_secs(60));
        let reader = tokio::spawn(async move {
            let mut got = 0;
            let mut buf = [0u8; 16];
            while got < 64 {
                tokio::time::sleep(Duration::from_secs(50)).await;
                got += far.read(&mut buf).await.unwrap();
            }
        });
        io.write_all(&[0u8; 64]).await.unwrap();
        reader.await.unwrap();
    }
}
