//! Loom models of the pool core (see docs/ARCHITECTURE.md). Compiled only
//! under `RUSTFLAGS="--cfg loom"`.
#![cfg(loom)]
