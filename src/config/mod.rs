//! Configuration: the command line (clap), `STDIOPOOL_*` environment
//! variables, an optional TOML file, and the validated [`Config`] the rest of
//! the program uses.
//!
//! Precedence, per setting: **command line > environment variable > config
//! file > built-in default**. A list (`--env`, `--unset-env`,
//! `--allowed-origin`, `--allowed-host`) given at a higher layer replaces the
//! lower layer's list; lists are not merged. The server to run (`--demo` or a
//! command after `--`) is one setting: the highest layer that names either
//! decides, and naming both in one layer is an error.
//!
//! Invariant: a [`Config`] only exists if every check in [`ConfigError`]
//! passed, so the rest of the program never re-validates it.

mod cli;
mod file;
mod resolve;
mod servers;
mod values;

pub use cli::Cli;
pub use values::{
    OptionalCount, OptionalDuration, parse_auto_count, parse_duration, parse_optional_count,
    parse_optional_duration, parse_size,
};

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, ValueEnum};
use serde::Deserialize;

use crate::values::{
    AllowedHost, AllowedOrigin, BadInstanceId, BadSessionKey, BadToken, BadUrl, BearerToken,
    InstanceId, OAuthSettings, OriginRuleError, ProtocolVersion, PublicUrl, SessionKey,
    UnsupportedVersion,
};
use file::FileConfig;

/// The ops endpoints; the MCP path may not shadow them.
pub const RESERVED_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// How requests map to server processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Each request borrows a warm process and returns it (stateless servers).
    Pooled,
    /// Each MCP session owns a process for its lifetime (stateful servers).
    Session,
}

/// Log line format on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What to run as the MCP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerCommand {
    /// The bundled fixture server (`--demo`).
    Demo,
    /// A program and its arguments, run without a shell.
    Exec {
        /// The program (looked up in `PATH` when it has no `/`).
        program: OsString,
        /// Its arguments.
        args: Vec<OsString>,
    },
}

/// How server processes are started and stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// What to run.
    pub command: ServerCommand,
    /// Variables set in the child's environment (after `unset_env`).
    pub env: Vec<(OsString, OsString)>,
    /// Variables removed from the inherited environment.
    pub unset_env: Vec<OsString>,
    /// Working directory; `None`: the proxy's.
    pub cwd: Option<PathBuf>,
    /// Each wait of the stop sequence: after closing stdin, then after SIGTERM.
    pub stop_timeout: Duration,
    /// Name used in logs (`--name`, else the program's file name, `demo` for `--demo`).
    pub name: String,
    /// How much of each process's stderr reaches the log (`--stderr-*`).
    pub stderr: crate::upstream::process::StderrBudget,
}

/// Pool sizing and retirement; field names match the pool's own configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most processes alive at once. ≥ 1.
    pub max_size: usize,
    /// Idle processes kept warm. ≤ `max_size`.
    pub min_idle: usize,
    /// Requests one process serves before it is replaced (pooled mode; in
    /// session mode a process serves one session). `None`: unlimited.
    pub max_uses: Option<u64>,
    /// A process older than this is replaced. `None`: never.
    pub max_lifetime: Option<Duration>,
    /// An idle process above `min_idle` unused this long is stopped. `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Spawn plus `initialize` handshake must finish within this.
    pub create_timeout: Duration,
    /// How long a request waits for a free process before 503.
    pub wait_timeout: Duration,
}

/// One server of a config file's server list, with the proxy-wide settings
/// filled in where its entry gives none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedServer {
    /// The entry's name: URL-safe, unique; the route is `/servers/<name>/mcp`.
    pub name: String,
    /// Pooled or session mode.
    pub mode: Mode,
    /// Its pool.
    pub pool: PoolSettings,
    /// Its request timeout.
    pub request_timeout: Duration,
    /// What to run (its `name` is the entry's name).
    pub server: ServerSpec,
}

impl NamedServer {
    /// The route of its Streamable HTTP endpoint.
    pub fn mcp_path(&self) -> String {
        server_path(&self.name, "mcp")
    }
}

/// The route `/servers/<name>/<leaf>`.
pub fn server_path(name: &str, leaf: &str) -> String {
    format!("/servers/{name}/{leaf}")
}

