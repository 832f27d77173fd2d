//! What the pool asks of the things it pools.
//!
//! The split follows deadpool: the pool owns slots, waiting and bookkeeping;
//! the [`Manager`] owns everything about one object (how to make it, whether it
//! is still good). The pool never looks inside an object.

use crate::sync::Instant;
use std::future::Future;

/// Creates, checks and judges pooled objects.
///
/// Objects are destroyed by dropping them: a manager whose objects need an
/// asynchronous shutdown (a child process) gives them a `Drop` that hands the
/// work to a background task. The pool guarantees each object is dropped
/// exactly once.
pub trait Manager: Send + Sync + 'static {
    /// The pooled object.
    type Object: Send + 'static;
    /// Why `create` or `recycle` failed. `Clone` so one creation failure can be
    /// reported to every waiter it concerns.
    type Error: std::error::Error + Clone + Send + Sync + 'static;

    /// Makes a new object (for a server process: spawn and handshake).
    fn create(&self) -> impl Future<Output = Result<Self::Object, Self::Error>> + Send;

    /// Checks an idle object on checkout. An error destroys the object and the
    /// pool tries another one.
    fn recycle(
        &self,
        obj: &mut Self::Object,
        meta: &ObjectMeta,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Cheap synchronous check on return (bb8's `has_broken`): `true` destroys
    /// the object instead of keeping it. Must not block.
    fn is_broken(&self, obj: &Self::Object) -> bool;
}

/// What the pool knows about one object's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectMeta {
    /// When `create` returned it.
    pub created: Instant,
    /// When it was last returned to the pool (or created).
    pub last_used: Instant,
    /// How many checkouts it has served, counting the current one.
    pub uses: u64,
}

impl ObjectMeta {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            created: now,
            last_used: now,
            uses: 0,
        }
    }
}
