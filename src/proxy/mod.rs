//! The HTTP side of the proxy, in two rooms with one job each:
//!
//! - [`transport`]: every check a request passes before any MCP handling
//!   (Host/Origin, bearer token, `Accept`/`Content-Type`, protocol version,
//!   session id header, body limit, JSON-RPC shape) and the one error type
//!   every refusal goes through. Nothing there touches an upstream process.
//! - [`mcp`]: serving MCP once a request has passed them: one module per way
//!   of serving (pooled, session), the sessions, reply bodies, and the calls
//!   forwarded to a server process.
//!
//! Plus [`ops`], the `/healthz`, `/readyz` and `/metrics` routes.
//!
//! Invariant: a request refused by any transport check never reaches an MCP
//! handler, so it cannot touch a child. The status / error-code table is in
//! `docs/PROXY.md`; the layout in `docs/ARCHITECTURE.md`.

pub mod mcp;
pub mod ops;
pub mod transport;

pub use mcp::{McpState, mcp_router};
pub use ops::{OpsState, ReadinessProbe, ops_router};
pub use transport::error::{AuthFailure, ProxyError};
pub use transport::message::{IncomingMessage, MessageKind, RequestId};
pub use transport::negotiate::ReplyFormat;
pub use transport::origin::OriginGuard;
pub use transport::request::{
    ALLOW_WITH_GET, ALLOW_WITHOUT_GET, BodyLimit, McpDelete, McpGet, McpPost, TransportChecks,
    with_method_fallback,
};
pub use transport::session_id::SessionId;