/// Many servers from one file (`--config` with `mcpServers`, `servers` or
/// `[servers.<name>]`), each served at its own route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSet {
    /// The file they were read from (read again on SIGHUP).
    pub file: PathBuf,
    /// The servers, in file order; never empty.
    pub servers: Vec<NamedServer>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// Path of the MCP endpoint (starts with `/`).
    pub path: String,
    /// Pooled or session mode.
    pub mode: Mode,
    /// Pool settings.
    pub pool: PoolSettings,
    /// A request unanswered this long gets a JSON-RPC error; the server gets
    /// `notifications/cancelled`.
    pub request_timeout: Duration,
    /// MCP 2026-07-28 (MRTR): a call parked for the client's input holds its
    /// process at most this long (docs/ERAS.md, "Input from the client").
    pub input_wait: Duration,
    /// A session idle this long is ended (its process destroyed in session mode).
    pub session_idle_timeout: Duration,
    /// Session mode: a new session that finds every process held by a
    /// session ends the one idle longest (none in flight) instead of waiting
    /// for a free process and answering 503 (docs/PROXY.md, "Sessions").
    pub session_eviction: bool,
    /// On SIGINT/SIGTERM, in-flight requests get this long before processes are stopped.
    pub shutdown_grace: Duration,
    /// Interval of SSE keep-alive comments. `None`: off.
    pub sse_keep_alive: Option<Duration>,
    /// Largest POST body, bytes.
    pub max_body: usize,
    /// Largest line a server may write on stdout, bytes.
    pub max_frame: usize,
    /// The server to run and its environment. With a server list
    /// (`servers` is `Some`): the first entry's; each entry is served from
    /// its own [`Config::for_server`].
    pub server: ServerSpec,
    /// The named servers of the config file, when it lists some; `None`:
    /// the single server of `-- CMD` / `--demo` / `command`, at `path`.
    pub servers: Option<ServerSet>,
    /// Extra allowed `Origin`s, parsed and normalised (`*`: any).
    pub allowed_origins: Vec<AllowedOrigin>,
    /// Extra allowed `Host` names, parsed and normalised (`*`: any).
    pub allowed_hosts: Vec<AllowedHost>,
    /// Bearer token required on the MCP endpoint, when set.
    pub auth_token: Option<BearerToken>,
    /// The URL clients use to reach the MCP endpoint, when set (`--public-url`).
    pub public_url: Option<PublicUrl>,
    /// The OAuth resource server, when on (`--oauth-issuer`).
    pub oauth: Option<OAuthSettings>,
    /// Log format.
    pub log_format: LogFormat,
    /// `tracing` filter directives (`RUST_LOG` syntax).
    pub log_filter: String,
    /// Version used to initialize pooled processes and offered to clients.
    pub protocol_version: ProtocolVersion,
    /// Bounds on client connections and GET streams (`docs/PROXY.md`, "Limits").
    pub listener: crate::listener::ListenerSettings,
    /// This instance's name, leading the session ids it mints (docs/DEPLOY.md).
    pub instance_id: InstanceId,
    /// Pooled mode: the key signed session ids are made with, when set.
    pub session_key: Option<SessionKey>,
    /// On SIGTERM, `/readyz` answers 503 this long before the drain starts.
    pub drain_delay: Duration,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Command-line or environment parsing failed, or `--help` / `--version`
    /// was asked for: call `exit()` on it to print and exit as clap does.
    #[error(transparent)]
    Cli(#[from] clap::Error),
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has an unknown key or a bad value.
    #[error("invalid config file {path}: {message}")]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message (names the key and line).
        message: String,
    },
    /// `listen` is not `IP:PORT`.
    #[error(
        "invalid listen address {value:?}: expected IP:PORT such as 127.0.0.1:8080 or [::1]:8080"
    )]
    InvalidListen {
        /// What was given.
        value: String,
    },
    /// `path` does not start with `/`, holds `?`/`#`/whitespace, or shadows an ops endpoint.
    #[error("invalid MCP path {value:?}: {reason}")]
    InvalidPath {
        /// What was given.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// `pool_size` is 0.
    #[error("pool size must be at least 1")]
    PoolSizeZero,
    /// `min_idle` is larger than `pool_size`.
    #[error("min idle ({min_idle}) must not exceed pool size ({pool_size})")]
    MinIdleAbovePoolSize {
        /// Given min idle.
        min_idle: usize,
        /// Given pool size.
        pool_size: usize,
    },
    /// `max_uses` is 0.
    #[error("max uses must be at least 1 (or \"unlimited\")")]
    MaxUsesZero,
    /// Neither a command nor `--demo`.
    #[error(
        "no server command: give one after `--` (stdiopool [OPTIONS] -- <command> [args...]) or use --demo"
    )]
    MissingCommand,
    /// Both `--demo` and a command in the same layer.
    #[error("--demo and a server command are mutually exclusive")]
    DemoWithCommand,
    /// `protocol_version` is not supported.
    #[error(transparent)]
    UnsupportedProtocolVersion(#[from] UnsupportedVersion),
    /// The auth token file cannot be read.
    #[error("cannot read auth token file {path}: {source}")]
    AuthTokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The auth token file's contents are not a usable token.
    #[error("unusable auth token in {path}: {source}")]
    AuthToken {
        /// The file.
        path: PathBuf,
        /// Why.
        source: BadToken,
    },
    /// The session key file cannot be read.
    #[error("cannot read session key file {path}: {source}")]
    SessionKeyFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The session key file's contents are not a usable key.
    #[error("unusable session key in {path}: {source}")]
    SessionKey {
        /// The file.
        path: PathBuf,
        /// Why.
        source: BadSessionKey,
    },
    /// `--session-key-file` in session mode, where a session's process lives
    /// in one instance and a signed id could not move it.
    #[error(
        "--session-key-file is for pooled mode; in session mode route each session to its instance (docs/DEPLOY.md)"
    )]
    SessionKeyInSessionMode,
    /// `--instance-id` (or the host name it defaults to) is not usable.
    #[error("invalid instance id: {0}")]
    InstanceId(#[from] BadInstanceId),
    /// An `--env` entry is not `KEY=VALUE` with a non-empty key.
    #[error(
        "invalid --env entry {entry:?}: expected KEY=VALUE with a non-empty KEY without '=' or NUL"
    )]
    InvalidEnv {
        /// What was given.
        entry: String,
    },
    /// An `--unset-env` entry is empty or holds `=` / NUL.
    #[error("invalid --unset-env entry {entry:?}")]
    InvalidUnsetEnv {
        /// What was given.
        entry: String,
    },
    /// An `--allowed-origin` / `--allowed-host` entry is malformed.
    #[error(transparent)]
    InvalidOriginRule(#[from] OriginRuleError),
    /// A timeout that must be positive is zero.
    #[error("{option} must be greater than zero")]
    ZeroDuration {
        /// The option.
        option: &'static str,
    },
    /// A size that must be positive is zero, or does not fit in memory.
    #[error("{option} must be between 1 byte and {max} bytes")]
    BadSize {
        /// The option.
        option: &'static str,
        /// Largest allowed.
        max: u64,
    },
    /// `--public-url`, an OAuth issuer or the JWKS URL is not a usable URL.
    #[error(transparent)]
    InvalidUrl(#[from] BadUrl),
    /// The OAuth options are incomplete or contradict each other.
    #[error("OAuth: {0}")]
    OAuth(&'static str),
    /// A server entry of the config file is refused.
    #[error("invalid config file {path}: server {server:?}{}: {problem}", key_part(.key.as_deref()))]
    Server {
        /// The file.
        path: PathBuf,
        /// The entry's name.
        server: String,
        /// The key at fault, when one is.
        key: Option<String>,
        /// What is wrong.
        problem: String,
    },
    /// The file lists servers and a single server is named too.
    #[error(
        "invalid config file {path}: it lists servers, so a single server (a command after `--`, --demo, or `command`/`demo` in the file) cannot be given too"
    )]
    ServersWithCommand {
        /// The file.
        path: PathBuf,
    },
    /// The file's server list is empty.
    #[error("invalid config file {path}: the server list is empty")]
    NoServers {
        /// The file.
        path: PathBuf,
    },
    /// `cwd` is not a directory.
    #[error("working directory {path} is not a directory")]
    CwdNotDirectory {
        /// The path.
        path: PathBuf,
    },
}

