//! The per-method checks of the MCP endpoint as axum extractors, the 405
//! fallback, and the layer stack that puts the cross-cutting checks in front.
//!
//! Invariant: a handler that takes [`McpPost`], [`McpGet`] or [`McpDelete`]
//! only ever runs for a request that passed every transport check (the
//! table in docs/PROXY.md) that does not need session state: Host/Origin (403), bearer
//! token (401), method (405), Accept (406), Content-Type (415), body size
//! (413), JSON (400/-32700), JSON-RPC shape (400/-32600), session header
//! present on non-initialize requests (400) and well-formed (404), and
//! `MCP-Protocol-Version` (400). Whether a well-formed session id is *known*
//! (404) is the session store's call.
//!
//! Order of checks on a POST, as in the TS SDK: Accept, Content-Type, body
//! size, JSON, JSON-RPC shape, then (non-initialize only) session header and
//! protocol version. `initialize` carries its version in the body, so its
//! `MCP-Protocol-Version` header is not checked.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, Method, header};
use axum::middleware::from_fn_with_state;
use axum::routing::MethodRouter;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::validate_request::ValidateRequestHeaderLayer;

use super::auth::RequireBearer;
use super::error::ProxyError;
use super::message::IncomingMessage;
use super::negotiate::{check_content_type, check_get_accept, check_post_accept};
use super::oauth::{Subject, TokenVerifier, require_oauth};
use super::origin::{GuardOrigin, OriginGuard};
use super::protocol_version::{self, PROTOCOL_VERSION_HEADER};
use super::session_id::{SESSION_ID_HEADER, SessionId};
use crate::values::{BearerToken, ProtocolVersion};

/// `Allow` for a mode that serves the GET stream.
pub const ALLOW_WITH_GET: &str = "GET, POST, DELETE";
/// `Allow` for a mode without a GET stream.
pub const ALLOW_WITHOUT_GET: &str = "POST, DELETE";

/// Largest POST body read, as a request extension (set by [`TransportChecks::apply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(pub usize);

impl BodyLimit {
    /// Used when no layer set one: the documented `--max-body` default.
    pub const DEFAULT: BodyLimit = BodyLimit(4 * 1024 * 1024);
}

/// A POST to the MCP endpoint that passed the transport checks.
#[derive(Debug, Clone)]
pub struct McpPost {
    /// The one JSON-RPC message.
    pub message: IncomingMessage,
    /// The session header. Always `Some` for a non-initialize message; for
    /// `initialize`, `Some` only if the client sent a well-formed one.
    pub session: Option<SessionId>,
    /// The negotiated version from the header (for `initialize`, the assumed
    /// `2025-03-26`: its real version is in the body).
    #[allow(
        dead_code,
        reason = "checked here; read by the fronts that answer per version (the 2026 front), not by today's handlers"
    )]
    pub protocol_version: ProtocolVersion,
    /// The OAuth subject the request was accepted with (set by the
    /// extractor from `require_oauth`'s extension).
    pub subject: Option<Subject>,
}

/// A POST whose Accept and Content-Type passed their checks and whose body
/// was read within the limit by a layer in front of the handler (the era
/// divert, `proxy/mcp/modern`), as a request extension: [`McpPost`] takes
/// these bytes instead of checking and reading the same request again.
#[derive(Debug, Clone)]
pub(crate) struct ReadPost(pub(crate) Bytes);

impl McpPost {
    /// Runs the POST checks on the parts of a request.
    pub async fn check(
        headers: &HeaderMap,
        body: Body,
        limit: BodyLimit,
    ) -> Result<McpPost, ProxyError> {
        check_post_accept(headers)?;
        check_content_type(headers)?;
        let bytes = read_body(headers, body, limit.0).await?;
        McpPost::check_read(headers, &bytes)
    }

    /// The checks after the body's: JSON, JSON-RPC shape, then (not for
    /// `initialize`) the session header and the protocol version.
    fn check_read(headers: &HeaderMap, bytes: &[u8]) -> Result<McpPost, ProxyError> {
        let message = IncomingMessage::parse(bytes)?;
        if message.is_initialize() {
            return Ok(McpPost {
                session: SessionId::from_headers(headers).ok().flatten(),
                protocol_version: ProtocolVersion::ASSUMED_WHEN_ABSENT,
                message,
                subject: None,
            });
        }
        let session = require_session(headers)?;
        let protocol_version = protocol_version::from_headers(headers)?;
        Ok(McpPost {
            message,
            session: Some(session),
            protocol_version,
            subject: None,
        })
    }
}

