//! The TOML config file: every key optional, unknown keys refused.
//!
//! Invariant: values are parsed with the same parsers as the command line,
//! and relative paths are anchored at the file's directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::servers::{self, RawServer};
use super::values::{
    OptionalCount, OptionalDuration, parse_auto_count, parse_duration, parse_optional_count,
    parse_optional_duration, parse_size,
};
use super::{ConfigError, LogFormat, Mode};

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
        pub(super) fn $name<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<Option<$out>, D::Error> {
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
file_value!(de_auto_count, OptionalCount, parse_auto_count);

/// The config file's contents: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileConfig {
    pub(super) listen: Option<String>,
    pub(super) path: Option<String>,
    pub(super) mode: Option<Mode>,
    pub(super) pool_size: Option<usize>,
    #[serde(alias = "pool_min_idle")]
    pub(super) min_idle: Option<usize>,
    #[serde(default, deserialize_with = "de_optional_count")]
    pub(super) max_uses: Option<OptionalCount>,
    #[serde(default, deserialize_with = "de_optional_duration")]
    pub(super) max_lifetime: Option<OptionalDuration>,
    #[serde(default, deserialize_with = "de_optional_duration")]
    pub(super) idle_timeout: Option<OptionalDuration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) create_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) request_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) wait_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) input_wait: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) session_idle_timeout: Option<Duration>,
    pub(super) session_eviction: Option<bool>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) shutdown_grace: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) drain_delay: Option<Duration>,
    pub(super) instance_id: Option<String>,
    pub(super) session_key_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) stop_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_optional_duration")]
    pub(super) sse_keep_alive: Option<OptionalDuration>,
    #[serde(default, deserialize_with = "de_size")]
    pub(super) max_body: Option<u64>,
    #[serde(default, deserialize_with = "de_size")]
    pub(super) max_frame: Option<u64>,
    pub(super) stderr_lines_per_sec: Option<u32>,
    #[serde(default, deserialize_with = "de_size")]
    pub(super) stderr_bytes_per_sec: Option<u64>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) stderr_burst: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) header_read_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) body_read_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) keep_alive_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) send_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) sse_idle_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_auto_count")]
    pub(super) max_connections: Option<OptionalCount>,
    #[serde(default, deserialize_with = "de_auto_count")]
    pub(super) max_get_streams: Option<OptionalCount>,
    /// A table `{ KEY = "VALUE" }`.
    pub(super) env: Option<std::collections::BTreeMap<String, String>>,
    pub(super) unset_env: Option<Vec<String>>,
    pub(super) cwd: Option<PathBuf>,
    #[serde(alias = "allowed_origins")]
    pub(super) allowed_origin: Option<Vec<String>>,
    #[serde(alias = "allowed_hosts")]
    pub(super) allowed_host: Option<Vec<String>>,
    pub(super) auth_token_file: Option<PathBuf>,
    pub(super) public_url: Option<String>,
    #[serde(alias = "oauth_issuers")]
    pub(super) oauth_issuer: Option<Vec<String>>,
    pub(super) oauth_jwks_url: Option<String>,
    pub(super) oauth_jwks_file: Option<PathBuf>,
    pub(super) oauth_audience: Option<String>,
    #[serde(alias = "oauth_scopes")]
    pub(super) oauth_scope: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de_duration")]
    pub(super) oauth_jwks_min_refresh: Option<Duration>,
    pub(super) log_format: Option<LogFormat>,
    #[serde(alias = "log")]
    pub(super) log_filter: Option<String>,
    pub(super) protocol_version: Option<String>,
    pub(super) name: Option<String>,
    pub(super) demo: Option<bool>,
    pub(super) command: Option<Vec<String>>,
    /// `[servers.<name>]` tables: many servers, each at its own route.
    servers: Option<toml::Table>,
    /// The named servers, from `servers` or from a JSON file (`super::servers`).
    #[serde(skip)]
    pub(super) named_servers: Option<Vec<RawServer>>,
    /// The file read (`None`: no file).
    #[serde(skip)]
    pub(super) origin: Option<PathBuf>,
}

impl FileConfig {
    pub(super) fn read(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text` as one of the JSON formats (Claude Desktop / Cursor
    /// `mcpServers`, VS Code `servers`: named servers only) or as
    /// stdiopool's TOML; relative `cwd`, `auth_token_file`, `oauth_jwks_file`
    /// and `session_key_file` are taken relative
    /// to the directory of `path`, so a file works wherever it is run from.
    pub(super) fn parse(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
        if servers::looks_like_json(text, path) {
            return Ok(FileConfig {
                named_servers: Some(servers::parse_json(text, path)?),
                origin: Some(path.to_owned()),
                ..FileConfig::default()
            });
        }
        let mut file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::ParseFile {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        for slot in [
            &mut file.cwd,
            &mut file.auth_token_file,
            &mut file.oauth_jwks_file,
            &mut file.session_key_file,
        ] {
            if let Some(p) = slot.as_mut()
                && p.is_relative()
            {
                *p = base.join(&*p);
            }
        }
        file.origin = Some(path.to_owned());
        if let Some(table) = file.servers.take() {
            file.named_servers = Some(servers::parse_toml(table, path)?);
        }
        Ok(file)
    }
}
