//! The command line as clap parses it (and, through clap's `env`, the
//! `STDIOPOOL_*` environment variables).
//!
//! Invariant: every option has a `STDIOPOOL_*` variable and a documented
//! default (checked by `tests/config.rs`); options whose default is
//! overridable by the file carry clap defaults, and `resolve` asks clap where
//! each value came from before letting the file override it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use super::values::{
    OptionalCount, OptionalDuration, parse_auto_count, parse_duration, parse_optional_count,
    parse_optional_duration, parse_size,
};
use super::{LogFormat, Mode};
use crate::values::ProtocolVersion;

fn default_pool_size() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .max(1)
}

const AFTER_HELP: &str = "\
Every option can also be set by its STDIOPOOL_* environment variable or in the \
TOML file given by --config (keys are the long option names in snake_case, e.g. \
pool_size = 8, request_timeout = \"30s\", env = { KEY = \"VALUE\" }, \
command = [\"npx\", \"-y\", \"server\"]). Precedence: command line > environment > \
config file > default. Durations: 30s, 2m, 1h 30m, or seconds. Sizes: 4MiB, 512KiB, \
1MB, or bytes. See docs/PROXY.md.";

/// Command-line arguments as clap parses them. Use [`Config::load`] rather
/// than this: it applies the config file and validates.
#[derive(Debug, Parser)]
#[command(
    name = "stdiopool",
    version,
    about = "Serve a stdio MCP server over MCP Streamable HTTP with a pool of warm, reused processes",
    override_usage = "stdiopool [OPTIONS] -- <COMMAND> [ARGS]...\n       stdiopool [OPTIONS] --demo\n       stdiopool --config stdiopool.toml",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// TOML config file (keys: long option names in snake_case). [default: none]
    #[arg(long, env = "STDIOPOOL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address to listen on (IP:PORT). Keep it on loopback unless the endpoint is protected.
    #[arg(
        long,
        env = "STDIOPOOL_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: String,

    /// Path of the MCP endpoint.
    #[arg(
        long,
        env = "STDIOPOOL_PATH",
        value_name = "PATH",
        default_value = "/mcp"
    )]
    pub path: String,

    /// pooled: each request borrows a warm process; session: each MCP session owns one.
    #[arg(long, env = "STDIOPOOL_MODE", value_enum, default_value_t = Mode::Pooled)]
    pub mode: Mode,

    /// Most server processes alive at once [default: number of CPUs].
    #[arg(long, env = "STDIOPOOL_POOL_SIZE", value_name = "N", default_value_t = default_pool_size(), hide_default_value = true)]
    pub pool_size: usize,

    /// Idle processes kept warm (≤ --pool-size).
    #[arg(
        long,
        visible_alias = "pool-min-idle",
        env = "STDIOPOOL_MIN_IDLE",
        value_name = "N",
        default_value_t = 1
    )]
    pub min_idle: usize,

    /// Requests one process serves before it is replaced (pooled mode; a session-mode process serves one session).
    #[arg(long, env = "STDIOPOOL_MAX_USES", value_name = "N|unlimited", value_parser = parse_optional_count, default_value = "unlimited")]
    pub max_uses: OptionalCount,

    /// Replace a process older than this (or none).
    #[arg(long, env = "STDIOPOOL_MAX_LIFETIME", value_name = "DURATION", value_parser = parse_optional_duration, default_value = "none")]
    pub max_lifetime: OptionalDuration,

    /// Stop an idle process above --min-idle after this long unused (or none).
    #[arg(long, env = "STDIOPOOL_IDLE_TIMEOUT", value_name = "DURATION", value_parser = parse_optional_duration, default_value = "10m")]
    pub idle_timeout: OptionalDuration,

    /// Spawning a process plus its initialize handshake must finish within this.
    #[arg(long, env = "STDIOPOOL_CREATE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub create_timeout: Duration,

    /// A request unanswered this long gets a JSON-RPC error and is cancelled upstream.
    #[arg(long, env = "STDIOPOOL_REQUEST_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub request_timeout: Duration,

    /// MCP 2026-07-28 (MRTR): how long a call waiting for the client's input holds its process; then the server gets an error and the process goes back.
    #[arg(long, env = "STDIOPOOL_INPUT_WAIT", value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub input_wait: Duration,

    /// How long a request waits for a free process before 503 + Retry-After.
    #[arg(long, env = "STDIOPOOL_WAIT_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
    pub wait_timeout: Duration,

    /// End a session idle this long (session mode: its process is destroyed).
    #[arg(long, env = "STDIOPOOL_SESSION_IDLE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, default_value = "5m")]
    pub session_idle_timeout: Duration,

    /// Session mode: when a new session finds every process held by a session, end the session idle longest (on) or answer 503 (off).
    #[arg(long, env = "STDIOPOOL_SESSION_EVICTION", value_name = "on|off", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), default_value = "on")]
    pub session_eviction: bool,

    /// On SIGINT/SIGTERM, time in-flight requests get before processes are stopped.
    #[arg(long, env = "STDIOPOOL_SHUTDOWN_GRACE", value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub shutdown_grace: Duration,

    /// On SIGTERM, time `/readyz` answers 503 while requests are still served, so load balancers stop sending before the drain (0: drain at once; SIGINT always drains at once).
    #[arg(long, env = "STDIOPOOL_DRAIN_DELAY", value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
    pub drain_delay: Duration,

    /// This instance's name among several behind a load balancer, leading every session id it mints (A-Z a-z 0-9 - _). [default: the host name up to its first dot]
    #[arg(long, env = "STDIOPOOL_INSTANCE_ID", value_name = "ID")]
    pub instance_id: Option<String>,

    /// Pooled mode: sign session ids with the key in this file, so every instance sharing the key accepts them (no stickiness needed). [default: ids valid on this instance only]
    #[arg(long, env = "STDIOPOOL_SESSION_KEY_FILE", value_name = "FILE")]
    pub session_key_file: Option<PathBuf>,

    /// Each wait of the stop sequence: close stdin, wait, SIGTERM, wait, SIGKILL.
    #[arg(long, env = "STDIOPOOL_STOP_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, default_value = "2s")]
    pub stop_timeout: Duration,

    /// Interval of SSE keep-alive comments (or none).
    #[arg(long, env = "STDIOPOOL_SSE_KEEP_ALIVE", value_name = "DURATION", value_parser = parse_optional_duration, default_value = "15s")]
    pub sse_keep_alive: OptionalDuration,

    /// Largest POST body (413 above it).
    #[arg(long, env = "STDIOPOOL_MAX_BODY", value_name = "SIZE", value_parser = parse_size, default_value = "4MiB")]
    pub max_body: u64,

    /// Largest line a server may write on stdout.
    #[arg(long, env = "STDIOPOOL_MAX_FRAME", value_name = "SIZE", value_parser = parse_size, default_value = "16MiB")]
    pub max_frame: u64,

    /// Server stderr lines per second forwarded to the log, per process (0: no limit); the rest is counted and summarized.
    #[arg(
        long,
        env = "STDIOPOOL_STDERR_LINES_PER_SEC",
        value_name = "N",
        default_value = "100"
    )]
    pub stderr_lines_per_sec: u32,

    /// Server stderr bytes per second forwarded to the log, per process (0: no limit).
    #[arg(long, env = "STDIOPOOL_STDERR_BYTES_PER_SEC", value_name = "SIZE", value_parser = parse_size, default_value = "32KiB")]
    pub stderr_bytes_per_sec: u64,

    /// Unused stderr budget a quiet server process saves up, as time at the two rates above.
    #[arg(long, env = "STDIOPOOL_STDERR_BURST", value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
    pub stderr_burst: Duration,

    /// Close a connection that has not sent a complete request head this long after it was accepted.
    #[arg(long, env = "STDIOPOOL_HEADER_READ_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub header_read_timeout: Duration,

    /// Fail (400) a request whose body is not complete this long after its head.
    #[arg(long, env = "STDIOPOOL_BODY_READ_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub body_read_timeout: Duration,

    /// Close a kept-alive connection with no request for this long.
    #[arg(long, env = "STDIOPOOL_KEEP_ALIVE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub keep_alive_timeout: Duration,

    /// Close a connection whose client takes none of its response for this long.
    #[arg(long, env = "STDIOPOOL_SEND_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, default_value = "60s")]
    pub send_timeout: Duration,

    /// End a GET stream that carried no message for this long (the client reconnects).
    #[arg(long, env = "STDIOPOOL_SSE_IDLE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, default_value = "5m")]
    pub sse_idle_timeout: Duration,

    /// Most client connections at once (auto: what RLIMIT_NOFILE leaves after the server processes' reserve).
    #[arg(long, env = "STDIOPOOL_MAX_CONNECTIONS", value_name = "N|auto", value_parser = parse_auto_count, default_value = "auto")]
    pub max_connections: OptionalCount,

    /// Most GET streams open at once (auto: half the connection limit).
    #[arg(long, env = "STDIOPOOL_MAX_GET_STREAMS", value_name = "N|auto", value_parser = parse_auto_count, default_value = "auto")]
    pub max_get_streams: OptionalCount,

    /// Set a variable in the server's environment (repeatable; STDIOPOOL_ENV holds a single KEY=VALUE). [default: none]
    #[arg(long = "env", env = "STDIOPOOL_ENV", value_name = "KEY=VALUE")]
    pub env: Vec<String>,

    /// Remove a variable from the inherited environment (repeatable or comma-separated). [default: none]
    #[arg(
        long,
        env = "STDIOPOOL_UNSET_ENV",
        value_name = "KEY",
        value_delimiter = ','
    )]
    pub unset_env: Vec<String>,

    /// Working directory of the server processes. [default: the proxy's]
    #[arg(long, env = "STDIOPOOL_CWD", value_name = "DIR")]
    pub cwd: Option<PathBuf>,

    /// Allow this Origin besides loopback ones, with CORS (repeatable or comma-separated; `*`: any). [default: none]
    #[arg(
        long,
        env = "STDIOPOOL_ALLOWED_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub allowed_origin: Vec<String>,

    /// Allow this Host besides loopback names (repeatable or comma-separated; `*`: any). [default: none; any host when listening off loopback]
    #[arg(
        long,
        env = "STDIOPOOL_ALLOWED_HOST",
        value_name = "HOST",
        value_delimiter = ','
    )]
    pub allowed_host: Vec<String>,

    /// Require `Authorization: Bearer <token>`, the token read from this file. [default: no auth]
    #[arg(long, env = "STDIOPOOL_AUTH_TOKEN_FILE", value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,

    /// The URL clients use to reach the MCP endpoint (e.g. https://mcp.example.com/mcp): printed in the banner, the OAuth resource identifier and default audience. [default: none]
    #[arg(long, env = "STDIOPOOL_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// OAuth: trust access tokens (JWTs) from this issuer; turns on the OAuth resource server (repeatable or comma-separated). [default: none]
    #[arg(
        long,
        env = "STDIOPOOL_OAUTH_ISSUER",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub oauth_issuer: Vec<String>,

    /// OAuth: the issuer's JWK Set URL (https, or http on loopback). [default: none]
    #[arg(long, env = "STDIOPOOL_OAUTH_JWKS_URL", value_name = "URL")]
    pub oauth_jwks_url: Option<String>,

    /// OAuth: the issuer's JWK Set read from this file instead of a URL. [default: none]
    #[arg(long, env = "STDIOPOOL_OAUTH_JWKS_FILE", value_name = "FILE")]
    pub oauth_jwks_file: Option<PathBuf>,

    /// OAuth: the audience (`aud`) tokens must be issued for. [default: --public-url]
    #[arg(long, env = "STDIOPOOL_OAUTH_AUDIENCE", value_name = "AUD")]
    pub oauth_audience: Option<String>,

    /// OAuth: a scope every token must carry, else 403 insufficient_scope (repeatable or comma-separated). [default: none]
    #[arg(
        long,
        env = "STDIOPOOL_OAUTH_SCOPE",
        value_name = "SCOPE",
        value_delimiter = ','
    )]
    pub oauth_scope: Vec<String>,

    /// OAuth: least time between two key fetches caused by a token with an unknown key id.
    #[arg(long, env = "STDIOPOOL_OAUTH_JWKS_MIN_REFRESH", value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub oauth_jwks_min_refresh: Duration,

    /// Log format on stderr.
    #[arg(long, env = "STDIOPOOL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter in RUST_LOG syntax.
    #[arg(
        long,
        env = "STDIOPOOL_LOG",
        value_name = "FILTER",
        default_value = "info"
    )]
    pub log_filter: String,

    /// MCP version used to initialize pooled processes (2025-11-25, 2025-06-18 or 2025-03-26).
    #[arg(long, env = "STDIOPOOL_PROTOCOL_VERSION", value_name = "VERSION", default_value = ProtocolVersion::LATEST.as_str())]
    pub protocol_version: String,

    /// Name of the server in logs. [default: the command's file name]
    #[arg(long, env = "STDIOPOOL_NAME", value_name = "NAME")]
    pub name: Option<String>,

    /// Run in front of the bundled fixture server instead of a command. [default: off]
    #[arg(long, env = "STDIOPOOL_DEMO")]
    pub demo: bool,

    /// The stdio MCP server to run, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
