//! Resolution and validation: merges command line, environment, file and
//! defaults (in that precedence) into a [`Config`], refusing anything invalid.
//!
//! Invariant: every check of [`ConfigError`] runs here, once; a `Config`
//! that leaves this module is valid.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use clap::ArgMatches;
use clap::parser::ValueSource;

use super::cli::Cli;
use super::file::FileConfig;
use super::servers::RawServer;
use super::{
    Config, ConfigError, NamedServer, PoolSettings, RESERVED_PATHS, ServerCommand, ServerSet,
    ServerSpec,
};
use crate::values::public_url::{is_loopback_url, parse_http_url};
use crate::values::{
    AllowedHost, AllowedOrigin, BearerToken, InstanceId, JwksSource, OAuthSettings,
    ProtocolVersion, PublicUrl, SessionKey,
};

/// Whether the value of clap argument `id` came from the command line or the
/// environment (as opposed to clap's default or nowhere).
fn explicit(matches: &ArgMatches, id: &str) -> bool {
    matches!(
        matches.value_source(id),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

pub(super) fn resolve(
    cli: Cli,
    m: &ArgMatches,
    mut file: FileConfig,
) -> Result<Config, ConfigError> {
    let named_servers = file.named_servers.take();
    let origin = file.origin.take().unwrap_or_default();
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
    let input_wait = nonzero(pick!(input_wait), "input wait")?;
    let session_idle_timeout = nonzero(pick!(session_idle_timeout), "session idle timeout")?;
    let sse_keep_alive = pick!(sse_keep_alive).0;
    if sse_keep_alive == Some(Duration::ZERO) {
        return Err(ConfigError::ZeroDuration {
            option: "sse keep-alive",
        });
    }

    let listener = crate::listener::ListenerSettings {
        header_read_timeout: nonzero(pick!(header_read_timeout), "header read timeout")?,
        body_read_timeout: nonzero(pick!(body_read_timeout), "body read timeout")?,
        keep_alive_timeout: nonzero(pick!(keep_alive_timeout), "keep-alive timeout")?,
        send_timeout: nonzero(pick!(send_timeout), "send timeout")?,
        sse_idle_timeout: nonzero(pick!(sse_idle_timeout), "SSE idle timeout")?,
        max_connections: pick!(max_connections)
            .0
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        max_get_streams: pick!(max_get_streams)
            .0
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    };

    let max_body = size(pick!(max_body), "max body")?;
    let max_frame = size(pick!(max_frame), "max frame")?;

    let protocol_version: ProtocolVersion = pick!(protocol_version).trim().parse()?;

    // The server is one setting: the highest layer naming demo or a command decides.
    let cli_server = explicit(m, "demo") || !cli.command.is_empty();
    if named_servers.is_some() && (cli_server || file.command.is_some() || file.demo == Some(true))
    {
        return Err(ConfigError::ServersWithCommand { path: origin });
    }
    if named_servers.as_ref().is_some_and(Vec::is_empty) {
        return Err(ConfigError::NoServers { path: origin });
    }
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
    let first_named = named_servers.as_ref().and_then(|list| list.first());
    let command = match (demo, command.split_first()) {
        _ if first_named.is_some() => first_named
            .map(|first| ServerCommand::Exec {
                program: first.program.clone().into(),
                args: first.args.iter().map(OsString::from).collect(),
            })
            .unwrap_or(ServerCommand::Demo),
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
    if let Some(dir) = &cwd
        && !dir.is_dir()
    {
        return Err(ConfigError::CwdNotDirectory { path: dir.clone() });
    }

    let allowed_origins = pick_list(m, "allowed_origin", cli.allowed_origin, file.allowed_origin)
        .iter()
        .map(|o| AllowedOrigin::parse(o))
        .collect::<Result<Vec<_>, _>>()?;
    let allowed_hosts = pick_list(m, "allowed_host", cli.allowed_host, file.allowed_host)
        .iter()
        .map(|h| AllowedHost::parse(h))
        .collect::<Result<Vec<_>, _>>()?;

    let auth_token = match pick_opt!(auth_token_file) {
        None => None,
        Some(path) => Some(read_token(&path)?),
    };

    let mode = pick!(mode);
    let session_key = match pick_opt!(session_key_file) {
        None => None,
        Some(_) if mode == super::Mode::Session => {
            return Err(ConfigError::SessionKeyInSessionMode);
        }
        Some(path) => Some(read_session_key(&path)?),
    };
    let instance_id = match pick_opt!(instance_id) {
        Some(name) => InstanceId::parse(&name)?,
        None => InstanceId::from_hostname()?,
    };

    let public_url = pick_opt!(public_url)
        .map(|u| PublicUrl::parse(&u))
        .transpose()?;
    let oauth = OAuthOptions {
        issuers: pick_list(m, "oauth_issuer", cli.oauth_issuer, file.oauth_issuer),
        jwks_url: pick_opt!(oauth_jwks_url),
        jwks_file: pick_opt!(oauth_jwks_file),
        audience: pick_opt!(oauth_audience),
        scopes: pick_list(m, "oauth_scope", cli.oauth_scope, file.oauth_scope),
        min_refresh: pick!(oauth_jwks_min_refresh),
    }
    .resolve(public_url.as_ref(), auth_token.is_some())?;

    let name = pick_opt!(name).unwrap_or_else(|| match &command {
        ServerCommand::Demo => "demo".to_owned(),
        ServerCommand::Exec { program, .. } => Path::new(program)
            .file_name()
            .unwrap_or(program.as_os_str())
            .to_string_lossy()
            .into_owned(),
    });

    let mut config = Config {
        listen,
        path,
        mode,
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
        input_wait,
        session_idle_timeout,
        session_eviction: pick!(session_eviction),
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
            stderr: crate::upstream::process::StderrBudget {
                lines_per_sec: pick!(stderr_lines_per_sec),
                bytes_per_sec: pick!(stderr_bytes_per_sec),
                burst: pick!(stderr_burst),
                ..Default::default()
            },
        },
        allowed_origins,
        allowed_hosts,
        auth_token,
        public_url,
        oauth,
        log_format: pick!(log_format),
        log_filter: pick!(log_filter),
        protocol_version,
        listener,
        instance_id,
        session_key,
        drain_delay: pick!(drain_delay),
        servers: None,
    };
    if let Some(list) = named_servers {
        let servers = list
            .into_iter()
            .map(|raw| named_server(&config, raw, &origin))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(first) = servers.first() {
            config.server = first.server.clone();
        }
        config.servers = Some(ServerSet {
            file: origin,
            servers,
        });
    }
    Ok(config)
}

/// A file entry with the proxy-wide settings (`base`) filled in where it
/// gives none, checked as the single server's settings are.
fn named_server(base: &Config, raw: RawServer, file: &Path) -> Result<NamedServer, ConfigError> {
    let refuse = |key: &str, problem: String| ConfigError::Server {
        path: file.to_owned(),
        server: raw.name.clone(),
        key: Some(key.to_owned()),
        problem,
    };
    let o = &raw.options;
    let pool_size = o.pool_size.unwrap_or(base.pool.max_size);
    if pool_size == 0 {
        return Err(refuse("pool_size", "must be at least 1".into()));
    }
    let min_idle = o.min_idle.unwrap_or(base.pool.min_idle.min(pool_size));
    if min_idle > pool_size {
        return Err(refuse(
            "min_idle",
            format!("{min_idle} must not exceed the pool size ({pool_size})"),
        ));
    }
    let max_uses = o.max_uses.map_or(base.pool.max_uses, |c| c.0);
    if max_uses == Some(0) {
        return Err(refuse(
            "max_uses",
            "must be at least 1 (or \"unlimited\")".into(),
        ));
    }
    for (key, value) in [
        ("create_timeout", o.create_timeout),
        ("request_timeout", o.request_timeout),
        ("wait_timeout", o.wait_timeout),
    ] {
        if value == Some(Duration::ZERO) {
            return Err(refuse(key, "must be greater than zero".into()));
        }
    }
    if let Some(dir) = &o.cwd
        && !dir.is_dir()
    {
        return Err(refuse(
            "cwd",
            format!("{} is not a directory", dir.display()),
        ));
    }
    let unset_env: Vec<OsString> = match &o.unset_env {
        None => base.server.unset_env.clone(),
        Some(keys) => {
            if let Some(bad) = keys
                .iter()
                .find(|k| k.is_empty() || k.contains(['=', '\0']))
            {
                return Err(refuse(
                    "unset_env",
                    format!("{bad:?} is not a variable name"),
                ));
            }
            keys.iter().map(OsString::from).collect()
        }
    };
    // The proxy-wide `--env` first, the entry's after it (the later wins).
    let mut env = base.server.env.clone();
    env.extend(
        raw.env
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
    );
    Ok(NamedServer {
        name: raw.name.clone(),
        mode: o.mode.unwrap_or(base.mode),
        pool: PoolSettings {
            max_size: pool_size,
            min_idle,
            max_uses,
            max_lifetime: o.max_lifetime.map_or(base.pool.max_lifetime, |d| d.0),
            idle_timeout: o.idle_timeout.map_or(base.pool.idle_timeout, |d| d.0),
            create_timeout: o.create_timeout.unwrap_or(base.pool.create_timeout),
            wait_timeout: o.wait_timeout.unwrap_or(base.pool.wait_timeout),
        },
        request_timeout: o.request_timeout.unwrap_or(base.request_timeout),
        server: ServerSpec {
            command: ServerCommand::Exec {
                program: raw.program.clone().into(),
                args: raw.args.iter().map(OsString::from).collect(),
            },
            env,
            unset_env,
            cwd: o.cwd.clone().or_else(|| base.server.cwd.clone()),
            stop_timeout: o.stop_timeout.unwrap_or(base.server.stop_timeout),
            name: raw.name.clone(),
            stderr: base.server.stderr,
        },
    })
}

/// The OAuth options as given, before validation.
struct OAuthOptions {
    issuers: Vec<String>,
    jwks_url: Option<String>,
    jwks_file: Option<std::path::PathBuf>,
    audience: Option<String>,
    scopes: Vec<String>,
    min_refresh: Duration,
}

impl OAuthOptions {
    /// `None` when no OAuth option is given; else the settings, or why not.
    fn resolve(
        self,
        public_url: Option<&PublicUrl>,
        has_static_token: bool,
    ) -> Result<Option<OAuthSettings>, ConfigError> {
        let issuers: Vec<String> = self
            .issuers
            .iter()
            .map(|i| i.trim().to_owned())
            .filter(|i| !i.is_empty())
            .collect();
        let scopes: Vec<String> = self
            .scopes
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        let any_other = self.jwks_url.is_some()
            || self.jwks_file.is_some()
            || self.audience.is_some()
            || !scopes.is_empty();
        if issuers.is_empty() {
            return if any_other {
                Err(ConfigError::OAuth(
                    "--oauth-issuer is required with the other --oauth-* options",
                ))
            } else {
                Ok(None)
            };
        }
        if has_static_token {
            return Err(ConfigError::OAuth(
                "--oauth-issuer and --auth-token-file are mutually exclusive",
            ));
        }
        for issuer in &issuers {
            // Compared exactly as written; parsed only to refuse typos.
            parse_http_url(issuer)?;
        }
        if scopes.iter().any(|s| s.contains(char::is_whitespace)) {
            return Err(ConfigError::OAuth("a scope must not contain whitespace"));
        }
        let jwks = match (self.jwks_url, self.jwks_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::OAuth(
                    "--oauth-jwks-url and --oauth-jwks-file are mutually exclusive",
                ));
            }
            (None, None) => {
                return Err(ConfigError::OAuth(
                    "the issuer's keys are needed: --oauth-jwks-url or --oauth-jwks-file",
                ));
            }
            (Some(url), None) => {
                let url = parse_http_url(&url)?;
                if url.scheme() != "https" && !is_loopback_url(&url) {
                    return Err(ConfigError::OAuth(
                        "--oauth-jwks-url must be https (plain http only on loopback)",
                    ));
                }
                JwksSource::Url(url)
            }
            (None, Some(path)) => JwksSource::File(path),
        };
        let Some(resource) = public_url.cloned() else {
            return Err(ConfigError::OAuth(
                "--public-url is required: it is the resource identifier clients ask tokens for",
            ));
        };
        let audience = match self.audience.map(|a| a.trim().to_owned()) {
            Some(a) if a.is_empty() => {
                return Err(ConfigError::OAuth("--oauth-audience must not be empty"));
            }
            Some(a) => a,
            None => resource.as_str().to_owned(),
        };
        Ok(Some(OAuthSettings {
            issuers,
            jwks,
            audience,
            required_scopes: scopes,
            resource,
            min_refresh: self.min_refresh,
            max_age: OAuthSettings::DEFAULT_MAX_AGE,
            leeway: OAuthSettings::DEFAULT_LEEWAY,
        }))
    }
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

/// Read and checked as the token file is (`read_token`): the file's text,
/// trimmed, must be a usable secret.
fn read_session_key(path: &Path) -> Result<SessionKey, ConfigError> {
    let contents = std::fs::read_to_string(path).map_err(|source| ConfigError::SessionKeyFile {
        path: path.to_owned(),
        source,
    })?;
    SessionKey::from_file_contents(&contents).map_err(|source| ConfigError::SessionKey {
        path: path.to_owned(),
        source,
    })
}
