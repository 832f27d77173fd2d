//! OAuth 2.0 Protected Resource Metadata (RFC 9728) for the MCP endpoint:
//! the document that tells a client which authorization servers issue
//! tokens for it and which scopes it needs.
//!
//! Invariant: the document is served at the root well-known path and at the
//! path-suffixed forms (RFC 9728 §3.1) for both the public URL's path and the
//! listening path, needs no token (a client reads it before it has one), and
//! holds no secret.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::values::OAuthSettings;
use crate::values::public_url::PROTECTED_RESOURCE_WELL_KNOWN;

/// The metadata document.
pub fn document(settings: &OAuthSettings) -> Value {
    let mut doc = json!({
        "resource": settings.resource.as_str(),
        "authorization_servers": settings.issuers,
        "bearer_methods_supported": ["header"],
        "resource_name": "stdiopool",
    });
    if !settings.required_scopes.is_empty() {
        doc["scopes_supported"] = json!(settings.required_scopes);
    }
    doc
}

/// The well-known paths the document is served at, for MCP endpoint `path`.
pub fn paths(settings: &OAuthSettings, path: &str) -> Vec<String> {
    let mut paths = vec![PROTECTED_RESOURCE_WELL_KNOWN.to_owned()];
    for suffix in [settings.resource.path(), path] {
        let p = format!(
            "{PROTECTED_RESOURCE_WELL_KNOWN}{}",
            suffix.trim_end_matches('/')
        );
        if !paths.contains(&p) {
            paths.push(p);
        }
    }
    paths
}

/// The metadata routes, to merge beside the MCP endpoint (outside its checks).
pub fn metadata_router<S>(settings: &OAuthSettings, path: &str) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let body: Arc<str> = document(settings).to_string().into();
    let mut router = Router::new();
    for p in paths(settings, path) {
        let body = body.clone();
        router = router.route(&p, get(move || serve(body.clone())));
    }
    router
}

async fn serve(body: Arc<str>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            // Public and the same for everyone: browser-based clients read it
            // cross-origin, and caches may keep it a while.
            (
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body.to_string(),
    )
        .into_response()
}
