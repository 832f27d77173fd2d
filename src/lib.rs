//! stdiopool: a pool of warm, reused stdio MCP server processes behind MCP's
//! Streamable HTTP transport.
//!
//! Layering (arrows point down only): `proxy → upstream → pool`,
//! `upstream → framing → jsonrpc`. See `docs/ARCHITECTURE.md`.

pub(crate) mod sync;

pub mod config;
pub mod metrics;
pub mod proxy;
