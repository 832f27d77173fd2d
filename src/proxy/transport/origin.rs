//! DNS-rebinding protection: `Host` and `Origin` validation.
//!
//! Invariant: when the proxy listens on a loopback address, only requests
//! whose `Host` names a loopback host (`localhost`, `127.0.0.1`, `[::1]`, any
//! port) or an `--allowed-host` reach a handler; a request that carries an
//! `Origin` reaches a handler only if that origin is a loopback origin or an
//! `--allowed-origin`. Everything else gets 403 before any handler runs. A
//! missing `Origin` is allowed (non-browser clients send none); `Origin: null`
//! is foreign.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, Uri, header};
use axum::response::{IntoResponse, Response};
use tower_http::validate_request::ValidateRequest;

use super::error::ProxyError;
use crate::values::origin_rules::{AllowedHost, AllowedOrigin, host_without_port};

const LOOPBACK_HOSTS: [&str; 4] = ["localhost", "127.0.0.1", "[::1]", "::1"];

fn is_loopback_host(host: &str) -> bool {
    LOOPBACK_HOSTS.iter().any(|h| h.eq_ignore_ascii_case(host))
}

/// The `Host` / `Origin` policy, built once from the configuration.
#[derive(Debug, Clone)]
pub struct OriginGuard {
    /// `None`: any host (a non-loopback listener with no `--allowed-host`).
    hosts: Option<Vec<String>>,
    /// `None`: any origin (`--allowed-origin '*'`).
    origins: Option<Vec<String>>,
}

impl OriginGuard {
    /// Builds the policy from entries the configuration has already parsed.
    /// With a loopback `listen` address (or any `allowed_hosts`), only
    /// loopback host names and `allowed_hosts` pass the `Host` check.
    /// Loopback origins (http/https, any port) and `allowed_origins` pass the
    /// `Origin` check.
    pub fn new(
        listen: SocketAddr,
        allowed_hosts: &[AllowedHost],
        allowed_origins: &[AllowedOrigin],
    ) -> OriginGuard {
        let hosts = if allowed_hosts.iter().any(AllowedHost::is_any)
            || (allowed_hosts.is_empty() && !listen.ip().is_loopback())
        {
            None
        } else {
            Some(
                allowed_hosts
                    .iter()
                    .map(|h| h.as_str().to_owned())
                    .collect(),
            )
        };
        let origins = if allowed_origins.iter().any(AllowedOrigin::is_any) {
            None
        } else {
            Some(
                allowed_origins
                    .iter()
                    .map(|o| o.as_str().to_owned())
                    .collect(),
            )
        };
        OriginGuard { hosts, origins }
    }

    /// Whether `Host` and `Origin` pass.
    pub fn check(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), ProxyError> {
        self.check_host(headers, uri)?;
        self.check_origin(headers)
    }

    /// Whether `origin` was listed by `--allowed-origin` (or `*` was): the
    /// origins that get CORS headers. Loopback origins pass the check but get
    /// no CORS headers, so a page on another local port cannot read replies
    /// unless the operator lists it.
    pub fn cors_allows(&self, origin: &HeaderValue) -> bool {
        match &self.origins {
            None => true,
            Some(list) => origin.to_str().is_ok_and(|o| {
                let lower = o.trim().trim_end_matches('/').to_ascii_lowercase();
                list.contains(&lower)
            }),
        }
    }

    /// Whether any origin was listed (so a CORS layer is needed).
    pub fn has_listed_origins(&self) -> bool {
        self.origins.as_ref().is_none_or(|l| !l.is_empty())
    }

    fn check_host(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), ProxyError> {
        let Some(allowed) = &self.hosts else {
            return Ok(());
        };
        let authority = match headers.get(header::HOST) {
            Some(v) => v
                .to_str()
                .map_err(|_| {
                    ProxyError::ForbiddenHost(String::from_utf8_lossy(v.as_bytes()).into())
                })?
                .to_owned(),
            // HTTP/2 carries the host in the URI; an HTTP/1.0 request may have
            // none, and a browser (the rebinding attacker) always sends one.
            None => match uri.authority() {
                Some(a) => a.as_str().to_owned(),
                None => return Ok(()),
            },
        };
        let host = host_without_port(authority.trim());
        if is_loopback_host(host) || allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
            Ok(())
        } else {
            Err(ProxyError::ForbiddenHost(authority))
        }
    }

    fn check_origin(&self, headers: &HeaderMap) -> Result<(), ProxyError> {
        let Some(value) = headers.get(header::ORIGIN) else {
            return Ok(());
        };
        let Some(allowed) = &self.origins else {
            return Ok(());
        };
        let origin = value.to_str().map_err(|_| {
            ProxyError::ForbiddenOrigin(String::from_utf8_lossy(value.as_bytes()).into())
        })?;
        let lower = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if is_loopback_origin(&lower) || allowed.contains(&lower) {
            Ok(())
        } else {
            Err(ProxyError::ForbiddenOrigin(origin.to_owned()))
        }
    }
}

