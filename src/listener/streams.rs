//! Bounds on the open-ended GET streams: a cap on how many are open at once
//! (a session has one at most, `sessions.rs`), and an end to a stream that
//! has carried no message for a while.
//!
//! Invariant: a stream holds its [`StreamSlot`] for exactly as long as its
//! body exists, so `open` never drifts from the streams really open.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::tracker::ListenerStats;

/// The GET stream slots of one proxy.
#[derive(Debug)]
pub struct StreamSlots {
    limit: u64,
    stats: Arc<ListenerStats>,
}

/// One open GET stream; dropping it frees the slot.
#[derive(Debug)]
pub struct StreamSlot {
    stats: Arc<ListenerStats>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.stats.get_streams_open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl StreamSlots {
    /// At most `limit` streams; the counts are kept in `stats`.
    pub fn new(limit: usize, stats: Arc<ListenerStats>) -> StreamSlots {
        let limit = limit as u64;
        stats.get_streams_limit.store(limit, Ordering::Relaxed);
        StreamSlots { limit, stats }
    }

    /// The limit in force.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// A slot, or `None` when `limit` streams are open.
    pub fn try_take(&self) -> Option<StreamSlot> {
        let open = &self.stats.get_streams_open;
        let mut now = open.load(Ordering::Acquire);
        loop {
            if now >= self.limit {
                return None;
            }
            match open.compare_exchange_weak(now, now + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    return Some(StreamSlot {
                        stats: self.stats.clone(),
                    });
                }
                Err(seen) => now = seen,
            }
        }
    }
}

impl Default for StreamSlots {
    /// No limit (tests that build sessions without a listener).
    fn default() -> Self {
        StreamSlots::new(usize::MAX, Arc::default())
    }
}

pin_project! {
    /// `inner`, ended once it yields nothing for `idle`.
    #[derive(Debug)]
    pub struct IdleBounded<S> {
        #[pin]
        inner: S,
        #[pin]
        deadline: Sleep,
        idle: Duration,
        slot: Option<StreamSlot>,
    }
}

/// Ends `inner` after `idle` without an item; `slot` is held until then.
pub fn idle_bounded<S: Stream>(inner: S, idle: Duration, slot: StreamSlot) -> IdleBounded<S> {
    IdleBounded {
        inner,
        deadline: tokio::time::sleep(idle),
        idle,
        slot: Some(slot),
    }
}

impl<S: Stream> Stream for IdleBounded<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        if this.slot.is_none() {
            return Poll::Ready(None);
        }
        match this.inner.poll_next(cx) {
            Poll::Ready(Some(item)) => {
                this.deadline.as_mut().reset(Instant::now() + *this.idle);
                return Poll::Ready(Some(item));
            }
            Poll::Ready(None) => {
                this.slot.take();
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if this.deadline.poll(cx).is_ready() {
            tracing::debug!(idle = ?this.idle, "GET stream idle: ending it");
            this.slot.take();
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use futures_util::StreamExt;

    #[test]
    fn slots_stop_at_the_limit_and_come_back_when_dropped() {
        let stats = Arc::new(ListenerStats::default());
        let slots = StreamSlots::new(2, stats.clone());
        let a = slots.try_take().unwrap();
        let _b = slots.try_take().unwrap();
        assert!(slots.try_take().is_none());
        assert_eq!(stats.get_streams_open.load(Ordering::Relaxed), 2);
        drop(a);
        assert!(slots.try_take().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_stream_ends_after_its_idle_bound_and_frees_its_slot() {
        let stats = Arc::new(ListenerStats::default());
        let slots = StreamSlots::new(1, stats.clone());
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(4);
        let source = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let mut s = Box::pin(idle_bounded(
            source,
            Duration::from_secs(60),
            slots.try_take().unwrap(),
        ));
        tx.send(1).await.unwrap();
        assert_eq!(s.next().await, Some(1));
        tokio::time::advance(Duration::from_secs(59)).await;
        tx.send(2).await.unwrap();
        assert_eq!(s.next().await, Some(2), "a message resets the bound");
        let started = Instant::now();
        assert_eq!(s.next().await, None);
        assert!(started.elapsed() >= Duration::from_secs(60));
        assert_eq!(stats.get_streams_open.load(Ordering::Relaxed), 0);
        drop(tx);
    }
}
