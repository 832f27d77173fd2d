//! stdiopool: a pool of warm, reused stdio MCP server processes behind MCP's
//! Streamable HTTP transport.
//!
//! Layering (arrows point down only): `app → proxy → upstream → pool`,
//! `upstream → framing → jsonrpc`; `config` and `proxy` both use the leaf
//! `values`, and neither imports the other's internals (`proxy` reads the
//! validated `Config`). See `docs/ARCHITECTURE.md`.

pub mod accounting;
pub mod app;
pub mod config;
pub mod framing;
pub mod jsonrpc;
pub mod listener;
pub(crate) mod metrics;
pub mod pool;
pub(crate) mod proxy;
pub(crate) mod sync;
pub mod upstream;
pub mod values;

pub use pool::{Manager, Pool, PoolConfig, PoolError, Pooled};

/// For the `request` fuzz target: the POST body's fast path against its full
/// path (`proxy/transport/message.rs`).
#[doc(hidden)]
pub use proxy::transport::message::request_check_agreement;
