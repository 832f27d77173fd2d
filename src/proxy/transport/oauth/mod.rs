//! The OAuth 2.1 resource server of the MCP authorization specification
//! (2025-11-25): access tokens (JWTs) from trusted issuers, checked on every
//! request to the MCP endpoint, and the RFC 9728 protected-resource metadata
//! that tells a client where to get one.
//!
//! - [`jwks`]: the issuer's signing keys, cached and reloaded (rate-limited).
//! - [`verify`]: one token checked against keys, issuer, audience, time, scopes.
//! - [`metadata`]: the `/.well-known/oauth-protected-resource` document and route.
//!
//! Invariant: a request without an acceptable token is answered 401 with
//! `WWW-Authenticate: Bearer resource_metadata="…"` (403
//! `insufficient_scope` when only scopes are missing) before any MCP handler
//! runs, so it never reaches a server process; the token is never forwarded
//! to the server process and never logged, only the accepted token's
//! subject (at debug level).

pub mod jwks;
pub mod metadata;
pub mod verify;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use verify::{Refusal, TokenVerifier};

use super::error::{AuthFailure, ProxyError, codes};

/// The subject (`sub`) of the token a request was accepted with, as a
/// request extension for handlers that want to log it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject(pub String);

/// Middleware: 401/403 unless the request carries an acceptable access token.
/// The `Authorization` header is removed once checked, so nothing after this
/// layer can pass the token on.
pub async fn require_oauth(
    State(verifier): State<Arc<TokenVerifier>>,
    mut request: Request,
    next: Next,
) -> Response {
    let authorization = request.headers_mut().remove(header::AUTHORIZATION);
    match verifier
        .verify(authorization.as_ref().map(HeaderValue::as_bytes))
        .await
    {
        Ok(grant) => {
            if let Some(sub) = grant.subject {
                tracing::debug!(sub = %sub, "OAuth: token accepted");
                request.extensions_mut().insert(Subject(sub));
            }
            next.run(request).await
        }
        Err(refusal) => {
            tracing::debug!(?refusal, "OAuth: request refused");
            refusal_response(&verifier, &refusal)
        }
    }
}

/// The answer to a refused request: the JSON-RPC error body every transport
/// refusal has, with the challenge RFC 6750 §3 and RFC 9728 §5.1 ask for.
pub fn refusal_response(verifier: &TokenVerifier, refusal: &Refusal) -> Response {
    let settings = verifier.settings();
    let mut params = Vec::new();
    let (status, body) = match refusal {
        Refusal::Missing => (
            StatusCode::UNAUTHORIZED,
            ProxyError::Unauthorized(AuthFailure::Missing).body(),
        ),
        Refusal::Invalid(_) => {
            params.push(r#"error="invalid_token""#.to_owned());
            params.push(
                r#"error_description="The access token is invalid, expired or not for this resource""#
                    .to_owned(),
            );
            (
                StatusCode::UNAUTHORIZED,
                ProxyError::Unauthorized(AuthFailure::Invalid).body(),
            )
        }
        Refusal::InsufficientScope => {
            params.push(r#"error="insufficient_scope""#.to_owned());
            let message = format!(
                "Forbidden: the access token lacks a required scope (needs: {})",
                settings.required_scopes.join(" ")
            );
            (
                StatusCode::FORBIDDEN,
                serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": null,
                    "error": { "code": codes::TRANSPORT_ERROR, "message": message },
                }),
            )
        }
    };
    if !settings.required_scopes.is_empty() {
        params.push(format!(r#"scope="{}""#, settings.required_scopes.join(" ")));
    }
    params.push(format!(
        r#"resource_metadata="{}""#,
        settings.resource.metadata_url()
    ));
    let challenge = format!("Bearer {}", params.join(", "));
    let mut response = (status, axum::Json(body)).into_response();
    close_after(&mut response);
    match HeaderValue::from_str(&challenge) {
        Ok(value) => {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        Err(_) => {
            // Scopes and URLs are validated printable text; keep the bare
            // scheme rather than no challenge at all.
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
    }
    response
}

/// A refusal is sent before the request's body is read: hyper then closes
/// the connection rather than read the rest, and says nothing of it, so a
/// client that reuses the connection for its retry with a token (every OAuth
/// client does, right after this 401) can find it closed under its request
/// ("Server disconnected without sending a response": seen once in the
/// interop OAuth row). Saying `Connection: close` makes the client open a
/// new one.
pub(crate) fn close_after(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}
