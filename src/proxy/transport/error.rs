//! `ProxyError`: every transport-level refusal, mapped to one HTTP status, one
//! JSON-RPC error code and one message in a single `IntoResponse`.
//!
//! Invariant: every error response carries a JSON-RPC 2.0 error body with
//! `"id": null` (the transport refuses before any id is trusted) and
//! `Content-Type: application/json`; 401 adds `WWW-Authenticate`, 405 adds
//! `Allow`, 503 adds `Retry-After`. The table lives in `docs/PROXY.md`.
//!
//! Codes follow the MCP TypeScript SDK where it has a convention (-32700 parse
//! error, -32000 generic transport error) and the JSON-RPC specification elsewhere
//! (-32600 for a message that is JSON but not JSON-RPC, -32603 internal
//! error); "session not found" is the crate's own -32005
//! (`jsonrpc::code::SESSION_NOT_FOUND`, docs/FRAMING.md).

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// JSON-RPC error codes used at the transport level: the crate's one table
/// (`crate::jsonrpc::code`, documented in docs/FRAMING.md), under the names
/// this module uses.
pub mod codes {
    pub use crate::jsonrpc::code::{
        INTERNAL_ERROR, INVALID_REQUEST, PARSE_ERROR, SESSION_NOT_FOUND, UPSTREAM_UNAVAILABLE,
    };
    /// Generic transport error (TS SDK `ConnectionClosed` / HTTP error).
    pub const TRANSPORT_ERROR: i64 = crate::jsonrpc::code::UPSTREAM_CLOSED;
}

/// Why a bearer token was refused (RFC 6750 distinguishes the two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer …` header.
    Missing,
    /// A token was presented and is wrong (or the header is malformed).
    Invalid,
}

/// A refusal at the HTTP transport level: nothing reached a child.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// 400 / -32700.
    #[error("Parse error: {0}")]
    Parse(String),
    /// 400 / -32600.
    #[error("Invalid Request: {0}")]
    InvalidRequest(String),
    /// 400 / -32000: a non-initialize request without `MCP-Session-Id`.
    #[error("Bad Request: Mcp-Session-Id header is required")]
    SessionRequired,
    /// 400 / -32000: `MCP-Protocol-Version` names a version we do not support.
    #[error("Bad Request: Unsupported protocol version {0:?} in MCP-Protocol-Version (supported: {list})", list = crate::values::ProtocolVersion::supported_list())]
    UnsupportedProtocolVersion(String),
    /// 400 / -32000: the body could not be read (client went away mid-body).
    #[error("Bad Request: could not read the request body: {0}")]
    BodyRead(String),
    /// 401 / -32000 with `WWW-Authenticate: Bearer`.
    #[error("Unauthorized: {}", match .0 { AuthFailure::Missing => "a bearer token is required", AuthFailure::Invalid => "invalid bearer token" })]
    Unauthorized(AuthFailure),
    /// 403 / -32000: `Origin` not in the allowed list (DNS-rebinding protection).
    #[error("Forbidden: Origin {0:?} is not allowed")]
    ForbiddenOrigin(String),
    /// 403 / -32000: `Host` not in the allowed list (DNS-rebinding protection).
    #[error("Forbidden: Host {0:?} is not allowed")]
    ForbiddenHost(String),
    /// 404 / -32005: unknown or ended session; the client re-initializes.
    #[error("Session not found")]
    SessionNotFound,
    /// 404 / -32005: the session id names another instance as its owner
    /// (a balancer that does not route by session); the client
    /// re-initializes, and the operator sees where the request should have gone.
    #[error(
        "Session not found: session {session} belongs to instance {owner:?}, not this one ({here:?}); route by the Mcp-Session-Id prefix (docs/DEPLOY.md)"
    )]
    SessionElsewhere {
        /// The session id's owner.
        owner: String,
        /// This instance.
        here: String,
        /// The id as logged (owner and a short prefix only).
        session: String,
    },
    /// 405 / -32000 with `Allow`.
    #[error("Method Not Allowed: use {allow}")]
    MethodNotAllowed {
        /// Value of the `Allow` header, e.g. `GET, POST, DELETE`.
        allow: &'static str,
    },
    /// 406 / -32000, naming the `Accept` header and what it must list.
    #[error("Not Acceptable: the Accept header must include {need}")]
    NotAcceptable {
        /// The media types the client must accept.
        need: &'static str,
    },
    /// 409 / -32000: a second GET stream on a session that already has one.
    #[error("Conflict: only one GET stream is allowed per session")]
    StreamAlreadyOpen,
    /// 413 / -32000.
    #[error("Payload Too Large: the request body exceeds {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// 415 / -32000, naming the `Content-Type` header.
    #[error("Unsupported Media Type: the Content-Type header must be application/json")]
    UnsupportedMediaType,
    /// 503 / -32000 with `Retry-After`: no server process became free in time.
    #[error("Service Unavailable: no server process became free within {}", humantime::format_duration(*waited))]
    PoolExhausted {
        /// How long the request waited.
        waited: Duration,
        /// Suggested client back-off (sent as whole seconds, at least 1).
        retry_after: Duration,
    },
    /// 503 / -32003 with `Retry-After`: no server process could be started
    /// (the command fails, or exits before its handshake); `reason` names
    /// the command and the tail of its stderr.
    #[error("Service Unavailable: {reason}")]
    UpstreamUnavailable {
        /// Why, for the client and the logs.
        reason: String,
        /// Suggested client back-off.
        retry_after: Duration,
    },
    /// 503 / -32000 with `Retry-After`: as many GET streams are open as
    /// `--max-get-streams` allows.
    #[error("Service Unavailable: {limit} GET streams are open, the most this proxy allows")]
    TooManyStreams {
        /// The limit in force.
        limit: u64,
    },
    /// 503 / -32000 with `Retry-After`: the proxy is draining for shutdown.
    #[error("Service Unavailable: the proxy is shutting down")]
    ShuttingDown,
    /// 500 / -32603.
    #[error("Internal error: {0}")]
    Internal(String),
}

