//! The bearer-token check on the MCP endpoint.
//!
//! Invariant: a request without the right `Authorization: Bearer <token>`
//! gets 401 with `WWW-Authenticate: Bearer` before any handler runs, so
//! nothing reaches a child. The comparison itself is the token's
//! (`values::bearer_token`), in time independent of the guess.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, header};
use axum::response::{IntoResponse, Response};
use tower_http::validate_request::ValidateRequest;

use super::error::{AuthFailure, ProxyError};
use crate::values::BearerToken;

/// Checks the `Authorization` header against `token`.
pub fn check_bearer(token: &BearerToken, headers: &HeaderMap) -> Result<(), ProxyError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ProxyError::Unauthorized(AuthFailure::Missing));
    };
    let raw = value.as_bytes();
    let Some((scheme, rest)) = split_scheme(raw) else {
        return Err(ProxyError::Unauthorized(AuthFailure::Invalid));
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(ProxyError::Unauthorized(AuthFailure::Invalid));
    }
    if token.matches(rest.trim_ascii()) {
        Ok(())
    } else {
        Err(ProxyError::Unauthorized(AuthFailure::Invalid))
    }
}

fn split_scheme(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = raw.iter().position(|&b| b == b' ')?;
    Some((&raw[..space], &raw[space + 1..]))
}

/// The layer's validator: 401 unless the request carries the configured
/// bearer token (`tower_http`'s `ValidateRequestHeaderLayer::custom`: no box
/// per request, unlike an axum `from_fn` middleware).
#[derive(Debug, Clone)]
pub struct RequireBearer(pub Arc<BearerToken>);

impl<B> ValidateRequest<B> for RequireBearer {
    type ResponseBody = Body;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response> {
        check_bearer(&self.0, request.headers()).map_err(|e| {
            let mut response = e.into_response();
            // Refused before the body is read (see `close_after`).
            super::oauth::close_after(&mut response);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use axum::http::HeaderValue;

    fn with_auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn authorization_header_forms() {
        let t = BearerToken::from_file_contents("tok").unwrap();
        assert!(check_bearer(&t, &with_auth("Bearer tok")).is_ok());
        assert!(check_bearer(&t, &with_auth("bearer tok")).is_ok());
        assert!(matches!(
            check_bearer(&t, &HeaderMap::new()),
            Err(ProxyError::Unauthorized(AuthFailure::Missing))
        ));
        for bad in ["Bearer nope", "Basic tok", "Bearertok", "tok"] {
            assert!(
                matches!(
                    check_bearer(&t, &with_auth(bad)),
                    Err(ProxyError::Unauthorized(AuthFailure::Invalid))
                ),
                "{bad}"
            );
        }
    }
}
