//! `stdiopool-load floor`: the HTTP floor of the end-to-end benchmark.
//!
//! A minimal MCP Streamable HTTP endpoint on the proxy's own stack (axum
//! routed through hyper's HTTP/1.1 server with the same builder settings,
//! `TCP_NODELAY`, tokio's default multi-thread runtime) that answers the
//! load generator's workload from memory: `initialize` with a fixed result
//! and session id, notifications with `202`, `tools/call echo` with the
//! echoed text as one `application/json` body. No process, no pool, no
//! session store, no transport checks.
//!
//! Invariant: it does what any MCP endpoint must do for this workload and
//! nothing else, so the load generator's checks pass against it exactly as
//! against the proxy, and "what HTTP costs" (this server) and "what
//! stdiopool adds" (the proxy minus this) are measured in the same run.
//!
//! With `--processes N -- CMD…` it is the pipe floor instead: `tools/call`
//! is forwarded to one of N warm copies of CMD by the least possible
//! forwarder (`forward.rs`), so "HTTP plus one pipe round trip" is measured
//! too, and what stdiopool adds can be told from what the pipe costs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::forward::{self, Forwarder};

/// Options of `stdiopool-load floor`.
#[derive(Debug, clap::Args)]
pub(super) struct FloorArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0: any free port,
    /// printed on stdout).
    #[arg(long)]
    listen: SocketAddr,
    /// Forward `tools/call` to this many warm copies of the command given
    /// after `--` (the pipe floor); 0 answers from memory.
    #[arg(long, default_value_t = 0, requires = "command")]
    processes: usize,
    /// The server to forward to (with `--processes`).
    #[arg(last = true)]
    command: Vec<String>,
}

/// Serves until the process is stopped (SIGTERM / SIGINT).
pub(super) async fn serve_floor(args: FloorArgs) -> anyhow::Result<()> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let forwarder = match args.processes {
        0 => None,
        n => Some(Arc::new(Forwarder::start(&args.command, n).await?)),
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    println!("listening on {}", listener.local_addr()?);
    let app = Router::new()
        .route("/mcp", post(mcp_post).delete(|| async { StatusCode::OK }))
        .route("/readyz", get(|| async { "ready" }))
        .with_state(forwarder);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    // Out of fds or a connection reset before accept: the
                    // next one may work, as in the proxy's accept loop.
                    Err(e) => {
                        eprintln!("stdiopool-load floor: accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                // As the proxy does (src/listener/accept.rs).
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(stream, app.clone()));
            }
            // Returning drops the pipe floor's processes (killed on drop).
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
        }
    }
}

/// One HTTP/1.1 connection, with the proxy's hyper builder settings
/// (src/listener/connection.rs), minus its deadlines and accounting.
async fn serve_connection(stream: tokio::net::TcpStream, app: Router) {
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let app = app.clone();
            async move {
                let response = match app.oneshot(request.map(Body::new)).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(response)
            }
        });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// The one POST handler: the workload's three messages, answered from
/// memory (or `tools/call` forwarded, in the pipe floor).
async fn mcp_post(State(forwarder): State<Option<Arc<Forwarder>>>, body: Bytes) -> Response {
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "body is not JSON").into_response();
    };
    let Some(id) = msg.get("id").cloned() else {
        return StatusCode::ACCEPTED.into_response();
    };
    let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
    if let Some(forwarder) = forwarder.filter(|_| method == "tools/call") {
        return match forwarder.forward(&body).await {
            Ok(line) => json_response(line.into(), false),
            Err(e) => json_response(forward::error_reply(&id, &e).to_string().into(), false),
        };
    }
    let (reply, session) = match method {
        "initialize" => (
            json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": msg.pointer("/params/protocolVersion").cloned()
                    .unwrap_or_else(|| json!("2025-11-25")),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "stdiopool-floor", "version": env!("CARGO_PKG_VERSION")},
            }}),
            true,
        ),
        "tools/call" => match msg.pointer("/params/arguments/message") {
            Some(Value::String(text)) => (
                json!({"jsonrpc": "2.0", "id": id, "result": {
                    "content": [{"type": "text", "text": text}],
                }}),
                false,
            ),
            _ => (
                json!({"jsonrpc": "2.0", "id": id, "error": {
                    "code": -32602, "message": "the floor only answers echo{message}",
                }}),
                false,
            ),
        },
        _ => (
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "Method not found"}}),
            false,
        ),
    };
    match serde_json::to_vec(&reply) {
        Ok(bytes) => json_response(Body::from(bytes), session),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// An `application/json` reply, with the floor's session id after `initialize`.
fn json_response(body: Body, session: bool) -> Response {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if session {
        response
            .headers_mut()
            .insert("mcp-session-id", HeaderValue::from_static("floor"));
    }
    response
}
