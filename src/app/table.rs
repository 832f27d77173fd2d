//! The servers of a config file, each at `/servers/<name>/…`: the route
//! table read by every request, `GET /servers`, per-server readiness, and
//! reload (SIGHUP).
//!
//! Invariants:
//! - the table is swapped whole ([`ServerTable::reload`] under one lock), and
//!   a request counts itself at its server ([`Served::enter`]) while it
//!   holds the read lock, so a server taken out of the table has every
//!   request it will ever get counted before its drain starts;
//! - an untouched server (same entry, serving) keeps its `Arc<Served>`, so
//!   its processes and sessions live on across reloads.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::served::{Served, Shared};
use crate::config::{Config, Mode, server_path};
use crate::listener::{ListenerStats, StreamSlots};
use crate::proxy::transport::error::ProxyError;

type Table = BTreeMap<String, Arc<Served>>;

/// The served servers of a config file.
#[derive(Debug)]
pub struct ServerTable {
    current: RwLock<Arc<Table>>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    shared: Shared,
    stream_limit: usize,
    stream_stats: Arc<ListenerStats>,
    /// Fired when the proxy shuts down: new requests are refused.
    shutdown: CancellationToken,
    /// Drains of removed servers still running.
    drains: tokio_util::task::TaskTracker,
}

/// What a reload did, by server name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    /// Servers added.
    pub added: Vec<String>,
    /// Servers removed (draining).
    pub removed: Vec<String>,
    /// Servers whose entry changed (or that had failed): started anew, the old one draining.
    pub replaced: Vec<String>,
    /// Servers left as they were.
    pub kept: Vec<String>,
}

impl ServerTable {
    pub(super) fn new(
        servers: Vec<Served>,
        shared: Shared,
        stream_limit: usize,
        stream_stats: Arc<ListenerStats>,
    ) -> ServerTable {
        let table: Table = servers
            .into_iter()
            .map(|s| (s.name().to_owned(), Arc::new(s)))
            .collect();
        ServerTable {
            current: RwLock::new(Arc::new(table)),
            reloading: tokio::sync::Mutex::new(()),
            shared,
            stream_limit,
            stream_stats,
            shutdown: CancellationToken::new(),
            drains: tokio_util::task::TaskTracker::new(),
        }
    }

