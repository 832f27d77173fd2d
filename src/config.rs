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

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};
use serde::Deserialize;

use crate::proxy::auth::{BadToken, BearerToken};
use crate::proxy::origin::{OriginRuleError, parse_allowed_host, parse_allowed_origin};
use crate::proxy::protocol_version::{ProtocolVersion, UnsupportedVersion};

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
    /// A session idle this long is ended (its process destroyed in session mode).
    pub session_idle_timeout: Duration,
    /// On SIGINT/SIGTERM, in-flight requests get this long before processes are stopped.
    pub shutdown_grace: Duration,
    /// Interval of SSE keep-alive comments. `None`: off.
    pub sse_keep_alive: Option<Duration>,
    /// Largest POST body, bytes.
    pub max_body: usize,
    /// Largest line a server may write on stdout, bytes.
    pub max_frame: usize,
    /// The server to run and its environment.
    pub server: ServerSpec,
    /// Extra allowed `Origin`s, normalised (`*`: any).
    pub allowed_origins: Vec<String>,
    /// Extra allowed `Host` names, normalised (`*`: any).
    pub allowed_hosts: Vec<String>,
    /// Bearer token required on the MCP endpoint, when set.
    pub auth_token: Option<BearerToken>,
    /// Log format.
    pub log_format: LogFormat,
    /// `tracing` filter directives (`RUST_LOG` syntax).
    pub log_filter: String,
    /// Version used to initialize pooled processes and offered to clients.
    pub protocol_version: ProtocolVersion,
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
    /// `cwd` is not a directory.
    #[error("working directory {path} is not a directory")]
    CwdNotDirectory {
        /// The path.
        path: PathBuf,
    },
}

// ---------------------------------------------------------------------------
// Value parsers shared by the command line, the environment and the file.

/// A duration: humantime form (`30s`, `2m`, `1h 30m`, `500ms`) or a bare
/// integer number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|e| e.to_string());
    }
    humantime::parse_duration(s).map_err(|e| format!("{e} (expected e.g. 30s, 2m, 1h)"))
}

/// A duration, or `none` / `off` / `never` for no limit.
pub fn parse_optional_duration(s: &str) -> Result<OptionalDuration, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "none" | "off" | "never" => Ok(OptionalDuration(None)),
        _ => parse_duration(s).map(|d| OptionalDuration(Some(d))),
    }
}

/// A byte size: an integer with an optional unit. `B`; binary `K`/`KiB`,
/// `M`/`MiB`, `G`/`GiB` (×1024ⁿ); decimal `KB`, `MB`, `GB` (×1000ⁿ). Case-insensitive.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits_end);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size (expected e.g. 4MiB, 512KiB, 1048576)"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (use B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    n.checked_mul(multiplier)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A positive count, or `unlimited` / `none`.
pub fn parse_optional_count(s: &str) -> Result<OptionalCount, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "unlimited" | "none" => Ok(OptionalCount(None)),
        t => t
            .parse::<u64>()
            .map(|n| OptionalCount(Some(n)))
            .map_err(|_| format!("{s:?} is not a count (expected a number or \"unlimited\")")),
    }
}

/// A duration that may be switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalDuration(pub Option<Duration>);

/// A count that may be unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionalCount(pub Option<u64>);

fn default_pool_size() -> usize {
    std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .max(1)
}

// ---------------------------------------------------------------------------
// The command line (and, through clap's `env`, the environment).

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

    /// How long a request waits for a free process before 503 + Retry-After.
    #[arg(long, env = "STDIOPOOL_WAIT_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, default_value = "5s")]
    pub wait_timeout: Duration,

    /// End a session idle this long (session mode: its process is destroyed).
    #[arg(long, env = "STDIOPOOL_SESSION_IDLE_TIMEOUT", value_name = "DURATION", value_parser = parse_duration, default_value = "5m")]
    pub session_idle_timeout: Duration,

    /// On SIGINT/SIGTERM, time in-flight requests get before processes are stopped.
    #[arg(long, env = "STDIOPOOL_SHUTDOWN_GRACE", value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub shutdown_grace: Duration,

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

    /// Allow this Origin besides loopback ones (repeatable or comma-separated; `*`: any). [default: none]
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

