//! The transport checks of MCP Streamable HTTP: everything a request passes
//! before any MCP handling, and [`error::ProxyError`], the one error type
//! every refusal goes through.
//!
//! Invariant: nothing here touches upstream processes or sessions; a request
//! refused by any check gets its answer (table in `docs/PROXY.md`) before a
//! handler runs. [`request::TransportChecks`] puts the layers in front of the
//! MCP route; the extractors in [`request`] run the per-method checks.

pub mod auth;
pub mod error;
pub mod message;
pub mod negotiate;
pub mod oauth;
pub mod origin;
pub mod protocol_version;
pub mod request;
pub mod routing_headers;
pub mod session_id;
