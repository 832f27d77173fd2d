//! The pipe floor: `stdiopool-load floor --processes N -- CMD…` forwards
//! each `tools/call` to one of N warm copies of CMD over its stdin/stdout,
//! doing the least an HTTP-to-stdio forwarder can do, so that a run can say
//! what "HTTP plus one pipe round trip" costs on this machine, apart from
//! what stdiopool adds on top of it.
//!
//! What it leaves out, on purpose: no parse of the request (the client's
//! body is written as the line, its id unchanged, since a checked-out
//! process has exactly one request in flight), no parse of the reply beyond
//! finding the line that answers (a line carrying `"id"` and no `"method"`),
//! no task but the request's own (it writes the line and reads the reply
//! itself: no writer or reader task, no channel), no stderr, restart,
//! deadline or cancellation upstream.
//!
//! Invariant: a process serves one request at a time (taken from the idle
//! list under a semaphore with one permit per process, put back after the
//! reply). A request whose future is dropped mid-exchange takes its process
//! down with it (killed on drop) and the permit with it, so the floor never
//! hands out a process whose pipe holds half an exchange; the floor then has
//! one process fewer (the load generator never cancels, so a run does not).

use std::sync::{Mutex, PoisonError};

use anyhow::{anyhow, bail};
use axum::body::Bytes;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::Semaphore;

/// One warm server process, driven by whoever holds it.
struct Upstream {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    // Held for kill_on_drop: dropping an Upstream kills its process.
    _child: Child,
    line: Vec<u8>,
}

impl Upstream {
    async fn spawn(command: &[String]) -> anyhow::Result<Self> {
        let (child, stdin, stdout) = super::spawn_piped(command)?;
        let mut upstream = Upstream {
            stdin,
            stdout: BufReader::new(stdout),
            _child: child,
            line: Vec::new(),
        };
        let initialize = super::initialize_request(0).to_string();
        upstream.exchange(initialize.as_bytes()).await?;
        let initialized = super::initialized_notification().to_string();
        upstream.write_line(initialized.as_bytes()).await?;
        Ok(upstream)
    }

    async fn write_line(&mut self, message: &[u8]) -> anyhow::Result<()> {
        if message.contains(&b'\n') {
            bail!("a message with a raw newline cannot be one line");
        }
        // One write of the whole line, as the proxy's direct write does.
        let mut line = Vec::with_capacity(message.len() + 1);
        line.extend_from_slice(message);
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        Ok(())
    }

    /// Writes `message` as one line and returns the line that answers it.
    async fn exchange(&mut self, message: &[u8]) -> anyhow::Result<Bytes> {
        self.write_line(message).await?;
        loop {
            self.line.clear();
            if self.stdout.read_until(b'\n', &mut self.line).await? == 0 {
                bail!("the server closed stdout");
            }
            if answers(&self.line) {
                return Ok(Bytes::copy_from_slice(self.line.trim_ascii_end()));
            }
        }
    }
}

/// Whether a line is a response (it has an id and no method) rather than a
/// notification or a request of the server's: a scan of the top level that
/// builds nothing.
fn answers(line: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        id: Option<IgnoredAny>,
        method: Option<IgnoredAny>,
    }
    matches!(
        serde_json::from_slice::<Probe>(line),
        Ok(Probe {
            id: Some(_),
            method: None
        })
    )
}

/// N warm processes, each lent to one request at a time.
pub(super) struct Forwarder {
    idle: Mutex<Vec<Upstream>>,
    permits: Semaphore,
}

impl Forwarder {
    /// Spawns and initializes `processes` copies of `command`.
    pub(super) async fn start(command: &[String], processes: usize) -> anyhow::Result<Self> {
        let mut idle = Vec::with_capacity(processes);
        for _ in 0..processes {
            idle.push(Upstream::spawn(command).await?);
        }
        Ok(Forwarder {
            idle: Mutex::new(idle),
            permits: Semaphore::new(processes),
        })
    }

    /// Sends `body` (one JSON-RPC request) to an idle process and returns
    /// its reply line, the client's id in it.
    pub(super) async fn forward(&self, body: &[u8]) -> anyhow::Result<Bytes> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| anyhow!("the floor is stopping"))?;
        let taken = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let Some(mut upstream) = taken else {
            // A permit with no process: one was lost with a dropped request.
            permit.forget();
            bail!("no process left");
        };
        // Until the exchange ends, a drop of this future drops the process
        // and must not give its permit back (see the invariant above).
        let mut lent = Lent {
            permit: Some(permit),
            returned: false,
        };
        let reply = upstream.exchange(body).await;
        if reply.is_ok() {
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(upstream);
            lent.returned = true;
        }
        // A broken process is not put back; its permit goes with it.
        reply
    }
}

/// A lent process's permit: given back when the process was put back,
/// forgotten otherwise (an error, or the request's future dropped
/// mid-exchange, which drops the process).
struct Lent<'a> {
    permit: Option<tokio::sync::SemaphorePermit<'a>>,
    returned: bool,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take()
            && !self.returned
        {
            permit.forget();
        }
    }
}

/// The reply body of a forwarded call, or a JSON-RPC error in its place.
pub(super) fn error_reply(id: &Value, e: &anyhow::Error) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32603, "message": e.to_string()}})
}
