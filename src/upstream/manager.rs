//! The pool [`Manager`] for upstream stdio MCP servers.
//!
//! `create` spawns a process, wraps it in a [`Connection`] and (unless the
//! handshake is turned off for session mode) runs MCP's `initialize` /
//! `notifications/initialized` declaring only the client capabilities the
//! caller relays (`UpstreamConfig::client_capabilities`; none by default), so
//! the server never sends requests no pooled client could answer. Without the handshake
//! (session mode), a process that dies before serving any call counts as a
//! failed creation: the next `create` returns that failure (command, cause,
//! stderr tail), so the pool backs off instead of respawning a command that
//! exits at start. `recycle` checks the process is alive and, after
//! `ping_after_idle` of silence, that it answers `ping`. `is_broken` reads
//! the connection's flag.
//!
//! Invariant: a failed `create` leaves nothing running — the half-made
//! connection is shut down with the stop sequence before the error returns,
//! and the error carries the command and the last stderr lines.

use std::ffi::OsStr;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::json;

use crate::accounting::Accounting;
use crate::framing::DEFAULT_MAX_FRAME_BYTES;
use crate::jsonrpc::ErrorObject;
use crate::pool::{Manager, ObjectMeta};
use crate::upstream::connection::{CallError, Connection, OutgoingRequest};
use crate::upstream::process::{ChildProcess, ProcessSpec, SpawnError, StopReason};

/// The MCP protocol version the handshake asks for by default.
pub const DEFAULT_PROTOCOL_VERSION: &str = "2025-11-25";

/// How a pool's server processes are made and checked.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// What to run.
    pub spec: ProcessSpec,
    /// The `protocolVersion` the handshake requests.
    pub protocol_version: String,
    /// Run `initialize` on create (pooled mode). Off for session mode, where
    /// the client's own `initialize` is forwarded through `call`.
    pub handshake: bool,
    /// How long the handshake may take (covers `npx`/`uvx` cold starts).
    pub handshake_timeout: Duration,
    /// Largest line accepted from the server.
    pub max_frame: usize,
    /// On checkout, a connection silent for longer than this must answer `ping`.
    pub ping_after_idle: Duration,
    /// How long that `ping` may take.
    pub ping_timeout: Duration,
    /// Where spawns, exits and restarts are counted.
    pub accounting: Arc<Accounting>,
    /// The `capabilities` the handshake declares. Non-empty: the caller
    /// relays the server's requests for them to its own clients while a
    /// request is in flight, so the connection lets them travel on that
    /// request's stream (`Connection::relay_server_requests`).
    pub client_capabilities: serde_json::Map<String, serde_json::Value>,
}

impl UpstreamConfig {
    /// Defaults: protocol 2025-11-25, handshake on (60 s), 16 MiB frames,
    /// ping after 30 s idle with a 5 s timeout.
    pub fn new(spec: ProcessSpec, accounting: Arc<Accounting>) -> Self {
        Self {
            spec,
            protocol_version: DEFAULT_PROTOCOL_VERSION.to_owned(),
            handshake: true,
            handshake_timeout: Duration::from_secs(60),
            max_frame: DEFAULT_MAX_FRAME_BYTES,
            ping_after_idle: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(5),
            accounting,
            client_capabilities: serde_json::Map::new(),
        }
    }
}

/// What kind of spawn failure (see [`SpawnError`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnFailure {
    /// The program was not found.
    NotFound,
    /// The program may not be executed.
    PermissionDenied,
    /// The working directory is not a directory.
    BadCwd,
    /// Anything else (out of fds, out of processes).
    Other,
}

