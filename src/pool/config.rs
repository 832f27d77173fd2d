//! Pool configuration.

use std::time::Duration;

/// How a pool sizes itself, waits and retires objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// Most objects alive at once (idle + checked out + being created). ≥ 1.
    pub max_size: usize,
    /// Idle objects the maintenance task keeps warm (capped by `max_size`).
    pub min_idle: usize,
    /// How long `get` waits for an object or a free slot. `None`: forever.
    pub wait_timeout: Option<Duration>,
    /// How long one `Manager::create` may take. `None`: forever.
    pub create_timeout: Option<Duration>,
    /// How long one `Manager::recycle` may take. `None`: forever.
    pub recycle_timeout: Option<Duration>,
    /// Objects older than this are destroyed instead of reused.
    pub max_lifetime: Option<Duration>,
    /// Idle objects unused for this long are destroyed by maintenance (never
    /// below `min_idle`).
    pub idle_timeout: Option<Duration>,
    /// Checkouts one object serves before it is destroyed. `Some(1)` is
    /// spawn-per-request.
    pub max_uses: Option<u64>,
    /// Back-off after a failed `create`: see [`Backoff`].
    pub create_backoff: Backoff,
    /// Period of the maintenance task started by `Pool::spawn_maintenance`.
    pub maintenance_interval: Duration,
}

impl PoolConfig {
    /// A pool of `max_size` objects with the defaults below.
    pub fn new(max_size: usize) -> Self {
        Self {
            max_size: max_size.max(1),
            ..Self::default()
        }
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_size: 4,
            min_idle: 0,
            wait_timeout: Some(Duration::from_secs(5)),
            create_timeout: Some(Duration::from_secs(30)),
            recycle_timeout: Some(Duration::from_secs(5)),
            max_lifetime: None,
            idle_timeout: None,
            max_uses: None,
            create_backoff: Backoff::default(),
            maintenance_interval: Duration::from_millis(500),
        }
    }
}

/// Exponential back-off after creation failures.
///
/// After `n` consecutive failures, for `min(initial · 2ⁿ⁻¹, max)` a `get` that
/// would have to create fails at once with the last creation error instead of
/// spawning again; a success resets it. `initial = 0` disables the window (every
/// `get` tries again), which the property tests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Window after the first failure.
    pub initial: Duration,
    /// Longest window.
    pub max: Duration,
}

impl Backoff {
    /// No back-off window.
    pub const NONE: Backoff = Backoff {
        initial: Duration::ZERO,
        max: Duration::ZERO,
    };

    pub(crate) fn window(&self, consecutive_failures: u32) -> Duration {
        let shift = consecutive_failures.saturating_sub(1).min(16);
        self.initial.saturating_mul(1u32 << shift).min(self.max)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}
