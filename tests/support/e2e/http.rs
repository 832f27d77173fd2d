//! One HTTP/1.1 exchange per TCP connection (hyper's client connection),
//! whole replies or streamed SSE events, every wait bounded by [`LIMIT`].

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::LIMIT;

/// One HTTP request, sent on its own connection.
#[derive(Debug, Clone)]
pub struct Req {
    addr: SocketAddr,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    pub fn new(addr: SocketAddr, method: Method, path: &str) -> Req {
        Req {
            addr,
            method,
            path: path.to_owned(),
            headers: vec![("host".into(), addr.to_string())],
            body: Vec::new(),
        }
    }

    /// Sets `name` (replacing an earlier value).
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self = self.without(name);
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// Removes `name`.
    pub fn without(mut self, name: &str) -> Req {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    /// The same request with another method.
    pub fn method(mut self, method: Method) -> Req {
        self.method = method;
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Req {
        self.body = body.into();
        self
    }

    /// Sends the request and returns the response head with its body still
    /// streaming; the connection lives as long as the returned value (or,
    /// before the head, as long as this future).
    pub async fn open(self) -> Open {
        self.try_open()
            .await
            .unwrap_or_else(|e| panic!("HTTP exchange failed: {e}"))
    }

    /// [`Req::open`], with a failed exchange (refused, reset, closed before
    /// the head) as an error instead of a panic.
    pub async fn try_open(self) -> Result<Open, String> {
        tokio::time::timeout(LIMIT, async move {
            let stream = TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            // Dropping this future before the head arrives closes the socket.
            let conn = AbortOnDrop(tokio::spawn(async move {
                let _ = conn.await;
            }));
            let mut builder = Request::builder().method(self.method).uri(self.path);
            for (name, value) in &self.headers {
                builder = builder.header(name, value);
            }
            let request = builder.body(Full::new(Bytes::from(self.body))).unwrap();
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("request: {e}"))?;
            let (parts, body) = response.into_parts();
            Ok(Open {
                status: parts.status,
                headers: parts.headers,
                body,
                conn,
            })
        })
        .await
        .expect("no response head within the limit")
    }

    /// Sends the request and reads the whole response.
    pub async fn send(self) -> Reply {
        let open = self.open().await;
        open.collect().await
    }

    /// [`Req::send`] without panicking on a failed exchange.
    pub async fn try_send(self) -> Result<Reply, String> {
        let open = self.try_open().await?;
        let body = tokio::time::timeout(LIMIT, open.body.collect())
            .await
            .expect("body not complete within the limit")
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok(Reply {
            status: open.status,
            headers: open.headers,
            body,
        })
    }
}

/// Aborts the connection task (closing the socket) when dropped.
#[derive(Debug)]
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A response whose body has not been read yet.
#[derive(Debug)]
pub struct Open {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Incoming,
    conn: AbortOnDrop,
}

impl Open {
    pub async fn collect(self) -> Reply {
        let body = tokio::time::timeout(LIMIT, self.body.collect())
            .await
            .expect("body not complete within the limit")
            .unwrap()
            .to_bytes();
        Reply {
            status: self.status,
            headers: self.headers,
            body,
        }
    }

    pub fn is_sse(&self) -> bool {
        content_type(&self.headers).starts_with("text/event-stream")
    }

    /// Reads the body as an SSE stream.
    pub fn sse(self) -> SseReader {
        SseReader {
            body: self.body,
            buf: Vec::new(),
            _conn: self.conn,
        }
    }
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    }

    /// The body as one JSON value.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// The JSON-RPC messages of the body, whether JSON or SSE.
    pub fn messages(&self) -> Vec<Value> {
        if content_type(&self.headers).starts_with("text/event-stream") {
            parse_sse(&self.text())
        } else if self.body.is_empty() {
            Vec::new()
        } else {
            vec![self.json()]
        }
    }

    /// The last message of the reply: the response to the request.
    pub fn response(&self) -> Value {
        self.messages()
            .pop()
            .unwrap_or_else(|| panic!("no message in the reply ({}): {}", self.status, self.text()))
    }

    /// The `error.code` of a JSON error body.
    pub fn error_code(&self) -> i64 {
        self.json()["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("no error code in {}", self.text()))
    }

    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// The `data:` payloads of complete SSE events, as JSON.
pub fn parse_sse(text: &str) -> Vec<Value> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(event_data)
        .map(|d| {
            serde_json::from_str(&d).unwrap_or_else(|e| panic!("SSE data not JSON ({e}): {d}"))
        })
        .collect()
}

fn event_data(event: &str) -> Option<String> {
    let data: Vec<&str> = event
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    (!data.is_empty()).then(|| data.join("\n"))
}

/// Reads SSE events one at a time from a streaming body.
#[derive(Debug)]
pub struct SseReader {
    body: Incoming,
    buf: Vec<u8>,
    _conn: AbortOnDrop,
}

impl SseReader {
    /// The next message, or `None` when the stream ends; panics after [`LIMIT`].
    pub async fn next(&mut self) -> Option<Value> {
        tokio::time::timeout(LIMIT, self.next_unbounded())
            .await
            .expect("no SSE event within the limit")
    }

    async fn next_unbounded(&mut self) -> Option<Value> {
        loop {
            let text = String::from_utf8_lossy(&self.buf).replace("\r\n", "\n");
            if let Some(end) = text.find("\n\n") {
                let event = text[..end].to_owned();
                self.buf = text.as_bytes()[end + 2..].to_vec();
                if let Some(data) = event_data(&event) {
                    return Some(serde_json::from_str(&data).unwrap());
                }
                continue; // a comment (keep-alive) or an event without data
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(_)) | None => return None,
            }
        }
    }
}
