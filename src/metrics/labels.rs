//! What the request metrics are labelled with: bounded method names, outcomes
//! and eras (client-chosen names never create new series).

use prometheus_client::encoding::EncodeLabelSet;

/// `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the latency histogram: 0.5 ms to 2 min, wide
/// enough for a warm native server and a slow tool call alike.
pub const LATENCY_BUCKETS: [f64; 17] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0,
];

/// MCP methods that get their own `method` label value; any other is `other`.
pub const KNOWN_METHODS: [&str; 25] = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/read",
    "resources/templates/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "notifications/message",
    "server/discover",
    "sampling/createMessage",
    "elicitation/create",
];

/// `method` label for a client response to a server request.
pub const METHOD_RESPONSE: &str = "response";
/// `method` label for a body that was refused before a method could be read.
pub const METHOD_INVALID: &str = "invalid";
/// `method` label for a method name not in [`KNOWN_METHODS`].
pub const METHOD_OTHER: &str = "other";
/// `method` label for the GET stream.
pub const METHOD_GET_STREAM: &str = "GET";
/// `method` label for DELETE (end of session).
pub const METHOD_DELETE: &str = "DELETE";

/// The protocol era of a request to the MCP endpoint (`era` label of
/// `stdiopool_requests_by_era_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EraLabel {
    /// MCP 2025-11-25 and earlier: `initialize`, sessions.
    Legacy,
    /// MCP 2026-07-28 and later: per-request `_meta`, no sessions.
    Modern,
}

impl EraLabel {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            EraLabel::Legacy => "legacy",
            EraLabel::Modern => "modern",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct EraLabels {
    pub(super) era: &'static str,
}

/// The bounded `method` label for a JSON-RPC method name.
pub fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or(METHOD_OTHER)
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Answered with a result (or 202 for a notification / response).
    Ok,
    /// Answered with a JSON-RPC error from the server.
    Error,
    /// Refused at the transport level (4xx), nothing reached a child.
    Rejected,
    /// No free process within the wait timeout (503).
    Unavailable,
    /// The request timed out; the server was sent `notifications/cancelled`.
    Timeout,
    /// The server process crashed or broke the stream mid-request.
    UpstreamFailed,
    /// The client went away before the answer.
    Cancelled,
}

impl Outcome {
    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Rejected => "rejected",
            Outcome::Unavailable => "unavailable",
            Outcome::Timeout => "timeout",
            Outcome::UpstreamFailed => "upstream_failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct RequestLabels {
    pub(super) method: &'static str,
    pub(super) outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct MethodLabels {
    pub(super) method: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ServerRequestLabels {
    pub(super) server: String,
    pub(super) method: &'static str,
    pub(super) outcome: &'static str,
}
