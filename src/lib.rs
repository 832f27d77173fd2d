//! stdiopool: a pool of warm, reused stdio MCP server processes behind MCP's
//! Streamable HTTP transport.
//!
//! Layering (arrows point down only): `proxy → upstream → pool`,
//! `upstream → framing → jsonrpc`. See `docs/ARCHITECTURE.md`.

pub mod framing;
pub mod jsonrpc;
pub(crate) mod sync;
