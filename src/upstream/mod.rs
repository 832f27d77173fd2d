//! Upstream stdio MCP servers: the child processes (spawn, stderr, stop
//! sequence, reaping) and, built on them, the stdio connection and the pool
//! manager.

pub mod process;
