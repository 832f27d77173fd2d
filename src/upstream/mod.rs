//! Upstream stdio MCP servers: the child processes (spawn, stderr, stop
//! sequence, reaping) and, built on them, the stdio connection and the pool
//! manager.

pub mod connection;
pub mod ids;
pub mod manager;
pub mod process;

pub use connection::{CallError, Connection, OutgoingRequest, ServerMessage};
pub use manager::{UpstreamConfig, UpstreamError, UpstreamManager};
