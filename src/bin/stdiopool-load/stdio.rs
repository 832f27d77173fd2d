//! The `stdio` target: the same requests written straight to a spawned
//! server's stdin, pipelined and matched by id (the physical limit).

use super::*;

/// A server process driven directly over its stdin/stdout.
pub(super) struct StdioServer {
    pub(super) child: Child,
    pub(super) stdin: tokio::sync::Mutex<ChildStdin>,
    pub(super) waiters: Waiters,
}

/// Spawns `command` with piped stdin and stdout (stderr discarded), killed
/// when its `Child` is dropped.
pub(super) fn spawn_piped(command: &[String]) -> anyhow::Result<(Child, ChildStdin, ChildStdout)> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| anyhow!("no command given"))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawning {program}"))?;
    let stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    Ok((child, stdin, stdout))
}

impl StdioServer {
    pub(super) async fn spawn(command: &[String], timeout: Duration) -> anyhow::Result<Self> {
        let (child, stdin, stdout) = spawn_piped(command)?;
        let waiters: Waiters = Arc::default();
        let reader_waiters = Arc::clone(&waiters);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(msg) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if msg.get("method").is_some() {
                    continue; // server notifications and requests: not ours to wait on
                }
                let Some(id) = msg.get("id").and_then(Value::as_u64) else {
                    continue;
                };
                let waiter = reader_waiters
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&id);
                if let Some(tx) = waiter {
                    let _ = tx.send(msg);
                }
            }
            // EOF: dropping the senders fails every waiter at once.
            reader_waiters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        });
        let server = StdioServer {
            child,
            stdin: tokio::sync::Mutex::new(stdin),
            waiters,
        };
        let init = tokio::time::timeout(timeout, server.call(0, &initialize_request(0)))
            .await
            .map_err(|_| anyhow!("initialize not answered within {timeout:?}"))??;
        check_response(&init, 0)?;
        server.send(&initialized_notification()).await?;
        Ok(server)
    }

    pub(super) async fn send(&self, msg: &Value) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(msg)?;
        line.push(b'\n');
        let mut stdin = self.stdin.lock().await;
        stdin.write_all(&line).await?;
        stdin.flush().await?;
        Ok(())
    }

    pub(super) async fn call(&self, id: u64, msg: &Value) -> anyhow::Result<Value> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, tx);
        if let Err(e) = self.send(msg).await {
            self.waiters
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
            return Err(e);
        }
        rx.await
            .map_err(|_| anyhow!("server closed stdout before answering {id}"))
    }

    /// Closes stdin (the MCP stdio shutdown), waits a little, then kills.
    pub(super) async fn stop(mut self) {
        drop(self.stdin);
        if tokio::time::timeout(Duration::from_secs(2), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

pub(super) async fn run_stdio(args: StdioArgs) -> anyhow::Result<Report> {
    let common = args.common;
    let server = Arc::new(StdioServer::spawn(&args.command, common.timeout).await?);
    let ids = Arc::new(IdSource(AtomicU64::new(1)));
    let legacy = SessionInfo {
        id: None,
        protocol_version: PROTOCOL_VERSION.to_owned(),
    };
    let drive = |limit: u64| {
        let schedule = Arc::new(Schedule::new(limit, common.duration));
        let mut tasks = Vec::new();
        for worker in 0..common.concurrency {
            let schedule = Arc::clone(&schedule);
            let server = Arc::clone(&server);
            let ids = Arc::clone(&ids);
            let (payload_bytes, timeout) = (common.payload_bytes, common.timeout);
            let legacy = legacy.clone();
            tasks.push(tokio::spawn(async move {
                let mut result = WorkerResult::default();
                while let Some(n) = schedule.take() {
                    let id = ids.next();
                    let message = payload(worker, n, payload_bytes);
                    // Straight to the server: its own (legacy) shape.
                    let body = echo_request(id, &message, &legacy);
                    let started = Instant::now();
                    let outcome = tokio::time::timeout(timeout, server.call(id, &body))
                        .await
                        .map_err(|_| anyhow!("request {id} timed out after {timeout:?}"))
                        .and_then(|r| r)
                        .and_then(|msg| {
                            let result = check_response(&msg, id)?;
                            check_echo(result, &message)
                        });
                    result.record(outcome, started);
                }
                result
            }));
        }
        async move {
            let mut results = Vec::new();
            for t in tasks {
                results.push(t.await?);
            }
            anyhow::Ok(results)
        }
    };
    let mut warm_errors = 0;
    if common.warmup > 0 {
        warm_errors = drive(common.warmup)
            .await?
            .iter()
            .map(|r| r.errors)
            .sum::<u64>();
    }
    let started = Instant::now();
    let results = drive(common.requests).await?;
    let mut report = Report::new("stdio", results, started.elapsed());
    report.errors += warm_errors;
    if let Ok(server) = Arc::try_unwrap(server) {
        server.stop().await;
    }
    Ok(report)
}
