//! A minimal MCP client session over the proxy: initialize, requests and
//! tool calls, reading JSON and SSE replies alike.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{ACCEPT_BOTH, ProxyProcess, Reply, Req};

/// The protocol version the tests speak.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// A minimal MCP client session over the proxy.
#[derive(Debug)]
pub struct Mcp {
    addr: SocketAddr,
    path: String,
    pub session: String,
    pub token: Option<String>,
    next_id: AtomicU64,
}

/// An `initialize` request body with `capabilities`.
pub fn initialize_body(id: u64, capabilities: Value) -> Value {
    json!({
        "jsonrpc": "2.0", "id": id, "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": capabilities,
            "clientInfo": {"name": "stdiopool-e2e", "version": "0"},
        },
    })
}

impl Mcp {
    /// Initializes a session (no client capabilities) and sends `initialized`.
    pub async fn connect(proxy: &ProxyProcess) -> Mcp {
        Self::connect_with(proxy, json!({}), None).await
    }

    /// Initializes a session at the MCP endpoint `path` of `proxy` (one of a
    /// server list's `/servers/<name>/mcp`).
    pub async fn connect_path(proxy: &ProxyProcess, path: &str) -> Mcp {
        let reply = Req::new(proxy.addr, Method::POST, path)
            .header("accept", ACCEPT_BOTH)
            .header("content-type", "application/json")
            .body(initialize_body(0, json!({})).to_string())
            .send()
            .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "initialize at {path}: {}",
            reply.text()
        );
        let session = reply
            .header("mcp-session-id")
            .expect("initialize reply without Mcp-Session-Id")
            .to_owned();
        let mcp = Mcp {
            addr: proxy.addr,
            path: path.to_owned(),
            session,
            token: None,
            next_id: AtomicU64::new(1),
        };
        let reply = mcp
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .send()
            .await;
        assert_eq!(
            reply.status,
            StatusCode::ACCEPTED,
            "initialized: {}",
            reply.text()
        );
        mcp
    }

    /// Initializes a session and stops there: the client's
    /// `notifications/initialized` is left to [`Mcp::initialized`].
    pub async fn initialize_only(proxy: &ProxyProcess) -> Mcp {
        let reply = proxy
            .post(initialize_body(0, json!({})).to_string())
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::OK, "initialize: {}", reply.text());
        let session = reply
            .header("mcp-session-id")
            .expect("initialize reply without Mcp-Session-Id")
            .to_owned();
        Mcp {
            addr: proxy.addr,
            path: proxy.path.clone(),
            session,
            token: None,
            next_id: AtomicU64::new(1),
        }
    }

    /// Sends `notifications/initialized`; returns the reply (202 expected).
    pub async fn initialized(&self) -> Reply {
        self.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .send()
            .await
    }

    /// Initializes a session with `capabilities` and an optional bearer token.
    pub async fn connect_with(
        proxy: &ProxyProcess,
        capabilities: Value,
        token: Option<&str>,
    ) -> Mcp {
        let mut req = proxy.post(initialize_body(0, capabilities).to_string());
        if let Some(t) = token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        let reply = req.send().await;
        assert_eq!(reply.status, StatusCode::OK, "initialize: {}", reply.text());
        let response = reply.response();
        assert!(
            response.get("result").is_some(),
            "initialize failed: {response}"
        );
        let session = reply
            .header("mcp-session-id")
            .expect("initialize reply without Mcp-Session-Id")
            .to_owned();
        let mcp = Mcp {
            addr: proxy.addr,
            path: proxy.path.clone(),
            session,
            token: token.map(str::to_owned),
            next_id: AtomicU64::new(1),
        };
        let reply = mcp
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .send()
            .await;
        assert_eq!(
            reply.status,
            StatusCode::ACCEPTED,
            "initialized: {}",
            reply.text()
        );
        mcp
    }

    /// The same session, presented with another bearer token.
    pub fn with_token(&self, token: &str) -> Mcp {
        Mcp {
            addr: self.addr,
            path: self.path.clone(),
            session: self.session.clone(),
            token: Some(token.to_owned()),
            next_id: AtomicU64::new(1000),
        }
    }

    /// The same session id, presented to another proxy (`addr`) with `token`.
    pub fn elsewhere(&self, addr: std::net::SocketAddr, token: &str) -> Mcp {
        Mcp {
            addr,
            ..self.with_token(token)
        }
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A POST of `message` with this session's headers.
    pub fn post(&self, message: Value) -> Req {
        let mut req = Req::new(self.addr, Method::POST, &self.path)
            .header("accept", ACCEPT_BOTH)
            .header("content-type", "application/json")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .body(message.to_string());
        if let Some(t) = &self.token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        req
    }

    /// A request with this session's headers and `method`, no body.
    pub fn request(&self, method: Method) -> Req {
        let mut req = Req::new(self.addr, method, &self.path)
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", PROTOCOL_VERSION);
        if let Some(t) = &self.token {
            req = req.header("authorization", &format!("Bearer {t}"));
        }
        req
    }

    /// The POST of a `tools/call` with id `id`.
    pub fn tool_req(&self, id: u64, name: &str, arguments: Value) -> Req {
        self.post(json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        }))
    }

    /// Calls a tool; returns the whole HTTP reply.
    pub async fn call_tool_reply(&self, name: &str, arguments: Value) -> Reply {
        self.tool_req(self.next_id(), name, arguments).send().await
    }

    /// Calls a tool and returns the JSON-RPC response (checking its id).
    pub async fn call_tool(&self, name: &str, arguments: Value) -> Value {
        let id = self.next_id();
        let reply = self.tool_req(id, name, arguments).send().await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "tools/call {name}: {}",
            reply.text()
        );
        let response = reply.response();
        assert_eq!(
            response["id"],
            json!(id),
            "response for another id: {response}"
        );
        response
    }

    /// The pid of the server process that answered.
    pub async fn pid(&self) -> u32 {
        let response = self.call_tool("pid", json!({})).await;
        response["result"]["structuredContent"]["pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("pid tool: {response}")) as u32
    }

    /// The `requestId`s of `notifications/cancelled` the answering process got.
    pub async fn cancellations(&self) -> Vec<Value> {
        let response = self.call_tool("cancellations", json!({})).await;
        response["result"]["structuredContent"]["cancelled"]
            .as_array()
            .unwrap_or_else(|| panic!("cancellations tool: {response}"))
            .clone()
    }

    /// DELETE of this session.
    pub async fn delete(&self) -> Reply {
        self.request(Method::DELETE).send().await
    }
}

/// The text of a tool result's first content item.
pub fn result_text(response: &Value) -> &str {
    response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text result in {response}"))
}