fn key_part(key: Option<&str>) -> String {
    key.map(|k| format!(", key {k:?}")).unwrap_or_default()
}

impl Config {
    /// The configuration one named server is served with: the proxy-wide
    /// settings, with its mode, pool, timeout and command, at its route.
    pub fn for_server(&self, named: &NamedServer) -> Config {
        let mut config = self.clone();
        config.path = named.mcp_path();
        config.mode = named.mode;
        config.pool = named.pool;
        config.request_timeout = named.request_timeout;
        config.server = named.server.clone();
        config.servers = None;
        config
    }

    /// Whether the MCP endpoint asks for no credential at all.
    pub fn is_unauthenticated(&self) -> bool {
        self.auth_token.is_none() && self.oauth.is_none()
    }

    /// Whether the proxy listens on an address other machines can reach
    /// (anything but loopback, the wildcard addresses included).
    pub fn listens_off_loopback(&self) -> bool {
        !self.listen.ip().is_loopback()
    }

    /// Parses the process's arguments and environment, reads `--config`, and validates.
    pub fn load() -> Result<Config, ConfigError> {
        Self::load_from(std::env::args_os())
    }

    /// As [`Config::load`] with explicit arguments (the first is the program
    /// name). The environment is still the process's.
    pub fn load_from<I, T>(args: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = Cli::command().try_get_matches_from(args)?;
        let cli = Cli::from_arg_matches(&matches)?;
        let file = match &cli.config {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        resolve::resolve(cli, &matches, file)
    }

    /// As [`Config::load_from`], with the config file's contents given as text
    /// (`origin` names it in errors). Any `--config` argument is ignored.
    pub fn load_from_with_file<I, T>(
        args: I,
        file_text: &str,
        origin: &Path,
    ) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = Cli::command().try_get_matches_from(args)?;
        let cli = Cli::from_arg_matches(&matches)?;
        resolve::resolve(cli, &matches, FileConfig::parse(file_text, origin)?)
    }
}
