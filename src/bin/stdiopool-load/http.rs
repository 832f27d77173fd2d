//! The `http` target: virtual clients over keep-alive HTTP/1.1 connections,
//! speaking MCP Streamable HTTP (JSON or SSE replies).

use super::*;

/// A JSON-RPC reply body, as the proxy sent it.
pub(super) enum Reply {
    Json(Value),
    /// The `data` of every `message` event, in order.
    Sse(Vec<Value>),
}

/// One virtual client's keep-alive connection to the endpoint.
pub(super) struct HttpClient {
    pub(super) authority: String,
    pub(super) path: String,
    pub(super) sender: Option<SendRequest<Full<Bytes>>>,
    pub(super) counts: Arc<ReplyCounts>,
}

#[derive(Default)]
pub(super) struct ReplyCounts {
    pub(super) json: AtomicUsize,
    pub(super) sse: AtomicUsize,
}

/// An MCP session as the client sees it.
#[derive(Clone)]
pub(super) struct SessionInfo {
    pub(super) id: Option<String>,
    pub(super) protocol_version: String,
}

impl SessionInfo {
    /// What a modern client holds instead of a session: only its version.
    pub(super) fn modern() -> SessionInfo {
        SessionInfo {
            id: None,
            protocol_version: MODERN_VERSION.to_owned(),
        }
    }

    pub(super) fn is_modern(&self) -> bool {
        self.protocol_version == MODERN_VERSION
    }
}

impl HttpClient {
    pub(super) fn new(url: &Uri, counts: Arc<ReplyCounts>) -> anyhow::Result<Self> {
        ensure!(
            url.scheme_str() == Some("http"),
            "only http:// URLs are supported: {url}"
        );
        let authority = url
            .authority()
            .ok_or_else(|| anyhow!("URL without host: {url}"))?
            .to_string();
        Ok(HttpClient {
            authority,
            path: url.path().to_owned(),
            sender: None,
            counts,
        })
    }

