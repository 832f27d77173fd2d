//! The transport checks over a real socket (hyper in the loop): raw HTTP/1.1
//! requests against the real check layers served on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::config::Config;
use crate::proxy::transport::request::{
    ALLOW_WITHOUT_GET, McpPost, TransportChecks, with_method_fallback,
};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bound on any one exchange, so a hang fails the test instead of blocking it.
const EXCHANGE_BOUND: Duration = Duration::from_secs(10);

async fn on_post(State(hits): State<Arc<AtomicUsize>>, _post: McpPost) -> Response {
    hits.fetch_add(1, Ordering::SeqCst);
    StatusCode::ACCEPTED.into_response()
}

struct Server {
    addr: std::net::SocketAddr,
    hits: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Config::load_from([
            "stdiopool",
            "--listen",
            &addr.to_string(),
            "--max-body",
            "1KiB",
            "--",
            "srv",
        ])
        .unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let checks = TransportChecks::from_config(&config);
        let app: Router = checks
            .apply(Router::new().route(
                &config.path,
                with_method_fallback(post(on_post), ALLOW_WITHOUT_GET),
            ))
            .with_state(hits.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Server {
            addr,
            hits,
            stop: Some(stop),
            task,
        }
    }

    /// Sends `head` (request line + headers, without the blank line) and
    /// `body`, returns the status code and the whole response text.
    async fn exchange(&self, head: &str, body: &[u8]) -> (u16, String) {
        tokio::time::timeout(EXCHANGE_BOUND, async {
            let mut conn = TcpStream::connect(self.addr).await.unwrap();
            conn.write_all(format!("{head}\r\nConnection: close\r\n\r\n").as_bytes())
                .await
                .unwrap();
            // The server may answer and close before reading a refused body.
            let _ = conn.write_all(body).await;
            let mut out = Vec::new();
            let _ = conn.read_to_end(&mut out).await;
            let text = String::from_utf8_lossy(&out).into_owned();
            let status = text
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            (status, text)
        })
        .await
        .expect("the exchange did not finish within its bound")
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(EXCHANGE_BOUND, &mut self.task)
            .await
            .expect("server did not stop")
            .unwrap();
    }
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#;

fn post_head(host: &str, extra: &str, len: usize) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: {host}\r\nAccept: application/json, text/event-stream\r\n\
         Content-Type: application/json\r\nContent-Length: {len}{extra}"
    )
}

#[tokio::test]
async fn dns_rebinding_is_refused_and_the_real_host_served() {
    let server = Server::start().await;
    let (status, text) = server
        .exchange(
            &post_head(
                "evil.example.com",
                "\r\nOrigin: http://evil.example.com",
                INIT.len(),
            ),
            INIT.as_bytes(),
        )
        .await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("\"code\":-32000"));
    assert_eq!(server.hits.load(Ordering::SeqCst), 0);

    let host = server.addr.to_string();
    let (status, text) = server
        .exchange(&post_head(&host, "", INIT.len()), INIT.as_bytes())
        .await;
    assert_eq!(status, 202, "{text}");
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test]
async fn oversized_declared_body_is_refused_without_waiting_for_it() {
    let server = Server::start().await;
    let host = server.addr.to_string();
    // Declares 10 MiB, sends none of it: an answer proves the body was not awaited.
    let (status, text) = server.exchange(&post_head(&host, "", 10 << 20), b"").await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("\"code\":-32000"));
    assert_eq!(server.hits.load(Ordering::SeqCst), 0);
    server.stop().await;
}

#[tokio::test]
async fn oversized_chunked_body_is_cut_off_at_the_limit() {
    let server = Server::start().await;
    let head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked",
        server.addr
    );
    let mut body = Vec::new();
    for _ in 0..20 {
        body.extend_from_slice(b"100\r\n");
        body.extend_from_slice(&[b' '; 0x100]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    let (status, text) = server.exchange(&head, &body).await;
    assert_eq!(status, 413, "{text}");
    assert_eq!(server.hits.load(Ordering::SeqCst), 0);
    server.stop().await;
}

#[tokio::test]
async fn get_in_a_mode_without_stream_is_405_with_allow() {
    let server = Server::start().await;
    let head = format!(
        "GET /mcp HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream",
        server.addr
    );
    let (status, text) = server.exchange(&head, b"").await;
    assert_eq!(status, 405, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("allow: post, delete"),
        "{text}"
    );
    server.stop().await;
}
