//! The operations endpoints: `/healthz` (the process answers), `/readyz` (it
//! can serve MCP requests now) and `/metrics` (Prometheus text).
//!
//! Invariant: these routes never touch a server process and need no token;
//! `/readyz` asks a [`ReadinessProbe`] the binary supplies, so readiness is
//! decided by the pool and shutdown state, not guessed here.

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::{CONTENT_TYPE as METRICS_CONTENT_TYPE, Metrics};

/// Whether the proxy can serve MCP requests now. Closures returning
/// `Result<(), String>` qualify; the error text is the reason shown by `/readyz`.
pub trait ReadinessProbe: Send + Sync + 'static {
    /// `Ok` when ready; `Err(reason)` otherwise (e.g. "shutting down",
    /// "no server process could be started: …").
    fn check(&self) -> Result<(), String>;

    /// Standing warnings about how the proxy is set up (e.g. reachable from
    /// the network without authentication), one line each, shown by
    /// `/readyz` after its verdict. They do not make it unready.
    fn warnings(&self) -> &[String] {
        &[]
    }
}

impl<F> ReadinessProbe for F
where
    F: Fn() -> Result<(), String> + Send + Sync + 'static,
{
    fn check(&self) -> Result<(), String> {
        self()
    }
}

/// State of the ops routes.
#[derive(Clone)]
pub struct OpsState {
    /// The metrics registry.
    pub metrics: Arc<Metrics>,
    /// The readiness probe.
    pub readiness: Arc<dyn ReadinessProbe>,
}

impl fmt::Debug for OpsState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpsState").finish_non_exhaustive()
    }
}

/// `/healthz`, `/readyz` and `/metrics`, ready to `merge` into the app.
pub fn ops_router<S>(state: OpsState) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<OpsState>) -> Response {
    let mut warnings = String::new();
    for w in state.readiness.warnings() {
        warnings.push_str("warning: ");
        warnings.push_str(w);
        warnings.push('\n');
    }
    match state.readiness.check() {
        Ok(()) => (StatusCode::OK, format!("ready\n{warnings}")).into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n{warnings}"),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<OpsState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response(),
        Err(_) => {
            tracing::error!("encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tower::ServiceExt;

    async fn get_text(app: &Router, path: &str) -> (StatusCode, String, Option<String>) {
        let resp = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap(), ct)
    }

    #[tokio::test]
    async fn readyz_follows_the_probe_and_metrics_are_prometheus_text() {
        let ready = Arc::new(AtomicBool::new(false));
        let probe = ready.clone();
        let state = OpsState {
            metrics: Arc::new(Metrics::new()),
            readiness: Arc::new(move || {
                if probe.load(Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err("warming up".to_owned())
                }
            }),
        };
        let app: Router = ops_router(state);
        assert_eq!(get_text(&app, "/healthz").await.0, StatusCode::OK);
        let (status, body, _) = get_text(&app, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("warming up"));
        ready.store(true, Ordering::SeqCst);
        assert_eq!(get_text(&app, "/readyz").await.0, StatusCode::OK);
        let (status, body, ct) = get_text(&app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct.as_deref(), Some(METRICS_CONTENT_TYPE));
        assert!(body.contains("# TYPE stdiopool_build_info gauge"));
    }

    struct Warned;

    impl ReadinessProbe for Warned {
        fn check(&self) -> Result<(), String> {
            Ok(())
        }

        fn warnings(&self) -> &[String] {
            static W: std::sync::LazyLock<Vec<String>> =
                std::sync::LazyLock::new(|| vec!["no authentication".to_owned()]);
            &W
        }
    }

    #[tokio::test]
    async fn readyz_shows_standing_warnings_after_its_verdict() {
        let app: Router = ops_router(OpsState {
            metrics: Arc::new(Metrics::new()),
            readiness: Arc::new(Warned),
        });
        let (status, body, _) = get_text(&app, "/readyz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "ready\nwarning: no authentication\n");
    }
}
