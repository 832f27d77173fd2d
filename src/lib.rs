//! stdiopool: a pool of warm, reused stdio MCP server processes behind MCP's
//! Streamable HTTP transport.
//!
//! Layering (arrows point down only): `proxy → upstream → pool`,
//! `upstream → framing → jsonrpc`. See `docs/ARCHITECTURE.md`.

pub mod accounting;
pub mod config;
pub mod framing;
pub mod jsonrpc;
pub mod listener;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub(crate) mod sync;
pub mod upstream;

pub use pool::{Manager, Pool, PoolConfig, PoolError, Pooled};
