//! The one place that chooses the synchronisation primitives.
//!
//! Under `cfg(stdiopool_loom)` the pool core runs on loom's `Arc`, `Mutex` and
//! atomics so the model checker sees (and permutes) every access; otherwise it
//! runs on the standard library. Nothing else in `src/` mentions the cfg: this
//! is tokio's `src/loom/` habit.
//!
//! The cfg is crate-specific (`stdiopool_loom`, not `loom`) for the reason
//! crossbeam uses `crossbeam_loom`: `RUSTFLAGS` reaches every crate in the
//! graph, and tokio compiled with `--cfg loom` drops `tokio::net`, which axum
//! needs. See docs/ARCHITECTURE.md, "Model checking".
//!
//! Loom 0.7 has no `Weak`, so back-references that must not keep the pool alive
//! (guards, the maintenance task) use `std::sync::Weak` to state whose *inside*
//! is made of the primitives below; the last-handle path that loom must see is
//! the `Arc` re-exported here.

#[cfg(stdiopool_loom)]
pub(crate) use loom::sync::Arc;
#[cfg(not(stdiopool_loom))]
pub(crate) use std::sync::Arc;

pub(crate) mod atomic {
    #[cfg(stdiopool_loom)]
    pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};
    #[cfg(not(stdiopool_loom))]
    pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
}

/// Whether the pool state checks its own accounting after every locked
/// section (`pool::shared::State::check`): on in every build with debug
/// assertions (so in `cargo test`, unit and integration tests alike) and in
/// every loom build (which runs in release). Off in release, where the check
/// would cost a few comparisons under the lock on every checkout.
pub(crate) const CHECK_INVARIANTS: bool = cfg!(any(debug_assertions, stdiopool_loom));

/// A mutex whose `lock` cannot fail.
///
/// Poisoning is ignored on purpose: every critical section in the pool leaves
/// the state consistent before it can panic (it only moves values between
/// collections), so a panic elsewhere must not take the pool down with it.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T> {
    #[cfg(stdiopool_loom)]
    inner: loom::sync::Mutex<T>,
    #[cfg(not(stdiopool_loom))]
    inner: std::sync::Mutex<T>,
}

#[cfg(stdiopool_loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
#[cfg(not(stdiopool_loom))]
pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            #[cfg(stdiopool_loom)]
            inner: loom::sync::Mutex::new(value),
            #[cfg(not(stdiopool_loom))]
            inner: std::sync::Mutex::new(value),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Runs `fut` with a deadline. Under loom there is no timer: models never set
/// timeouts, and the future simply runs to completion.
///
/// With a deadline, the future is polled once before any timer exists: a warm
/// pool's recycle is usually ready at once, and registering a timer would
/// cost more than the whole checkout (see docs/PERFORMANCE.md). Without one,
/// it is simply awaited: polled exactly as often as its caller is, so a
/// caller cut after its first poll is cut inside `fut` (the loom models and
/// `pool_cancel_points` rely on that).
pub(crate) async fn timeout<F: std::future::Future>(
    duration: Option<std::time::Duration>,
    fut: F,
) -> Result<F::Output, Elapsed> {
    #[cfg(not(stdiopool_loom))]
    if let Some(d) = duration {
        let mut fut = std::pin::pin!(fut);
        let first = std::future::poll_fn(|cx| std::task::Poll::Ready(fut.as_mut().poll(cx))).await;
        if let std::task::Poll::Ready(out) = first {
            return Ok(out);
        }
        return tokio::time::timeout(d, fut).await.map_err(|_| Elapsed);
    }
    #[cfg(stdiopool_loom)]
    let _ = duration;
    Ok(fut.await)
}

/// A deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

/// The pool's clock: tokio's `Instant`, which is the standard one unless a
/// test pauses tokio's time (then lifetimes and back-off follow the paused
/// clock). It needs no runtime.
pub use tokio::time::Instant;
