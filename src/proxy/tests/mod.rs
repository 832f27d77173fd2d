//! Tests of the HTTP side that need more than one module: the transport
//! checks driven through real axum routers ([`checks`], [`routes`]), over a
//! real socket ([`socket`]), and as properties over arbitrary input
//! ([`props`]). They live in the crate because what they drive is
//! crate-private (the proxy's public surface is `app::Proxy`).

mod checks;
mod harness;
mod props;
mod routes;
mod socket;