fn is_loopback_origin(lower: &str) -> bool {
    let Some((scheme, authority)) = lower.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https") && is_loopback_host(host_without_port(authority))
}

/// The layer's validator: 403 for a foreign `Host` or `Origin`, before any
/// handler (`tower_http`'s `ValidateRequestHeaderLayer::custom`, which, unlike
/// an axum `from_fn` middleware, boxes nothing per request).
#[derive(Debug, Clone)]
pub struct GuardOrigin(pub Arc<OriginGuard>);

impl<B> ValidateRequest<B> for GuardOrigin {
    type ResponseBody = Body;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response> {
        self.0
            .check(request.headers(), request.uri())
            .map_err(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn headers(host: Option<&str>, origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = host {
            h.insert(header::HOST, HeaderValue::from_str(v).unwrap());
        }
        if let Some(v) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn any_origin() -> AllowedOrigin {
        AllowedOrigin::parse("*").unwrap()
    }

    fn loopback_guard() -> OriginGuard {
        OriginGuard::new("127.0.0.1:8080".parse().unwrap(), &[], &[])
    }

    #[test]
    fn loopback_listener_accepts_loopback_hosts_on_any_port() {
        let g = loopback_guard();
        let uri = Uri::from_static("/mcp");
        for host in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:1",
            "[::1]:9000",
            "127.0.0.1",
        ] {
            assert!(g.check(&headers(Some(host), None), &uri).is_ok(), "{host}");
        }
    }

    #[test]
    fn loopback_listener_refuses_a_rebound_host() {
        let g = loopback_guard();
        let uri = Uri::from_static("/mcp");
        for host in [
            "evil.example.com",
            "evil.example.com:8080",
            "127.0.0.2",
            "localhost.evil.com",
        ] {
            assert!(
                matches!(
                    g.check(&headers(Some(host), None), &uri),
                    Err(ProxyError::ForbiddenHost(_))
                ),
                "{host}"
            );
        }
    }

    #[test]
    fn origins_default_to_loopback_and_missing_origin_passes() {
        let g = loopback_guard();
        let uri = Uri::from_static("/mcp");
        let ok = |o: Option<&str>| g.check(&headers(Some("localhost"), o), &uri).is_ok();
        assert!(ok(None));
        assert!(ok(Some("http://localhost:3000")));
        assert!(ok(Some("https://127.0.0.1")));
        assert!(ok(Some("http://[::1]:5173")));
        assert!(!ok(Some("http://evil.example.com")));
        assert!(!ok(Some("null")));
        assert!(!ok(Some("file://localhost")));
    }

    #[test]
    fn configured_origins_and_hosts_are_added_to_loopback() {
        let g = OriginGuard::new(
            "0.0.0.0:8080".parse().unwrap(),
            &[AllowedHost::parse("mcp.example.com:443").unwrap()],
            &[AllowedOrigin::parse("https://App.Example.com/").unwrap()],
        );
        let uri = Uri::from_static("/mcp");
        assert!(
            g.check(
                &headers(Some("mcp.example.com"), Some("https://app.example.com")),
                &uri
            )
            .is_ok()
        );
        assert!(
            g.check(&headers(Some("localhost:8080"), None), &uri)
                .is_ok()
        );
        assert!(
            g.check(&headers(Some("other.example.com"), None), &uri)
                .is_err()
        );
        assert!(
            g.check(
                &headers(Some("mcp.example.com"), Some("http://app.example.com")),
                &uri
            )
            .is_err()
        );
    }

    #[test]
    fn non_loopback_listener_without_host_list_accepts_any_host() {
        let g = OriginGuard::new("0.0.0.0:8080".parse().unwrap(), &[], &[]);
        let uri = Uri::from_static("/mcp");
        assert!(
            g.check(&headers(Some("anything.example"), None), &uri)
                .is_ok()
        );
        assert!(
            g.check(
                &headers(Some("anything.example"), Some("https://evil.example")),
                &uri
            )
            .is_err()
        );
    }

    #[test]
    fn star_allows_every_origin() {
        let g = OriginGuard::new("127.0.0.1:1".parse().unwrap(), &[], &[any_origin()]);
        let uri = Uri::from_static("/mcp");
        assert!(
            g.check(&headers(Some("localhost"), Some("https://x.example")), &uri)
                .is_ok()
        );
    }

    #[test]
    fn only_listed_origins_get_cors() {
        let g = OriginGuard::new(
            "127.0.0.1:1".parse().unwrap(),
            &[],
            &[AllowedOrigin::parse("https://app.example").unwrap()],
        );
        assert!(g.has_listed_origins());
        assert!(g.cors_allows(&HeaderValue::from_static("https://APP.example")));
        assert!(!g.cors_allows(&HeaderValue::from_static("http://localhost:3000")));
        assert!(!loopback_guard().has_listed_origins());
        let any = OriginGuard::new("127.0.0.1:1".parse().unwrap(), &[], &[any_origin()]);
        assert!(any.cors_allows(&HeaderValue::from_static("https://x.example")));
    }
}