// ---------------------------------------------------------------------------
// The config file.

/// A duration or size in the file: a string (`"30s"`, `"4MiB"`) or an integer
/// (seconds, bytes).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum TextOrInt {
    Int(u64),
    Text(String),
}

impl TextOrInt {
    fn text(&self) -> String {
        match self {
            TextOrInt::Int(n) => n.to_string(),
            TextOrInt::Text(s) => s.clone(),
        }
    }
}

macro_rules! file_value {
    ($name:ident, $out:ty, $parse:expr) => {
        fn $name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<$out>, D::Error> {
            let raw = Option::<TextOrInt>::deserialize(d)?;
            raw.map(|r| $parse(&r.text()).map_err(serde::de::Error::custom))
                .transpose()
        }
    };
}
file_value!(de_duration, Duration, parse_duration);
file_value!(
    de_optional_duration,
    OptionalDuration,
    parse_optional_duration
);
file_value!(de_size, u64, parse_size);
file_value!(de_optional_count, OptionalCount, parse_optional_count);

/// The config file's contents: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    path: Option<String>,
    mode: Option<Mode>,
    pool_size: Option<usize>,
    #[serde(alias = "pool_min_idle")]
    min_idle: Option<usize>,
    #[serde(default, deserialize_with = "de_optional_count")]
    max_uses: Option<OptionalCount>,
    #[serde(default, deserialize_with = "de_optional_duration")]
    max_lifetime: Option<OptionalDuration>,
    #[serde(default, deserialize_with = "de_optional_duration")]
    idle_timeout: Option<OptionalDuration>,
    #[serde(default, deserialize_with = "de_duration")]
    create_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    request_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    wait_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    session_idle_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    shutdown_grace: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    stop_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_optional_duration")]
    sse_keep_alive: Option<OptionalDuration>,
    #[serde(default, deserialize_with = "de_size")]
    max_body: Option<u64>,
    #[serde(default, deserialize_with = "de_size")]
    max_frame: Option<u64>,
    /// A table `{ KEY = "VALUE" }`.
    env: Option<std::collections::BTreeMap<String, String>>,
    unset_env: Option<Vec<String>>,
    cwd: Option<PathBuf>,
    #[serde(alias = "allowed_origins")]
    allowed_origin: Option<Vec<String>>,
    #[serde(alias = "allowed_hosts")]
    allowed_host: Option<Vec<String>>,
    auth_token_file: Option<PathBuf>,
    log_format: Option<LogFormat>,
    #[serde(alias = "log")]
    log_filter: Option<String>,
    protocol_version: Option<String>,
    name: Option<String>,
    demo: Option<bool>,
    command: Option<Vec<String>>,
}