/// Why an upstream process could not be made or kept. `Clone` so the pool
/// can hand one creation failure to every waiter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum UpstreamError {
    /// The process could not be started.
    #[error("cannot start `{command}`: {reason}")]
    Spawn {
        /// The command line.
        command: String,
        /// What kind of failure.
        kind: SpawnFailure,
        /// The spawn error's text.
        reason: String,
    },
    /// The process exited (or closed stdout) before completing the handshake.
    #[error("`{command}` exited at start ({cause}){}", tail_suffix(.stderr_tail))]
    ExitedAtStart {
        /// The command line.
        command: String,
        /// How it ended.
        cause: String,
        /// Its last stderr lines.
        stderr_tail: Vec<String>,
    },
    /// The server answered `initialize` with an error.
    #[error("`{command}` refused initialize: {error}")]
    HandshakeRejected {
        /// The command line.
        command: String,
        /// The server's error.
        error: ErrorObject,
    },
    /// The server broke the protocol during the handshake.
    #[error("`{command}` broke the protocol during initialize: {error}")]
    HandshakeProtocol {
        /// The command line.
        command: String,
        /// What went wrong.
        error: ErrorObject,
    },
    /// The server did not answer `initialize` in time.
    #[error("`{command}` did not answer initialize within {timeout:?}{}", tail_suffix(.stderr_tail))]
    HandshakeTimeout {
        /// The command line.
        command: String,
        /// The limit.
        timeout: Duration,
        /// Its last stderr lines.
        stderr_tail: Vec<String>,
    },
    /// On checkout: the connection is broken (exited, stdout closed, bad stream).
    #[error("upstream process {pid} is broken: {reason}")]
    Broken {
        /// Its pid.
        pid: u32,
        /// Why.
        reason: String,
    },
    /// On checkout: it did not answer `ping`.
    #[error("upstream process {pid} failed its health check: {reason}")]
    Unhealthy {
        /// Its pid.
        pid: u32,
        /// Why.
        reason: String,
    },
}

impl UpstreamError {
    /// The JSON-RPC error a client gets when no process could serve it
    /// (-32003, upstream unavailable), naming the cause.
    pub fn to_error_object(&self) -> ErrorObject {
        let err = ErrorObject::upstream_unavailable(self);
        match self {
            UpstreamError::ExitedAtStart { stderr_tail, .. }
            | UpstreamError::HandshakeTimeout { stderr_tail, .. } => {
                err.with_data(json!({ "stderr": stderr_tail }))
            }
            _ => err,
        }
    }
}

fn tail_suffix(tail: &[String]) -> String {
    if tail.is_empty() {
        "; it wrote nothing to stderr".to_owned()
    } else {
        format!("; last stderr lines: {}", tail.join(" | "))
    }
}

/// The command line of `spec` for messages: program and arguments, quoted
/// where a shell would need it (display only; nothing runs through a shell).
pub fn command_line(spec: &ProcessSpec) -> String {
    std::iter::once(spec.program.as_os_str())
        .chain(spec.args.iter().map(|a| a.as_os_str()))
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The pool manager for one upstream server command.
pub struct UpstreamManager {
    config: UpstreamConfig,
    command: String,
    /// Broken connections seen and not yet replaced: the next successful
    /// create is a restart.
    pending_restarts: AtomicU64,
    /// Without a handshake (session mode) a spawn "succeeds" even if the
    /// command dies at once; such a death, seen before the connection ever
    /// served a call, is kept here and returned by the next `create` as its
    /// failure, so the pool backs off and clients get the reason instead of
    /// the pool respawning a dead command in a loop.
    died_unused: Mutex<Option<UpstreamError>>,
}

impl fmt::Debug for UpstreamManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamManager")
            .field("command", &self.command)
            .field("handshake", &self.config.handshake)
            .finish_non_exhaustive()
    }
}