    /// The servers now, by name.
    pub fn snapshot(&self) -> Arc<BTreeMap<String, Arc<Served>>> {
        match self.current.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn stream_slots(&self) -> StreamSlots {
        StreamSlots::new(self.stream_limit, self.stream_stats.clone())
    }

    /// Looks `name` up and, if found, counts a request at it, under the read
    /// lock (module invariant).
    fn enter(&self, name: &str) -> Option<(Arc<Served>, super::served::InFlight)> {
        let table = match self.current.read() {
            Ok(t) => t,
            Err(poisoned) => poisoned.into_inner(),
        };
        table.get(name).map(|s| (s.clone(), s.enter()))
    }

    /// Ready when not shutting down and at least one server is: a server
    /// whose command cannot start must not take the others out of a load
    /// balancer (docs/PROXY.md, "Many servers").
    pub fn readiness(&self) -> Result<(), String> {
        if self.shutdown.is_cancelled() {
            return Err("shutting down".into());
        }
        let table = self.snapshot();
        let mut reasons = Vec::new();
        for (name, served) in table.iter() {
            match served.readiness() {
                Ok(()) => return Ok(()),
                Err(reason) => reasons.push(format!("{name}: {reason}")),
            }
        }
        Err(format!("no server is ready ({})", reasons.join("; ")))
    }

    /// The servers as the start-up banner shows them.
    pub fn banner_lines(&self) -> Vec<super::operator::ServerLine> {
        self.snapshot()
            .values()
            .map(|served| super::operator::ServerLine {
                name: served.name().to_owned(),
                path: served.config().path.clone(),
                mode: served.config().mode,
                max_size: served.config().pool.max_size,
                started: if served.state().is_some() {
                    Ok(())
                } else {
                    served.readiness()
                },
            })
            .collect()
    }

    /// Starts shutdown: refuse new requests, end every server's GET streams.
    pub(super) fn begin_shutdown(&self) {
        self.shutdown.cancel();
        for served in self.snapshot().values() {
            if let Some(state) = served.state() {
                state.begin_shutdown();
            }
        }
    }

    /// After the grace period: end every session and close every pool.
    pub(super) fn finish_shutdown(&self) {
        for served in self.snapshot().values() {
            if let Some(state) = served.state() {
                state.sessions.end_all();
                state.pool.close();
            }
        }
        self.drains.close();
    }

    /// Waits for the drains of removed servers still running.
    pub(super) async fn drains_done(&self) {
        self.drains.close();
        self.drains.wait().await;
    }

    /// Applies a re-read configuration (module docs; docs/PROXY.md,
    /// "Reload"): added servers start, removed ones drain, changed or failed
    /// ones are started anew and the old one drains, the rest are kept.
    /// Global settings (listen address, limits, auth) are not reloaded.
    pub async fn reload(&self, config: &Config) -> ReloadReport {
        let _one = self.reloading.lock().await;
        let mut report = ReloadReport::default();
        let Some(set) = &config.servers else {
            tracing::error!("reload: the file no longer lists servers; nothing changed");
            return report;
        };
        let old = self.snapshot();
        let mut next = Table::new();
        let mut starts = Vec::new();
        for entry in &set.servers {
            match old.get(&entry.name) {
                Some(served) if served.entry() == Some(entry) && served.state().is_some() => {
                    report.kept.push(entry.name.clone());
                    next.insert(entry.name.clone(), served.clone());
                }
                previous => {
                    if previous.is_some() {
                        report.replaced.push(entry.name.clone());
                    } else {
                        report.added.push(entry.name.clone());
                    }
                    starts.push(Served::start_listed(
                        config,
                        entry.clone(),
                        self.stream_slots(),
                        &self.shared,
                    ));
                }
            }
        }
        for served in futures_util::future::join_all(starts).await {
            next.insert(served.name().to_owned(), Arc::new(served));
        }
        let gone: Vec<Arc<Served>> = old
            .iter()
            .filter(|(name, served)| next.get(*name).is_none_or(|n| !Arc::ptr_eq(n, served)))
            .map(|(_, served)| served.clone())
            .collect();
        report.removed = old
            .keys()
            .filter(|name| !next.contains_key(*name))
            .cloned()
            .collect();
        {
            let mut slot = match self.current.write() {
                Ok(t) => t,
                Err(poisoned) => poisoned.into_inner(),
            };
            // Checked under the write lock: shutdown reads the table after
            // it fires, so servers started here are either in the table it
            // stops or stopped here, never left running.
            if self.shutdown.is_cancelled() {
                drop(slot);
                tracing::warn!("reload abandoned: the proxy is shutting down");
                for served in next
                    .values()
                    .filter(|n| !old.values().any(|o| Arc::ptr_eq(o, n)))
                {
                    let (served, grace) = (served.clone(), served.config().shutdown_grace);
                    self.drains.spawn(async move { served.drain(grace).await });
                }
                return ReloadReport::default();
            }
            *slot = Arc::new(next);
        }
        for served in gone {
            let grace = served.config().shutdown_grace;
            self.drains.spawn(async move { served.drain(grace).await });
        }
        tracing::info!(
            added = ?report.added,
            removed = ?report.removed,
            replaced = ?report.replaced,
            kept = report.kept.len(),
            "configuration reloaded"
        );
        report
    }
}

/// `GET /servers`, `/servers/<name>/readyz` and every route of every server,
/// ready to merge into the app.
pub(super) fn table_router(table: Arc<ServerTable>) -> Router {
    Router::new()
        .route("/servers", get(list))
        .route("/servers/{name}/readyz", get(server_readyz))
        .route("/servers/{name}/{*rest}", any(dispatch))
        .with_state(table)
}

/// The name in `/servers/<name>/…`.
fn name_of(path: &str) -> &str {
    path.trim_start_matches("/servers/")
        .split('/')
        .next()
        .unwrap_or("")
}

fn no_such_server(name: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        format!("no server named {name:?}; GET /servers lists them\n"),
    )
        .into_response()
}