impl ProxyError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Parse(_)
            | ProxyError::InvalidRequest(_)
            | ProxyError::SessionRequired
            | ProxyError::UnsupportedProtocolVersion(_)
            | ProxyError::BodyRead(_) => StatusCode::BAD_REQUEST,
            ProxyError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ProxyError::ForbiddenOrigin(_) | ProxyError::ForbiddenHost(_) => StatusCode::FORBIDDEN,
            ProxyError::SessionNotFound | ProxyError::SessionElsewhere { .. } => {
                StatusCode::NOT_FOUND
            }
            ProxyError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::NotAcceptable { .. } => StatusCode::NOT_ACCEPTABLE,
            ProxyError::StreamAlreadyOpen => StatusCode::CONFLICT,
            ProxyError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProxyError::PoolExhausted { .. }
            | ProxyError::UpstreamUnavailable { .. }
            | ProxyError::TooManyStreams { .. }
            | ProxyError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON-RPC error code in the body.
    pub fn code(&self) -> i64 {
        match self {
            ProxyError::Parse(_) => codes::PARSE_ERROR,
            ProxyError::InvalidRequest(_) => codes::INVALID_REQUEST,
            ProxyError::SessionNotFound | ProxyError::SessionElsewhere { .. } => {
                codes::SESSION_NOT_FOUND
            }
            ProxyError::Internal(_) => codes::INTERNAL_ERROR,
            ProxyError::UpstreamUnavailable { .. } => codes::UPSTREAM_UNAVAILABLE,
            _ => codes::TRANSPORT_ERROR,
        }
    }

    /// A short stable name for logs and the `outcome` metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::Parse(_) => "parse_error",
            ProxyError::InvalidRequest(_) => "invalid_request",
            ProxyError::SessionRequired => "session_required",
            ProxyError::UnsupportedProtocolVersion(_) => "unsupported_protocol_version",
            ProxyError::BodyRead(_) => "body_read",
            ProxyError::Unauthorized(_) => "unauthorized",
            ProxyError::ForbiddenOrigin(_) => "forbidden_origin",
            ProxyError::ForbiddenHost(_) => "forbidden_host",
            ProxyError::SessionNotFound => "session_not_found",
            ProxyError::SessionElsewhere { .. } => "session_elsewhere",
            ProxyError::MethodNotAllowed { .. } => "method_not_allowed",
            ProxyError::NotAcceptable { .. } => "not_acceptable",
            ProxyError::StreamAlreadyOpen => "stream_already_open",
            ProxyError::PayloadTooLarge { .. } => "payload_too_large",
            ProxyError::UnsupportedMediaType => "unsupported_media_type",
            ProxyError::PoolExhausted { .. } => "pool_exhausted",
            ProxyError::UpstreamUnavailable { .. } => "upstream_unavailable",
            ProxyError::TooManyStreams { .. } => "too_many_streams",
            ProxyError::ShuttingDown => "shutting_down",
            ProxyError::Internal(_) => "internal",
        }
    }

    /// The `outcome` metric label of a request refused with this error.
    pub fn outcome(&self) -> crate::metrics::Outcome {
        match self {
            ProxyError::PoolExhausted { .. }
            | ProxyError::UpstreamUnavailable { .. }
            | ProxyError::TooManyStreams { .. }
            | ProxyError::ShuttingDown => crate::metrics::Outcome::Unavailable,
            _ => crate::metrics::Outcome::Rejected,
        }
    }

    /// The JSON-RPC error body, `{"jsonrpc":"2.0","id":null,"error":{…}}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": { "code": self.code(), "message": self.to_string() },
        })
    }
}

impl From<super::session_id::SessionIdError> for ProxyError {
    fn from(e: super::session_id::SessionIdError) -> Self {
        ProxyError::Internal(e.to_string())
    }
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
fn retry_after_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let status = self.status();
        tracing::debug!(status = status.as_u16(), kind = self.kind(), error = %self, "request refused");
        let mut response = (status, axum::Json(self.body())).into_response();
        let headers = response.headers_mut();
        match &self {
            ProxyError::Unauthorized(failure) => {
                let challenge = match failure {
                    AuthFailure::Missing => r#"Bearer realm="stdiopool""#,
                    AuthFailure::Invalid => r#"Bearer realm="stdiopool", error="invalid_token""#,
                };
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            ProxyError::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ProxyError::PoolExhausted { retry_after, .. }
            | ProxyError::UpstreamUnavailable { retry_after, .. } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs(*retry_after)),
                );
            }
            ProxyError::ShuttingDown | ProxyError::TooManyStreams { .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(1u64));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(5)), 5);
    }

    #[test]
    fn pool_exhausted_is_503_with_retry_after() {
        let resp = ProxyError::PoolExhausted {
            waited: Duration::from_secs(5),
            retry_after: Duration::from_millis(2500),
        }
        .into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "3");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn body_is_a_json_rpc_error_with_null_id() {
        let body = ProxyError::SessionNotFound.body();
        assert_eq!(body["jsonrpc"], "2.0");
        assert!(body["id"].is_null());
        assert_eq!(body["error"]["code"], -32005);
        assert_eq!(body["error"]["message"], "Session not found");
    }
}