impl<S: Send + Sync> FromRequest<S> for McpPost {
    type Rejection = ProxyError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .copied()
            .unwrap_or(BodyLimit::DEFAULT);
        let (mut parts, body) = req.into_parts();
        let mut post = match parts.extensions.remove::<ReadPost>() {
            Some(ReadPost(bytes)) => McpPost::check_read(&parts.headers, &bytes)?,
            None => McpPost::check(&parts.headers, body, limit).await?,
        };
        post.subject = parts.extensions.get::<Subject>().cloned();
        Ok(post)
    }
}

/// A GET (server-to-client stream) that passed the transport checks.
#[derive(Debug, Clone)]
pub struct McpGet {
    /// The session the stream belongs to.
    pub session: SessionId,
    /// The negotiated version.
    #[allow(
        dead_code,
        reason = "checked here; read by the fronts that answer per version (the 2026 front), not by today's handlers"
    )]
    pub protocol_version: ProtocolVersion,
    /// `Last-Event-ID`, when the client asks to resume.
    #[allow(
        dead_code,
        reason = "resumability is not provided (docs/PROXY.md); kept so a front that adds it need not re-read the header"
    )]
    pub last_event_id: Option<String>,
    /// The OAuth subject the request was accepted with.
    pub subject: Option<Subject>,
}

impl McpGet {
    /// Runs the GET checks.
    pub fn check(headers: &HeaderMap) -> Result<McpGet, ProxyError> {
        check_get_accept(headers)?;
        let session = require_session(headers)?;
        let protocol_version = protocol_version::from_headers(headers)?;
        let last_event_id = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(McpGet {
            session,
            protocol_version,
            last_event_id,
            subject: None,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for McpGet {
    type Rejection = ProxyError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut get = McpGet::check(&parts.headers)?;
        get.subject = parts.extensions.get::<Subject>().cloned();
        Ok(get)
    }
}

/// A DELETE (end of session) that passed the transport checks.
#[derive(Debug, Clone)]
pub struct McpDelete {
    /// The session to end.
    pub session: SessionId,
    /// The negotiated version.
    #[allow(
        dead_code,
        reason = "checked here; read by the fronts that answer per version (the 2026 front), not by today's handlers"
    )]
    pub protocol_version: ProtocolVersion,
    /// The OAuth subject the request was accepted with.
    pub subject: Option<Subject>,
}

impl McpDelete {
    /// Runs the DELETE checks.
    pub fn check(headers: &HeaderMap) -> Result<McpDelete, ProxyError> {
        let session = require_session(headers)?;
        let protocol_version = protocol_version::from_headers(headers)?;
        Ok(McpDelete {
            session,
            protocol_version,
            subject: None,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for McpDelete {
    type Rejection = ProxyError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut delete = McpDelete::check(&parts.headers)?;
        delete.subject = parts.extensions.get::<Subject>().cloned();
        Ok(delete)
    }
}

/// A non-initialize request must name its session: 400 when absent, 404 when
/// it is not an id this proxy could have issued.
fn require_session(headers: &HeaderMap) -> Result<SessionId, ProxyError> {
    SessionId::from_headers(headers)?.ok_or(ProxyError::SessionRequired)
}

/// Reads the whole body, refusing more than `limit` bytes without buffering
/// past the limit: a declared `Content-Length` over it is refused before
/// reading; a chunked body stops being read at the limit.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ProxyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ProxyError::PayloadTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ProxyError::PayloadTooLarge { limit })
        }
        Err(e) => Err(ProxyError::BodyRead(e.to_string())),
    }
}

/// Adds the JSON-RPC 405 answer (with `Allow`) for every method the router
/// does not route. `allow` is [`ALLOW_WITH_GET`] or [`ALLOW_WITHOUT_GET`].
pub fn with_method_fallback<S>(methods: MethodRouter<S>, allow: &'static str) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    methods.fallback(move || async move { ProxyError::MethodNotAllowed { allow } })
}

/// The cross-cutting checks, built once from the configuration.
#[derive(Debug, Clone)]
pub struct TransportChecks {
    /// Host / Origin policy.
    pub origin: Arc<OriginGuard>,
    /// Bearer token, when auth is on.
    pub auth: Option<Arc<BearerToken>>,
    /// OAuth access-token verifier, when the resource server is on (set by
    /// [`TransportChecks::with_oauth`]: its keys are loaded at start-up).
    pub oauth: Option<Arc<TokenVerifier>>,
    /// Largest POST body.
    pub max_body: usize,
}

impl TransportChecks {
    /// From the validated configuration.
    pub fn from_config(config: &crate::config::Config) -> TransportChecks {
        TransportChecks {
            origin: Arc::new(OriginGuard::new(
                config.listen,
                &config.allowed_hosts,
                &config.allowed_origins,
            )),
            auth: config.auth_token.clone().map(Arc::new),
            oauth: None,
            max_body: config.max_body,
        }
    }