/// Hands the request to its server's routes, counted at that server until
/// the response body is done.
async fn dispatch(State(table): State<Arc<ServerTable>>, request: Request) -> Response {
    if table.shutdown.is_cancelled() {
        return ProxyError::ShuttingDown.into_response();
    }
    let name = name_of(request.uri().path()).to_owned();
    let Some((served, guard)) = table.enter(&name) else {
        return no_such_server(&name);
    };
    let Some(router) = served.router().cloned() else {
        let reason = served
            .readiness()
            .err()
            .unwrap_or_else(|| "not started".into());
        return ProxyError::UpstreamUnavailable {
            reason: format!("server {name:?} is not running: {reason}"),
            retry_after: std::time::Duration::from_secs(5),
        }
        .into_response();
    };
    let response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    // The guard lives as long as the body, so a drain waits for streams too.
    let body = body.map_frame(move |frame| {
        let _held = &guard;
        frame
    });
    Response::from_parts(parts, Body::new(body))
}

async fn server_readyz(State(table): State<Arc<ServerTable>>, request: Request) -> Response {
    let name = name_of(request.uri().path());
    let Some(served) = table.snapshot().get(name).cloned() else {
        return no_such_server(name);
    };
    match served.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

/// `GET /servers`: each server's name, URLs, mode and live state.
async fn list(State(table): State<Arc<ServerTable>>, headers: HeaderMap) -> Response {
    let snapshot = table.snapshot();
    let servers: Vec<Value> = snapshot
        .values()
        .map(|served| describe(served, &headers))
        .collect();
    axum::Json(json!({ "servers": servers })).into_response()
}

fn describe(served: &Served, headers: &HeaderMap) -> Value {
    let config = served.config();
    let name = served.name();
    // Absolute URLs from the public URL's origin, else from the Host the
    // client used (it reached us by it).
    let base = match &config.public_url {
        Some(public) => {
            let url = url::Url::parse(public.as_str()).ok();
            url.map(|u| u.origin().ascii_serialization())
                .unwrap_or_default()
        }
        None => headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| format!("http://{h}"))
            .unwrap_or_default(),
    };
    let paths = [
        ("mcp", server_path(name, "mcp")),
        ("sse", server_path(name, "sse")),
        ("messages", server_path(name, "messages")),
        ("readyz", server_path(name, "readyz")),
    ];
    let urls: serde_json::Map<String, Value> = paths
        .iter()
        .map(|(k, p)| ((*k).to_owned(), Value::String(format!("{base}{p}"))))
        .collect();
    let mode = match config.mode {
        Mode::Pooled => "pooled",
        Mode::Session => "session",
    };
    let mut out = json!({
        "name": name,
        "urls": urls,
        "mode": mode,
    });
    match served.readiness() {
        Ok(()) => out["state"] = json!("ready"),
        Err(reason) => {
            out["state"] = json!(if served.state().is_some() {
                "not_ready"
            } else {
                "failed"
            });
            out["reason"] = json!(reason);
        }
    }
    if let Some(state) = served.state() {
        let status = state.pool.status();
        out["pool"] = json!({
            "size": status.size,
            "idle": status.idle,
            "in_use": status.in_use,
            "waiting": status.waiting,
            "max": status.max,
        });
        out["sessions"] = json!(state.session_count());
        out["server_info"] = state
            .initialize_result
            .get("serverInfo")
            .cloned()
            .unwrap_or(Value::Null);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::name_of;

    #[test]
    fn the_name_is_the_segment_after_servers() {
        assert_eq!(name_of("/servers/time/mcp"), "time");
        assert_eq!(name_of("/servers/a.b/sse"), "a.b");
        assert_eq!(name_of("/servers//mcp"), "");
    }
}