impl FileConfig {
    fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text`; relative `cwd` and `auth_token_file` are taken relative
    /// to the directory of `path`, so a file works wherever it is run from.
    fn parse(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
        let mut file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::ParseFile {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        for slot in [&mut file.cwd, &mut file.auth_token_file] {
            if let Some(p) = slot.as_mut() {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        Ok(file)
    }
}

// ---------------------------------------------------------------------------
// Resolution and validation.

/// Whether the value of clap argument `id` came from the command line or the
/// environment (as opposed to clap's default or nowhere).
fn explicit(matches: &ArgMatches, id: &str) -> bool {
    matches!(
        matches.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

impl Config {
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
        resolve(cli, &matches, file)
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
        resolve(cli, &matches, FileConfig::parse(file_text, origin)?)
    }
}

fn resolve(cli: Cli, m: &ArgMatches, file: FileConfig) -> Result<Config, ConfigError> {
    // CLI/env when given there, else the file, else clap's default.
    macro_rules! pick {
        ($field:ident) => {
            if explicit(m, stringify!($field)) {
                cli.$field
            } else {
                file.$field.unwrap_or(cli.$field)
            }
        };
    }
    macro_rules! pick_opt {
        ($field:ident) => {
            if explicit(m, stringify!($field)) {
                cli.$field
            } else {
                file.$field.or(cli.$field)
            }
        };
    }

    let listen_text = pick!(listen);
    let listen =
        listen_text
            .trim()
            .parse::<SocketAddr>()
            .map_err(|_| ConfigError::InvalidListen {
                value: listen_text.clone(),
            })?;

    let path = pick!(path);
    validate_path(&path)?;

    let pool_size = pick!(pool_size);
    let min_idle = pick!(min_idle);
    if pool_size == 0 {
        return Err(ConfigError::PoolSizeZero);
    }
    if min_idle > pool_size {
        return Err(ConfigError::MinIdleAbovePoolSize {
            min_idle,
            pool_size,
        });
    }
    let max_uses = pick!(max_uses).0;
    if max_uses == Some(0) {
        return Err(ConfigError::MaxUsesZero);
    }

    let create_timeout = nonzero(pick!(create_timeout), "create timeout")?;
    let request_timeout = nonzero(pick!(request_timeout), "request timeout")?;
    let session_idle_timeout = nonzero(pick!(session_idle_timeout), "session idle timeout")?;
    let sse_keep_alive = pick!(sse_keep_alive).0;
    if sse_keep_alive == Some(Duration::ZERO) {
        return Err(ConfigError::ZeroDuration {
            option: "sse keep-alive",
        });
    }

    let max_body = size(pick!(max_body), "max body")?;
    let max_frame = size(pick!(max_frame), "max frame")?;

    let protocol_version: ProtocolVersion = pick!(protocol_version).trim().parse()?;

    // The server is one setting: the highest layer naming demo or a command decides.
    let cli_server = explicit(m, "demo") || !cli.command.is_empty();
    let (demo, command) = if cli_server {
        (cli.demo, cli.command)
    } else {
        let file_command: Vec<OsString> = file
            .command
            .unwrap_or_default()
            .into_iter()
            .map(OsString::from)
            .collect();
        (file.demo.unwrap_or(false), file_command)
    };
    let command = match (demo, command.split_first()) {
        (true, Some(_)) => return Err(ConfigError::DemoWithCommand),
        (true, None) => ServerCommand::Demo,
        (false, None) => return Err(ConfigError::MissingCommand),
        (false, Some((program, args))) => ServerCommand::Exec {
            program: program.clone(),
            args: args.to_vec(),
        },
    };

    let env_entries: Vec<String> = if explicit(m, "env") {
        cli.env
    } else if let Some(table) = file.env {
        table.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    } else {
        Vec::new()
    };
    let env = env_entries
        .iter()
        .map(|e| parse_env_entry(e))
        .collect::<Result<Vec<_>, _>>()?;

    let unset_env = pick_list(m, "unset_env", cli.unset_env, file.unset_env);
    for key in &unset_env {
        if key.is_empty() || key.contains(['=', '\0']) {
            return Err(ConfigError::InvalidUnsetEnv { entry: key.clone() });
        }
    }

    let cwd = pick_opt!(cwd);
    if let Some(dir) = &cwd {
        if !dir.is_dir() {
            return Err(ConfigError::CwdNotDirectory { path: dir.clone() });
        }
    }

    let allowed_origins = pick_list(m, "allowed_origin", cli.allowed_origin, file.allowed_origin)
        .iter()
        .map(|o| parse_allowed_origin(o))
        .collect::<Result<Vec<_>, _>>()?;
    let allowed_hosts = pick_list(m, "allowed_host", cli.allowed_host, file.allowed_host)
        .iter()
        .map(|h| parse_allowed_host(h))
        .collect::<Result<Vec<_>, _>>()?;

    let auth_token = match pick_opt!(auth_token_file) {
        None => None,
        Some(path) => Some(read_token(&path)?),
    };

    let name = pick_opt!(name).unwrap_or_else(|| match &command {
        ServerCommand::Demo => "demo".to_owned(),
        ServerCommand::Exec { program, .. } => Path::new(program)
            .file_name()
            .unwrap_or(program.as_os_str())
            .to_string_lossy()
            .into_owned(),
    });

    Ok(Config {
        listen,
        path,
        mode: pick!(mode),
        pool: PoolSettings {
            max_size: pool_size,
            min_idle,
            max_uses,
            max_lifetime: pick!(max_lifetime).0,
            idle_timeout: pick!(idle_timeout).0,
            create_timeout,
            wait_timeout: pick!(wait_timeout),
        },
        request_timeout,
        session_idle_timeout,
        shutdown_grace: pick!(shutdown_grace),
        sse_keep_alive,
        max_body,
        max_frame,
        server: ServerSpec {
            command,
            env,
            unset_env: unset_env.into_iter().map(OsString::from).collect(),
            cwd,
            stop_timeout: pick!(stop_timeout),
            name,
        },
        allowed_origins,
        allowed_hosts,
        auth_token,
        log_format: pick!(log_format),
        log_filter: pick!(log_filter),
        protocol_version,
    })
}

fn pick_list(m: &ArgMatches, id: &str, cli: Vec<String>, file: Option<Vec<String>>) -> Vec<String> {
    if explicit(m, id) {
        cli
    } else {
        file.unwrap_or_default()
    }
}

fn nonzero(d: Duration, option: &'static str) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        Err(ConfigError::ZeroDuration { option })
    } else {
        Ok(d)
    }
}

fn size(bytes: u64, option: &'static str) -> Result<usize, ConfigError> {
    // Bounded well below usize::MAX so limits can be added to without overflow.
    const MAX: u64 = 1 << 40;
    match usize::try_from(bytes) {
        Ok(n) if bytes > 0 && bytes <= MAX => Ok(n),
        _ => Err(ConfigError::BadSize { option, max: MAX }),
    }
}

fn validate_path(path: &str) -> Result<(), ConfigError> {
    let bad = |reason| {
        Err(ConfigError::InvalidPath {
            value: path.to_owned(),
            reason,
        })
    };
    if !path.starts_with('/') {
        return bad("it must start with '/'");
    }
    if path.contains(['?', '#']) || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it must not contain '?', '#', whitespace or control characters");
    }
    if path == "/" {
        // The ops endpoints live under `/`; a catch-all would shadow them.
        return bad("it must not be '/' alone");
    }
    if RESERVED_PATHS.contains(&path.trim_end_matches('/')) {
        return bad("it is one of the ops endpoints /healthz, /readyz, /metrics");
    }
    Ok(())
}

fn parse_env_entry(entry: &str) -> Result<(OsString, OsString), ConfigError> {
    match entry.split_once('=') {
        Some((key, value)) if !key.is_empty() && !key.contains('\0') && !value.contains('\0') => {
            Ok((OsString::from(key), OsString::from(value)))
        }
        _ => Err(ConfigError::InvalidEnv {
            entry: entry.to_owned(),
        }),
    }
}

fn read_token(path: &Path) -> Result<BearerToken, ConfigError> {
    let contents = std::fs::read_to_string(path).map_err(|source| ConfigError::AuthTokenFile {
        path: path.to_owned(),
        source,
    })?;
    BearerToken::from_file_contents(&contents).map_err(|source| ConfigError::AuthToken {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn sizes_accept_binary_and_decimal_units() {
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("4MiB").unwrap(), 4 << 20);
        assert_eq!(parse_size("4m").unwrap(), 4 << 20);
        assert_eq!(parse_size("512 KiB").unwrap(), 512 << 10);
        assert_eq!(parse_size("1MB").unwrap(), 1_000_000);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_size("").is_err());
        assert!(parse_size("1.5MiB").is_err());
        assert!(parse_size("4 parsecs").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn durations_accept_humantime_and_bare_seconds() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("soon").is_err());
        assert_eq!(
            parse_optional_duration("none").unwrap(),
            OptionalDuration(None)
        );
        assert_eq!(
            parse_optional_count("unlimited").unwrap(),
            OptionalCount(None)
        );
        assert_eq!(parse_optional_count("3").unwrap(), OptionalCount(Some(3)));
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