impl UpstreamManager {
    /// A manager for `config`.
    pub fn new(config: UpstreamConfig) -> Self {
        let command = command_line(&config.spec);
        Self {
            config,
            command,
            pending_restarts: AtomicU64::new(0),
            died_unused: Mutex::new(None),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// The command line, for messages.
    pub fn command(&self) -> &str {
        &self.command
    }

    fn note_broken(&self, conn: &Connection) {
        if conn.mark_crash_counted() {
            self.pending_restarts.fetch_add(1, Ordering::SeqCst);
            if !self.config.handshake && conn.uses() == 0 {
                let cause = conn
                    .closed_reason()
                    .map(|e| e.error_object().message.clone())
                    .unwrap_or_else(|| "closed its stdout".to_owned());
                let failure = UpstreamError::ExitedAtStart {
                    command: self.command.clone(),
                    cause,
                    stderr_tail: conn.stderr_tail(),
                };
                *self
                    .died_unused
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(failure);
            }
        }
    }

    fn spawn_error(&self, e: &SpawnError) -> UpstreamError {
        let kind = match e {
            SpawnError::NotFound { .. } => SpawnFailure::NotFound,
            SpawnError::PermissionDenied { .. } => SpawnFailure::PermissionDenied,
            SpawnError::BadCwd { .. } => SpawnFailure::BadCwd,
            SpawnError::Io { .. } => SpawnFailure::Other,
        };
        let reason = match e {
            SpawnError::NotFound { source, .. }
            | SpawnError::PermissionDenied { source, .. }
            | SpawnError::Io { source, .. } => format!("{e} ({source})"),
            SpawnError::BadCwd { .. } => e.to_string(),
        };
        UpstreamError::Spawn {
            command: self.command.clone(),
            kind,
            reason,
        }
    }

    /// Runs `initialize` then `notifications/initialized`; on failure the
    /// connection is stopped and the error says why.
    async fn handshake(&self, mut conn: Connection) -> Result<Connection, UpstreamError> {
        let request = OutgoingRequest::new(
            "stdiopool-initialize",
            "initialize",
            Some(json!({
                "protocolVersion": self.config.protocol_version,
                "capabilities": self.config.client_capabilities,
                "clientInfo": {"name": "stdiopool", "version": env!("CARGO_PKG_VERSION")},
            })),
        );
        let answer =
            tokio::time::timeout(self.config.handshake_timeout, conn.call(request, None)).await;
        let failure = match answer {
            Ok(Ok(mut resp)) => match resp.get_mut("result") {
                Some(result) => {
                    let result = result.take();
                    match conn.notify("notifications/initialized", None).await {
                        Ok(()) => {
                            conn.set_initialize_result(result);
                            if !self.config.client_capabilities.is_empty() {
                                conn.relay_server_requests();
                            }
                            return Ok(conn);
                        }
                        Err(e) => Failure::Closed(e),
                    }
                }
                None => Failure::Rejected(
                    resp.get("error")
                        .cloned()
                        .and_then(|e| ErrorObject::from_value(e).ok())
                        .unwrap_or_else(|| {
                            ErrorObject::upstream_protocol_error("initialize answer has no result")
                        }),
                ),
            },
            Ok(Err(e)) => Failure::Closed(e),
            Err(_) => Failure::Timeout,
        };
        let outcome = conn.shutdown_with(StopReason::StartupFailed).await;
        let command = self.command.clone();
        Err(match failure {
            Failure::Rejected(error) => UpstreamError::HandshakeRejected { command, error },
            Failure::Closed(CallError::Protocol(error)) => {
                UpstreamError::HandshakeProtocol { command, error }
            }
            Failure::Closed(CallError::Closed(_)) => UpstreamError::ExitedAtStart {
                command,
                cause: outcome.cause.to_string(),
                stderr_tail: outcome.stderr_tail,
            },
            Failure::Timeout => UpstreamError::HandshakeTimeout {
                command,
                timeout: self.config.handshake_timeout,
                stderr_tail: outcome.stderr_tail,
            },
        })
    }
}

enum Failure {
    Rejected(ErrorObject),
    Closed(CallError),
    Timeout,
}

impl Manager for UpstreamManager {
    type Object = Connection;
    type Error = UpstreamError;

    async fn create(&self) -> Result<Connection, UpstreamError> {
        let died = self
            .died_unused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(failure) = died {
            return Err(failure);
        }
        let child = ChildProcess::spawn(&self.config.spec, &self.config.accounting)
            .map_err(|e| self.spawn_error(&e))?;
        let conn = Connection::new(child, self.config.max_frame);
        let conn = if self.config.handshake {
            self.handshake(conn).await?
        } else {
            conn
        };
        let replaced = self
            .pending_restarts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if replaced {
            self.config.accounting.record_restart();
        }
        tracing::debug!(command = %self.command, pid = conn.pid(), "upstream connection ready");
        Ok(conn)
    }

    async fn recycle(
        &self,
        conn: &mut Connection,
        _meta: &ObjectMeta,
    ) -> Result<(), UpstreamError> {
        if conn.is_broken() {
            self.note_broken(conn);
            let reason = conn
                .closed_reason()
                .map(|e| e.error_object().message.clone())
                .unwrap_or_else(|| "stream closed".to_owned());
            return Err(UpstreamError::Broken {
                pid: conn.pid(),
                reason,
            });
        }
        if conn.idle_for() >= self.config.ping_after_idle
            && let Err(e) = conn.ping(self.config.ping_timeout).await
        {
            self.note_broken(conn);
            return Err(UpstreamError::Unhealthy {
                pid: conn.pid(),
                reason: e.error_object().message.clone(),
            });
        }
        Ok(())
    }

    fn is_broken(&self, conn: &Connection) -> bool {
        let broken = conn.is_broken();
        if broken {
            self.note_broken(conn);
        }
        broken
    }
}
