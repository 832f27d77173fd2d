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

#[cfg(test)]
mod tests;
