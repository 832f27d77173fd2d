//! The HTTP side of the proxy: the transport checks of MCP Streamable HTTP
//! (DESIGN §7, MCP-NOTES §2), reply bodies, and the one error type every
//! refusal goes through.
//!
//! Invariant: every check here is independent of upstream processes, and a
//! request refused by any of them never reaches a handler, so it cannot touch
//! a child. The status / error-code table is in `docs/PROXY.md`.

pub mod auth;
mod calls;
pub mod error;
mod initialize;
pub mod mcp;
pub mod message;
pub mod negotiate;
pub mod ops;
pub mod origin;
pub mod protocol_version;
pub mod request;
pub mod server;
pub mod session_id;
mod sessions;
pub mod sse;

pub use auth::BearerToken;
pub use error::{AuthFailure, ProxyError};
pub use mcp::{McpState, mcp_router};
pub use message::{IncomingMessage, MessageKind, RequestId};
pub use negotiate::ReplyFormat;
pub use ops::{OpsState, ReadinessProbe, ops_router};
pub use origin::OriginGuard;
pub use protocol_version::ProtocolVersion;
pub use request::{
    ALLOW_WITH_GET, ALLOW_WITHOUT_GET, BodyLimit, McpDelete, McpGet, McpPost, TransportChecks,
    with_method_fallback,
};
pub use server::{Proxy, ServeError, ShutdownReport};
pub use session_id::SessionId;
pub use sse::Outbound;