    /// Requires an OAuth access token accepted by `verifier` (in the place
    /// of the static bearer token; the configuration allows only one).
    pub fn with_oauth(mut self, verifier: Arc<TokenVerifier>) -> TransportChecks {
        self.oauth = Some(verifier);
        self
    }

    /// Puts the checks in front of the routes of `router` (use it on the
    /// router holding the MCP endpoint, before merging the ops endpoints, so
    /// `/healthz`, `/readyz` and `/metrics` need no token). Order, outermost
    /// first: Host/Origin (403); CORS, only when `--allowed-origin` lists
    /// origins (answers preflights); bearer token or OAuth access token
    /// (401/403); then the routes,
    /// whose extractors read the body limit set here.
    ///
    /// # Panics
    ///
    /// If `router` has no routes yet (axum's `route_layer` rule): add the MCP
    /// route first, so the checks can never be silently skipped.
    pub fn apply<S>(&self, router: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        // One layer, composed, rather than one `route_layer` per check: axum
        // boxes every `route_layer` into a `Route` of its own and clones each
        // such level again per request at every level above it (a clone is a
        // boxed copy), so six levels cost ~20 allocations per request;
        // composed, the stack is one level (docs/PERFORMANCE.md, "The fast path").
        let cors = self.origin.has_listed_origins().then(|| self.cors_layer());
        let checks = ServiceBuilder::new()
            .layer(ValidateRequestHeaderLayer::custom(GuardOrigin(
                self.origin.clone(),
            )))
            // Outside auth: browsers send preflights without credentials.
            .option_layer(cors)
            .option_layer(
                self.oauth
                    .clone()
                    .map(|verifier| from_fn_with_state(verifier, require_oauth)),
            )
            .option_layer(
                self.auth
                    .clone()
                    .map(|token| ValidateRequestHeaderLayer::custom(RequireBearer(token))),
            )
            // For any other body extractor a handler may use.
            .layer(DefaultBodyLimit::max(self.max_body))
            .layer(Extension(BodyLimit(self.max_body)));
        router.route_layer(checks)
    }

    /// CORS for the origins listed by `--allowed-origin`: the MCP methods and
    /// headers, with `MCP-Session-Id` exposed so a browser client can read it.
    fn cors_layer(&self) -> CorsLayer {
        let guard = self.origin.clone();
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |origin, _| {
                guard.cors_allows(origin)
            }))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::CONTENT_TYPE,
                header::ACCEPT,
                header::AUTHORIZATION,
                HeaderName::from_static(SESSION_ID_HEADER),
                HeaderName::from_static(PROTOCOL_VERSION_HEADER),
                HeaderName::from_static("last-event-id"),
                // The routing headers of a 2026-07-28 request (docs/ERAS.md).
                HeaderName::from_static(super::routing_headers::METHOD),
                HeaderName::from_static(super::routing_headers::NAME),
            ])
            .expose_headers([
                HeaderName::from_static(SESSION_ID_HEADER),
                HeaderName::from_static(PROTOCOL_VERSION_HEADER),
            ])
            .max_age(Duration::from_secs(600))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn post_with(read: &'static [u8]) -> Request {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri("/mcp")
            .body(Body::empty())
            .unwrap();
        request
            .extensions_mut()
            .insert(ReadPost(Bytes::from_static(read)));
        request
    }

    #[tokio::test]
    async fn a_post_read_in_front_is_taken_as_read_and_still_checked() {
        // The body stream is empty and no Accept is sent: the bytes and the
        // negotiation come from the layer in front.
        let post = McpPost::from_request(
            post_with(br#"{"jsonrpc":"2.0","id":7,"method":"initialize","params":{}}"#),
            &(),
        )
        .await
        .unwrap();
        assert!(post.message.is_initialize());
        // The checks after the body's still run on those bytes.
        let refused = McpPost::from_request(post_with(b"[]"), &()).await;
        assert!(matches!(refused, Err(ProxyError::InvalidRequest(_))));
        let refused = McpPost::from_request(
            post_with(br#"{"jsonrpc":"2.0","id":8,"method":"tools/list"}"#),
            &(),
        )
        .await;
        assert!(matches!(refused, Err(ProxyError::SessionRequired)));
    }
}