    pub(super) async fn sender(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        let alive = self.sender.as_ref().is_some_and(|s| !s.is_closed());
        if !alive {
            let tcp = TcpStream::connect(&self.authority)
                .await
                .with_context(|| format!("connecting to {}", self.authority))?;
            tcp.set_nodelay(true)?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(async move {
                // The connection ends when the sender is dropped or the peer closes.
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        self.sender.as_mut().ok_or_else(|| anyhow!("no connection"))
    }

    /// POSTs one message; returns the status, the session id header and the reply.
    pub(super) async fn post(
        &mut self,
        session: Option<&SessionInfo>,
        body: &Value,
    ) -> anyhow::Result<(StatusCode, Option<String>, Option<Reply>)> {
        let mut req = Request::post(self.path.as_str())
            .header(HOST, self.authority.as_str())
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json");
        if let Some(s) = session {
            if let Some(id) = &s.id {
                req = req.header("mcp-session-id", id.as_str());
            }
            req = req.header("mcp-protocol-version", s.protocol_version.as_str());
            if s.is_modern() {
                // The routing headers mirror the body (2026-07-28).
                if let Some(method) = body.get("method").and_then(Value::as_str) {
                    req = req.header("mcp-method", method);
                }
                if let Some(name) = body.pointer("/params/name").and_then(Value::as_str) {
                    req = req.header("mcp-name", name);
                }
            }
        }
        let req = req.body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
        let sender = self.sender().await?;
        sender.ready().await?;
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(e.into());
            }
        };
        let status = resp.status();
        let session_id = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if status == StatusCode::ACCEPTED || bytes.is_empty() {
            return Ok((status, session_id, None));
        }
        let reply = if content_type.starts_with("application/json") {
            self.counts.json.fetch_add(1, Ordering::Relaxed);
            Reply::Json(serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "HTTP {status}: body is not JSON: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })?)
        } else if content_type.starts_with("text/event-stream") {
            self.counts.sse.fetch_add(1, Ordering::Relaxed);
            Reply::Sse(parse_sse(&bytes)?)
        } else {
            bail!("HTTP {status}: unexpected content type {content_type:?}");
        };
        Ok((status, session_id, Some(reply)))
    }

    /// Sends request `id` and returns its response's `result`, whether the
    /// reply was JSON or an SSE stream (where it must be the last message).
    pub(super) async fn call(
        &mut self,
        session: Option<&SessionInfo>,
        body: &Value,
        id: u64,
    ) -> anyhow::Result<(Option<String>, Value)> {
        let (status, session_id, reply) = self.post(session, body).await?;
        let msg = match reply {
            Some(Reply::Json(v)) => v,
            Some(Reply::Sse(mut events)) => {
                // Events before the response may only be requests or
                // notifications (no id-carrying responses to anyone else).
                let last = events
                    .pop()
                    .ok_or_else(|| anyhow!("SSE reply to {id} without events"))?;
                for ev in &events {
                    ensure!(
                        ev.get("method").is_some(),
                        "SSE reply to {id} carried a foreign response: {ev}"
                    );
                }
                last
            }
            None => bail!("HTTP {status} without a body for request {id}"),
        };
        ensure!(
            status == StatusCode::OK,
            "HTTP {status} for request {id}: {msg}"
        );
        let result = check_response(&msg, id)?.clone();
        Ok((session_id, result))
    }

    pub(super) async fn open_session(
        &mut self,
        ids: &IdSource,
        era: Era,
    ) -> anyhow::Result<SessionInfo> {
        if era == Era::Modern {
            return Ok(SessionInfo::modern());
        }
        let id = ids.next();
        let (session_id, result) = self.call(None, &initialize_request(id), id).await?;
        let protocol_version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("InitializeResult without protocolVersion: {result}"))?
            .to_owned();
        let session = SessionInfo {
            id: session_id,
            protocol_version,
        };
        let (status, _, _) = self
            .post(Some(&session), &initialized_notification())
            .await?;
        ensure!(
            status == StatusCode::ACCEPTED,
            "notifications/initialized answered with HTTP {status}"
        );
        Ok(session)
    }

    pub(super) async fn close_session(&mut self, session: &SessionInfo) -> anyhow::Result<()> {
        let Some(id) = &session.id else {
            return Ok(());
        };
        let req = Request::delete(self.path.as_str())
            .header(HOST, self.authority.as_str())
            .header("mcp-session-id", id.as_str())
            .header("mcp-protocol-version", session.protocol_version.as_str())
            .body(Full::new(Bytes::new()))?;
        let sender = self.sender().await?;
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let _ = resp.into_body().collect().await?;
        ensure!(status.is_success(), "DELETE answered with HTTP {status}");
        Ok(())
    }
}

/// The `data` of each event of a complete SSE body, parsed as JSON. Comments
/// (keep-alives) and other fields are skipped; multi-line data is joined.
pub(super) fn parse_sse(bytes: &[u8]) -> anyhow::Result<Vec<Value>> {
    let text = std::str::from_utf8(bytes).context("SSE body is not UTF-8")?;
    let mut events = Vec::new();
    let mut data = String::new();
    let mut has_data = false;
    let mut flush = |data: &mut String, has_data: &mut bool| -> anyhow::Result<()> {
        if *has_data {
            events.push(
                serde_json::from_str(data)
                    .with_context(|| format!("SSE data is not JSON: {data}"))?,
            );
        }
        data.clear();
        *has_data = false;
        Ok(())
    };
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            flush(&mut data, &mut has_data)?;
        } else if let Some(rest) = line.strip_prefix("data:") {
            if has_data {
                data.push('\n');
            }
            data.push_str(rest.strip_prefix(' ').unwrap_or(rest));
            has_data = true;
        }
    }
    flush(&mut data, &mut has_data)?;
    Ok(events)
}

