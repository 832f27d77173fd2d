//! The connection-level limits of the HTTP listener, as the configuration
//! resolves them, with the defaults a production proxy ships with.
//!
//! Invariant: every phase a client controls has a bound here (head, body,
//! idle keep-alive, idle GET stream), and each can be set; `None` for a
//! count means "derive it from the file-descriptor budget".

use std::time::Duration;

/// Default bound on reading a request head.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on reading a request body, from the end of its head.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a kept-alive connection may wait for its next request.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time a write to a client may make no progress.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time a GET stream may carry no message before it is closed.
pub const DEFAULT_SSE_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Limits on client connections and streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerSettings {
    /// A connection that has not sent a complete request head this long
    /// after it was accepted is closed.
    pub header_read_timeout: Duration,
    /// A request body not complete this long after its head fails (400) and
    /// its connection is closed.
    pub body_read_timeout: Duration,
    /// A kept-alive connection with no request for this long is closed.
    pub keep_alive_timeout: Duration,
    /// A connection whose client takes none of its response for this long
    /// is closed.
    pub send_timeout: Duration,
    /// A GET stream that carried no message this long is ended (the client
    /// reconnects when it wants one again).
    pub sse_idle_timeout: Duration,
    /// Most client connections open at once. `None`: what the fd budget allows.
    pub max_connections: Option<usize>,
    /// Most GET streams open at once (one per session at most in any case).
    /// `None`: half the connection limit.
    pub max_get_streams: Option<usize>,
}

impl Default for ListenerSettings {
    fn default() -> Self {
        ListenerSettings {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            sse_idle_timeout: DEFAULT_SSE_IDLE_TIMEOUT,
            max_connections: None,
            max_get_streams: None,
        }
    }
}
