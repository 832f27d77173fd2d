//! The pool's one error type.

/// Which step of `get` ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutStage {
    /// Waiting for an idle object or a free slot.
    Wait,
    /// `Manager::create`.
    Create,
    /// `Manager::recycle`.
    Recycle,
}

impl std::fmt::Display for TimeoutStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeoutStage::Wait => "waiting for a free object",
            TimeoutStage::Create => "creating an object",
            TimeoutStage::Recycle => "recycling an object",
        })
    }
}

/// Why `get` gave no object.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PoolError<E> {
    /// A step took longer than its configured timeout.
    #[error("timed out {0}")]
    Timeout(TimeoutStage),
    /// The pool was closed (explicitly, or its last handle dropped).
    #[error("the pool is closed")]
    Closed,
    /// This `get` had to create an object and creation failed.
    #[error("creating an object failed: {0}")]
    Create(E),
    /// Creation failed recently and the pool is backing off: this `get` was
    /// failed fast with that error instead of trying again.
    #[error("creating objects is failing, backing off: {0}")]
    Backoff(E),
}