pub(super) async fn run_http(args: HttpArgs) -> anyhow::Result<Report> {
    let common = &args.common;
    let counts = Arc::new(ReplyCounts::default());
    let ids = Arc::new(IdSource(AtomicU64::new(1)));
    let mut clients = Vec::new();
    for _ in 0..common.concurrency {
        clients.push(HttpClient::new(&args.url, Arc::clone(&counts))?);
    }
    let mut opened = 0;
    let era = args.era;

    // Idle sessions first, spread over the clients' connections.
    let mut idle_sessions = Vec::new();
    if args.open_sessions > 0 {
        let per = args.open_sessions.div_ceil(common.concurrency);
        let mut tasks = Vec::new();
        for (i, mut client) in clients.into_iter().enumerate() {
            let ids = Arc::clone(&ids);
            let n = per.min(args.open_sessions.saturating_sub(i as u64 * per));
            tasks.push(tokio::spawn(async move {
                let mut sessions = Vec::new();
                for _ in 0..n {
                    sessions.push(client.open_session(&ids, era).await?);
                }
                anyhow::Ok((client, sessions))
            }));
        }
        clients = Vec::new();
        for t in tasks {
            let (client, sessions) = t.await??;
            clients.push(client);
            idle_sessions.extend(sessions);
        }
        opened += idle_sessions.len();
    }

    // The sessions that carry the load.
    let shared = match args.sessions {
        SessionPolicy::Shared => {
            let first = clients.first_mut().ok_or_else(|| anyhow!("no client"))?;
            opened += usize::from(era == Era::Legacy);
            Some(first.open_session(&ids, args.era).await?)
        }
        SessionPolicy::PerClient => None,
    };
    let mut sessions = Vec::new();
    {
        let mut tasks = Vec::new();
        for mut client in clients {
            let ids = Arc::clone(&ids);
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                let session = match shared {
                    Some(s) => s,
                    None => client.open_session(&ids, era).await?,
                };
                anyhow::Ok((client, session))
            }));
        }
        for t in tasks {
            sessions.push(t.await??);
        }
        if shared.is_none() && era == Era::Legacy {
            opened += sessions.len();
        }
    }

    let payload_bytes = common.payload_bytes;
    let timeout = common.timeout;
    let drive = |sessions: Vec<(HttpClient, SessionInfo)>, schedule: Arc<Schedule>| {
        let ids = Arc::clone(&ids);
        async move {
            let mut tasks = Vec::new();
            for (worker, (mut client, session)) in sessions.into_iter().enumerate() {
                let schedule = Arc::clone(&schedule);
                let ids = Arc::clone(&ids);
                tasks.push(tokio::spawn(async move {
                    let mut result = WorkerResult::default();
                    while let Some(n) = schedule.take() {
                        let id = ids.next();
                        let message = payload(worker as u64, n, payload_bytes);
                        let body = echo_request(id, &message, &session);
                        let started = Instant::now();
                        let outcome =
                            tokio::time::timeout(timeout, client.call(Some(&session), &body, id))
                                .await
                                .map_err(|_| anyhow!("request {id} timed out after {timeout:?}"))
                                .and_then(|r| r)
                                .and_then(|(_, res)| check_echo(&res, &message));
                        if outcome.is_err() {
                            // The connection's state is unknown: start afresh.
                            client.sender = None;
                        }
                        result.record(outcome, started);
                    }
                    (client, session, result)
                }));
            }
            let mut back = Vec::new();
            let mut results = Vec::new();
            for t in tasks {
                let (client, session, result) = t.await?;
                back.push((client, session));
                results.push(result);
            }
            anyhow::Ok((back, results))
        }
    };

    let mut warm_errors = 0;
    if common.warmup > 0 {
        let (back, results) = drive(
            sessions,
            Arc::new(Schedule::new(common.warmup, common.duration)),
        )
        .await?;
        sessions = back;
        warm_errors = results.iter().map(|r| r.errors).sum::<u64>();
    }
    counts.json.store(0, Ordering::Relaxed);
    counts.sse.store(0, Ordering::Relaxed);
    let started = Instant::now();
    let (mut sessions, results) = drive(
        sessions,
        Arc::new(Schedule::new(common.requests, common.duration)),
    )
    .await?;
    let elapsed = started.elapsed();
    let mut report = Report::new("http", results, elapsed);
    report.errors += warm_errors;
    report.replies_json = counts.json.load(Ordering::Relaxed);
    report.replies_sse = counts.sse.load(Ordering::Relaxed);
    report.sessions_opened = opened;

    if !args.keep_sessions {
        let mut ended = std::collections::HashSet::new();
        let mut to_end: Vec<SessionInfo> = idle_sessions;
        to_end.extend(sessions.iter().map(|(_, s)| s.clone()));
        if let Some((client, _)) = sessions.first_mut() {
            for s in to_end {
                if s.id.as_ref().is_some_and(|id| ended.insert(id.clone())) {
                    client.close_session(&s).await?;
                }
            }
        }
    }
    Ok(report)
}

// ---------------------------------------------------------------- stdio

pub(super) type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;
